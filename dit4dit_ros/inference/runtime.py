"""The two halves of live inference on numpy inputs, as the nodes (and the benchmark's in-process baseline)
call them: VideoEncoderRuntime (System 2: frames + instruction -> block-k features) and ActionPlannerRuntime
(System 1: features + joint state -> an action chunk). Inputs are validated against the model's shapes so a
wrong stream gives one clear error instead of a tensor-shape traceback deep in the model."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from dit4dit_ros.interfaces import instruction_id
from dit4dit_ros.model.video_backbone import feature_grid


class InputError(ValueError):
    """An input the model cannot take (wrong image size, wrong state size, features of another shape)."""


class VideoEncoderRuntime:
    def __init__(self, policy, *, seed: int = 0):
        self.policy = policy
        self.config = policy.config.video
        self.device = next(policy.parameters()).device
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._instruction = ""
        self._embedding: torch.Tensor | None = None
        self._lock = threading.Lock()

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.image_size)

    def set_instruction(self, text: str) -> str:
        """Embed (once: the policy caches embeddings per instruction) and keep; returns the instruction id."""
        text = text.strip()
        with self._lock:
            if text == self._instruction and self._embedding is not None:
                return instruction_id(text)
            with torch.inference_mode():
                embedding = self.policy.embed_instructions([text]) if text else None
            self._instruction, self._embedding = text, embedding
        return instruction_id(text)

    @property
    def instruction(self) -> str:
        return self._instruction

    def frames_to_tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        """RGB uint8 frames (H, W, 3), oldest first -> (1, F, 3, H, W) in [-1, 1]."""
        height, width = self.image_size
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise InputError(f"frame {frame.shape} {frame.dtype}; the model takes ({height}, {width}, 3) uint8 "
                                 f"(set camera_ingest's size from the same checkpoint)")
        clip = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2)
        return (clip.float() / 127.5 - 1.0).unsqueeze(0)

    def encode(self, frames: list[np.ndarray]) -> tuple[np.ndarray, float]:
        """(features (1, T, h, w, D) float32, seconds spent). Needs an instruction."""
        with self._lock:
            embedding = self._embedding
        if embedding is None:
            raise InputError("no instruction: the encoder conditions on the task server's instruction")
        clip = self.frames_to_tensor(frames)
        start = time.perf_counter()
        with torch.inference_mode():
            features = self.policy.encode_video(clip, embedding, generator=self._generator)
        return features.float().cpu().numpy(), time.perf_counter() - start


class ActionPlannerRuntime:
    def __init__(self, policy, *, seed: int = 0, num_steps: int | None = None):
        self.policy = policy
        self.device = next(policy.parameters()).device
        self.num_steps = num_steps or None
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        video = policy.config.video
        self.feature_shape = (*feature_grid(video), video.hidden_size)
        self.joint_names = list(policy.joint_names)
        self.horizon = policy.config.action.horizon

    def plan(self, features: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, float]:
        """(actions (horizon, action_dim) float64 in physical units, seconds spent)."""
        features = np.asarray(features, dtype=np.float32)
        if features.shape[-4:] != self.feature_shape or features.ndim not in (4, 5):
            raise InputError(f"features {list(features.shape)}; this model's action DiT takes "
                             f"[1, {', '.join(map(str, self.feature_shape))}] (is the encoder running the same model?)")
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if state.shape[0] != self.policy.config.action.state_dim:
            raise InputError(f"state has {state.shape[0]} values; the model takes "
                             f"{self.policy.config.action.state_dim} ({self.joint_names})")
        if not np.isfinite(state).all():
            raise InputError("state contains NaN or Inf")
        tokens = torch.from_numpy(features.reshape(1, *self.feature_shape)).to(self.device)
        start = time.perf_counter()
        with torch.inference_mode():
            actions = self.policy.predict_action(tokens, torch.from_numpy(state).to(self.device)[None],
                                                 generator=self._generator, num_steps=self.num_steps)
        return actions[0].double().cpu().numpy(), time.perf_counter() - start
