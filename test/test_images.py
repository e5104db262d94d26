"""Tests of dit4dit_ros.perception.images: message decoding, crop/resize geometry and frame-rate thinning."""

from __future__ import annotations

import array

import numpy as np
import pytest

from dit4dit_ros.perception.images import (SUPPORTED_ENCODINGS, FrameProcessor, FrameRateLimiter, ImageFormatError,
                                           image_to_rgb, rgb_to_image_fields)

# A hand-made 2x3 RGB image: every channel value distinct, so any swap or shift shows.
RGB = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                [[10, 11, 12], [13, 14, 15], [16, 17, 18]]], dtype=np.uint8)
GRAY = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
GRAY16 = np.array([[0x1234, 0xFF00, 0x00FF], [0x8080, 0x0001, 0xABCD]], dtype=np.uint16)
GRAY16_HIGH = np.array([[0x12, 0xFF, 0x00], [0x80, 0x00, 0xAB]], dtype=np.uint8)


def _pixels(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(wire pixels as an (H, W, bytes) uint8 array, expected RGB) for a supported encoding."""
    alpha = np.full((2, 3, 1), 200, np.uint8)
    if encoding == "rgb8":
        return RGB, RGB
    if encoding == "bgr8":
        return RGB[..., ::-1], RGB
    if encoding == "rgba8":
        return np.concatenate([RGB, alpha], axis=2), RGB
    if encoding == "bgra8":
        return np.concatenate([RGB[..., ::-1], alpha], axis=2), RGB
    if encoding == "mono8":
        return GRAY[..., None], np.repeat(GRAY[..., None], 3, axis=2)
    raise AssertionError(encoding)


def _message(wire: np.ndarray, pad: int = 0, pad_value: int = 99) -> tuple[int, bytes]:
    """(step, data) of an image whose rows carry ``pad`` junk bytes at the end."""
    rows = wire.reshape(wire.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), pad_value, np.uint8)], axis=1)
    return padded.shape[1], padded.tobytes()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_8bit_encodings_decode_to_exact_rgb(encoding, pad):
    wire, expected = _pixels(encoding)
    step, data = _message(wire, pad)
    rgb = image_to_rgb(encoding, 2, 3, step, data)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("pad", [0, 3])
def test_mono16_keeps_high_byte_in_either_byte_order(bigendian, pad):
    wire = GRAY16.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(2, 3, 2)
    step, data = _message(wire, pad)
    rgb = image_to_rgb("mono16", 2, 3, step, data, is_bigendian=bigendian)
    np.testing.assert_array_equal(rgb, np.repeat(GRAY16_HIGH[..., None], 3, axis=2))
    # Reading the same bytes in the wrong byte order gives the low bytes: the flag really is honoured.
    wrong = image_to_rgb("mono16", 2, 3, step, data, is_bigendian=1 - bigendian)
    np.testing.assert_array_equal(wrong[..., 0], (GRAY16 & 0xFF).astype(np.uint8))


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "array", "memoryview", "list"])
def test_every_buffer_type_is_accepted(kind):
    _, data = _message(_pixels("bgr8")[0], pad=2)
    payload = {"bytes": data, "bytearray": bytearray(data), "array": array.array("B", data),
               "memoryview": memoryview(data), "list": list(data)}[kind]
    np.testing.assert_array_equal(image_to_rgb("bgr8", 2, 3, 11, payload), RGB)


def test_unpadded_rgb8_is_not_copied_and_trailing_bytes_are_ignored():
    data = bytearray(RGB.tobytes() + b"\x07" * 4)
    rgb = image_to_rgb("rgb8", 2, 3, 9, data)
    np.testing.assert_array_equal(rgb, RGB)
    assert np.shares_memory(rgb, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("fields, fragment", [
    (dict(encoding="rgb8", height=2, width=3, step=9, data=bytes(17)), "truncated"),
    (dict(encoding="rgb8", height=2, width=3, step=8, data=bytes(18)), "step"),
    (dict(encoding="mono16", height=2, width=3, step=5, data=bytes(10)), "step"),
    (dict(encoding="yuv422", height=2, width=3, step=6, data=bytes(12)), "rgb8, bgr8, mono8, rgba8, bgra8, mono16"),
    (dict(encoding="8UC3", height=2, width=3, step=9, data=bytes(18)), "unsupported"),
    (dict(encoding="rgb8", height=0, width=3, step=9, data=b""), "positive"),
    (dict(encoding="rgb8", height=2, width=0, step=0, data=b""), "positive"),
    (dict(encoding="rgb8", height=-1, width=3, step=9, data=bytes(18)), "positive"),
    (dict(encoding="rgb8", height=2.0, width=3, step=9, data=bytes(18)), "integer"),
    (dict(encoding="mono16", height=2, width=3, step=6, data=bytes(12), is_bigendian=2), "is_bigendian"),
    (dict(encoding="rgb8", height=2, width=3, step=9, data="x" * 18), "data"),
    (dict(encoding="rgb8", height=2, width=3, step=9, data=[300] * 18), "data"),
])
def test_bad_messages_raise_image_format_error(fields, fragment):
    with pytest.raises(ImageFormatError) as info:
        image_to_rgb(**fields)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_supported_encodings_are_all_decodable():
    assert SUPPORTED_ENCODINGS == ("rgb8", "bgr8", "mono8", "rgba8", "bgra8", "mono16")
    for encoding in SUPPORTED_ENCODINGS:
        bpp = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4, "mono16": 2}[encoding]
        assert image_to_rgb(encoding, 2, 3, 3 * bpp, bytes(6 * bpp)).shape == (2, 3, 3)


def test_rgb_to_image_fields_round_trips():
    fields = rgb_to_image_fields(RGB)
    assert fields["encoding"] == "rgb8" and (fields["height"], fields["width"], fields["step"]) == (2, 3, 9)
    assert isinstance(fields["data"], bytes) and len(fields["data"]) == 18
    np.testing.assert_array_equal(image_to_rgb(**fields), RGB)
    # A non-contiguous view is serialised in row-major pixel order.
    np.testing.assert_array_equal(image_to_rgb(**rgb_to_image_fields(RGB[:, ::-1])), RGB[:, ::-1])
    with pytest.raises(ImageFormatError):
        rgb_to_image_fields(RGB.astype(np.float32))
    with pytest.raises(ImageFormatError):
        rgb_to_image_fields(RGB[..., :2])


def _marked(height: int = 480, width: int = 640, half: int = 48) -> np.ndarray:
    """A black image with a white square of side 2 * half centred on it."""
    image = np.zeros((height, width, 3), np.uint8)
    cy, cx = height // 2, width // 2
    image[cy - half:cy + half, cx - half:cx + half] = 255
    return image


def _bright_box(image: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(image[..., 0] > 127)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_center_crop_keeps_the_centre_centred_and_the_aspect():
    processor = FrameProcessor((224, 224))
    assert processor.region(480, 640) == (0, 80, 480, 480)
    out = processor(_marked())
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    top, bottom, left, right = _bright_box(out)
    assert top + bottom == 223 and left + right == 223  # symmetric about the output centre
    assert bottom - top == right - left  # the square is still square
    assert abs((bottom - top + 1) - 96 * 224 / 480) <= 1.0  # scaled by 224/480 in both directions
    assert out[0, 0].tolist() == [0, 0, 0] and out[112, 112].tolist() == [255, 255, 255]


def test_center_crop_for_a_wide_output_cuts_rows():
    processor = FrameProcessor((120, 320))
    assert processor.region(480, 640) == (120, 0, 240, 640)
    top, bottom, left, right = _bright_box(processor(_marked()))
    assert top + bottom == 119 and left + right == 319
    assert bottom - top == right - left


def test_crop_none_distorts_to_the_output_size():
    out = FrameProcessor((224, 224), crop="none")(_marked())
    top, bottom, left, right = _bright_box(out)
    assert abs((bottom - top + 1) - 96 * 224 / 480) <= 1.0
    assert abs((right - left + 1) - 96 * 224 / 640) <= 1.0


def test_crop_box_is_applied_first_and_validated():
    image = np.zeros((480, 640, 3), np.uint8)
    image[100:300, 200:400] = (10, 128, 250)
    processor = FrameProcessor((64, 64), crop_box=(100, 200, 200, 200))
    assert processor.region(480, 640) == (100, 200, 200, 200)
    out = processor(image)
    assert (out == np.array([10, 128, 250], np.uint8)).all()
    # A non-square box is then centre-cropped inside the box.
    assert FrameProcessor((64, 64), crop_box=(100, 200, 100, 200)).region(480, 640) == (100, 250, 100, 100)
    with pytest.raises(ImageFormatError, match="does not fit"):
        FrameProcessor((64, 64), crop_box=(400, 0, 100, 100))(image)
    with pytest.raises(ImageFormatError, match="does not fit"):
        FrameProcessor((64, 64), crop_box=(0, 600, 100, 100))(image)
    with pytest.raises(ImageFormatError):
        FrameProcessor((64, 64), crop_box=(-1, 0, 100, 100))
    with pytest.raises(ImageFormatError):
        FrameProcessor((64, 64), crop_box=(0, 0, 0, 100))


@pytest.mark.parametrize("in_shape, out_size", [((480, 640), (224, 224)), ((100, 90), (224, 224)),
                                                ((720, 1280), (256, 320)), ((224, 224), (224, 224))])
@pytest.mark.parametrize("crop", ["center", "none"])
def test_resizing_a_constant_image_keeps_the_constant(in_shape, out_size, crop):
    for colour in ((0, 0, 0), (255, 255, 255), (1, 127, 254), (10, 128, 250)):
        image = np.empty(in_shape + (3,), np.uint8)
        image[:] = colour
        out = FrameProcessor(out_size, crop=crop)(image)
        assert out.shape == out_size + (3,)
        assert (out == np.array(colour, np.uint8)).all(), colour


def test_downscaling_is_antialiased():
    # A one-pixel checkerboard has no detail a 224x224 frame can show: an antialiased resize turns it into
    # mid grey, point sampling (NEAREST, or a plain 2-tap bilinear) would keep near-black and near-white pixels.
    image = np.zeros((480, 640, 3), np.uint8)
    image[::2, ::2] = 255
    image[1::2, 1::2] = 255
    out = FrameProcessor((224, 224))(image)
    assert out.min() >= 115 and out.max() <= 140
    assert abs(out.mean() - 127.5) < 1.0


def test_same_size_frame_is_returned_as_an_equal_new_array():
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    out = FrameProcessor((224, 224))(image)
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_frame_processor_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FrameProcessor((0, 224))
    with pytest.raises(ValueError):
        FrameProcessor((224, 224), crop="left")
    with pytest.raises(ImageFormatError):
        FrameProcessor((224, 224))(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageFormatError):
        FrameProcessor((224, 224))(np.zeros((10, 10, 3), np.float32))


def _stamps(count: int = 300, hz: float = 30.0, jitter_ms: float = 3.0, seed: int = 0,
            start_ns: int = 5_000_000_000) -> list[int]:
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-jitter_ms, jitter_ms, count) * 1e6
    return [int(round(start_ns + k * 1e9 / hz + jitter[k])) for k in range(count)]


def _kept(limiter: FrameRateLimiter, stamps: list[int]) -> list[int]:
    return [k for k, stamp in enumerate(stamps) if limiter.accept(stamp)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate, every", [(30, 1), (15, 2), (10, 3)])
def test_rate_limiter_keeps_every_nth_frame_of_a_jittery_30hz_stream(seed, rate, every):
    limiter = FrameRateLimiter(rate)
    kept = _kept(limiter, _stamps(seed=seed))
    assert kept == list(range(0, 300, every))
    assert (limiter.accepted, limiter.dropped) == (len(kept), 300 - len(kept))


def test_rate_limiter_keeps_the_average_rate_for_a_non_integer_ratio():
    limiter = FrameRateLimiter(20)
    kept = _kept(limiter, _stamps(jitter_ms=1.0))
    assert len(kept) == 200
    assert set(np.diff(kept).tolist()) == {1, 2}


def test_rate_limiter_restarts_its_schedule_after_a_gap():
    limiter = FrameRateLimiter(15)
    before = _stamps(30)
    after = _stamps(30, seed=1, start_ns=before[-1] + 1_000_000_000)  # the stream paused for a second
    assert _kept(limiter, before) == list(range(0, 30, 2))
    assert _kept(limiter, after) == list(range(0, 30, 2))  # no catch-up burst, the new phase is kept


def test_backwards_stamp_resets_the_limiter():
    limiter = FrameRateLimiter(15)
    first = _stamps(20, start_ns=50_000_000_000)
    assert _kept(limiter, first) == list(range(0, 20, 2))
    assert limiter.resets == 0
    # Simulation reset: time starts again near zero, and the very next frame would otherwise be far too early.
    again = _stamps(20, seed=3, start_ns=1_000_000)
    assert _kept(limiter, again) == list(range(0, 20, 2))
    assert limiter.resets == 1
    assert (limiter.accepted, limiter.dropped) == (20, 20)


def test_rate_limiter_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FrameRateLimiter(0)
    with pytest.raises(ValueError):
        FrameRateLimiter(15, tolerance=0.6)
    with pytest.raises(ValueError):
        FrameRateLimiter(15, tolerance=-0.1)
