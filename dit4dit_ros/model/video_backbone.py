"""The video Diffusion Transformer (diffusers' ``CosmosTransformer3DModel``) as DiT4DiT uses it.

- :meth:`VideoBackbone.extract_features`: ONE partial forward pass at the fixed feature flow time
  (``config.feature_timestep``): observed frames zero-padded in time, encoded, future latent frames noised,
  conditioning latent frame clean with timestep ``config.condition_timestep``; the hidden states after block
  ``config.feature_layer`` are returned as ``(B, T_lat, h', w', D)`` and the later blocks are NOT run.
- :meth:`VideoBackbone.video_loss`: flow matching on a real clip, velocity ``noise - x0`` predicted by the
  full transformer, MSE on the future latent frames only.

Conventions, as diffusers' ``Cosmos2_5_PredictBasePipeline`` feeds the transformer:
- flow time = sigma in [0, 1] (NOT x1000): ``x_t = (1 - t) x0 + t noise``; the transformer gets ``t``
  itself as timestep, per latent frame, shaped ``(B, 1, T, 1, 1)``; conditioning frames get 1e-4;
- input channels = latent channels + 1 condition-mask channel (1 on conditioning frames), plus, when
  ``concat_padding_mask``, one padding-mask channel (all zeros in the pipeline);
- no ``fps`` is passed (the pipeline passes none: RoPE in its "image" form, frame index as position).

The padding mask is resized with ``torch.nn.functional.interpolate(mode="nearest")`` (what torchvision's
tensor resize with NEAREST does), so no torchvision is needed; diffusers' own forward imports it for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit4dit_ros.model.configuration_dit4dit import VideoConfig
from dit4dit_ros.model.latent_codec import LatentCodec, build_codec, latent_frames
from dit4dit_ros.model.text_encoder import InstructionCache, build_text_encoder, text_context_dim


# ----------------------------------------------------------------------------------------------------------
# Building the transformer
# ----------------------------------------------------------------------------------------------------------

def transformer_kwargs(config: VideoConfig) -> dict:
    """``CosmosTransformer3DModel`` arguments for a VideoConfig (in_channels = latents + condition mask)."""
    return dict(
        in_channels=config.latent_channels + 1,
        out_channels=config.latent_channels,
        num_attention_heads=config.num_attention_heads,
        attention_head_dim=config.attention_head_dim,
        num_layers=config.num_layers,
        mlp_ratio=config.mlp_ratio,
        text_embed_dim=config.text_embed_dim,
        adaln_lora_dim=config.adaln_lora_dim,
        max_size=tuple(config.max_size),
        patch_size=tuple(config.patch_size),
        rope_scale=tuple(config.rope_scale),
        concat_padding_mask=config.concat_padding_mask,
        extra_pos_embed_type=config.extra_pos_embed_type,
        use_crossattn_projection=config.use_crossattn_projection,
        crossattn_proj_in_channels=config.crossattn_proj_in_channels,
        encoder_hidden_states_channels=config.text_embed_dim,
    )


def build_transformer(config: VideoConfig):
    """A randomly initialised transformer (use under ``torch.device("meta")`` to size the paper model)."""
    from diffusers import CosmosTransformer3DModel

    return CosmosTransformer3DModel(**transformer_kwargs(config))


def load_transformer(config: VideoConfig, torch_dtype: torch.dtype | None = None):
    """The pretrained transformer from ``config.pretrained`` (``transformer/`` subfolder, ``config.revision``).

    Its stored config must agree with ``config`` (a mismatch is an error that lists every differing field).
    Built on the meta device and filled from the safetensors files (``assign=True``): no random init of 2 B
    parameters, and no dependency on ``accelerate`` (diffusers' own ``from_pretrained`` refuses this model
    without it, because of ``_keep_in_fp32_modules``).
    """
    from dit4dit_ros.model.hub import resolve_component

    folder = resolve_component(config.pretrained, revision=config.revision, subfolder="transformer")
    from diffusers import CosmosTransformer3DModel

    with torch.device("meta"):
        model = CosmosTransformer3DModel.from_config(CosmosTransformer3DModel.load_config(folder))
    bad = {k: (v, model.config.get(k)) for k, v in transformer_kwargs(config).items()
           if _norm(model.config.get(k)) != _norm(v)}
    if bad:
        lines = ", ".join(f"{k}: config {want!r} vs pretrained {got!r}" for k, (want, got) in sorted(bad.items()))
        raise ValueError(f"VideoConfig does not match the pretrained transformer in '{folder}': {lines}")
    state = _read_safetensors(folder, "diffusion_pytorch_model")
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"pretrained transformer weights in '{folder}' do not fit the model: missing "
                         f"{sorted(missing)[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), unexpected "
                         f"{sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)})")
    keep_fp32 = tuple(CosmosTransformer3DModel._keep_in_fp32_modules or ())
    if torch_dtype is not None:
        for name, module in model.named_children():
            if name not in keep_fp32:
                module.to(torch_dtype)
    return model.eval()


def _read_safetensors(folder, stem: str) -> dict[str, torch.Tensor]:
    """All tensors of ``<stem>.safetensors`` or of the shards listed in ``<stem>.safetensors.index.json``."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from dit4dit_ros.model.hub import PretrainedNotFoundError

    folder = Path(folder)
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / f"{stem}.safetensors").is_file():
        files = [f"{stem}.safetensors"]
    else:
        raise PretrainedNotFoundError(f"no {stem}.safetensors (or its .index.json) in '{folder}'")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    return state


