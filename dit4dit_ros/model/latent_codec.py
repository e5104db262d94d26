"""Pixels <-> normalised latents for the video DiT.

Layout everywhere: pixels ``(B, F, 3, H, W)`` in [-1, 1]; latents ``(B, C, T_lat, h, w)`` with
``T_lat = (F - 1) // temporal + 1`` and ``h, w = H // spatial, W // spatial``. Frame 0 is encoded on its own,
each following group of ``temporal`` frames becomes one latent frame (causal video VAE layout, Wan2.1);
frames that do not fill a last group are dropped, as the Wan VAE does.

Two codecs:
- :class:`PixelUnshuffleCodec`: fixed and parameter-free (for from-scratch presets): temporal groups are
  averaged, space-to-depth by ``spatial``; ``C = 3 * spatial**2``. ``decode`` is exact up to the temporal
  averaging (each latent frame is repeated ``temporal`` times).
- :class:`WanVAECodec`: diffusers' ``AutoencoderKLWan`` (16 channels, 8x spatial, 4x temporal), frozen;
  latents normalised per channel as the Cosmos-Predict2.5 pipeline does: ``(z - latents_mean) / latents_std``
  with the VAE config's statistics, ``z`` the posterior mode (the pipeline's ``sample_mode="argmax"``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit4dit_ros.model.configuration_dit4dit import VideoConfig


def latent_frames(num_frames: int, temporal: int) -> int:
    """T_lat = (F - 1) // temporal + 1 (F >= 1)."""
    if num_frames < 1:
        raise ValueError(f"need at least one frame, got {num_frames}")
    return (num_frames - 1) // temporal + 1


def pixel_frames(num_latent_frames: int, temporal: int) -> int:
    """The pixel frames one latent clip decodes to: (T_lat - 1) * temporal + 1."""
    return (num_latent_frames - 1) * temporal + 1


def _check_frames(frames: torch.Tensor, spatial: int) -> None:
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be (B, F, 3, H, W), got {tuple(frames.shape)}")
    h, w = frames.shape[-2:]
    if h % spatial or w % spatial:
        raise ValueError(f"frame size {h}x{w} is not a multiple of the spatial compression {spatial}")


