"""Video2Act conditioning: edge maps of known images, the temporal band-pass on signals of known
frequency, and the conditioner's token layout per mode."""

import math

import pytest
import torch

from dit4dit_ros.model.video2act import Video2ActConditioner, boundary_map, motion_map, num_tokens


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _step_edge(b=2, t=3, h=8, w=10, d=4, column=5):
    """Features that are 0 left of ``column`` and 1 from it on (a vertical edge), every frame/channel."""
    x = torch.zeros(b, t, h, w, d)
    x[:, :, :, column:, :] = 1.0
    return x


# -- boundaries -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, peak", [("sobel", 4.0), ("scharr", 16.0), ("laplacian", 1.0)])
def test_boundary_map_is_nonzero_only_at_a_vertical_step_edge(kind, peak):
    x = _step_edge(column=5)
    edges = boundary_map(x, kind)
    assert edges.shape == x.shape
    # The 3x3 kernels see the step from the two columns beside it, 4 | 5; everything else is flat and
    # exactly 0, borders included (replicate padding).
    on_edge = torch.zeros(10, dtype=torch.bool)
    on_edge[[4, 5]] = True
    assert (edges[..., ~on_edge, :] == 0).all()
    # Sobel: |(0 - 1) * (1 + 2 + 1)| = 4 on both columns; Scharr 3 + 10 + 3 = 16; Laplacian |+-1|.
    torch.testing.assert_close(edges[..., on_edge, :], torch.full_like(edges[..., on_edge, :], peak),
                               rtol=0, atol=1e-5)


def test_boundary_map_is_rotation_consistent_per_channel_and_frame():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 6, 7, 3, generator=g)
    transposed = boundary_map(x.transpose(2, 3)).transpose(2, 3)
    torch.testing.assert_close(boundary_map(x), transposed)  # gx and gy swap: magnitude unchanged
    # Channels and frames are filtered independently: changing channel 0 of frame 1 changes nothing else.
    y = x.clone()
    y[:, 1, :, :, 0] = torch.randn(6, 7, generator=g)
    changed = (boundary_map(x) != boundary_map(y)).any(dim=(0, 2, 3))  # (T, D)
    assert changed.tolist() == [[False, False, False], [True, False, False]]