def _norm(value):
    return tuple(_norm(v) for v in value) if isinstance(value, (list, tuple)) else value


# ----------------------------------------------------------------------------------------------------------
# The forward pass, step by step (diffusers' CosmosTransformer3DModel.forward, steps 1-8)
# ----------------------------------------------------------------------------------------------------------

@dataclass
class _Prepared:
    tokens: torch.Tensor          # (B, N, D)
    context: torch.Tensor         # cross-attention input after the optional projection
    embedded_timestep: torch.Tensor
    temb: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]
    extra_pos_emb: torch.Tensor | None
    attention_mask: torch.Tensor | None
    grid: tuple[int, int, int]    # (T', h', w') after patchify


def _prepare(transformer, hidden_states, timestep, encoder_hidden_states, condition_mask=None, padding_mask=None,
             attention_mask=None, fps=None) -> _Prepared:
    cfg = transformer.config
    dtype = transformer.patch_embed.proj.weight.dtype
    b, _, t, h, w = hidden_states.shape
    p_t, p_h, p_w = cfg.patch_size
    if t % p_t or h % p_h or w % p_w:
        raise ValueError(f"latent grid {(t, h, w)} is not divisible by the patch size {tuple(cfg.patch_size)}")
    x = hidden_states.to(dtype)
    # 1. condition-mask channel, then the padding-mask channel (resized to the latent grid, nearest).
    if condition_mask is not None:
        x = torch.cat([x, condition_mask.to(dtype)], dim=1)
    if cfg.concat_padding_mask:
        if padding_mask is None:
            padding_mask = x.new_zeros(1, 1, h, w)
        if padding_mask.ndim != 4 or padding_mask.shape[1] != 1 or padding_mask.shape[0] not in (1, b):
            raise ValueError(f"padding_mask must be (1 or B, 1, H, W), got {tuple(padding_mask.shape)}")
        pm = F.interpolate(padding_mask.to(dtype), size=(h, w), mode="nearest")
        x = torch.cat([x, pm.unsqueeze(2).expand(b, 1, t, h, w)], dim=1)
    if x.shape[1] != transformer.patch_embed.proj.in_features // (p_t * p_h * p_w):
        raise ValueError(f"the transformer takes {transformer.patch_embed.proj.in_features // (p_t * p_h * p_w)} "
                         f"input channels (latents + condition mask + padding mask) but got {x.shape[1]}")
    if attention_mask is not None:
        attention_mask = attention_mask[:, None, None, :]
    # 2. positional embeddings: RoPE, plus the learnable absolute embedding when configured.
    rope = transformer.rope(x, fps=fps)
    extra = transformer.learnable_pos_embed(x) if cfg.extra_pos_embed_type else None
    # 3. patchify + linear embedding.
    tokens = transformer.patch_embed(x).flatten(1, 3)
    grid = (t // p_t, h // p_h, w // p_w)
    # 4. timestep embedding: one per sample (B,) or one per latent frame (B, 1, T, 1, 1).
    if timestep.ndim == 1:
        temb, emb_t = transformer.time_embed(tokens, timestep)
    elif timestep.ndim == 5:
        if tuple(timestep.shape) != (b, 1, t, 1, 1):
            raise ValueError(f"per-frame timestep must be (B, 1, T, 1, 1) = {(b, 1, t, 1, 1)}, "
                             f"got {tuple(timestep.shape)}")
        if p_t != 1:
            raise ValueError("per-frame timesteps need a temporal patch size of 1")
        temb, emb_t = transformer.time_embed(tokens, timestep.flatten())
        temb, emb_t = (e.view(b, grid[0], 1, 1, -1).expand(-1, -1, grid[1], grid[2], -1).flatten(1, 3)
                       for e in (temb, emb_t))
    else:
        raise ValueError(f"timestep must be (B,) or (B, 1, T, 1, 1), got {tuple(timestep.shape)}")
    # 5. text context, projected when the model has a cross-attention projection (100352 -> 1024).
    context = encoder_hidden_states.to(dtype)
    if context.shape[0] == 1 and b > 1:
        context = context.expand(b, -1, -1)
    if cfg.use_crossattn_projection:
        context = transformer.crossattn_proj(context)
    return _Prepared(tokens, context, emb_t, temb, rope, extra, attention_mask, grid)


def _run_blocks(transformer, p: _Prepared, num_blocks: int) -> torch.Tensor:
    """Blocks 0 .. num_blocks-1 only; the rest of the stack is not touched."""
    x = p.tokens
    checkpointing = torch.is_grad_enabled() and getattr(transformer, "gradient_checkpointing", False)
    for block in transformer.transformer_blocks[:num_blocks]:
        args = (x, p.context, p.embedded_timestep, p.temb, p.rope, p.extra_pos_emb, p.attention_mask, None)
        x = transformer._gradient_checkpointing_func(block, *args) if checkpointing else block(*args)
    return x


def cosmos_block_features(transformer, hidden_states, timestep, encoder_hidden_states, condition_mask=None,
                          padding_mask=None, attention_mask=None, fps=None, *, block: int) -> torch.Tensor:
    """Hidden states after ``transformer_blocks[block]`` as ``(B, T', h', w', D)``; later blocks are not run."""
    n = len(transformer.transformer_blocks)
    if not 0 <= block < n:
        raise ValueError(f"block {block} out of range for {n} transformer blocks")
    p = _prepare(transformer, hidden_states, timestep, encoder_hidden_states, condition_mask, padding_mask,
                 attention_mask, fps)
    return _run_blocks(transformer, p, block + 1).unflatten(1, p.grid)


def cosmos_velocity(transformer, hidden_states, timestep, encoder_hidden_states, condition_mask=None,
                    padding_mask=None, attention_mask=None, fps=None) -> torch.Tensor:
    """The full forward pass (all blocks + output head): ``(B, C_out, T, H, W)``, equal to diffusers' forward."""
    p = _prepare(transformer, hidden_states, timestep, encoder_hidden_states, condition_mask, padding_mask,
                 attention_mask, fps)
    x = _run_blocks(transformer, p, len(transformer.transformer_blocks))
    x = transformer.proj_out(transformer.norm_out(x, p.embedded_timestep, p.temb))
    p_t, p_h, p_w = transformer.config.patch_size
    t, h, w = p.grid
    # Channel layout of proj_out is (p_h, p_w, p_t, C) per token.
    x = x.reshape(x.shape[0], t, h, w, p_h, p_w, p_t, -1)
    x = x.permute(0, 7, 1, 6, 2, 4, 3, 5)  # (B, C, T', p_t, h', p_h, w', p_w)
    return x.reshape(x.shape[0], x.shape[1], t * p_t, h * p_h, w * p_w)


# ----------------------------------------------------------------------------------------------------------
# The backbone
# ----------------------------------------------------------------------------------------------------------

@dataclass
class VideoInputs:
    """What the transformer sees for one flow-matching evaluation."""

    hidden_states: torch.Tensor    # (B, C, T, h, w): conditioning frames clean, future frames at flow time t
    timestep: torch.Tensor         # (B, 1, T, 1, 1): condition_timestep on conditioning frames, t on the others
    condition_mask: torch.Tensor   # (B, 1, T, h, w): 1 on conditioning frames
    clean: torch.Tensor            # x0 (B, C, T, h, w)
    noise: torch.Tensor            # (B, C, T, h, w)
    num_condition_frames: int

    @property
    def target_velocity(self) -> torch.Tensor:
        return self.noise - self.clean


class VideoBackbone(nn.Module):
    """Cosmos video DiT + latent codec + text encoder (see the module docstring).

    ``transformer``, ``codec`` and ``text_encoder`` may be given (tests, shared instances); otherwise they are
    built from ``config``: the transformer from ``config.pretrained`` (local diffusers directory or hub id,
    ``transformer/`` subfolder, ``config.revision``) or randomly initialised when it is None.
    """

    def __init__(self, config: VideoConfig, *, transformer=None, codec: LatentCodec | None = None,
                 text_encoder: nn.Module | None = None, torch_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not 0 <= config.feature_layer < config.num_layers:
            raise ValueError(f"feature_layer {config.feature_layer} out of range for {config.num_layers} blocks")
        if config.patch_size[0] != 1:
            raise ValueError("per-frame timesteps need patch_size[0] == 1")
        self.config = config
        if transformer is None:
            transformer = load_transformer(config, torch_dtype) if config.pretrained else build_transformer(config)
        self.transformer = transformer
        self.codec = codec if codec is not None else build_codec(config)
        self.text_encoder = text_encoder if text_encoder is not None else build_text_encoder(config)
        self.instruction_cache = InstructionCache()
        if self.codec.latent_channels + 1 != transformer.config.in_channels:
            raise ValueError(f"codec gives {self.codec.latent_channels} latent channels; the transformer takes "
                             f"{transformer.config.in_channels} = latents + 1 condition-mask channel")
        if getattr(self.text_encoder, "embed_dim", None) not in (None, text_context_dim(config)):
            raise ValueError(f"text encoder gives {self.text_encoder.embed_dim} features per token; the video DiT "
                             f"expects {text_context_dim(config)}")

    # -- shapes -------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def feature_grid(self, num_frames: int | None = None, image_size: tuple[int, int] | None = None
                     ) -> tuple[int, int, int]:
        """(T_lat, h', w') of the feature tokens for a clip of ``num_frames`` frames of ``image_size``."""
        return feature_grid(self.config, num_frames, image_size)

    # -- text ---------------------------------------------------------------------------------------------
    def embed_instructions(self, texts) -> torch.Tensor:
        """(B, L, D) embeddings through the per-instruction cache (see InstructionCache for the rule)."""
        return self.instruction_cache.embed(self.text_encoder, texts)

    # -- inputs -------------------------------------------------------------------------------------------
    def prepare_inputs(self, latents: torch.Tensor, generator: torch.Generator | None = None,
                       future_time: float | torch.Tensor | None = None, num_condition_frames: int = 1,
                       noise: torch.Tensor | None = None) -> VideoInputs:
        """Clean conditioning frame(s) (timestep ``condition_timestep``), future frames noised to flow time
        ``future_time`` (a float, or one per sample (B,); default ``config.feature_timestep``)."""
        b, _, t, h, w = latents.shape
        if not 1 <= num_condition_frames < t:
            raise ValueError(f"need 1 <= num_condition_frames < T_lat = {t}, got {num_condition_frames}")
        if future_time is None:
            future_time = self.config.feature_timestep
        tau = torch.as_tensor(future_time, dtype=torch.float32, device=latents.device)
        if tau.ndim == 0:
            tau = tau.expand(b)
        if tau.shape != (b,):
            raise ValueError(f"future_time must be a float or shaped (B,) = ({b},), got {tuple(tau.shape)}")
        if noise is None:
            noise = torch.randn(latents.shape, generator=generator,
                                device=generator.device if generator is not None else latents.device,
                                dtype=torch.float32).to(latents.device)
        elif noise.shape != latents.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != latents shape {tuple(latents.shape)}")
        clean = latents.float()
        noise = noise.float()
        indicator = torch.zeros(b, 1, t, 1, 1, device=latents.device)
        indicator[:, :, :num_condition_frames] = 1.0
        tau5 = tau.view(b, 1, 1, 1, 1)
        noisy = (1.0 - tau5) * clean + tau5 * noise
        hidden = indicator * clean + (1.0 - indicator) * noisy
        timestep = indicator * self.config.condition_timestep + (1.0 - indicator) * tau5
        return VideoInputs(hidden, timestep, indicator.expand(b, 1, t, h, w), clean, noise, num_condition_frames)

    # -- features (early exit) ----------------------------------------------------------------------------
    def forward_features(self, hidden_states, timestep, encoder_hidden_states, condition_mask, padding_mask=None,
                         attention_mask=None, fps=None) -> torch.Tensor:
        """Blocks 0..feature_layer only: ``(B, T_lat, h', w', D)``."""
        return cosmos_block_features(self.transformer, hidden_states, timestep, encoder_hidden_states,
                                     condition_mask, padding_mask, attention_mask, fps,
                                     block=self.config.feature_layer)

    def predict_velocity(self, hidden_states, timestep, encoder_hidden_states, condition_mask, padding_mask=None,
                         attention_mask=None, fps=None) -> torch.Tensor:
        """All blocks + output head: the velocity ``noise - x0`` for every latent frame (B, C, T, h, w)."""
        return cosmos_velocity(self.transformer, hidden_states, timestep, encoder_hidden_states, condition_mask,
                               padding_mask, attention_mask, fps)

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (B, F, 3, H, W), got {tuple(frames.shape)}")
        unit = self.config.spatial_compression * self.config.patch_size[1]
        h, w = frames.shape[-2:]
        if h % unit or w % unit:
            raise ValueError(f"frame size {h}x{w} must be a multiple of {unit} (spatial compression x patch)")

    def _context(self, instruction_embeddings: torch.Tensor, batch: int) -> torch.Tensor:
        if instruction_embeddings.ndim != 3 or instruction_embeddings.shape[0] not in (1, batch):
            raise ValueError(f"instruction_embeddings must be (B or 1, L, D), got "
                             f"{tuple(instruction_embeddings.shape)}")
        return instruction_embeddings

    def extract_features(self, frames: torch.Tensor, instruction_embeddings: torch.Tensor,
                         generator: torch.Generator | None = None, noise: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """Observed frames (B, F_obs, 3, H, W) in [-1, 1] -> feature tokens (B, T_lat, h', w', D).

        The frames are zero-padded in time to ``config.num_frames`` and encoded; the latent frames covering the
        observed frames are the (clean) conditioning frames; the rest are noised to ``config.feature_timestep``;
        one pass through blocks 0..feature_layer.
        """
        self._check_frames(frames)
        b, f_obs = frames.shape[:2]
        total = self.config.num_frames
        if f_obs > total:
            raise ValueError(f"{f_obs} observed frames but the model sees num_frames={total}")
        if f_obs < total:
            frames = torch.cat([frames, frames.new_zeros(b, total - f_obs, *frames.shape[2:])], dim=1)
        latents = self.codec.encode(frames)
        n_cond = latent_frames(f_obs, self.codec.temporal)
        inputs = self.prepare_inputs(latents, generator, self.config.feature_timestep, n_cond, noise)
        return self.forward_features(inputs.hidden_states, inputs.timestep,
                                     self._context(instruction_embeddings, b), inputs.condition_mask)

    forward = extract_features

    # -- video flow-matching loss -------------------------------------------------------------------------
    def video_loss(self, clip: torch.Tensor, instruction_embeddings: torch.Tensor, t: float | torch.Tensor,
                   generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                   num_condition_frames: int = 1, return_details: bool = False):
        """Flow-matching loss on a real clip (B, F, 3, H, W): MSE between the predicted and the target velocity
        (noise - x0) on the FUTURE latent frames only. ``t``: flow time, a float or (B,)."""
        self._check_frames(clip)
        latents = self.codec.encode(clip)
        inputs = self.prepare_inputs(latents, generator, t, num_condition_frames, noise)
        pred = self.predict_velocity(inputs.hidden_states, inputs.timestep,
                                     self._context(instruction_embeddings, clip.shape[0]), inputs.condition_mask)
        n = inputs.num_condition_frames
        target = inputs.target_velocity
        loss = F.mse_loss(pred[:, :, n:].float(), target[:, :, n:])
        if return_details:
            return loss, {"prediction": pred, "target": target, "inputs": inputs}
        return loss


def feature_grid(config: VideoConfig, num_frames: int | None = None, image_size: tuple[int, int] | None = None
                 ) -> tuple[int, int, int]:
    """(T_lat, h', w') of the feature tokens, from shapes only."""
    num_frames = config.num_frames if num_frames is None else num_frames
    height, width = config.image_size if image_size is None else image_size
    _, p_h, p_w = config.patch_size
    s = config.spatial_compression
    return (latent_frames(num_frames, config.temporal_compression), height // s // p_h, width // s // p_w)
