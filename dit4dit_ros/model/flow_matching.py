"""Flow-matching maths shared by the video loss, the action loss and action sampling.

Convention (used everywhere in this package, see shared/docs/method.md "Tri-timestep"):

    x_t = (1 - t) * x0 + t * noise        t = 0: data, t = 1: pure noise
    v   = d x_t / d t = noise - x0        the velocity the networks predict
    sampling: start at t = 1 from N(0, I) and integrate backwards, x <- x - dt * v

Every random draw takes an optional ``torch.Generator`` so that training steps and sampled actions are
reproducible. Draws are made on the generator's device and then moved to ``device``: the same seed gives
the same numbers whether the model runs on CPU or on a GPU (and a CPU generator works with CUDA tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from dit4dit_ros.model.configuration_dit4dit import FlowMatchingConfig

# The logit-normal "high" samples land uniformly in [HIGH_TIME_START, 1] (Cosmos' training default).
HIGH_TIME_START = 0.98


def _generator_device(generator: torch.Generator | None, device) -> torch.device:
    """Where a random draw must happen: a generator only produces numbers on its own device."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _rand(shape: Sequence[int], generator, device) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=generator, device=_generator_device(generator, device)).to(device)


def _randn(shape: Sequence[int], generator, device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, device=_generator_device(generator, device)).to(device)


