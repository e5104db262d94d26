"""VideoFeatures <-> tensor conversion: exact round trips and clear errors for malformed payloads."""

import array

import numpy as np
import pytest
import torch

from dit4dit_ros.interfaces import (
    MalformedFeaturesError,
    features_to_msg,
    instruction_id,
    msg_to_features,
)
from dit4dit_ros.msg import VideoFeatures


def _msg(tensor, **kw):
    return features_to_msg(tensor, stamp_ns=kw.pop("stamp_ns", 1_700_000_000_123_456_789), **kw)


def test_float32_round_trip_is_bit_exact_with_metadata():
    tensor = np.random.default_rng(0).standard_normal((588, 2048), dtype=np.float32)
    frames = [1_700_000_000_000_000_000 + i * 33_333_333 for i in range(9)]
    msg = _msg(tensor, stamp_ns=frames[-1], frame_stamps_ns=frames, frame_id="head_camera",
               model_id="dit4dit-tiny", instruction_id="abc", layer=17, flow_timestep=0.995)
    assert isinstance(msg, VideoFeatures)
    assert list(msg.shape) == [588, 2048] and msg.dtype == "float32" and len(msg.data) == 588 * 2048 * 4
    out = msg_to_features(msg)
    assert out.tensor.dtype == np.float32
    assert np.array_equal(out.tensor, tensor)
    assert out.stamp_ns == frames[-1] and out.frame_stamps_ns == frames
    assert (out.frame_id, out.model_id, out.instruction_id, out.layer) == ("head_camera", "dit4dit-tiny", "abc", 17)
    assert out.flow_timestep == pytest.approx(0.995)


def test_float16_and_bfloat16_travel_at_half_size():
    values = torch.linspace(-3, 3, 2 * 5 * 7).reshape(2, 5, 7)
    for dtype, name in ((torch.float16, "float16"), (torch.bfloat16, "bfloat16")):
        source = values.to(dtype)
        msg = _msg(source)
        assert msg.dtype == name and len(msg.data) == source.numel() * 2
        out = msg_to_features(msg).tensor
        assert out.shape == (2, 5, 7)
        # Widening to float32 is exact: compare with torch's own conversion.
        assert np.array_equal(out, source.float().numpy())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: setattr(m, "shape", array.array("I", [588, 2047])), "needs"),
        (lambda m: setattr(m, "data", array.array("B", bytes(m.data)[:-4])), "needs"),
        (lambda m: setattr(m, "dtype", "int64"), "unknown feature dtype"),
        (lambda m: setattr(m, "shape", array.array("I", [])), "shape is empty"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(mutate, message):
    msg = _msg(np.zeros((588, 2048), np.float32))
    mutate(msg)
    with pytest.raises(MalformedFeaturesError, match=message):
        msg_to_features(msg)


def test_non_finite_features_are_rejected():
    tensor = np.ones((4, 8), np.float32)
    tensor[1, 3] = np.nan
    with pytest.raises(MalformedFeaturesError, match="NaN"):
        msg_to_features(_msg(tensor))


def test_integer_tensors_are_refused_at_the_sender():
    with pytest.raises(TypeError, match="float32"):
        _msg(np.zeros((2, 2), np.int32))


def test_instruction_id_is_stable_and_ignores_surrounding_whitespace():
    assert instruction_id("touch the red cube") == instruction_id("  touch the red cube\n")
    assert instruction_id("touch the red cube") != instruction_id("push the cube")
    assert len(instruction_id("x")) == 16
