"""Instruction text -> token embeddings ``(B, L, D)`` that the video DiT cross-attends to.

Interface of every encoder: ``encode(texts: list[str]) -> Tensor (B, L, D)`` with the attributes
``embed_dim`` (D), ``max_tokens`` (L) and ``trainable``.

- :class:`ByteTextEncoder`: small, trainable, for from-scratch presets: UTF-8 bytes -> embedding + learned
  positions -> one pre-norm transformer encoder layer -> LayerNorm.
- :class:`CosmosReasonTextEncoder`: the paper's encoder, Cosmos-Reason1-7B (a Qwen2.5-VL model) as the
  Cosmos-Predict2.5 pipeline uses it: the prompt in the pipeline's chat template, padded/truncated to 512
  tokens; the hidden states of every decoder layer (not the embedding layer), each normalised per token to
  zero mean / unit std, concatenated: 28 x 3584 = 100352 features per token. Frozen.
- :class:`InstructionCache`: the embedding depends only on the instruction, so compute it once per
  (whitespace-stripped) instruction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit4dit_ros.model.configuration_dit4dit import VideoConfig

COSMOS_SYSTEM_PROMPT = "You are a helpful assistant who will provide prompts to an image generator."


def _as_list(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be strings")
    return texts


class ByteTextEncoder(nn.Module):
    """UTF-8 bytes (a BOS token first, truncated/padded to ``max_tokens``) -> ``(B, max_tokens, dim)``.

    Padding positions are masked out as attention keys (the BOS token is never masked, so no row is
    empty) but still produce outputs, so every text gives exactly ``max_tokens`` tokens. Deterministic:
    no dropout, a fixed computation order.
    """

    PAD, BOS = 256, 257
    trainable = True

    def __init__(self, dim: int, max_tokens: int, num_heads: int | None = None, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be >= 2 (BOS + at least one byte), got {max_tokens}")
        if num_heads is None:
            num_heads = max(h for h in (1, 2, 4, 8) if dim % h == 0 and dim // h >= 8) if dim >= 8 else 1
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = dim
        self.max_tokens = max_tokens
        self.num_heads = num_heads
        self.token_embed = nn.Embedding(258, dim)
        self.pos_embed = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm_out = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def tokenize(self, texts: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, L) and a key mask (B, L), True where a real token (BOS or byte) is."""
        texts = _as_list(texts)
        ids = torch.full((len(texts), self.max_tokens), self.PAD, dtype=torch.long)
        for i, text in enumerate(texts):
            data = list(text.encode("utf-8"))[: self.max_tokens - 1]
            ids[i, 0] = self.BOS
            ids[i, 1:1 + len(data)] = torch.tensor(data, dtype=torch.long)
        return ids, ids != self.PAD

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        ids, valid = self.tokenize(texts)
        device = self.pos_embed.device
        ids, valid = ids.to(device), valid.to(device)
        x = self.token_embed(ids) + self.pos_embed
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp(self.norm2(x))
        return self.norm_out(x)

    forward = encode