def _group_mean(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over ``dim``; for a power-of-two size by pairwise halving, so identical values average to
    themselves exactly (a static clip round-trips bit for bit)."""
    n = x.shape[dim]
    if n & (n - 1):
        return x.mean(dim=dim)
    while x.shape[dim] > 1:
        pairs = x.unflatten(dim, (x.shape[dim] // 2, 2))
        x = (pairs.select(dim + 1, 0) + pairs.select(dim + 1, 1)) * 0.5
    return x.squeeze(dim)


class LatentCodec(nn.Module):
    """Interface: ``encode(frames) -> latents``, ``decode(latents) -> frames``; attributes below."""

    latent_channels: int
    spatial: int
    temporal: int
    trainable: bool = False

    def latent_frames(self, num_frames: int) -> int:
        return latent_frames(num_frames, self.temporal)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class PixelUnshuffleCodec(LatentCodec):
    """Parameter-free: frame 0 alone, then means over groups of ``temporal`` frames; space-to-depth."""

    def __init__(self, spatial: int, temporal: int) -> None:
        super().__init__()
        if spatial < 1 or temporal < 1:
            raise ValueError(f"spatial and temporal compression must be >= 1, got {spatial}, {temporal}")
        self.spatial = int(spatial)
        self.temporal = int(temporal)
        self.latent_channels = 3 * self.spatial ** 2

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, self.spatial)
        b, f, c, h, w = frames.shape
        t_lat = self.latent_frames(f)
        first = frames[:, :1]
        rest = frames[:, 1:1 + (t_lat - 1) * self.temporal]
        rest = _group_mean(rest.reshape(b, t_lat - 1, self.temporal, c, h, w), dim=2)
        grouped = torch.cat([first, rest], dim=1)                       # (B, T_lat, 3, H, W)
        z = F.pixel_unshuffle(grouped.flatten(0, 1), self.spatial)      # (B*T_lat, C, h, w)
        return z.unflatten(0, (b, t_lat)).transpose(1, 2).contiguous()  # (B, C, T_lat, h, w)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (B, {self.latent_channels}, T, h, w), got {tuple(latents.shape)}")
        b, _, t_lat = latents.shape[:3]
        x = F.pixel_shuffle(latents.transpose(1, 2).flatten(0, 1), self.spatial).unflatten(0, (b, t_lat))
        if t_lat == 1:
            return x
        return torch.cat([x[:, :1], x[:, 1:].repeat_interleave(self.temporal, dim=1)], dim=1)


class WanVAECodec(LatentCodec):
    """Frozen ``AutoencoderKLWan`` with the Cosmos-Predict2.5 latent normalisation.

    ``sample=False`` (default) encodes to the posterior mode, as the Cosmos pipeline conditions; ``True``
    samples the posterior (needs a generator for reproducibility). The VAE always stays in eval mode, gets
    no gradients, and its weights are not part of the owner's ``state_dict`` (they come from the pretrained
    directory, not from policy checkpoints).
    """

    def __init__(self, vae: nn.Module, sample: bool = False) -> None:
        super().__init__()
        cfg = vae.config
        # Held outside nn.Module's registry: not in parameters()/state_dict() of the owner, never switched to
        # train mode; _apply below still moves/casts it with the owner (.to(), .cuda(), .double()).
        object.__setattr__(self, "_vae", vae.eval().requires_grad_(False))
        self.sample = sample
        self.latent_channels = int(cfg.z_dim)
        self.temporal = int(getattr(cfg, "scale_factor_temporal", None) or 2 ** sum(cfg.temperal_downsample))
        self.spatial = int(getattr(cfg, "scale_factor_spatial", None) or 2 ** len(cfg.temperal_downsample))
        if cfg.latents_mean is None or cfg.latents_std is None:
            raise ValueError("the VAE config must define latents_mean and latents_std")
        shape = (1, self.latent_channels, 1, 1, 1)
        self.register_buffer("latents_mean", torch.tensor(cfg.latents_mean, dtype=torch.float32).view(shape),
                             persistent=False)
        self.register_buffer("latents_std", torch.tensor(cfg.latents_std, dtype=torch.float32).view(shape),
                             persistent=False)

    @property
    def vae(self) -> nn.Module:
        return self._vae

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._vae._apply(fn, recurse)
        return self

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, revision: str | None = None, subfolder: str = "vae",
                        torch_dtype: torch.dtype | None = None, sample: bool = False) -> WanVAECodec:
        from dit4dit_ros.model.hub import resolve_component

        folder = resolve_component(path_or_hub_id, revision=revision, subfolder=subfolder)
        from diffusers import AutoencoderKLWan
        from diffusers.utils import is_accelerate_available

        vae = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch_dtype,
                                               low_cpu_mem_usage=is_accelerate_available())
        return cls(vae, sample=sample)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_frames(frames, self.spatial)
        x = frames.transpose(1, 2).to(self.vae.dtype)                  # (B, 3, F, H, W)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample(generator) if self.sample else posterior.mode()
        z = z.float()
        return (z - self.latents_mean) / self.latents_std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.float() * self.latents_std + self.latents_mean
        video = self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0]  # (B, 3, F, H, W)
        return video.float().transpose(1, 2)


def build_codec(config: VideoConfig) -> LatentCodec:
    """The codec named by ``config.latent_codec``, checked against ``config.latent_channels``."""
    if config.latent_codec == "pixel_unshuffle":
        codec: LatentCodec = PixelUnshuffleCodec(config.spatial_compression, config.temporal_compression)
    elif config.latent_codec == "wan_vae":
        if not config.pretrained:
            raise ValueError("latent_codec='wan_vae' needs pretrained weights: set VideoConfig.pretrained to a "
                             "local diffusers directory or hub id (e.g. nvidia/Cosmos-Predict2.5-2B)")
        codec = WanVAECodec.from_pretrained(config.pretrained, revision=config.revision)
    else:
        raise ValueError(f"unknown latent_codec {config.latent_codec!r}; choose 'pixel_unshuffle' or 'wan_vae'")
    got = (codec.latent_channels, codec.spatial, codec.temporal)
    want = (config.latent_channels, config.spatial_compression, config.temporal_compression)
    if got != want:
        raise ValueError(f"codec {config.latent_codec!r} gives (channels, spatial, temporal) = {got} but the "
                         f"config says {want}")
    return codec
