"""DiT4DiTPolicy: the video DiT (features + video loss), the Video2Act conditioner and the action DiT,
trained with dual flow matching and sampled with a few Euler steps.

Inference is what the ROS nodes call, in two halves that run at two rates (the Video2Act two-system
design): ``encode_video`` (System 2: one partial video-DiT pass -> block-k tokens) and ``predict_action``
(System 1: the action DiT on the latest tokens and the current joint state). Training is
``compute_loss`` on a batch; checkpoints are directories (see checkpoint.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from dit4dit_ros.g1 import ACTION_NAMES
from dit4dit_ros.model import checkpoint
from dit4dit_ros.model.action_dit import ActionDiT
from dit4dit_ros.model.configuration_dit4dit import DiT4DiTConfig
from dit4dit_ros.model.flow_matching import (
    euler_sample,
    interpolate,
    masked_mse,
    sample_action_time,
    sample_video_time,
    velocity_target,
)
from dit4dit_ros.model.video2act import Video2ActConditioner
from dit4dit_ros.model.video_backbone import VideoBackbone

# G1 tabletop action/state order (method.md): left arm 7, right arm 7, left grip, right grip.
G1_TABLETOP_JOINTS = ACTION_NAMES  # 7 + 7 arm joints + 2 grip scalars, by name (dit4dit_ros/g1.py)


class DiT4DiTPolicy(nn.Module):
    def __init__(self, config: DiT4DiTConfig, *, joint_names: Sequence[str] | None = None,
                 embodiment: str = "unitree_g1_tabletop"):
        super().__init__()
        self.config = config
        action = config.action
        self.joint_names = list(joint_names) if joint_names is not None else list(G1_TABLETOP_JOINTS)
        if len(self.joint_names) != action.action_dim:
            raise ValueError(f"{len(self.joint_names)} joint names for action_dim {action.action_dim}")
        if action.action_dim > action.max_action_dim:
            raise ValueError(f"action_dim {action.action_dim} > max_action_dim {action.max_action_dim}")
        self.embodiment = embodiment

        self.video = VideoBackbone(config.video)
        self.conditioner = Video2ActConditioner(action.conditioning, config.video.hidden_size,
                                                band_hz=action.video2act_motion_band_hz)
        # The motion band-pass runs over LATENT frames, which come at fps / temporal_compression.
        self._latent_fps = config.video.fps / config.video.temporal_compression
        self.action_head = ActionDiT(action, context_dim=config.video.hidden_size)
        # Min-max statistics of the actions in physical units (the model works in [-1, 1]); buffers so that
        # they are saved in model.safetensors with the weights. Identity until set from a dataset.
        self.register_buffer("action_min", -torch.ones(action.action_dim))
        self.register_buffer("action_max", torch.ones(action.action_dim))

    # -- normalisation ----------------------------------------------------------------------------------
    def set_normalization(self, action_min, action_max) -> None:
        low = torch.as_tensor(action_min, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(action_max, dtype=torch.float32).reshape(-1)
        if low.shape != self.action_min.shape or high.shape != self.action_max.shape:
            raise ValueError(f"statistics for {low.numel()} dims, the policy has {self.action_min.numel()}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or (high < low).any():
            raise ValueError("action statistics must be finite with max >= min")
        self.action_min.copy_(low)
        self.action_max.copy_(high)

    def _center_and_half_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        # A constant dimension (max == min) maps to 0 instead of dividing by zero.
        return (self.action_max + self.action_min) / 2, ((self.action_max - self.action_min) / 2).clamp_min(1e-6)

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        center, half_range = self._center_and_half_range()
        return (actions - center) / half_range

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        center, half_range = self._center_and_half_range()
        return actions * half_range + center

    def _pad_actions(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, action_dim) -> (B, H, max_action_dim) and a (max_action_dim,) mask of the real dims."""
        pad = self.config.action.max_action_dim - actions.shape[-1]
        mask = torch.zeros(self.config.action.max_action_dim, device=actions.device)
        mask[: actions.shape[-1]] = 1
        return nn.functional.pad(actions, (0, pad)), mask

    # -- inference ----------------------------------------------------------------------------------------
    def embed_instructions(self, instructions: Sequence[str]) -> torch.Tensor:
        """Text embeddings, cached per instruction (the embedding depends on the instruction only)."""
        return self.video.embed_instructions(list(instructions))

    def encode_video(self, frames: torch.Tensor, instruction_embeddings: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """System 2: observed frames (B, F_obs, 3, H, W) in [-1, 1] -> block-k tokens (B, T, h, w, D)."""
        return self.video.extract_features(frames, instruction_embeddings, generator=generator)

    @torch.no_grad()
    def predict_action(self, features: torch.Tensor, state: torch.Tensor,
                       generator: torch.Generator | None = None, num_steps: int | None = None) -> torch.Tensor:
        """System 1: tokens (B, T, h, w, D) + joint state (B, state_dim) -> actions (B, H, action_dim), physical."""
        action = self.config.action
        if state.ndim != 2 or state.shape[1] != action.state_dim:
            raise ValueError(f"state must be (batch, {action.state_dim}), got {tuple(state.shape)}")
        if not torch.isfinite(state).all():
            raise ValueError("state contains NaN or Inf")
        if not torch.isfinite(features).all():
            raise ValueError("features contain NaN or Inf")
        context = self.conditioner(features, fps=self._latent_fps)
        batch = state.shape[0]

        def velocity(x, t):
            return self.action_head(x, t, state, context)

        normalized = euler_sample(velocity, (batch, action.horizon, action.max_action_dim),
                                  num_steps=num_steps or self.config.flow.num_inference_steps,
                                  generator=generator, device=state.device, dtype=state.dtype)
        return self.unnormalize_actions(normalized[..., : action.action_dim])

    # -- training -------------------------------------------------------------------------------------------
    def compute_loss(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Dual flow matching with the tri-timestep scheme.

        batch: "frames" (B, num_frames, 3, H, W) in [-1, 1] (frame 0 observed, the rest its future),
        "instruction" (list of B strings), "state" (B, state_dim), "actions" (B, horizon, action_dim) in
        physical units, optional "action_is_pad" (B, horizon) bool for steps past an episode's end.
        Returns {"loss", "action_loss", "video_loss"}.
        """
        flow = self.config.flow
        frames, state, actions = batch["frames"], batch["state"], batch["actions"]
        batch_size = frames.shape[0]
        text = self.video.text_encoder.encode(list(batch["instruction"]))  # no cache: it may be training

        # Features at the fixed tau_f from the OBSERVED frame only; detached = the official code.
        observed = frames[:, :1]
        if flow.detach_features:
            with torch.no_grad():
                features = self.encode_video(observed, text, generator=generator)
        else:
            features = self.encode_video(observed, text, generator=generator)
        context = self.conditioner(features, fps=self._latent_fps)

        # Action flow matching: tau_a ~ Beta, repeated draws per sample, loss on real dims and steps only.
        repeats = flow.action_repeats
        target, dim_mask = self._pad_actions(self.normalize_actions(actions))
        step_mask = torch.ones(actions.shape[:2], device=actions.device)
        if "action_is_pad" in batch:
            step_mask = (~batch["action_is_pad"].bool()).float()
        mask = (step_mask[..., None] * dim_mask).repeat(repeats, 1, 1)
        # Padded steps carry no data: zero them so that whatever a dataset put there cannot reach the real
        # steps through self-attention over the noisy input.
        x0 = (target * step_mask[..., None]).repeat(repeats, 1, 1)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tau_a = sample_action_time(x0.shape[0], flow, generator=generator, device=x0.device)
        prediction = self.action_head(interpolate(x0, noise, tau_a), tau_a, state.repeat(repeats, 1),
                                      context.repeat(repeats, 1, 1))
        action_loss = masked_mse(prediction, velocity_target(x0, noise), mask)

        # Video flow matching on the future latent frames at tau_v (skipped entirely when lambda = 0).
        if flow.video_loss_weight > 0:
            tau_v = sample_video_time(batch_size, flow, generator=generator, device=frames.device)
            video_loss = self.video.video_loss(frames, text, tau_v, generator=generator)
        else:
            video_loss = torch.zeros((), device=frames.device)
        return {"loss": action_loss + flow.video_loss_weight * video_loss,
                "action_loss": action_loss, "video_loss": video_loss}

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, **metadata) -> None:
        # Frozen pretrained parts (Wan VAE, Cosmos-Reason) are not submodules: they reload from config.video.
        state = self.state_dict()
        meta = {"joint_names": self.joint_names, "embodiment": self.embodiment, "metadata": metadata}
        checkpoint.write(directory, self.config.to_dict(), state, meta)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, *, revision: str | None = None,
                        map_location: str | torch.device = "cpu") -> DiT4DiTPolicy:
        directory = checkpoint.resolve(path_or_hub_id, revision=revision)
        config_dict, state, meta = checkpoint.read(directory)
        try:
            config = DiT4DiTConfig.from_dict(config_dict)
        except (TypeError, ValueError) as error:
            raise checkpoint.CheckpointError(f"{directory / checkpoint.CONFIG_FILE}: {error}") from error
        policy = cls(config, joint_names=meta.get("joint_names"),
                     embodiment=meta.get("embodiment", "unitree_g1_tabletop"))
        checkpoint.check_state_dict(policy, state)
        policy.load_state_dict(state)
        policy.checkpoint_metadata = meta.get("metadata", {})
        return policy.to(map_location)
