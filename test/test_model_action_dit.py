"""The action DiT: shapes, what the prediction may and may not depend on, gradients, the paper-size
parameter count (on the meta device, no memory), the state encoding, and that it can fit a batch."""

import dataclasses
import math

import pytest
import torch

from dit4dit_ros.model.action_dit import ActionDiT, encode_state
from dit4dit_ros.model.configuration_dit4dit import paper, small, tiny
from dit4dit_ros.model.flow_matching import interpolate, masked_mse, velocity_target

CONTEXT_DIM = 24


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _inputs(config, batch=3, tokens=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, config.horizon, config.max_action_dim, generator=g),
        torch.rand(batch, generator=g),
        torch.randn(batch, config.state_dim, generator=g),
        torch.randn(batch, tokens, CONTEXT_DIM, generator=g),
    )


def _model(config=None, seed=0):
    torch.manual_seed(seed)
    return ActionDiT(config or tiny().action, context_dim=CONTEXT_DIM).eval()


@pytest.mark.parametrize("preset", [tiny, small])
def test_output_shape_and_dtype(preset):
    config = preset().action
    model = _model(config)
    out = model(*_inputs(config))
    assert out.shape == (3, config.horizon, config.max_action_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # A shorter chunk than the configured horizon is allowed (learned positions 0..H-1).
    actions, t, state, context = _inputs(config)
    assert model(actions[:, :5], t, state, context).shape == (3, 5, config.max_action_dim)


def test_gradient_reaches_every_parameter():
    config = tiny().action
    model = _model(config).train()
    actions, t, state, context = _inputs(config)
    model(actions, t, state, context).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_output_depends_on_context_time_state_and_real_action_dims():
    config = tiny().action
    model = _model(config)
    actions, t, state, context = _inputs(config)
    out = model(actions, t, state, context)
    assert not torch.allclose(out, model(actions, t, state, context + 1.0))
    assert not torch.allclose(out, model(actions, (t + 0.3) % 1.0, state, context))
    assert not torch.allclose(out, model(actions, t, state + 0.5, context))
    changed = actions.clone()
    changed[..., 0] += 1.0  # a real action dim
    assert not torch.allclose(out, model(changed, t, state, context))


def test_padded_action_dims_neither_influence_nor_receive_a_prediction():
    # Padding (dims >= action_dim) holds noise during training and sampling; it carries no information,
    # so the real-dim prediction must be identical whatever fills it, and the padded velocity is 0 (the
    # masked loss ignores it and the sampler then leaves the padding alone).
    config = tiny().action
    assert config.action_dim < config.max_action_dim
    model = _model(config)
    actions, t, state, context = _inputs(config)
    out = model(actions, t, state, context)
    other = actions.clone()
    other[..., config.action_dim:] = 100 * torch.randn_like(other[..., config.action_dim:])
    assert torch.equal(out, model(other, t, state, context))
    assert (out[..., config.action_dim:] == 0).all() and (out[..., :config.action_dim] != 0).any()


def test_masked_out_context_tokens_are_ignored():
    config = tiny().action
    model = _model(config)
    actions, t, state, context = _inputs(config, tokens=10)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 6:] = False
    mask[2, :3] = False
    out = model(actions, t, state, context, mask)
    junk = context.clone()
    junk[~mask] = 1e3 * torch.randn_like(junk[~mask])
    torch.testing.assert_close(model(actions, t, state, junk, mask), out, rtol=0, atol=1e-6)
    # Same tokens, different padding length: a padded context equals the unpadded one.
    torch.testing.assert_close(model(actions[:1], t[:1], state[:1], context[:1, :6]), out[:1], rtol=1e-5, atol=1e-6)
    # ...while a valid token does matter, and a sample with no valid token is an error.
    valid_changed = context.clone()
    valid_changed[0, 0] += 1.0
    assert not torch.allclose(out, model(actions, t, state, valid_changed, mask))
    mask[1] = False
    with pytest.raises(ValueError, match="valid context token"):
        model(actions, t, state, context, mask)


