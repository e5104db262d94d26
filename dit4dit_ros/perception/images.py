"""Turn camera frames into the policy's input frames: decode sensor_msgs/Image fields to RGB, crop and resize
them to the training resolution, and thin the stream to the training frame rate. numpy + Pillow, no ROS.

The ROS node passes message FIELDS (encoding, height, width, step, data, is_bigendian), so everything here
is testable without rclpy and works the same on messages from any camera driver or simulator.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from PIL import Image


class ImageFormatError(ValueError):
    """An image (or its message fields) that cannot be turned into an RGB frame; the message says why."""


SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8", "mono16")

# Bytes per pixel of each supported encoding (sensor_msgs/image_encodings.hpp).
_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4, "mono16": 2}


def _as_int(name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise ImageFormatError(f"image {name} must be an integer, got {value!r}") from None


def _as_byte_array(data: Any) -> np.ndarray:
    """A flat uint8 view of ``data`` (no copy for bytes, bytearray, array.array, contiguous memoryview/ndarray)."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data)  # no copy when it already is contiguous
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    if isinstance(data, memoryview):  # a strided (non-contiguous) view: one copy is unavoidable
        return np.frombuffer(data.tobytes(), dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        values = np.asarray(data)
        if values.ndim == 1 and (values.size == 0 or (np.issubdtype(values.dtype, np.integer)
                                                      and values.min() >= 0 and values.max() <= 255)):
            return values.astype(np.uint8)
    raise ImageFormatError(f"image data must be bytes, bytearray, array.array('B'), memoryview or a list of "
                           f"0..255 ints, got {type(data).__name__}")


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: int = 0) -> np.ndarray:
    """The (height, width, 3) uint8 RGB frame held by the fields of a sensor_msgs/Image.

    Rows may be padded (step > width * bytes_per_pixel); bytes past step * height are ignored. bgr* is
    swapped to RGB, alpha is dropped, mono is replicated to three channels and mono16 keeps its high byte
    (value >> 8), read in the byte order that ``is_bigendian`` names. The result is C-contiguous and, for
    unpadded rgb8, a view of ``data`` (read-only when ``data`` is immutable bytes): copy it before writing.
    Raises ImageFormatError for any input that is not a valid image of a supported encoding.
    """
    if encoding not in _BYTES_PER_PIXEL:
        raise ImageFormatError(f"unsupported image encoding {encoding!r}: supported are "
                               f"{', '.join(SUPPORTED_ENCODINGS)} (set the camera driver to one of them)")
    height, width, step = _as_int("height", height), _as_int("width", width), _as_int("step", step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image size must be positive, got height={height} width={width}")
    if is_bigendian not in (0, 1):  # also accepts True/False
        raise ImageFormatError(f"is_bigendian must be 0 or 1, got {is_bigendian!r}")
    bpp = _BYTES_PER_PIXEL[encoding]
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageFormatError(f"image step {step} is smaller than width * bytes per pixel = {width} * {bpp} = "
                               f"{row_bytes} for {encoding}: the message's step field is wrong")
    buf = _as_byte_array(data)
    if buf.size < step * height:
        raise ImageFormatError(f"image data has {buf.size} bytes, need step * height = {step} * {height} = "
                               f"{step * height}: the message is truncated or its step/height are wrong")

    # Row view that skips the padding; a view, so nothing is copied until the final ascontiguousarray.
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    if encoding == "mono8":
        gray = rows
    elif encoding == "mono16":
        # value >> 8 is the most significant byte: the first of each pair in big-endian data, the second in
        # little-endian data. Picking it out avoids building a (possibly misaligned) uint16 view.
        gray = rows[:, 0::2] if is_bigendian else rows[:, 1::2]
    else:
        pixels = rows.reshape(height, width, bpp)
        if encoding == "rgb8":
            return np.ascontiguousarray(pixels)
        if encoding == "rgba8":
            return np.ascontiguousarray(pixels[..., :3])
        return np.ascontiguousarray(pixels[..., 2::-1])  # bgr8 / bgra8: channels 2, 1, 0
    return np.repeat(gray[:, :, None], 3, axis=2)


def _check_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        desc = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ImageFormatError(f"expected an (H, W, 3) uint8 RGB array, got {desc}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageFormatError(f"image size must be positive, got {rgb.shape[0]}x{rgb.shape[1]}")
    return rgb


def rgb_to_image_fields(rgb: np.ndarray) -> dict[str, Any]:
    """The sensor_msgs/Image fields (rgb8, unpadded, little-endian flag 0) that carry an (H, W, 3) uint8 frame."""
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    return {"encoding": "rgb8", "height": int(height), "width": int(width), "step": int(width) * 3,
            "is_bigendian": 0, "data": np.ascontiguousarray(rgb).tobytes()}


class FrameProcessor:
    """Crop and resize RGB frames to the policy's input size.

    Order: the optional region of interest ``crop_box = (top, left, height, width)`` first, then with
    ``crop="center"`` the largest centred region with the output's aspect ratio (nothing is distorted), or
    with ``crop="none"`` the whole region is resized to the output size (aspect ratio not kept).
    """

    def __init__(self, out_size: tuple[int, int], crop: str = "center",
                 crop_box: tuple[int, int, int, int] | None = None):
        try:
            out_h, out_w = (operator.index(v) for v in out_size)
        except (TypeError, ValueError):
            raise ValueError(f"out_size must be (height, width) integers, got {out_size!r}") from None
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"out_size must be positive, got {out_size!r}")
        if crop not in ("center", "none"):
            raise ValueError(f"crop must be 'center' or 'none', got {crop!r}")
        if crop_box is not None:
            try:
                top, left, box_h, box_w = (operator.index(v) for v in crop_box)
            except (TypeError, ValueError):
                raise ImageFormatError(f"crop_box must be (top, left, height, width) integers, got {crop_box!r}"
                                       ) from None
            if top < 0 or left < 0 or box_h <= 0 or box_w <= 0:
                raise ImageFormatError(f"crop_box needs top, left >= 0 and height, width > 0, got {crop_box!r}")
            crop_box = (top, left, box_h, box_w)
        self.out_size = (out_h, out_w)
        self.crop = crop
        self.crop_box = crop_box

    def region(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the part of a height x width image that ends up in the output."""
        top, left = 0, 0
        if self.crop_box is not None:
            top, left, box_h, box_w = self.crop_box
            if top + box_h > height or left + box_w > width:
                raise ImageFormatError(f"crop_box {self.crop_box} (top, left, height, width) does not fit in the "
                                       f"{height}x{width} image")
            height, width = box_h, box_w
        if self.crop == "center":
            out_h, out_w = self.out_size
            # Integer cross-multiplication decides which side is cut; the kept side is rounded to the nearest
            # pixel, so e.g. 640x480 -> 1:1 keeps exactly the middle 480x480.
            if width * out_h >= height * out_w:
                crop_h, crop_w = height, max(1, min(width, round(height * out_w / out_h)))
            else:
                crop_h, crop_w = max(1, min(height, round(width * out_h / out_w))), width
            top += (height - crop_h) // 2
            left += (width - crop_w) // 2
            height, width = crop_h, crop_w
        return top, left, height, width

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The (out_h, out_w, 3) uint8 frame made from an (H, W, 3) uint8 RGB frame (a new array)."""
        rgb = _check_rgb(rgb)
        top, left, height, width = self.region(rgb.shape[0], rgb.shape[1])
        region = rgb[top:top + height, left:left + width]
        out_h, out_w = self.out_size
        if (height, width) == (out_h, out_w):
            return np.array(region)
        # BILINEAR without reducing_gap. Pillow's resize is a true convolution whose kernel widens with the
        # scale factor, so bilinear downscaling averages every source pixel under an output pixel (antialiased,
        # no moire on 480 -> 224), and it is what the usual training pipelines (torchvision/LeRobot resize of PIL
        # images, antialiased tensor resize) produced the 224x224 frames with. BOX is only exact for integer
        # factors, which common camera sizes (480 -> 224) are not, and reducing_gap is a speed shortcut that
        # box-reduces first and shifts pixel values slightly: at these sizes the exact resize costs 1-2 ms.
        image = Image.fromarray(np.ascontiguousarray(region))
        return np.array(image.resize((out_w, out_h), Image.Resampling.BILINEAR))


class FrameRateLimiter:
    """Thin a camera stream to the frame rate the model was trained at, judged on message stamps.

    Stamps, not arrival times, so simulated time and bursty transports work. The rule, with period P =
    1 / rate_hz and t = tolerance * P, keeps a schedule of slots ``next_due``:

    * the first frame (and the first after a reset) is accepted and the next slot is its stamp + P;
    * a frame is accepted when ``stamp >= next_due - t`` (up to t early: stamp jitter) and dropped otherwise;
    * an accepted frame normally advances the slot by exactly P (``next_due += P``), so jitter never drifts
      the schedule and the source's phase is kept: 30 Hz limited to 15 Hz keeps every second frame, to 10 Hz
      every third, 30 -> 30 keeps all frames with jitter up to about t / 2 per stamp, and a non-integer ratio
      (30 -> 20) keeps the right average rate (2 frames of 3);
    * but an accepted frame that already lies in the NEXT slot's window (``stamp >= next_due + P - t``: a gap
      in the stream, or a source slower than rate_hz) re-anchors the schedule on itself (next slot = stamp + P)
      instead of letting the limiter pass a burst of frames to catch up;
    * a stamp that goes backwards (simulation reset, bag loop) resets the limiter; that frame is accepted.
    """

    def __init__(self, rate_hz: float, tolerance: float = 0.25):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        # Beyond half a period early a frame is nearer the previous slot than this one.
        if not 0.0 <= tolerance <= 0.5:
            raise ValueError(f"tolerance must be in [0, 0.5] (fraction of a period), got {tolerance!r}")
        self.rate_hz = float(rate_hz)
        self.tolerance = float(tolerance)
        self.period_ns = 1e9 / self.rate_hz
        self.accepted = 0
        self.dropped = 0
        self.resets = 0
        self._next_due: float | None = None
        self._last_stamp: int | None = None

    def reset(self) -> None:
        """Forget the schedule: the next frame is accepted and starts a new one (counters are kept)."""
        self._next_due = None
        self._last_stamp = None

    def accept(self, stamp_ns: int) -> bool:
        """Whether the frame stamped ``stamp_ns`` (nanoseconds) is kept."""
        stamp_ns = int(stamp_ns)
        if self._last_stamp is not None and stamp_ns < self._last_stamp:
            self.resets += 1
            self.reset()
        self._last_stamp = stamp_ns
        period, slack = self.period_ns, self.tolerance * self.period_ns
        if self._next_due is None or stamp_ns >= self._next_due + period - slack:
            self._next_due = stamp_ns + period  # first frame, or a slot was missed: anchor on this frame
        elif stamp_ns >= self._next_due - slack:
            self._next_due += period
        else:
            self.dropped += 1
            return False
        self.accepted += 1
        return True
