"""Latent codecs, text encoders, the instruction cache and the pretrained-weights resolution (CPU, no weights)."""

from __future__ import annotations

import pytest
import torch

from dit4dit_ros.model.configuration_dit4dit import VideoConfig, paper, small, tiny
from dit4dit_ros.model.hub import PretrainedNotFoundError, resolve_component
from dit4dit_ros.model.latent_codec import PixelUnshuffleCodec, WanVAECodec, build_codec, latent_frames
from dit4dit_ros.model.text_encoder import (
    ByteTextEncoder,
    CosmosReasonTextEncoder,
    InstructionCache,
    build_text_encoder,
)

PAPER_HINT = "huggingface-cli download nvidia/Cosmos-Predict2.5-2B --revision diffusers/base/post-trained"


# ------------------------------------------------------------------------------------------------ codec
def test_pixel_unshuffle_static_clip_round_trip_is_exact():
    torch.manual_seed(0)
    codec = PixelUnshuffleCodec(spatial=4, temporal=4)
    frame = torch.rand(2, 1, 3, 16, 24) * 2 - 1
    clip = frame.expand(2, 9, 3, 16, 24).contiguous()
    z = codec.encode(clip)
    assert z.shape == (2, 48, 3, 4, 6)
    assert codec.latent_channels == 48
    assert torch.equal(codec.decode(z), clip)


def test_pixel_unshuffle_layout_and_temporal_average():
    codec = PixelUnshuffleCodec(spatial=2, temporal=4)
    clip = torch.randn(1, 5, 3, 4, 4)
    z = codec.encode(clip)
    # Latent frame 0 is pixel frame 0 alone; latent frame 1 the mean of frames 1..4.
    back = codec.decode(z)
    assert back.shape == clip.shape
    assert torch.equal(back[:, 0], clip[:, 0])
    torch.testing.assert_close(back[:, 1], clip[:, 1:5].mean(dim=1), rtol=0, atol=1e-6)
    assert torch.equal(back[:, 1], back[:, 4])
    # Space-to-depth: channel c*4 + i*2 + j of latent pixel (y, x) is pixel (2y+i, 2x+j) of colour c.
    assert z[0, 1 * 4 + 1 * 2 + 0, 0, 1, 0] == clip[0, 0, 1, 3, 0]
    assert sum(p.numel() for p in codec.parameters()) == 0


@pytest.mark.parametrize("temporal", [1, 2, 3, 4])
def test_latent_frame_count_formula(temporal):
    codec = PixelUnshuffleCodec(spatial=2, temporal=temporal)
    for f in range(1, 14):
        t_lat = codec.encode(torch.zeros(1, f, 3, 4, 4)).shape[2]
        assert t_lat == (f - 1) // temporal + 1 == latent_frames(f, temporal)
        assert codec.decode(torch.zeros(1, 12, t_lat, 2, 2)).shape[1] == (t_lat - 1) * temporal + 1
    assert latent_frames(9, 4) == 3 and latent_frames(93, 4) == 24
    assert tiny().video.latent_frames == 2 and paper().video.latent_frames == 3


def test_codec_rejects_bad_shapes():
    codec = PixelUnshuffleCodec(spatial=4, temporal=4)
    with pytest.raises(ValueError, match="multiple of the spatial compression 4"):
        codec.encode(torch.zeros(1, 5, 3, 18, 16))
    with pytest.raises(ValueError, match=r"\(B, F, 3, H, W\)"):
        codec.encode(torch.zeros(1, 3, 5, 16, 16))


def test_build_codec_from_presets():
    for cfg in (tiny().video, small().video):
        codec = build_codec(cfg)
        assert isinstance(codec, PixelUnshuffleCodec)
        assert (codec.latent_channels, codec.spatial, codec.temporal) == (48, 4, 4)
    with pytest.raises(ValueError, match="needs pretrained weights"):
        build_codec(VideoConfig(pretrained=None))
    with pytest.raises(ValueError, match=r"\(channels, spatial, temporal\) = \(48, 4, 4\)"):
        build_codec(VideoConfig(latent_codec="pixel_unshuffle", spatial_compression=4))


