"""The assembled DiT4DiT policy: shapes, determinism, physical units, the dual loss and its switches,
overfitting, and checkpoints (bit-exact round trip, clear errors for bad ones)."""

import dataclasses
import json

import pytest
import torch

from dit4dit_ros.model.checkpoint import CheckpointError
from dit4dit_ros.model.configuration_dit4dit import DiT4DiTConfig, small, tiny
from dit4dit_ros.model.modeling_dit4dit import G1_TABLETOP_JOINTS, DiT4DiTPolicy

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _policy(config=None, seed=0):
    torch.manual_seed(seed)
    return DiT4DiTPolicy(config or tiny())


def _batch(config, batch_size=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    v, a = config.video, config.action
    still = torch.rand(batch_size, 1, 3, *v.image_size, generator=g) * 2 - 1
    return {
        "frames": still.repeat(1, v.num_frames, 1, 1, 1),  # a static scene: the future equals the present
        "instruction": ["touch the red cube", "put the cube in the bowl"][:batch_size],
        "state": torch.randn(batch_size, a.state_dim, generator=g),
        "actions": torch.rand(batch_size, a.horizon, a.action_dim, generator=g) * 2 - 1,
    }


def _features(policy, batch, seed=0):
    """Block-k tokens; the future latent slots are noise, so a seeded generator makes them repeatable."""
    text = policy.embed_instructions(batch["instruction"][:1])
    return policy.encode_video(batch["frames"][:1, :1], text, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make_config", [tiny, small], ids=["tiny", "small"])
def test_shapes_and_dtypes_of_cpu_presets(make_config):
    config = make_config()
    policy = _policy(config).eval()
    batch = _batch(config, batch_size=1)
    features = _features(policy, batch)
    h, w = config.video.latent_size
    assert features.shape == (1, config.video.latent_frames, h // 2, w // 2, config.video.hidden_size)
    assert features.dtype == torch.float32
    actions = policy.predict_action(features, batch["state"], generator=torch.Generator().manual_seed(0))
    assert actions.shape == (1, config.action.horizon, config.action.action_dim) and actions.dtype == torch.float32
    assert torch.isfinite(actions).all()
    assert len(policy.joint_names) == config.action.action_dim == len(G1_TABLETOP_JOINTS)


def test_sampling_is_deterministic_under_a_seed():
    policy = _policy().eval()
    batch = _batch(policy.config, 1)
    features = _features(policy, batch)
    first = policy.predict_action(features, batch["state"], generator=torch.Generator().manual_seed(5))
    again = policy.predict_action(features, batch["state"], generator=torch.Generator().manual_seed(5))
    other = policy.predict_action(features, batch["state"], generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_actions_come_back_in_physical_units(monkeypatch):
    """With a zero velocity field the sample stays at its initial noise: the output must be exactly that
    noise mapped from [-1, 1] through the policy's min-max statistics."""
    policy = _policy().eval()
    a = policy.config.action
    low, high = torch.linspace(-2.0, 0.0, a.action_dim), torch.linspace(0.5, 3.0, a.action_dim)
    policy.set_normalization(low, high)
    monkeypatch.setattr(policy.action_head, "forward", lambda x, *args, **kwargs: torch.zeros_like(x))
    batch = _batch(policy.config, 1)
    actions = policy.predict_action(_features(policy, batch), batch["state"],
                                    generator=torch.Generator().manual_seed(3))
    noise = torch.randn(1, a.horizon, a.max_action_dim, generator=torch.Generator().manual_seed(3))
    expected = (noise[..., : a.action_dim] + 1) / 2 * (high - low) + low
    assert torch.allclose(actions, expected, atol=1e-5)
    assert torch.allclose(policy.normalize_actions(policy.unnormalize_actions(noise[..., :16])), noise[..., :16],
                          atol=1e-5)


def test_bad_inputs_are_refused():
    policy = _policy().eval()
    batch = _batch(policy.config, 1)
    features = _features(policy, batch)
    with pytest.raises(ValueError, match="state must be"):
        policy.predict_action(features, torch.zeros(1, 7))
    with pytest.raises(ValueError, match="NaN"):
        policy.predict_action(features, torch.full((1, 16), float("nan")))
    with pytest.raises(ValueError, match="max >= min"):
        policy.set_normalization(torch.ones(16), torch.zeros(16))
    with pytest.raises(ValueError, match="joint names"):
        DiT4DiTPolicy(tiny(), joint_names=["a", "b"])


def test_tiny_policy_overfits_a_fixed_batch():
    """Same frames, actions, noise and flow times every step (a re-seeded generator): loss falls >= 10x."""
    policy = _policy().train()
    batch = _batch(policy.config)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        out = policy.compute_loss(batch, generator=torch.Generator().manual_seed(123))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert out["video_loss"].item() > 0 and out["action_loss"].item() > 0
    assert min(losses[-5:]) < losses[0] / 10, (losses[0], losses[-5:])


def _grads_after_backward(config):
    policy = _policy(config).train()
    policy.zero_grad()
    out = policy.compute_loss(_batch(config), generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    blocks = policy.video.transformer.transformer_blocks
    k = config.video.feature_layer

    def has_grad(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    return out, [has_grad(b) for b in blocks], k, has_grad(policy.action_head)


def test_no_video_objective_and_detached_features_leave_the_video_dit_untouched():
    config = tiny()
    config.flow = dataclasses.replace(config.flow, video_loss_weight=0.0, detach_features=True)
    out, block_grads, _, action_grad = _grads_after_backward(config)
    assert out["video_loss"].item() == 0.0 and torch.equal(out["loss"], out["action_loss"])
    assert not any(block_grads) and action_grad


def test_end_to_end_features_train_the_blocks_up_to_the_hook_only():
    config = tiny()
    config.flow = dataclasses.replace(config.flow, video_loss_weight=0.0, detach_features=False)
    _, block_grads, k, _ = _grads_after_backward(config)
    assert all(block_grads[: k + 1]) and not any(block_grads[k + 1:])


def test_video_objective_trains_every_block():
    _, block_grads, _, _ = _grads_after_backward(tiny())  # lambda = 1, detached features
    assert all(block_grads)


def test_padded_steps_do_not_change_the_loss():
    policy = _policy().train()
    batch = _batch(policy.config)
    batch["action_is_pad"] = torch.zeros(2, policy.config.action.horizon, dtype=torch.bool)
    batch["action_is_pad"][:, -3:] = True
    changed = dict(batch, actions=batch["actions"].clone())
    changed["actions"][:, -3:] = 99.0

    def loss(b):
        torch.manual_seed(0)  # dropout
        return policy.compute_loss(b, generator=torch.Generator().manual_seed(1))["action_loss"]

    assert torch.equal(loss(batch), loss(changed))
    changed["actions"][:, 0] += 1.0
    assert not torch.equal(loss(batch), loss(changed))


# -- checkpoints ----------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    policy = _policy(seed=1).eval()
    policy.set_normalization(torch.linspace(-1, 0, 16), torch.linspace(1, 2, 16))
    policy.save_pretrained(tmp_path / "ckpt", steps=7)
    return policy, tmp_path / "ckpt"


def test_save_load_is_bit_exact_and_predicts_the_same(saved):
    policy, directory = saved
    loaded = DiT4DiTPolicy.from_pretrained(directory).eval()
    assert loaded.config == policy.config and loaded.joint_names == policy.joint_names
    assert loaded.checkpoint_metadata == {"steps": 7}
    original, restored = policy.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    batch = _batch(policy.config, 1)
    for model in (policy, loaded):
        model.result = model.predict_action(_features(model, batch), batch["state"],
                                            generator=torch.Generator().manual_seed(9))
    assert torch.equal(policy.result, loaded.result)
    assert not list(directory.glob("*.bin")) and not list(directory.glob("*.pt"))  # no pickle


def test_truncated_weights_are_reported(saved):
    _, directory = saved
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
        DiT4DiTPolicy.from_pretrained(directory)


def test_garbage_weights_are_reported(saved):
    _, directory = saved
    (directory / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        DiT4DiTPolicy.from_pretrained(directory)


def test_broken_config_is_reported(saved):
    _, directory = saved
    (directory / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        DiT4DiTPolicy.from_pretrained(directory)


def test_config_from_another_architecture_is_reported(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    config["action"]["num_layers"] += 1
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match its config's architecture: missing"):
        DiT4DiTPolicy.from_pretrained(directory)


def test_unknown_config_keys_are_reported(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    config["action"]["num_experts"] = 4
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="num_experts"):
        DiT4DiTPolicy.from_pretrained(directory)


def test_missing_pieces_and_paths_are_reported(saved, tmp_path, monkeypatch):
    _, directory = saved
    (directory / "policy.json").unlink()
    with pytest.raises(CheckpointError, match="policy.json is missing"):
        DiT4DiTPolicy.from_pretrained(directory)
    with pytest.raises(CheckpointError, match="does not exist"):
        DiT4DiTPolicy.from_pretrained(tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    with pytest.raises(CheckpointError, match="huggingface-cli download someone/dit4dit-g1"):
        DiT4DiTPolicy.from_pretrained("someone/dit4dit-g1")


def test_config_json_round_trip_of_every_preset():
    from dit4dit_ros.model.configuration_dit4dit import PRESETS, preset
    for name in PRESETS:
        config = preset(name)
        assert DiT4DiTConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
