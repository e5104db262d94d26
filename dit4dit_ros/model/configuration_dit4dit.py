"""Configuration of the DiT4DiT policy: plain dataclasses that travel with every checkpoint (config.json).

Numbers and their sources are in shared/docs/method.md (DiT4DiT, arXiv 2603.10448; Video2Act, 2512.03044).
Three presets: ``tiny`` (CPU tests), ``small`` (trainable on a 2-core CPU for the simulation tasks) and
``paper`` (Cosmos-Predict2.5-2B video DiT + the DiT-B action head).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class VideoConfig:
    """The video Diffusion Transformer (diffusers' CosmosTransformer3DModel) and what feeds it."""

    # CosmosTransformer3DModel architecture (diffusers argument names).
    num_layers: int = 28
    num_attention_heads: int = 16
    attention_head_dim: int = 128
    mlp_ratio: float = 4.0
    adaln_lora_dim: int = 256
    text_embed_dim: int = 1024
    patch_size: tuple[int, int, int] = (1, 2, 2)
    max_size: tuple[int, int, int] = (128, 240, 240)
    rope_scale: tuple[float, float, float] = (1.0, 3.0, 3.0)
    concat_padding_mask: bool = True
    extra_pos_embed_type: str | None = None
    use_crossattn_projection: bool = True
    crossattn_proj_in_channels: int = 100352
    # Pixels -> latents. "wan_vae": AutoencoderKLWan (8x spatial, 4x temporal, 16 channels);
    # "pixel_unshuffle": a fixed, parameter-free codec for from-scratch presets (space-to-depth by
    # spatial_compression, first frame alone then groups of temporal_compression frames averaged).
    latent_codec: str = "wan_vae"
    latent_channels: int = 16
    spatial_compression: int = 8
    temporal_compression: int = 4
    # Frames and resolution the model sees: T_lat = (num_frames - 1) // temporal_compression + 1.
    num_frames: int = 9
    image_size: tuple[int, int] = (224, 224)
    fps: int = 30
    # The hook: output of block feature_layer (0-based) after ONE pass at flow time feature_timestep.
    feature_layer: int = 17
    feature_timestep: float = 0.995
    condition_timestep: float = 1e-4
    # Text: "cosmos_reason" (Cosmos-Reason1-7B hidden states, the paper) or "bytes" (a small trainable
    # byte-level encoder for from-scratch presets).
    text_encoder: str = "cosmos_reason"
    text_max_tokens: int = 512
    # Where pretrained weights come from (local diffusers directory or hub id); None = from scratch.
    pretrained: str | None = None
    revision: str | None = None

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def latent_frames(self) -> int:
        return (self.num_frames - 1) // self.temporal_compression + 1

    @property
    def latent_size(self) -> tuple[int, int]:
        return (self.image_size[0] // self.spatial_compression, self.image_size[1] // self.spatial_compression)

    @property
    def num_feature_tokens(self) -> int:
        h, w = self.latent_size
        return self.latent_frames * (h // self.patch_size[1]) * (w // self.patch_size[2])


@dataclass
class ActionConfig:
    """The action Diffusion Transformer (GR00T-style "DiT-B")."""

    num_layers: int = 16
    num_attention_heads: int = 12
    attention_head_dim: int = 64
    dropout: float = 0.2
    # Robot: real dimensions, and the padded maxima the model is built with (masks cover the padding).
    action_dim: int = 16
    state_dim: int = 16
    max_action_dim: int = 32
    max_state_dim: int = 64  # after sin/cos encoding of each joint angle
    horizon: int = 16
    # Output head and encoders.
    decoder_hidden_dim: int = 2560
    state_hidden_dim: int = 2560
    num_timestep_buckets: int = 1000
    # Conditioning tokens: "dit4dit" (video-DiT features), "video2act" (boundary + motion tokens from the
    # same features), or "both".
    conditioning: str = "dit4dit"
    video2act_motion_band_hz: tuple[float, float] = (1.0, 7.0)

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


@dataclass
class FlowMatchingConfig:
    """Dual flow matching with three decoupled timesteps. Convention: x_t = (1 - t) x0 + t noise."""

    video_time_distribution: str = "uniform"  # "uniform" (released runs) or "logit_normal" (config default)
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    logit_normal_high_fraction: float = 0.05  # share of samples forced into [0.98, 1]
    action_time_beta: tuple[float, float] = (1.5, 1.0)
    action_time_scale: float = 0.999  # tau = u / scale, u ~ Beta
    action_repeats: int = 4
    video_loss_weight: float = 1.0  # lambda; 0 = the "no video objective" baseline
    detach_features: bool = True  # official code: detached; the paper: end-to-end
    num_inference_steps: int = 4


@dataclass
class DiT4DiTConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    flow: FlowMatchingConfig = field(default_factory=FlowMatchingConfig)
    preset: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiT4DiTConfig:
        """Inverse of to_dict; unknown keys are an error (a config from another version must not load silently)."""
        sections = {"video": VideoConfig, "action": ActionConfig, "flow": FlowMatchingConfig}
        unknown = set(data) - set(sections) - {"preset"}
        if unknown:
            raise ValueError(f"unknown config sections {sorted(unknown)}")
        kwargs: dict[str, Any] = {"preset": data.get("preset", "custom")}
        for name, section_cls in sections.items():
            values = dict(data.get(name, {}))
            known = {f.name: f for f in dataclasses.fields(section_cls)}
            bad = set(values) - set(known)
            if bad:
                raise ValueError(f"unknown keys in config section {name!r}: {sorted(bad)}")
            for key, value in values.items():
                if isinstance(value, list):  # JSON has no tuples
                    values[key] = tuple(value)
            kwargs[name] = section_cls(**values)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> DiT4DiTConfig:
        return cls.from_dict(json.loads(text))


def tiny() -> DiT4DiTConfig:
    """CPU tests: a training step well under a second."""
    return DiT4DiTConfig(
        preset="tiny",
        video=VideoConfig(
            num_layers=4, num_attention_heads=2, attention_head_dim=16, adaln_lora_dim=16, text_embed_dim=32,
            max_size=(16, 32, 32), concat_padding_mask=False, extra_pos_embed_type=None,
            use_crossattn_projection=False, latent_codec="pixel_unshuffle", latent_channels=48,
            spatial_compression=4, temporal_compression=4, num_frames=5, image_size=(32, 32),
            feature_layer=2, text_encoder="bytes", text_max_tokens=32, rope_scale=(1.0, 1.0, 1.0),
        ),
        action=ActionConfig(
            num_layers=2, num_attention_heads=2, attention_head_dim=16, dropout=0.0, horizon=8,
            decoder_hidden_dim=64, state_hidden_dim=64,
        ),
    )


def small() -> DiT4DiTConfig:
    """From scratch on a 2-core CPU for the simulation tasks: 64x64 frames, a few-million-parameter model."""
    return DiT4DiTConfig(
        preset="small",
        video=VideoConfig(
            num_layers=8, num_attention_heads=4, attention_head_dim=32, adaln_lora_dim=32, text_embed_dim=128,
            max_size=(16, 64, 64), concat_padding_mask=False, extra_pos_embed_type=None,
            use_crossattn_projection=False, latent_codec="pixel_unshuffle", latent_channels=48,
            spatial_compression=4, temporal_compression=4, num_frames=9, image_size=(64, 64),
            feature_layer=5, text_encoder="bytes", text_max_tokens=48, rope_scale=(1.0, 1.0, 1.0),
        ),
        action=ActionConfig(
            num_layers=4, num_attention_heads=4, attention_head_dim=32, dropout=0.1, horizon=16,
            decoder_hidden_dim=256, state_hidden_dim=256,
        ),
    )


PAPER_HUB_ID = "nvidia/Cosmos-Predict2.5-2B"
PAPER_REVISION = "diffusers/base/post-trained"


def paper() -> DiT4DiTConfig:
    """Cosmos-Predict2.5-2B video DiT (block 17 of 28, tau_f 0.995) + the DiT-B action head, G1 tabletop."""
    return DiT4DiTConfig(
        preset="paper",
        video=VideoConfig(pretrained=PAPER_HUB_ID, revision=PAPER_REVISION),
        action=ActionConfig(),
    )


PRESETS = {"tiny": tiny, "small": small, "paper": paper}


def preset(name: str) -> DiT4DiTConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
