"""Flow-matching maths: timestep distributions (against their analytic laws), the interpolation path, the
masked loss and the Euler sampler (against velocity fields whose integral is known exactly)."""

import dataclasses
import math

import pytest
import torch

from dit4dit_ros.model.configuration_dit4dit import FlowMatchingConfig
from dit4dit_ros.model.flow_matching import (
    discretize_time,
    euler_sample,
    interpolate,
    masked_mse,
    sample_action_time,
    sample_video_time,
    velocity_target,
)

N = 200_000
# Kolmogorov-Smirnov critical value at significance 0.001: a correct sampler fails this 1 time in 1000.
KS_CRITICAL = 1.95 / math.sqrt(N)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ks(samples: torch.Tensor, cdf, grid: torch.Tensor) -> float:
    """sup over the grid of |empirical CDF - analytic CDF|."""
    sorted_samples = torch.sort(samples.double()).values
    empirical = torch.searchsorted(sorted_samples, grid.double(), right=True).double() / samples.numel()
    return (empirical - cdf(grid.double())).abs().max().item()


# -- action time ------------------------------------------------------------------------------------------
def test_action_time_matches_scaled_beta_cdf_with_mass_at_the_noisy_end():
    config = FlowMatchingConfig()  # Beta(1.5, 1.0), scale 0.999
    tau = sample_action_time(N, config, generator=_gen(1))
    assert tau.shape == (N,) and tau.dtype == torch.float32
    assert tau.min() >= 0 and tau.max() <= 1
    # P(tau <= x) = P(u <= 0.999 x) = (0.999 x)^1.5 below 1; the clamp puts the rest in an atom at 1.
    grid = torch.linspace(0, 0.9999, 4001)
    assert _ks(tau, lambda x: (0.999 * x) ** 1.5, grid) < KS_CRITICAL
    atom = (tau == 1.0).double().mean().item()
    expected_atom = 1 - 0.999**1.5  # ~0.0015
    assert abs(atom - expected_atom) < 5 * math.sqrt(expected_atom / N)
    # Noisy end (t = 1 is noise in our convention) gets the mass: mean ~0.6, P(tau > 0.5) ~0.65.
    assert abs(tau.double().mean().item() - 0.6 / 0.999) < 0.002
    assert abs((tau > 0.5).double().mean().item() - (1 - (0.999 * 0.5) ** 1.5)) < 0.004


def test_action_time_uses_both_beta_parameters_and_the_scale():
    config = FlowMatchingConfig(action_time_beta=(2.0, 3.0), action_time_scale=1.0)
    tau = sample_action_time(N, config, generator=_gen(2)).double()
    assert abs(tau.mean().item() - 0.4) < 0.003  # a / (a + b)
    assert abs(tau.var().item() - 0.04) < 0.001  # ab / ((a + b)^2 (a + b + 1))
    scaled = sample_action_time(N, dataclasses.replace(config, action_time_scale=0.5), generator=_gen(2))
    # Same draws, divided by 0.5 and clamped at 1.
    torch.testing.assert_close(scaled.double(), (tau / 0.5).clamp(max=1), rtol=1e-6, atol=1e-6)


def test_action_time_is_deterministic_under_a_seed():
    config = FlowMatchingConfig()
    a = sample_action_time(64, config, generator=_gen(7))
    b = sample_action_time(64, config, generator=_gen(7))
    c = sample_action_time(64, config, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)  # without a generator, torch's global RNG drives it
    d = sample_action_time(64, config)
    torch.manual_seed(3)
    assert torch.equal(d, sample_action_time(64, config))


def test_action_time_rejects_bad_parameters():
    with pytest.raises(ValueError):
        sample_action_time(4, FlowMatchingConfig(action_time_beta=(0.0, 1.0)))
    with pytest.raises(ValueError):
        sample_action_time(4, FlowMatchingConfig(action_time_scale=0.0))


