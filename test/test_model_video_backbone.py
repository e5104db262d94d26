"""The video DiT backbone: early-exit features, inputs as the Cosmos 2.5 pipeline builds them, the video
flow-matching loss, and the paper-sized transformer sized on the meta device (CPU, tiny presets)."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
import torch.nn.functional as F

from dit4dit_ros.model.configuration_dit4dit import paper, tiny
from dit4dit_ros.model.hub import PretrainedNotFoundError
from dit4dit_ros.model.latent_codec import WanVAECodec
from dit4dit_ros.model.video_backbone import (
    VideoBackbone,
    build_transformer,
    cosmos_block_features,
    feature_grid,
    transformer_kwargs,
)

PAPER_HINT = "huggingface-cli download nvidia/Cosmos-Predict2.5-2B --revision diffusers/base/post-trained"


def _backbone(seed: int = 0, **overrides) -> VideoBackbone:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(tiny().video, **overrides)
    model = VideoBackbone(cfg)
    if model.transformer.learnable_pos_embed is not None:  # zero-initialised in diffusers: make it matter
        for p in model.transformer.learnable_pos_embed.parameters():
            torch.nn.init.normal_(p)
    return model.eval()


def _clip(b=2, f=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, f, 3, 32, 32, generator=g) * 2 - 1


def _count_block_calls(model):
    calls = [0] * len(model.transformer.transformer_blocks)
    handles = [blk.register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls[k] + 1))
               for k, blk in enumerate(model.transformer.transformer_blocks)]
    return calls, handles


def test_tiny_shapes_and_dtypes():
    model = _backbone()
    cfg = model.config
    assert model.transformer.config.in_channels == cfg.latent_channels + 1 == 49
    assert model.transformer.patch_embed.proj.in_features == 49 * 4  # no padding-mask channel in tiny
    emb = model.embed_instructions(["pick up the cup", "open the drawer"])
    assert emb.shape == (2, 32, 32)
    with torch.no_grad():
        feats = model.extract_features(_clip(f=1), emb, generator=torch.Generator().manual_seed(0))
    assert feats.shape == (2, 2, 4, 4, 32) and feats.dtype == torch.float32
    assert feature_grid(cfg) == (2, 4, 4) and feats[0, ..., 0].numel() == cfg.num_feature_tokens == 32
    latents = model.codec.encode(_clip())
    assert latents.shape == (2, 48, 2, 8, 8)
    inputs = model.prepare_inputs(latents, torch.Generator().manual_seed(0))
    assert inputs.hidden_states.shape == (2, 48, 2, 8, 8)
    assert inputs.timestep.shape == (2, 1, 2, 1, 1) and inputs.condition_mask.shape == (2, 1, 2, 8, 8)
    with pytest.raises(ValueError, match="multiple of 8"):
        model.extract_features(torch.zeros(1, 1, 3, 36, 32), emb[:1])
    with pytest.raises(ValueError, match="num_frames=5"):
        model.extract_features(torch.zeros(1, 6, 3, 32, 32), emb[:1])


def test_prepare_inputs_timesteps_mask_and_noising():
    model = _backbone()
    latents = torch.randn(2, 48, 2, 8, 8)
    inputs = model.prepare_inputs(latents, torch.Generator().manual_seed(5), future_time=torch.tensor([0.25, 0.9]))
    ts = inputs.timestep[:, 0, :, 0, 0]
    torch.testing.assert_close(ts, torch.tensor([[1e-4, 0.25], [1e-4, 0.9]]))
    assert torch.equal(inputs.condition_mask[:, :, 0], torch.ones(2, 1, 8, 8))
    assert torch.equal(inputs.condition_mask[:, :, 1], torch.zeros(2, 1, 8, 8))
    assert torch.equal(inputs.hidden_states[:, :, 0], latents[:, :, 0])  # conditioning frame clean
    expected = 0.75 * latents[0, :, 1] + 0.25 * inputs.noise[0, :, 1]
    torch.testing.assert_close(inputs.hidden_states[0, :, 1], expected)
    torch.testing.assert_close(inputs.target_velocity, inputs.noise - latents)
    default = model.prepare_inputs(latents, torch.Generator().manual_seed(5))
    torch.testing.assert_close(default.timestep[:, 0, :, 0, 0], torch.tensor([[1e-4, 0.995]] * 2))


def test_extract_features_feeds_condition_and_feature_timesteps():
    model = _backbone()
    seen = []
    handle = model.transformer.time_embed.register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    with torch.no_grad():
        model.extract_features(_clip(f=1), model.embed_instructions(["a", "b"]))
    handle.remove()
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], torch.tensor([1e-4, 0.995, 1e-4, 0.995]))  # (B*T,) per latent frame


def _variant_params():
    return [pytest.param({}, id="tiny"),
            pytest.param({"extra_pos_embed_type": "learnable", "use_crossattn_projection": True,
                          "crossattn_proj_in_channels": 40}, id="tiny+learnable_pos+crossattn_proj")]


@pytest.mark.parametrize("overrides", _variant_params())
def test_early_exit_equals_block_k_of_diffusers_forward(overrides):
    model = _backbone(**overrides)
    k = model.config.feature_layer
    emb = model.embed_instructions(["pick up the cup", "open the drawer"])
    inputs = model.prepare_inputs(model.codec.encode(_clip()), torch.Generator().manual_seed(0), 0.6)
    captured = {}
    handle = model.transformer.transformer_blocks[k].register_forward_hook(
        lambda m, i, out: captured.__setitem__("block", out))
    with torch.no_grad():
        full = model.transformer(hidden_states=inputs.hidden_states, timestep=inputs.timestep,
                                 encoder_hidden_states=emb, condition_mask=inputs.condition_mask,
                                 return_dict=False)[0]
        handle.remove()
        calls, handles = _count_block_calls(model)
        feats = model.forward_features(inputs.hidden_states, inputs.timestep, emb, inputs.condition_mask)
        for h in handles:
            h.remove()
        velocity = model.predict_velocity(inputs.hidden_states, inputs.timestep, emb, inputs.condition_mask)
    assert calls == [1] * (k + 1) + [0] * (model.config.num_layers - k - 1)
    assert feats.shape == (2, 2, 4, 4, 32)
    assert (feats.flatten(1, 3) - captured["block"]).abs().max().item() < 1e-6
    assert feats.abs().mean() > 0.1  # not trivially zero
    assert velocity.shape == full.shape == (2, 48, 2, 8, 8)
    assert (velocity - full).abs().max().item() < 1e-6


def _nearest_resize_stub():
    """What torchvision's tensor resize does with NEAREST (F.interpolate, mode="nearest")."""
    functional = types.SimpleNamespace(resize=lambda x, size, interpolation: F.interpolate(x, size=size,
                                                                                         mode=interpolation))
    return types.SimpleNamespace(functional=functional, InterpolationMode=types.SimpleNamespace(NEAREST="nearest"))


