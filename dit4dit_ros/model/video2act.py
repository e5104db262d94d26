"""Video2Act conditioning from the SAME video-DiT features the DiT4DiT head uses.

Video2Act (arXiv 2512.03044; shared/docs/method.md "Video2Act") refines video-diffusion features into two
extra kinds of conditioning tokens:

* foreground boundaries: a per-channel spatial edge-magnitude filter (Sobel; Laplacian / Scharr as
  options) over each latent frame's H x W token grid;
* inter-frame motion: a temporal FFT band-pass (1-7 Hz) over the latent frames, which removes the static
  content (DC) and slow drifts and keeps oscillation/motion at manipulation rates.

Features are shaped (B, T, H, W, D): T latent frames, an H x W spatial token grid, D channels. The
conditioner turns them into the context tokens (B, N, D) the action DiT cross-attends to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("dit4dit", "video2act", "both")

# 3x3 derivative kernels along W (x); the H (y) kernel is the transpose.
_EDGE_KERNELS = {
    "sobel": [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
    "scharr": [[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]],
}
_LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
# Keeps sqrt differentiable where the gradient is exactly 0 (flat regions) without changing the value
# there: sqrt(g^2 + eps) - sqrt(eps) is 0 at g = 0 and has derivative 0, not inf * 0 = NaN.
_SQRT_EPS = 1e-12


def _check_features(features: torch.Tensor) -> None:
    if features.ndim != 5:
        raise ValueError(f"features must be (batch, frames, height, width, channels), got {tuple(features.shape)}")


def boundary_map(features: torch.Tensor, kind: str = "sobel") -> torch.Tensor:
    """Per-channel spatial edge magnitude of every frame: (B, T, H, W, D) -> (B, T, H, W, D).

    "sobel" / "scharr": sqrt(gx^2 + gy^2) of the two derivative filters; "laplacian": |Laplacian|.
    Depthwise conv2d (groups = D) with fixed, unnormalised kernels; replicate padding so that a flat
    region touching the border stays exactly 0 (zero padding would invent an edge at the border).
    """
    _check_features(features)
    if kind not in (*_EDGE_KERNELS, "laplacian"):
        raise ValueError(f"unknown edge filter {kind!r}; choose 'sobel', 'scharr' or 'laplacian'")
    b, t, h, w, d = features.shape
    x = features.permute(0, 1, 4, 2, 3).reshape(b * t, d, h, w)  # frames x channels as conv images
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")

    def depthwise(kernel) -> torch.Tensor:
        weight = torch.as_tensor(kernel, dtype=x.dtype, device=x.device).expand(d, 1, 3, 3).contiguous()
        return F.conv2d(x, weight, groups=d)

    if kind == "laplacian":
        magnitude = depthwise(_LAPLACIAN).abs()
    else:
        kx = torch.tensor(_EDGE_KERNELS[kind])
        gx, gy = depthwise(kx), depthwise(kx.T)
        magnitude = torch.sqrt(gx.square() + gy.square() + _SQRT_EPS) - _SQRT_EPS**0.5
    return magnitude.reshape(b, t, d, h, w).permute(0, 1, 3, 4, 2)


def motion_map(features: torch.Tensor, fps: float, band_hz: tuple[float, float] = (1.0, 7.0)) -> torch.Tensor:
    """Temporal band-pass of every token and channel: (B, T, H, W, D) -> (B, T, H, W, D).

    rfft over the T frames, keep the bins whose frequency f = k * fps / T lies inside [low, high] Hz,
    irfft back to T frames. ``fps`` is the rate of the FEATURE frames: for a video latent with temporal
    compression c, that is the pixel frame rate / c.

    Limits of a T-frame window, by design not hidden: the bins are fps / T apart, so
    * when no bin lies in the band (e.g. T = 1, or T = 2 at 16 fps: bins 0 and 8 Hz) the result is all
      zeros - there is no in-band motion to report;
    * a component between bins leaks into the neighbouring bins (the window is treated as periodic): at
      T = 16, 16 fps (1 Hz bins) a 0.2 Hz drift is only partly removed (from 6 % to nearly all of its
      rms leaks through, depending on its phase: over 1 s it looks like a ramp, not a slow sine). It is
      removed exactly once the window resolves it (T = 80 at 16 fps puts 0.2 Hz on a bin); Video2Act
      band-passes a long frame sequence for this reason.
    """
    _check_features(features)
    low, high = band_hz
    if fps <= 0 or low > high:
        raise ValueError(f"need fps > 0 and band low <= high, got fps={fps}, band_hz={band_hz}")
    frames = features.shape[1]
    # rfft is not implemented for half precision on every backend: transform in float32 at least.
    work = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features
    spectrum = torch.fft.rfft(work, dim=1)
    freqs = torch.fft.rfftfreq(frames, d=1.0 / fps, device=features.device)
    keep = ((freqs >= low) & (freqs <= high)).to(spectrum.real.dtype).reshape(-1, 1, 1, 1)
    return torch.fft.irfft(spectrum * keep, n=frames, dim=1).to(features.dtype)


def num_tokens(mode: str, T: int, H: int, W: int) -> int:
    """Context length the conditioner produces: T*H*W tokens per kind (1 kind, 2 kinds or 3 kinds)."""
    kinds = {"dit4dit": 1, "video2act": 2, "both": 3}
    if mode not in kinds:
        raise ValueError(f"unknown conditioning mode {mode!r}; choose one of {MODES}")
    return kinds[mode] * T * H * W


class Video2ActConditioner(nn.Module):
    """Video-DiT features (B, T, H, W, D) -> context tokens (B, N, D) for the action DiT.

    * "dit4dit": the features flattened to T*H*W tokens, untouched (the paper; no parameters).
    * "video2act": boundary tokens then motion tokens, each LayerNorm + Linear projected (edge
      magnitudes and band-passed values live on scales unlike the raw features and unlike each other).
    * "both": feature tokens, boundary tokens, motion tokens.
    With more than one kind, a learned type embedding is added per kind: cross-attention has no notion
    of order, so without it the action DiT could not tell a motion token from a boundary token.
    """

    def __init__(self, mode: str, dim: int, *, edge_kind: str = "sobel",
                 band_hz: tuple[float, float] = (1.0, 7.0)):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown conditioning mode {mode!r}; choose one of {MODES}")
        if edge_kind not in (*_EDGE_KERNELS, "laplacian"):
            raise ValueError(f"unknown edge filter {edge_kind!r}; choose 'sobel', 'scharr' or 'laplacian'")
        self.mode, self.dim, self.edge_kind, self.band_hz = mode, dim, edge_kind, tuple(band_hz)
        if mode != "dit4dit":
            self.boundary_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
            self.motion_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
            kinds = 2 if mode == "video2act" else 3
            self.type_embedding = nn.Parameter(torch.empty(kinds, dim))
            nn.init.normal_(self.type_embedding, std=0.02)

    def num_tokens(self, T: int, H: int, W: int) -> int:
        return num_tokens(self.mode, T, H, W)

    def forward(self, features: torch.Tensor, fps: float) -> torch.Tensor:
        _check_features(features)
        if features.shape[-1] != self.dim:
            raise ValueError(f"features have {features.shape[-1]} channels, the conditioner expects {self.dim}")
        tokens = features.flatten(1, 3)
        if self.mode == "dit4dit":
            return tokens
        boundary = self.boundary_proj(boundary_map(features, self.edge_kind).flatten(1, 3))
        motion = self.motion_proj(motion_map(features, fps, self.band_hz).flatten(1, 3))
        parts = [tokens] if self.mode == "both" else []
        parts += [boundary, motion]
        return torch.cat([part + self.type_embedding[i] for i, part in enumerate(parts)], dim=1)