def test_boundary_map_gradient_is_finite_on_flat_regions():
    x = _step_edge(b=1, t=1, h=5, w=6, d=2).requires_grad_(True)
    boundary_map(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        boundary_map(x, "canny")
    with pytest.raises(ValueError):
        boundary_map(torch.zeros(2, 3, 4, 5))


# -- motion -----------------------------------------------------------------------------------------------
def _per_pixel_sine(freq_hz, frames, fps, seed, h=3, w=4, d=5):
    """(1, T, h, w, d) sinusoids of one frequency with a random phase per pixel and channel."""
    phase = torch.rand(1, 1, h, w, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 * math.pi
    time = (torch.arange(frames, dtype=torch.float64) / fps).reshape(1, -1, 1, 1, 1)
    return torch.sin(2 * math.pi * freq_hz * time + phase)


def test_motion_map_keeps_3hz_and_removes_dc():
    fps, frames = 16, 16  # 1 Hz bins: 3 Hz is bin 3, inside the 1-7 Hz band
    fast = _per_pixel_sine(3.0, frames, fps, seed=1)
    dc = torch.randn(1, 1, 3, 4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = motion_map(fast + dc, fps=fps)
    assert out.shape == fast.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, fast, rtol=0, atol=1e-10)
    torch.testing.assert_close(motion_map(dc.expand_as(fast), fps=fps), torch.zeros_like(fast), rtol=0, atol=1e-12)
    # Band edges are inclusive: 7 Hz stays, 8 Hz (Nyquist) goes.
    seven, eight = _per_pixel_sine(7.0, frames, fps, 3), torch.cos(2 * math.pi * 8 * torch.arange(16.0) / 16)
    torch.testing.assert_close(motion_map(seven, fps=fps), seven, rtol=0, atol=1e-10)
    eight = eight.double().reshape(1, -1, 1, 1, 1).expand(1, 16, 3, 4, 5)
    torch.testing.assert_close(motion_map(eight, fps=fps), torch.zeros_like(eight), rtol=0, atol=1e-10)


def test_motion_map_removes_a_slow_drift_once_the_window_resolves_it():
    # A 0.2 Hz drift needs a window of >= 5 s to be told apart from DC and 1 Hz: T = 80 at 16 fps
    # (0.2 Hz bins) puts it on bin 1, outside the band, and the 3 Hz motion on bin 15, inside.
    fps, frames = 16, 80
    fast = _per_pixel_sine(3.0, frames, fps, seed=4)
    slow = 0.8 * _per_pixel_sine(0.2, frames, fps, seed=5)
    out = motion_map(fast + slow + 1.5, fps=fps)
    torch.testing.assert_close(out, fast, rtol=0, atol=1e-10)
    # With only 16 frames the same drift is NOT separable (documented limit): some of it leaks through.
    short = motion_map(slow[:, :16], fps=fps)
    assert short.abs().max() > 0.05


def test_motion_map_is_zero_when_no_bin_lies_in_the_band():
    x = torch.randn(2, 2, 3, 3, 4)  # T = 2 at 16 fps: bins 0 and 8 Hz, none in 1-7 Hz
    assert (motion_map(x, fps=16) == 0).all()
    assert (motion_map(x[:, :1], fps=16) == 0).all()
    # float32 and bfloat16 in, same dtype out.
    assert motion_map(torch.randn(1, 4, 2, 2, 3).bfloat16(), fps=8).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        motion_map(x, fps=0)


# -- the conditioner --------------------------------------------------------------------------------------
def test_num_tokens_per_mode():
    assert num_tokens("dit4dit", 3, 14, 14) == 588  # the paper's 224 x 224 single view
    assert num_tokens("video2act", 3, 14, 14) == 2 * 588
    assert num_tokens("both", 3, 14, 14) == 3 * 588
    with pytest.raises(ValueError):
        num_tokens("clip", 1, 1, 1)


@pytest.mark.parametrize("mode", ["dit4dit", "video2act", "both"])
def test_conditioner_token_count_and_layout(mode):
    torch.manual_seed(0)
    b, t, h, w, d = 2, 4, 3, 5, 16
    conditioner = Video2ActConditioner(mode, d)
    features = torch.randn(b, t, h, w, d)
    tokens = conditioner(features, fps=8)
    assert tokens.shape == (b, num_tokens(mode, t, h, w), d) == (b, conditioner.num_tokens(t, h, w), d)
    n = t * h * w
    if mode == "dit4dit":
        assert torch.equal(tokens, features.flatten(1, 3))  # the paper: the features themselves
        assert len(list(conditioner.parameters())) == 0
    if mode == "both":
        torch.testing.assert_close(tokens[:, :n], features.flatten(1, 3) + conditioner.type_embedding[0])
    if mode != "dit4dit":
        # Every learned piece is used: gradients reach the projections and the type embeddings.
        tokens.square().mean().backward()
        for name, p in conditioner.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        # Boundary and motion tokens differ from the raw features.
        assert not torch.allclose(tokens[:, -n:], features.flatten(1, 3), atol=0.1)


def test_modes_produce_different_contexts_and_type_embeddings_tell_kinds_apart():
    torch.manual_seed(0)
    features = torch.randn(1, 4, 3, 3, 8)
    outputs = {}
    for mode in ("dit4dit", "video2act", "both"):
        torch.manual_seed(1)
        outputs[mode] = Video2ActConditioner(mode, 8)(features, fps=8)
    assert outputs["dit4dit"].shape[1] < outputs["video2act"].shape[1] < outputs["both"].shape[1]
    assert not torch.allclose(outputs["both"][:, :36], outputs["dit4dit"])  # type embedding added
    # Identical projected values in both kinds still yield distinct tokens, thanks to the type embedding.
    conditioner = Video2ActConditioner("video2act", 8)
    conditioner.motion_proj.load_state_dict(conditioner.boundary_proj.state_dict())
    flat = torch.ones(1, 4, 3, 3, 8)  # no edges, no motion: both maps are all zero
    tokens = conditioner(flat, fps=8)
    boundary, motion = tokens[:, :36], tokens[:, 36:]
    type_gap = conditioner.type_embedding[0] - conditioner.type_embedding[1]
    torch.testing.assert_close(boundary - motion, type_gap.expand_as(boundary))
    assert (boundary - motion).abs().max() > 0


def test_conditioner_rejects_bad_modes_and_widths():
    with pytest.raises(ValueError):
        Video2ActConditioner("pixels", 8)
    with pytest.raises(ValueError):
        Video2ActConditioner("both", 8, edge_kind="roberts")
    with pytest.raises(ValueError, match="channels"):
        Video2ActConditioner("both", 8)(torch.randn(1, 2, 2, 2, 6), fps=8)