def test_padding_mask_path_without_torchvision(monkeypatch):
    model = _backbone(concat_padding_mask=True)
    k = model.config.feature_layer
    assert model.transformer.patch_embed.proj.in_features == (48 + 1 + 1) * 4
    emb = model.embed_instructions(["pick up the cup", "open the drawer"])
    calls, handles = _count_block_calls(model)
    with torch.no_grad():
        feats = model.extract_features(_clip(f=1), emb, generator=torch.Generator().manual_seed(0))
    assert feats.shape == (2, 2, 4, 4, 32) and torch.isfinite(feats).all()
    assert calls == [1, 1, 1, 0]  # blocks 0..2 (feature_layer 2), block 3 never runs
    for h in handles:
        h.remove()

    # The same padding channel as diffusers' forward (run here with a stand-in for torchvision's resize).
    import diffusers.models.transformers.transformer_cosmos as cosmos_module

    monkeypatch.setattr(cosmos_module, "transforms", _nearest_resize_stub(), raising=False)
    inputs = model.prepare_inputs(model.codec.encode(_clip()), torch.Generator().manual_seed(0), 0.4)
    padding = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    captured = {}
    handle = model.transformer.transformer_blocks[k].register_forward_hook(
        lambda m, i, out: captured.__setitem__("block", out))
    with torch.no_grad():
        full = model.transformer(hidden_states=inputs.hidden_states, timestep=inputs.timestep,
                                 encoder_hidden_states=emb, condition_mask=inputs.condition_mask,
                                 padding_mask=padding, return_dict=False)[0]
        handle.remove()
        mine = model.forward_features(inputs.hidden_states, inputs.timestep, emb, inputs.condition_mask,
                                      padding_mask=padding)
        mine_zero = model.forward_features(inputs.hidden_states, inputs.timestep, emb, inputs.condition_mask)
        velocity = model.predict_velocity(inputs.hidden_states, inputs.timestep, emb, inputs.condition_mask,
                                          padding_mask=padding)
    assert (mine.flatten(1, 3) - captured["block"]).abs().max().item() < 1e-6
    assert (velocity - full).abs().max().item() < 1e-6
    assert not torch.allclose(mine, mine_zero)  # the padding channel reaches the tokens