class CosmosReasonTextEncoder(nn.Module):
    """Cosmos-Reason1-7B hidden states as Cosmos-Predict2.5 uses them (frozen; needs the pretrained weights).

    The model is held outside nn.Module's registry: its 7 B weights are not in the owner's parameters() or
    state_dict() (policy checkpoints stay small; the weights come from the pretrained directory) and it
    never enters train mode; ``.to()`` still moves it.
    """

    trainable = False

    def __init__(self, model: nn.Module, tokenizer, max_tokens: int = 512,
                 system_prompt: str = COSMOS_SYSTEM_PROMPT) -> None:
        super().__init__()
        object.__setattr__(self, "_model", model.eval().requires_grad_(False))
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        cfg = getattr(model.config, "text_config", model.config)
        self.num_layers = int(cfg.num_hidden_layers)
        self.hidden_size = int(cfg.hidden_size)
        self.embed_dim = self.num_layers * self.hidden_size  # 28 * 3584 = 100352 for Cosmos-Reason1-7B

    @property
    def model(self) -> nn.Module:
        return self._model

    def cache_stamp(self) -> tuple:
        """What InstructionCache ties its entries to: the model is frozen, so where it lives and its dtype."""
        p = next(self._model.parameters())
        return (id(self._model), p.device, p.dtype)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._model._apply(fn, recurse)
        return self

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, revision: str | None = None, subfolder: str = "text_encoder",
                        tokenizer_subfolder: str = "tokenizer", torch_dtype: torch.dtype | None = torch.bfloat16,
                        max_tokens: int = 512) -> CosmosReasonTextEncoder:
        """From a diffusers Cosmos-Predict2.5 directory or hub id (``text_encoder/`` + ``tokenizer/``)."""
        from dit4dit_ros.model.hub import resolve_component

        model_dir = resolve_component(path_or_hub_id, revision=revision, subfolder=subfolder)
        tok_dir = resolve_component(path_or_hub_id, revision=revision, subfolder=tokenizer_subfolder)
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch_dtype)
        return cls(model, tokenizer, max_tokens=max_tokens)

    def token_ids(self, texts: str | Sequence[str]) -> torch.Tensor:
        """(B, max_tokens) ids: system + user turn in the chat template, truncated/padded to max_tokens."""
        rows = []
        for text in _as_list(texts):
            conversation = [
                {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
                {"role": "user", "content": [{"type": "text", "text": text}]},
            ]
            out = self.tokenizer.apply_chat_template(
                conversation, tokenize=True, add_generation_prompt=False, add_vision_id=False,
                max_length=self.max_tokens, truncation=True, padding="max_length")
            ids = out["input_ids"] if not isinstance(out, list) and "input_ids" in out else out
            rows.append(torch.as_tensor(ids, dtype=torch.long).reshape(-1))
        return torch.stack(rows)

    @torch.no_grad()
    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        ids = self.token_ids(texts).to(next(self.model.parameters()).device)
        # As the pipeline: no attention mask (right padding after a causal model leaves real tokens intact).
        hidden = self.model(ids, output_hidden_states=True).hidden_states  # embeddings + one per layer
        layers = []
        for h in hidden[1:]:
            h32 = h.float()
            layers.append((h32 - h32.mean(dim=-1, keepdim=True)) / (h32.std(dim=-1, keepdim=True) + 1e-8))
        return torch.cat(layers, dim=-1).to(hidden[-1].dtype)  # the model's dtype, as the pipeline returns

    forward = encode


def text_context_dim(config: VideoConfig) -> int:
    """What the video DiT's cross-attention takes in: the projection input when it has one."""
    return config.crossattn_proj_in_channels if config.use_crossattn_projection else config.text_embed_dim


def build_text_encoder(config: VideoConfig) -> nn.Module:
    if config.text_encoder == "bytes":
        return ByteTextEncoder(text_context_dim(config), config.text_max_tokens)
    if config.text_encoder == "cosmos_reason":
        if not config.pretrained:
            raise ValueError("text_encoder='cosmos_reason' needs pretrained weights: set VideoConfig.pretrained to a "
                             "local diffusers directory or hub id (e.g. nvidia/Cosmos-Predict2.5-2B)")
        enc = CosmosReasonTextEncoder.from_pretrained(config.pretrained, revision=config.revision,
                                                      max_tokens=config.text_max_tokens)
        if enc.embed_dim != text_context_dim(config):
            raise ValueError(f"text encoder gives {enc.embed_dim} features per token but the video DiT expects "
                             f"{text_context_dim(config)}")
        return enc
    raise ValueError(f"unknown text_encoder {config.text_encoder!r}; choose 'bytes' or 'cosmos_reason'")


def _encoder_is_training(encoder: nn.Module) -> bool:
    """Training = the encoder is in train mode, autograd is on, and it has trainable parameters."""
    return (encoder.training and torch.is_grad_enabled()
            and any(p.requires_grad for p in encoder.parameters()))


def _weights_stamp(encoder: nn.Module) -> tuple:
    """Changes whenever any parameter/buffer of the encoder is replaced or modified in place (optimizer step,
    load_state_dict, .to()): torch bumps a tensor's version counter on every in-place write. An encoder may
    define ``cache_stamp()`` instead (CosmosReasonTextEncoder: frozen weights held outside the registry)."""
    custom = getattr(encoder, "cache_stamp", None)
    if callable(custom):
        return ("custom", custom())
    return tuple((t.data_ptr(), t._version) for t in (*encoder.parameters(), *encoder.buffers()))


class InstructionCache:
    """Instruction embeddings computed once per instruction.

    Key: the instruction with surrounding whitespace stripped (``" pick cup\\n"`` and ``"pick cup"`` share
    an entry). Entries are detached tensors (L, D) on the encoder's output device.

    Invalidation rule (the encoder may be trainable, e.g. :class:`ByteTextEncoder`):
    1. While the encoder is being trained (train mode AND grad enabled AND it has parameters with
       requires_grad) the cache is BYPASSED: every call re-encodes with autograd, nothing is stored or
       returned from the cache (counted in ``bypasses``), and the cache is cleared, since the weights are
       about to change.
    2. Every entry is tied to the encoder object and a stamp of its weights (tensor version counters); a
       different encoder or any in-place change of its weights since (an optimizer step, load_state_dict)
       clears the cache on the next call. So a frozen encoder (Cosmos-Reason) caches for the whole run, and
       a trainable one caches in eval / no-grad use between updates.
    ``max_entries`` bounds the memory (least recently used entries go first; a Cosmos-Reason entry is
    512 x 100352 floats, about 200 MB in float32).
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._owner: tuple | None = None
        self.hits = 0
        self.misses = 0
        self.bypasses = 0

    @staticmethod
    def key(text: str) -> str:
        return text.strip()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: str) -> bool:
        return self.key(text) in self._entries

    def clear(self) -> None:
        self._entries.clear()
        self._owner = None

    def embed(self, encoder: nn.Module, texts: str | Sequence[str]) -> torch.Tensor:
        keys = [self.key(t) for t in _as_list(texts)]
        if _encoder_is_training(encoder):
            self.bypasses += len(keys)
            self.clear()
            return encoder.encode(keys)
        owner = (id(encoder), _weights_stamp(encoder))
        if owner != self._owner:
            self._entries.clear()
            self._owner = owner
        missing = list(dict.fromkeys(k for k in keys if k not in self._entries))
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            with torch.no_grad():
                fresh = encoder.encode(missing)
            for k, emb in zip(missing, fresh):
                self._entries[k] = emb.detach()
        out = torch.stack([self._entries[k] for k in keys])
        for k in keys:
            self._entries.move_to_end(k)
        if self.max_entries is not None:
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return out