# -- video time -------------------------------------------------------------------------------------------
def test_video_time_uniform():
    t = sample_video_time(N, FlowMatchingConfig(video_time_distribution="uniform"), generator=_gen(4))
    assert t.shape == (N,) and t.min() >= 0 and t.max() <= 1
    assert abs(t.double().mean().item() - 0.5) < 0.003
    assert abs(t.double().var().item() - 1 / 12) < 0.001
    assert _ks(t, lambda x: x, torch.linspace(0, 1, 1001)) < KS_CRITICAL


def test_video_time_logit_normal_with_high_fraction():
    config = FlowMatchingConfig(video_time_distribution="logit_normal", logit_normal_high_fraction=0.05)
    t = sample_video_time(N, config, generator=_gen(5)).double()
    assert t.min() > 0 and t.max() <= 1
    # 5 % forced into [0.98, 1], plus the logit-normal's own tail there: P(z > logit(0.98)) ~ 5e-5.
    tail = 0.5 * math.erfc(math.log(0.98 / 0.02) / math.sqrt(2))
    expected = 0.05 + 0.95 * tail
    high = (t >= 0.98).double().mean().item()
    assert abs(high - expected) < 5 * math.sqrt(expected / N)
    # The rest is sigmoid(N(0, 1)): median 0.5, and P(t <= sigmoid(1)) = Phi(1) among the non-forced ones.
    low = t[t < 0.98]
    assert abs(low.median().item() - 0.5) < 0.01
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert abs((low <= 1 / (1 + math.exp(-1))).double().mean().item() - phi1) < 0.005
    none_forced = sample_video_time(N, dataclasses.replace(config, logit_normal_high_fraction=0.0), generator=_gen(5))
    assert (none_forced >= 0.98).double().mean().item() < 0.001


def test_video_time_is_deterministic_and_rejects_unknown_distributions():
    config = FlowMatchingConfig(video_time_distribution="logit_normal")
    assert torch.equal(sample_video_time(32, config, _gen(9)), sample_video_time(32, config, _gen(9)))
    with pytest.raises(ValueError, match="video_time_distribution"):
        sample_video_time(4, FlowMatchingConfig(video_time_distribution="cosine"))


# -- discretisation and the path --------------------------------------------------------------------------
def test_discretize_time_bounds():
    t = torch.tensor([0.0, 0.0009, 0.001, 0.25, 0.5, 0.75, 0.9999, 1.0, -0.1, 1.5])
    buckets = discretize_time(t, 1000)
    assert buckets.dtype == torch.long
    assert buckets.tolist() == [0, 0, 1, 250, 500, 750, 999, 999, 0, 999]
    assert discretize_time(torch.rand(1000, generator=_gen()), 7).unique().tolist() == list(range(7))


def test_interpolate_and_velocity_target():
    g = _gen(11)
    x0, noise = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    t = torch.tensor([0.0, 0.3, 1.0])
    xt = interpolate(x0, noise, t)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[1], 0.7 * x0[1] + 0.3 * noise[1])
    torch.testing.assert_close(xt[2], noise[2])
    # The target is the time derivative of the path.
    eps = 1e-3
    finite_difference = (interpolate(x0, noise, t + eps) - interpolate(x0, noise, t)) / eps
    torch.testing.assert_close(finite_difference, velocity_target(x0, noise), rtol=1e-3, atol=1e-3)
    # A bf16 path stays bf16 with a float32 t.
    assert interpolate(x0.bfloat16(), noise.bfloat16(), t).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        interpolate(x0, noise, torch.rand(2))


