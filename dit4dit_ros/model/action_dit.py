"""The action Diffusion Transformer: GR00T-style "DiT-B" that predicts a flow-matching velocity for a
chunk of future actions, conditioned on the flow time, the robot state and video tokens.

Structure (shared/docs/method.md, "Action DiT"):

    state (B, state_dim) --[sin, cos] per joint, zero-pad--> MLP --> 1 token
    noisy actions (B, H, max_action_dim) --Linear, ++ sinusoid(t bucket), Linear, swish, Linear,
                                           + learned position--> H tokens
    sequence = [state token, H action tokens]
    num_layers blocks; block i even: cross-attention to the video tokens, odd: self-attention; each
        AdaLN(t) -> attention -> residual -> LayerNorm -> GELU(tanh) FFN 4x -> residual
    head: AdaLN shift/scale -> LayerNorm -> Linear(hidden -> decoder_hidden_dim)
          -> MLP(decoder_hidden_dim -> decoder_hidden_dim -> max_action_dim); keep the last H positions.

With the paper preset (12 heads x 64, 16 blocks, 2048-d video tokens) this is ~162.5 M parameters.

Padding: the model knows ``config.action_dim`` (single embodiment), so it zeroes the padded action dims
of its input and of its output. The prediction for the real dims therefore never depends on what fills
the padding (noise during training and sampling), and the padded output velocity is exactly 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dit4dit_ros.model.configuration_dit4dit import ActionConfig
from dit4dit_ros.model.flow_matching import discretize_time

# Width of the sinusoidal features fed to the timestep MLP (as in GR00T's TimestepEncoder).
TIMESTEP_CHANNELS = 256


def encode_state(state: torch.Tensor, max_state_dim: int) -> torch.Tensor:
    """Joint angles (..., J) in radians -> (..., max_state_dim): [sin q_1, cos q_1, sin q_2, ...] + zeros.

    sin/cos makes the encoding continuous across the +-pi wrap of revolute joints and bounded in [-1, 1]
    without dataset statistics. Raises ValueError when 2 * J > max_state_dim.
    """
    joints = state.shape[-1]
    if 2 * joints > max_state_dim:
        raise ValueError(f"{joints} joints need {2 * joints} state dims after sin/cos encoding, "
                         f"but max_state_dim is {max_state_dim}")
    encoded = torch.stack([torch.sin(state), torch.cos(state)], dim=-1).flatten(-2)
    return F.pad(encoded, (0, max_state_dim - 2 * joints))


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(...,) float -> (..., dim) [sin(x w_k), cos(x w_k)] with geometric frequencies w_k, float32.

    Used on the discretised time bucket (0..num_buckets-1), so the frequencies span the bucket range.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[..., None] * freqs
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))  # odd dim: one zero channel


class TimestepEncoder(nn.Module):
    """Bucket index (B,) -> (B, hidden): sinusoid(256) -> Linear -> SiLU -> Linear. Drives every AdaLN."""

    def __init__(self, hidden: int):
        super().__init__()
        self.linear_1 = nn.Linear(TIMESTEP_CHANNELS, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, buckets: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(buckets, TIMESTEP_CHANNELS).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(emb)))


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine parameters, modulated per sample by the timestep embedding:
    norm(x) * (1 + scale) + shift, with (scale, shift) = Linear(SiLU(temb))."""

    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, 2 * hidden)
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-5)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention; keys/values come from ``kv_dim``-wide tokens (the video tokens for cross-
    attention, the sequence itself for self-attention). Dropout is applied to the output projection."""

    def __init__(self, hidden: int, num_heads: int, head_dim: int, kv_dim: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.to_q = nn.Linear(hidden, inner)
        self.to_k = nn.Linear(kv_dim, inner)
        self.to_v = nn.Linear(kv_dim, inner)
        self.to_out = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, inner) -> (B, heads, L, head_dim)
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._heads(self.to_q(x)), self._heads(self.to_k(kv)), self._heads(self.to_v(kv))
        # Boolean mask, True = may attend; (B, 1, 1, N) broadcasts over heads and queries.
        attn_mask = kv_mask[:, None, None, :] if kv_mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.dropout(self.to_out(out.transpose(1, 2).flatten(2)))


class DiTBlock(nn.Module):
    """AdaLN(t) -> attention (cross if ``context_dim`` is given, else self) -> residual
    -> LayerNorm -> GELU(tanh) FFN 4x -> residual.

    Dropout placement follows GR00T's block (diffusers Attention/FeedForward with final_dropout=True):
    after the attention output projection AND again on the attention branch, after the FFN activation
    and after the FFN output. Keeping the same placements keeps dropout=0.2 as strong as in the paper.
    """

    def __init__(self, hidden: int, num_heads: int, head_dim: int, dropout: float, context_dim: int | None):
        super().__init__()
        self.is_cross = context_dim is not None
        self.norm1 = AdaLayerNorm(hidden)
        self.attn = Attention(hidden, num_heads, head_dim, context_dim if self.is_cross else hidden, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-5)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
            nn.Linear(4 * hidden, hidden), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.norm1(x, temb)
        if self.is_cross:
            h = self.attn(h, context, context_mask)
        else:
            h = self.attn(h, h)
        x = x + self.attn_dropout(h)
        return x + self.ff(self.norm2(x))


class ActionEncoder(nn.Module):
    """Noisy actions (B, H, A) + time bucket (B,) -> (B, H, hidden):
    cat[Linear(A -> hidden)(a), sinusoid(bucket, hidden)] -> Linear(2 hidden -> hidden) -> swish -> Linear."""

    def __init__(self, action_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.layer1 = nn.Linear(action_dim, hidden)
        self.layer2 = nn.Linear(2 * hidden, hidden)
        self.layer3 = nn.Linear(hidden, hidden)

    def forward(self, actions: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
        a = self.layer1(actions)
        tau = sinusoidal_embedding(buckets, self.hidden).to(a.dtype)[:, None].expand_as(a)
        return self.layer3(F.silu(self.layer2(torch.cat([a, tau], dim=-1))))


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    # GR00T's state encoder and action decoder: two layers with a ReLU between.
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


class ActionDiT(nn.Module):
    """Velocity model v(x_t, t | state, video tokens) for action chunks; see the module docstring."""

    def __init__(self, config: ActionConfig, context_dim: int):
        super().__init__()
        if config.action_dim > config.max_action_dim:
            raise ValueError(f"action_dim {config.action_dim} > max_action_dim {config.max_action_dim}")
        if 2 * config.state_dim > config.max_state_dim:
            raise ValueError(f"state_dim {config.state_dim} needs {2 * config.state_dim} dims after sin/cos "
                             f"encoding, max_state_dim is {config.max_state_dim}")
        if context_dim < 1 or config.num_layers < 1 or config.horizon < 1:
            raise ValueError("context_dim, num_layers and horizon must be >= 1")
        self.config = config
        self.context_dim = context_dim
        hidden = config.hidden_size

        self.timestep_encoder = TimestepEncoder(hidden)
        self.state_encoder = _mlp(config.max_state_dim, config.state_hidden_dim, hidden)
        self.action_encoder = ActionEncoder(config.max_action_dim, hidden)
        # Only the action tokens get a learned position (the single state token needs none).
        self.position_embedding = nn.Parameter(torch.empty(config.horizon, hidden))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.blocks = nn.ModuleList(
            DiTBlock(hidden, config.num_attention_heads, config.attention_head_dim, config.dropout,
                     context_dim if i % 2 == 0 else None)
            for i in range(config.num_layers)
        )
        self.proj_out_1 = nn.Linear(hidden, 2 * hidden)  # output AdaLN: (shift, scale) from temb
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.proj_out_2 = nn.Linear(hidden, config.decoder_hidden_dim)
        self.action_decoder = _mlp(config.decoder_hidden_dim, config.decoder_hidden_dim, config.max_action_dim)
        # 1 on the real action dims, 0 on the padding; derived from the config, so not saved.
        self.register_buffer("action_dim_mask",
                             (torch.arange(config.max_action_dim) < config.action_dim).float(), persistent=False)

    def _check_inputs(self, noisy_actions, t, state, context, context_mask) -> None:
        cfg = self.config
        if noisy_actions.ndim != 3 or noisy_actions.shape[-1] != cfg.max_action_dim:
            raise ValueError(f"noisy_actions must be (batch, horizon, {cfg.max_action_dim}) (padded to "
                             f"max_action_dim), got {tuple(noisy_actions.shape)}")
        batch, horizon = noisy_actions.shape[:2]
        if not 1 <= horizon <= cfg.horizon:
            raise ValueError(f"action horizon {horizon} must be in [1, {cfg.horizon}]")
        if t.shape != (batch,):
            raise ValueError(f"t must be ({batch},), got {tuple(t.shape)}")
        if state.shape != (batch, cfg.state_dim):
            raise ValueError(f"state must be ({batch}, {cfg.state_dim}), got {tuple(state.shape)}")
        if context.ndim != 3 or context.shape[0] != batch or context.shape[-1] != self.context_dim:
            raise ValueError(f"context must be ({batch}, tokens, {self.context_dim}), got {tuple(context.shape)}")
        if context.shape[1] < 1:
            raise ValueError("context must hold at least one token")
        if context_mask is not None:
            if context_mask.shape != context.shape[:2] or context_mask.dtype != torch.bool:
                raise ValueError(f"context_mask must be bool {tuple(context.shape[:2])}, got "
                                 f"{context_mask.dtype} {tuple(context_mask.shape)}")
            # A sample with no valid token would make the softmax 0/0 = NaN.
            if not bool(context_mask.any(dim=1).all()):
                raise ValueError("every sample needs at least one valid context token (context_mask True)")

    def forward(self, noisy_actions: torch.Tensor, t: torch.Tensor, state: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted velocity (B, H, max_action_dim) (padded dims exactly 0).

        noisy_actions (B, H, max_action_dim): x_t, padded to max_action_dim; t (B,): flow time in [0, 1]
        (1 = noise); state (B, state_dim): joint angles in radians; context (B, N, context_dim): video
        tokens; context_mask (B, N) bool, True = valid token (optional).
        """
        self._check_inputs(noisy_actions, t, state, context, context_mask)
        cfg = self.config
        horizon = noisy_actions.shape[1]
        dtype = self.proj_out_2.weight.dtype
        buckets = discretize_time(t, cfg.num_timestep_buckets).to(torch.float32)
        temb = self.timestep_encoder(buckets)

        actions = (noisy_actions * self.action_dim_mask).to(dtype)
        action_tokens = self.action_encoder(actions, buckets) + self.position_embedding[:horizon]
        state_token = self.state_encoder(encode_state(state, cfg.max_state_dim).to(dtype))[:, None]
        x = torch.cat([state_token, action_tokens], dim=1)
        context = context.to(dtype)
        for block in self.blocks:
            x = block(x, temb, context, context_mask)

        x = x[:, -horizon:]  # the head is per position: only the action positions are needed
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale[:, None]) + shift[:, None]
        velocity = self.action_decoder(self.proj_out_2(x))
        return velocity * self.action_dim_mask