def test_shape_errors_are_clear():
    config = tiny().action
    model = _model(config)
    actions, t, state, context = _inputs(config)
    with pytest.raises(ValueError, match="max_action_dim"):
        model(actions[..., : config.action_dim], t, state, context)
    with pytest.raises(ValueError, match="context"):
        model(actions, t, state, torch.randn(3, 10, CONTEXT_DIM + 1))
    with pytest.raises(ValueError, match="t must be"):
        model(actions, t[:2], state, context)
    with pytest.raises(ValueError, match="state"):
        model(actions, t, state[:, :-1], context)
    with pytest.raises(ValueError, match="horizon"):
        model(torch.randn(3, config.horizon + 1, config.max_action_dim), t, state, context)
    with pytest.raises(ValueError, match="context_mask"):
        model(actions, t, state, context, torch.ones(3, 10))


def test_paper_size_parameter_count_on_meta_device():
    config = paper()
    with torch.device("meta"):
        model = ActionDiT(config.action, context_dim=config.video.hidden_size)
    assert config.video.hidden_size == 2048
    count = sum(p.numel() for p in model.parameters())
    assert 150e6 < count < 175e6  # method.md: "about 163 M"
    # Exact, so that an accidental change of structure shows: 16 blocks (8 cross-attending to 2048-d
    # tokens, 8 self-attending) 147,984,384; timestep MLP 787,968; state MLP 2,133,248; action encoder
    # 1,796,352 + 16 positions 12,288; output AdaLN 1,181,184; head 1,968,640 + decoder 6,638,112.
    assert count == 162_502_176


def test_encode_state_is_sin_cos_per_joint_then_zero_padding():
    state = torch.tensor([[0.0, math.pi / 2, -math.pi / 3], [math.pi, 0.25, 2.0]])
    encoded = encode_state(state, max_state_dim=10)
    assert encoded.shape == (2, 10)
    expected = torch.stack([state.sin(), state.cos()], dim=-1).flatten(1)
    torch.testing.assert_close(encoded[:, :6], expected)
    torch.testing.assert_close(encoded[0, :4], torch.tensor([0.0, 1.0, 1.0, 0.0]), atol=1e-7, rtol=0)
    assert (encoded[:, 6:] == 0).all()
    # Angles that differ by 2 pi are the same joint position.
    torch.testing.assert_close(encode_state(state + 2 * math.pi, 10), encoded, atol=1e-5, rtol=0)
    assert encode_state(state, 6).shape == (2, 6)
    with pytest.raises(ValueError, match="max_state_dim"):
        encode_state(state, 5)
    with pytest.raises(ValueError, match="max_state_dim"):
        ActionDiT(dataclasses.replace(tiny().action, state_dim=33), CONTEXT_DIM)


def test_tiny_model_overfits_a_fixed_batch():
    # One fixed flow-matching batch (x0, noise, t, state, context): the loss must fall >= 10x.
    config = tiny().action
    torch.manual_seed(0)
    model = ActionDiT(config, context_dim=CONTEXT_DIM).train()
    g = torch.Generator().manual_seed(1)
    batch = 8
    x0 = torch.zeros(batch, config.horizon, config.max_action_dim)
    x0[..., : config.action_dim] = torch.rand(batch, config.horizon, config.action_dim, generator=g) * 2 - 1
    mask = (torch.arange(config.max_action_dim) < config.action_dim).float()
    noise = torch.randn(x0.shape, generator=g)
    t = torch.rand(batch, generator=g)
    state = torch.randn(batch, config.state_dim, generator=g)
    context = torch.randn(batch, 6, CONTEXT_DIM, generator=g)
    xt, target = interpolate(x0, noise, t), velocity_target(x0, noise)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        loss = masked_mse(model(xt, t, state, context), target, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.5  # the untrained model is far off (target variance ~1.3)
    assert min(losses[-10:]) < losses[0] / 10, (losses[0], losses[-10:])