# -- timestep distributions -----------------------------------------------------------------------------
def sample_video_time(batch_size: int, config: FlowMatchingConfig, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
    """Flow time tau_v for the video loss, shape (batch_size,), float32 in [0, 1].

    ``config.video_time_distribution``:
      * "uniform": U[0, 1] (every released DiT4DiT training run).
      * "logit_normal": sigmoid(N(logit_normal_mean, logit_normal_std)), and each sample independently,
        with probability ``logit_normal_high_fraction``, is replaced by a draw from U[0.98, 1] (the
        Cosmos config default). A per-sample coin rather than an exact count keeps the distribution the
        same for every batch size, including batch size 1.
    The same random numbers are consumed whatever the outcome, so the stream stays aligned.
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    kind = config.video_time_distribution
    if kind == "uniform":
        return _rand((batch_size,), generator, device)
    if kind == "logit_normal":
        fraction = config.logit_normal_high_fraction
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"logit_normal_high_fraction must lie in [0, 1], got {fraction}")
        if config.logit_normal_std < 0:
            raise ValueError(f"logit_normal_std must be >= 0, got {config.logit_normal_std}")
        z = _randn((batch_size,), generator, device)
        coin = _rand((batch_size,), generator, device)
        high = HIGH_TIME_START + (1.0 - HIGH_TIME_START) * _rand((batch_size,), generator, device)
        t = torch.sigmoid(config.logit_normal_mean + config.logit_normal_std * z)
        return torch.where(coin < fraction, high, t)
    raise ValueError(f"unknown video_time_distribution {kind!r}; choose 'uniform' or 'logit_normal'")


def sample_action_time(n: int, config: FlowMatchingConfig, generator: torch.Generator | None = None,
                       device=None) -> torch.Tensor:
    """Flow time tau_a for the action loss, shape (n,), float32 in [0, 1]: tau = min(u / scale, 1).

    u ~ Beta(a, b) with (a, b) = ``config.action_time_beta`` (1.5, 1.0) and scale =
    ``config.action_time_scale`` (0.999).

    Which end gets the mass. Beta(1.5, 1) has density 1.5 * sqrt(u): most mass near u = 1. GR00T N1.5
    (time 1 = CLEAN there) uses t = (0.999 - u) / 0.999 = 1 - u / 0.999, i.e. its mass sits near its
    t = 0, the NOISY end: GR00T emphasises the high-noise part of the trajectory, where the first
    (most decisive) Euler steps of inference happen. Our convention is mirrored (t = 1 = noise), so the
    same distribution of noise levels is tau = 1 - t_GR00T = u / 0.999, which is exactly what the DiT4DiT
    code does (``sample / noise_s`` with x_t = (1 - t) x0 + t noise). Mass therefore sits near tau = 1.

    Why the clamp. u / 0.999 exceeds 1 when u > 0.999 (probability 1 - 0.999**1.5 ~ 0.15 %), which would
    extrapolate past pure noise (a negative weight on x0). We clamp those samples to tau = 1: pure noise,
    the exact point inference starts from. The distribution is therefore (0.999 x)**a-like below 1 with
    a small atom at 1; for (1.5, 1): P(tau <= x) = (0.999 x)**1.5 for x < 1.

    Determinism. torch's Beta/Gamma samplers ignore torch.Generator, so we draw one 62-bit seed from
    the torch generator (or from torch's global RNG when none is given: torch.manual_seed still controls
    it) and sample with a numpy Generator seeded by it. Same torch seed -> same times, on any device.
    """
    a, b = (float(v) for v in config.action_time_beta)
    scale = float(config.action_time_scale)
    if a <= 0 or b <= 0:
        raise ValueError(f"action_time_beta parameters must be > 0, got {config.action_time_beta}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"action_time_scale must lie in (0, 1], got {scale}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=_generator_device(generator, device)).item()
    u = np.random.default_rng(seed).beta(a, b, size=n)
    tau = torch.from_numpy(u).to(torch.float32) / scale
    return tau.clamp_(0.0, 1.0).to(device)


def discretize_time(t: torch.Tensor, num_buckets: int = 1000) -> torch.Tensor:
    """Continuous flow time in [0, 1] -> bucket index (LongTensor) in [0, num_buckets - 1].

    Bucket k covers [k / N, (k + 1) / N); t = 1 (pure noise) shares the last bucket. Out-of-range
    inputs are clamped rather than rejected so that float round-off never yields an invalid index.
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    return torch.floor(t * num_buckets).long().clamp_(0, num_buckets - 1)


# -- the interpolation path -----------------------------------------------------------------------------
def _broadcast_time(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """t of shape (B,) (or a scalar) -> shape (B, 1, ..., 1) matching ``like``'s rank and dtype."""
    t = torch.as_tensor(t, device=like.device)
    if t.ndim == 0:
        return t.to(like.dtype)
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or shaped ({like.shape[0]},), got {tuple(t.shape)}")
    # Cast to the data dtype: a float32 t must not silently promote bf16 activations to float32.
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """x_t = (1 - t) * x0 + t * noise, with t of shape (B,) broadcast over the remaining dims."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have the same shape")
    tb = _broadcast_time(t, x0)
    return (1 - tb) * x0 + tb * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target d x_t / d t = noise - x0 (independent of t on the straight path)."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have the same shape")
    return noise - x0


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the unmasked elements only (a scalar).

    ``mask`` broadcasts to ``prediction``'s shape; 1 marks a real element (a real action dimension, a
    real time step), 0 padding. The sum of squared errors over real elements is divided by the NUMBER of
    real elements, so the value does not depend on how much padding there is (a plain mean would shrink
    as max_action_dim grows). Fractional masks act as weights. Padded elements are removed with
    ``torch.where`` before squaring, so even NaN/Inf there cannot leak into the loss or its gradient.
    An all-zero mask gives 0.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, prediction.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != prediction.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to {tuple(prediction.shape)}")
    weight = mask.to(device=prediction.device, dtype=prediction.dtype).expand_as(prediction)
    diff = torch.where(weight != 0, prediction - target, torch.zeros((), dtype=prediction.dtype,
                                                                    device=prediction.device))
    total = (diff.square() * weight).sum()
    return total / weight.sum().clamp_min(torch.finfo(prediction.dtype).tiny)


# -- sampling -------------------------------------------------------------------------------------------
def euler_sample(velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: Sequence[int],
                 num_steps: int = 4, generator: torch.Generator | None = None, device=None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """Integrate dx/dt = velocity_fn(x, t) from t = 1 (x ~ N(0, I)) down to t = 0 with Euler steps.

    Step i (0-based) evaluates the velocity at t_i = 1 - i / N and moves x <- x - (1 / N) * v, so with
    N = 4 the model is queried at t = 1, 0.75, 0.5, 0.25 (method.md "Inference"); t_batch has shape
    (B,) with B = shape[0]. Gradients are not disabled here: wrap the call in torch.no_grad() for
    inference. Deterministic for a seeded generator (the only randomness is the initial noise).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        raise ValueError("shape needs a batch dimension")
    x = _randn(shape, generator, device).to(dtype or torch.get_default_dtype())
    dt = 1.0 / num_steps
    for i in range(num_steps):
        t = torch.full((shape[0],), 1.0 - i * dt, device=x.device, dtype=x.dtype)
        v = velocity_fn(x, t)
        if v.shape != x.shape:
            raise ValueError(f"velocity_fn returned {tuple(v.shape)}, expected {shape}")
        x = x - dt * v
    return x