# -- masked loss ------------------------------------------------------------------------------------------
def test_masked_mse_ignores_padded_dims_and_the_amount_of_padding():
    g = _gen(12)
    real = 5
    pred, target = torch.randn(2, 4, real, generator=g), torch.randn(2, 4, real, generator=g)
    expected = ((pred - target) ** 2).mean()

    def padded(pad, fill):
        extra = torch.full((2, 4, pad), fill)
        mask = torch.cat([torch.ones(real), torch.zeros(pad)])
        return torch.cat([pred, extra], -1), torch.cat([target, -extra], -1), mask

    for pad, fill in [(0, 0.0), (3, 0.0), (27, 5.0), (11, float("nan")), (4, float("inf"))]:
        p, t, mask = padded(pad, fill)
        torch.testing.assert_close(masked_mse(p, t, mask), expected)

    # Gradient: exactly zero in the padded dims, finite everywhere even with NaN there.
    p, t, mask = padded(6, float("nan"))
    p.requires_grad_(True)
    masked_mse(p, t, mask).backward()
    assert torch.isfinite(p.grad).all() and (p.grad[..., real:] == 0).all() and (p.grad[..., :real] != 0).any()


def test_masked_mse_broadcasting_weights_and_errors():
    g = _gen(13)
    pred, target = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    full = torch.ones(2, 3, 4)
    full[1, 2] = 0  # a padded time step of sample 1
    sq = (pred - target) ** 2
    torch.testing.assert_close(masked_mse(pred, target, full), sq[full.bool()].mean())
    step_mask = torch.ones(2, 3, 1)
    step_mask[1, 2] = 0
    torch.testing.assert_close(masked_mse(pred, target, step_mask), sq[full.bool()].mean())
    assert masked_mse(pred, target, torch.zeros(4)).item() == 0.0
    with pytest.raises(ValueError):
        masked_mse(pred, target, torch.ones(5))
    with pytest.raises(ValueError):
        masked_mse(pred, target[..., :3], torch.ones(4))


# -- Euler sampler ----------------------------------------------------------------------------------------
def test_euler_queries_times_1_075_05_025_with_batch_shaped_t():
    seen = []

    def velocity(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    euler_sample(velocity, (3, 2, 5), num_steps=4, generator=_gen())
    assert [s.shape for s in seen] == [(3,)] * 4
    assert [s[0].item() for s in seen] == [1.0, 0.75, 0.5, 0.25]
    assert all((s == s[0]).all() for s in seen)


@pytest.mark.parametrize("num_steps", [1, 4, 7])
def test_euler_recovers_a_point_mass_exactly(num_steps):
    # Data = the single point c. On the path x_t = (1 - t) c + t n the ideal velocity is
    # v = n - c = (x_t - c) / t, so an Euler step from t to t - dt multiplies (x - c) by (t - dt) / t; the
    # product over the steps telescopes to t_end / t_start = 0 / 1: the sampler lands exactly on c.
    c = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    out = euler_sample(lambda x, t: (x - c) / t[:, None], (6, 3), num_steps=num_steps, generator=_gen(1),
                       dtype=torch.float64)
    torch.testing.assert_close(out, c.expand(6, 3), rtol=0, atol=1e-12)


def test_euler_constant_velocity_and_determinism():
    k = torch.tensor([1.0, -2.0])
    out = euler_sample(lambda x, t: k.expand_as(x), (4, 2), num_steps=4, generator=_gen(21))
    start = torch.randn(4, 2, generator=_gen(21))  # the sampler's initial noise, reproduced
    torch.testing.assert_close(out, start - k)
    assert torch.equal(out, euler_sample(lambda x, t: k.expand_as(x), (4, 2), generator=_gen(21)))
    assert not torch.equal(out, euler_sample(lambda x, t: k.expand_as(x), (4, 2), generator=_gen(22)))
    # A linear field v = x: each step multiplies by (1 - 1/N), so 4 steps give x0 * (3/4)^4.
    torch.testing.assert_close(euler_sample(lambda x, t: x, (4, 2), generator=_gen(21)), start * 0.75**4)


def test_euler_rejects_bad_arguments():
    with pytest.raises(ValueError):
        euler_sample(lambda x, t: x, (2, 3), num_steps=0)
    with pytest.raises(ValueError):
        euler_sample(lambda x, t: x[:, :1], (2, 3))