# ---------------------------------------------------------------------------------------- text encoders
def test_byte_text_encoder_shapes_and_determinism():
    torch.manual_seed(3)
    a = ByteTextEncoder(dim=32, max_tokens=16).eval()
    torch.manual_seed(3)
    b = ByteTextEncoder(dim=32, max_tokens=16).eval()
    texts = ["pick up the cup", "öffne die Schublade", ""]
    with torch.no_grad():
        ea, eb = a.encode(texts), b.encode(texts)
        again = a.encode(texts)
    assert ea.shape == (3, 16, 32) and ea.dtype == torch.float32
    assert torch.isfinite(ea).all()
    assert torch.equal(ea, eb) and torch.equal(ea, again)
    assert not torch.allclose(ea[0], ea[1])
    # Batch composition does not matter; truncation to max_tokens - 1 bytes after BOS.
    assert torch.equal(a.encode([texts[1]])[0].detach(), ea[1])
    long = "x" * 40
    torch.testing.assert_close(a.encode([long]), a.encode([long[:15]]), rtol=0, atol=0)
    ids, valid = a.tokenize(["ab"])
    assert ids[0, :3].tolist() == [ByteTextEncoder.BOS, 97, 98] and valid[0].sum() == 3
    assert ByteTextEncoder(dim=32, max_tokens=16).trainable


def test_instruction_cache_hits_equal_fresh_and_share_whitespace_variants():
    torch.manual_seed(0)
    enc = ByteTextEncoder(dim=32, max_tokens=24).eval()
    cache = InstructionCache()
    first = cache.embed(enc, ["pick up the cup"])
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    second = cache.embed(enc, ["pick up the cup"])
    assert (cache.hits, cache.misses) == (1, 1)
    with torch.no_grad():
        fresh = enc.encode(["pick up the cup"])
    assert torch.equal(first, fresh) and torch.equal(second, fresh)
    variants = cache.embed(enc, ["  pick up the cup\n", "\tpick up the cup ", "open the drawer"])
    assert (cache.hits, cache.misses, len(cache)) == (3, 2, 2)
    assert torch.equal(variants[0], fresh[0]) and torch.equal(variants[1], fresh[0])
    assert variants.shape == (3, 24, 32)
    assert not first.requires_grad


def test_instruction_cache_bypassed_while_training_and_invalidated_by_updates():
    torch.manual_seed(0)
    enc = ByteTextEncoder(dim=32, max_tokens=24)
    cache = InstructionCache()
    enc.eval()
    before = cache.embed(enc, ["stack the cups"])
    assert len(cache) == 1
    # Training (train mode + grad enabled + trainable params): bypass, gradients flow, cache emptied.
    enc.train()
    out = cache.embed(enc, ["stack the cups"])
    assert out.requires_grad and cache.bypasses == 1 and len(cache) == 0
    out.pow(2).mean().backward()
    torch.optim.SGD(enc.parameters(), lr=0.5).step()
    # Eval again: the old value must not come back; the new one is cached and equals a fresh encode.
    enc.eval()
    after = cache.embed(enc, ["stack the cups"])
    with torch.no_grad():
        fresh = enc.encode(["stack the cups"])
    assert torch.equal(after, fresh) and not torch.allclose(after, before)
    assert cache.misses == 2
    # An in-place weight change in eval mode (load_state_dict, optimizer step) also invalidates.
    with torch.no_grad():
        enc.token_embed.weight.add_(0.1)
    changed = cache.embed(enc, ["stack the cups"])
    assert not torch.allclose(changed, after) and cache.misses == 3
    # Train mode under no_grad is not training: cached.
    enc.train()
    with torch.no_grad():
        cache.embed(enc, ["stack the cups"])
    assert cache.hits == 1


def test_instruction_cache_lru_bound():
    enc = ByteTextEncoder(dim=16, max_tokens=8).eval()
    cache = InstructionCache(max_entries=2)
    for text in ["a", "b", "a", "c"]:
        cache.embed(enc, [text])
    assert len(cache) == 2 and "a" in cache and "c" in cache and "b" not in cache


def test_build_text_encoder_dims():
    enc = build_text_encoder(tiny().video)
    assert isinstance(enc, ByteTextEncoder) and (enc.embed_dim, enc.max_tokens) == (32, 32)
    cfg = VideoConfig(text_encoder="bytes", use_crossattn_projection=True, crossattn_proj_in_channels=64,
                      text_max_tokens=8)
    assert build_text_encoder(cfg).embed_dim == 64  # the transformer's projection input
    with pytest.raises(ValueError, match="needs pretrained weights"):
        build_text_encoder(VideoConfig(pretrained=None))