def test_video_loss_future_frames_only_and_gradients():
    model = _backbone().train()
    clip = _clip()
    emb = model.embed_instructions(["pick up the cup", "open the drawer"]).detach()
    noise = torch.randn(2, 48, 2, 8, 8, generator=torch.Generator().manual_seed(7))
    t = torch.tensor([0.3, 0.8])
    loss, details = model.video_loss(clip, emb, t, noise=noise, return_details=True)
    assert torch.isfinite(loss) and loss.item() > 0
    pred, target = details["prediction"], details["target"]
    torch.testing.assert_close(loss, ((pred[:, :, 1:] - target[:, :, 1:]) ** 2).mean())
    loss.backward()
    tr = model.transformer
    for module in (tr.patch_embed, tr.transformer_blocks[0], tr.transformer_blocks[-1], tr.proj_out):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0

    # Changing only the conditioning frame's target (its noise: the frame itself enters clean) changes nothing.
    noise_cond = noise.clone()
    noise_cond[:, :, 0] += 1.0
    loss_cond, details_cond = model.video_loss(clip, emb, t, noise=noise_cond, return_details=True)
    assert not torch.allclose(details_cond["target"][:, :, 0], target[:, :, 0])
    assert loss_cond.item() == loss.item()
    # Changing a future frame's noise (its input and target) changes the loss.
    noise_future = noise.clone()
    noise_future[:, :, 1] += 1.0
    assert abs(model.video_loss(clip, emb, t, noise=noise_future).item() - loss.item()) > 1e-4
    # So does changing a future frame of the clip; a float t means the same time for every sample.
    clip_future = clip.clone()
    clip_future[:, 1:] = -clip_future[:, 1:]
    assert abs(model.video_loss(clip_future, emb, t, noise=noise).item() - loss.item()) > 1e-4
    torch.testing.assert_close(model.video_loss(clip, emb, 0.5, noise=noise),
                               model.video_loss(clip, emb, torch.tensor([0.5, 0.5]), noise=noise))


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = _backbone().train()
    emb = model.embed_instructions(["pick", "place"]).detach()
    noise = torch.randn(2, 48, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    model.video_loss(_clip(), emb, 0.7, noise=noise).backward()
    plain = [p.grad.clone() for p in model.transformer.parameters()]
    model.zero_grad()
    model.transformer.enable_gradient_checkpointing()
    model.video_loss(_clip(), emb, 0.7, noise=noise).backward()
    for g, p in zip(plain, model.transformer.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


def test_determinism_under_a_seed():
    a, b = _backbone(seed=11), _backbone(seed=11)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    frames = _clip(f=1)
    with torch.no_grad():
        fa = a.extract_features(frames, a.embed_instructions(["x", "y"]), generator=torch.Generator().manual_seed(3))
        fb = b.extract_features(frames, b.embed_instructions(["x", "y"]), generator=torch.Generator().manual_seed(3))
        fc = a.extract_features(frames, a.embed_instructions(["x", "y"]), generator=torch.Generator().manual_seed(4))
    assert torch.equal(fa, fb)
    assert not torch.allclose(fa, fc)
    la = a.video_loss(_clip(), a.embed_instructions(["x", "y"]), 0.5, generator=torch.Generator().manual_seed(9))
    lb = b.video_loss(_clip(), b.embed_instructions(["x", "y"]), 0.5, generator=torch.Generator().manual_seed(9))
    assert la.item() == lb.item()


def test_paper_transformer_on_meta_device():
    cfg = paper().video
    kwargs = transformer_kwargs(cfg)
    assert kwargs["in_channels"] == 17 and kwargs["out_channels"] == 16
    with torch.device("meta"):
        transformer = build_transformer(cfg)
    n = sum(p.numel() for p in transformer.parameters())
    print(f"paper video DiT parameters: {n}")
    assert 1.9e9 < n < 2.2e9
    assert len(transformer.transformer_blocks) == 28 and transformer.patch_embed.proj.in_features == 18 * 4
    assert transformer.crossattn_proj[0].weight.shape == (1024, 100352)
    # 224x224, 9 frames -> 3 latent frames of 28x28 -> 3 x 14 x 14 = 588 tokens x 2048 (meta: shapes only).
    assert feature_grid(cfg) == (3, 14, 14) and cfg.num_feature_tokens == 588
    meta = dict(device="meta")
    feats = cosmos_block_features(
        transformer, torch.empty(1, 16, 3, 28, 28, **meta), torch.empty(1, 1, 3, 1, 1, **meta),
        torch.empty(1, 512, 100352, **meta), torch.empty(1, 1, 3, 28, 28, **meta), block=cfg.feature_layer)
    assert feats.shape == (1, 3, 14, 14, 2048) and feats.flatten(1, 3).shape[1] == 588


def test_pretrained_transformer_from_local_directory(tmp_path):
    source = _backbone(seed=5)
    source.transformer.save_pretrained(tmp_path / "ckpt" / "transformer")
    cfg = dataclasses.replace(source.config, pretrained=str(tmp_path / "ckpt"))
    loaded = VideoBackbone(cfg)
    for (name, p), q in zip(source.transformer.state_dict().items(), loaded.transformer.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match=r"num_layers: config 3 vs pretrained 4"):
        VideoBackbone(dataclasses.replace(cfg, num_layers=3, feature_layer=1))
    with pytest.raises(PretrainedNotFoundError, match="does not exist"):
        VideoBackbone(dataclasses.replace(cfg, pretrained=str(tmp_path / "missing")))


def test_paper_backbone_offline_gives_download_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(PretrainedNotFoundError) as err:
        VideoBackbone(paper().video)
    assert PAPER_HINT in str(err.value) and "transformer" in str(err.value)


def test_wan_vae_codec_normalises_and_stays_frozen():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           latents_mean=[0.5, -0.5, 1.0, 0.0], latents_std=[2.0, 0.5, 1.0, 4.0])
    codec = WanVAECodec(vae)
    assert (codec.latent_channels, codec.spatial, codec.temporal) == (4, 8, 4)
    clip = _clip(b=1, f=5)[..., :16, :16]
    z = codec.encode(clip)
    assert z.shape == (1, 4, 2, 2, 2)
    with torch.no_grad():
        raw = vae.encode(clip.transpose(1, 2)).latent_dist.mode()
    mean = torch.tensor([0.5, -0.5, 1.0, 0.0]).view(1, 4, 1, 1, 1)
    std = torch.tensor([2.0, 0.5, 1.0, 4.0]).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(z, (raw - mean) / std)
    assert codec.decode(z).shape == (1, 5, 3, 16, 16)
    assert list(codec.parameters()) == [] and codec.state_dict() == {}
    codec.train()
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    codec.to(torch.float64)
    assert next(vae.parameters()).dtype == torch.float64


def test_wan_vae_codec_from_local_directory(tmp_path):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           latents_mean=[0.0] * 4, latents_std=[2.0] * 4)
    vae.save_pretrained(tmp_path / "ckpt" / "vae")
    codec = WanVAECodec.from_pretrained(str(tmp_path / "ckpt"))
    clip = _clip(b=1, f=5)[..., :16, :16]
    torch.testing.assert_close(codec.encode(clip), WanVAECodec(vae).encode(clip))
    torch.testing.assert_close(codec.latents_std.flatten(), torch.full((4,), 2.0))