class _FakeChatTokenizer:
    """Stands in for the Qwen tokenizer (no files here): ids = bytes of the rendered chat, right-padded."""

    def apply_chat_template(self, conversation, tokenize, add_generation_prompt, add_vision_id, max_length,
                            truncation, padding):
        assert tokenize and not add_generation_prompt and padding == "max_length" and truncation
        text = "".join(f"<{m['role']}>{m['content'][0]['text']}" for m in conversation)
        ids = [b % 250 + 3 for b in text.encode()][:max_length]
        return {"input_ids": ids + [0] * (max_length - len(ids))}


def test_cosmos_reason_encoder_concatenates_normalised_layers():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                           patch_size=2, spatial_merge_size=1, temporal_patch_size=1, fullatt_block_indexes=[0]),
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(0)
    enc = CosmosReasonTextEncoder(Qwen2_5_VLForConditionalGeneration(cfg), _FakeChatTokenizer(), max_tokens=128)
    assert enc.embed_dim == 3 * 32 and not enc.trainable
    assert list(enc.parameters()) == [] and enc.state_dict() == {}  # frozen 7B weights stay out of checkpoints
    assert not any(p.requires_grad for p in enc.model.parameters()) and not enc.model.training
    out = enc.encode(["pick up the cup", "open the drawer"])
    assert out.shape == (2, 128, 96) and not out.requires_grad
    layers = out.unflatten(-1, (3, 32))
    torch.testing.assert_close(layers.mean(-1), torch.zeros(2, 128, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(layers.std(-1), torch.ones(2, 128, 3), atol=1e-4, rtol=0)
    with torch.no_grad():
        hidden = enc.model(enc.token_ids(["pick up the cup"]), output_hidden_states=True).hidden_states
    last = hidden[3][0]
    torch.testing.assert_close(layers[0, :, 2], (last - last.mean(-1, keepdim=True)) / last.std(-1, keepdim=True))
    assert not torch.allclose(layers[0], layers[1])
    cache = InstructionCache()
    torch.testing.assert_close(cache.embed(enc, [" open the drawer "])[0], out[1])
    cache.embed(enc, ["open the drawer"])
    assert (cache.hits, cache.misses) == (1, 1)


# ------------------------------------------------------------------------------------ pretrained weights
def test_missing_pretrained_path_names_it(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    for load in (lambda: resolve_component(missing, subfolder="transformer"),
                 lambda: WanVAECodec.from_pretrained(str(missing)),
                 lambda: CosmosReasonTextEncoder.from_pretrained(str(missing))):
        with pytest.raises(PretrainedNotFoundError, match="does not exist") as err:
            load()
        assert str(missing) in str(err.value)
    # A directory without the component: the message names the component it looked for.
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(PretrainedNotFoundError, match="no 'vae' component") as err:
        WanVAECodec.from_pretrained(str(tmp_path / "ckpt"))
    assert str(tmp_path / "ckpt") in str(err.value)


def _offline_empty_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def test_offline_hub_id_not_cached_gives_download_hint(monkeypatch, tmp_path):
    _offline_empty_hub(monkeypatch, tmp_path)
    cfg = paper().video
    loaders = [
        lambda: CosmosReasonTextEncoder.from_pretrained(cfg.pretrained, revision=cfg.revision),
        lambda: WanVAECodec.from_pretrained(cfg.pretrained, revision=cfg.revision),
        lambda: build_codec(cfg),
    ]
    for load in loaders:
        with pytest.raises(PretrainedNotFoundError) as err:
            load()
        message = str(err.value)
        assert PAPER_HINT in message
        assert "nvidia/Cosmos-Predict2.5-2B" in message and "HF_HUB_OFFLINE" in message
        assert str(tmp_path / "hf_home" / "hub") in message


def test_offline_hub_id_found_in_cache(monkeypatch, tmp_path):
    _offline_empty_hub(monkeypatch, tmp_path)
    repo = tmp_path / "hf_home" / "hub" / "models--nvidia--Cosmos-Predict2.5-2B"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs" / "diffusers" / "base").mkdir(parents=True)
    (repo / "refs" / "diffusers" / "base" / "post-trained").write_text(commit)
    component = repo / "snapshots" / commit / "vae"
    component.mkdir(parents=True)
    (component / "config.json").write_text("{}")
    found = resolve_component("nvidia/Cosmos-Predict2.5-2B", revision="diffusers/base/post-trained",
                              subfolder="vae")
    assert found == component
    with pytest.raises(PretrainedNotFoundError, match="transformer/config.json"):
        resolve_component("nvidia/Cosmos-Predict2.5-2B", revision="diffusers/base/post-trained",
                          subfolder="transformer")
