"""Conversions between arrays and the package's own messages, with validation.

Plain Python + numpy: the ROS message classes are passed in or imported lazily, so that the model and
data code can use the tensor <-> bytes helpers without ROS.
"""

from __future__ import annotations

import array
import hashlib
from dataclasses import dataclass, field

import numpy as np

# dtype name on the wire -> (numpy dtype used to carry the bytes, bytes per element)
_WIRE_DTYPES = {
    "float32": (np.dtype("<f4"), 4),
    "float16": (np.dtype("<f2"), 2),
    # numpy has no bfloat16: the raw 16-bit patterns travel as uint16 and are widened on receipt.
    "bfloat16": (np.dtype("<u2"), 2),
}


class MalformedFeaturesError(ValueError):
    """A VideoFeatures message whose payload cannot be a tensor of its declared shape and dtype."""


@dataclass
class Features:
    """A decoded VideoFeatures message: the tensor (float32) and the metadata that came with it."""

    tensor: np.ndarray
    stamp_ns: int
    frame_stamps_ns: list[int] = field(default_factory=list)
    frame_id: str = ""
    model_id: str = ""
    instruction_id: str = ""
    layer: int = 0
    flow_timestep: float = 0.0
    wire_dtype: str = "float32"


def instruction_id(text: str) -> str:
    """A short, stable id for an instruction (what the encoder caches embeddings under)."""
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:16]


def time_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int, time_cls=None):
    """Integer nanoseconds -> builtin_interfaces/Time."""
    if time_cls is None:
        from builtin_interfaces.msg import Time as time_cls
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return time_cls(sec=sec, nanosec=nanosec)


def tensor_to_bytes(tensor) -> tuple[bytes, str, tuple[int, ...]]:
    """A numpy array or torch tensor -> (little-endian bytes, wire dtype name, shape)."""
    if hasattr(tensor, "detach"):  # torch.Tensor, without importing torch here
        tensor = tensor.detach().cpu().contiguous()
        name = str(tensor.dtype).removeprefix("torch.")
        if name == "bfloat16":
            import torch

            return tensor.view(torch.int16).numpy().tobytes(), "bfloat16", tuple(tensor.shape)
        tensor = tensor.numpy()
    arr = np.ascontiguousarray(tensor)
    name = arr.dtype.name
    if name not in ("float32", "float16"):
        raise TypeError(f"features must be float32, float16 or bfloat16, got {arr.dtype}")
    wire_dtype, _ = _WIRE_DTYPES[name]
    return arr.astype(wire_dtype, copy=False).tobytes(), name, tuple(arr.shape)


def bytes_to_tensor(data, dtype: str, shape) -> np.ndarray:
    """Wire bytes -> float32 numpy array of ``shape``; raises MalformedFeaturesError on any mismatch."""
    if dtype not in _WIRE_DTYPES:
        raise MalformedFeaturesError(f"unknown feature dtype {dtype!r}; expected one of {sorted(_WIRE_DTYPES)}")
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise MalformedFeaturesError("feature shape is empty")
    wire_dtype, itemsize = _WIRE_DTYPES[dtype]
    expected = int(np.prod(shape)) * itemsize
    buffer = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if len(buffer) != expected:
        raise MalformedFeaturesError(
            f"feature payload has {len(buffer)} bytes but shape {list(shape)} x {dtype} needs {expected}"
        )
    flat = np.frombuffer(buffer, dtype=wire_dtype)
    if dtype == "bfloat16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    return flat.astype(np.float32, copy=False).reshape(shape)


def features_to_msg(
    tensor,
    *,
    stamp_ns: int,
    frame_stamps_ns=(),
    frame_id: str = "",
    model_id: str = "",
    instruction_id: str = "",
    layer: int = 0,
    flow_timestep: float = 0.0,
    msg_cls=None,
):
    """Build a dit4dit_ros/VideoFeatures message from a tensor (numpy or torch)."""
    if msg_cls is None:
        from dit4dit_ros.msg import VideoFeatures as msg_cls
    payload, dtype, shape = tensor_to_bytes(tensor)
    msg = msg_cls()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.frame_stamps = [ns_to_time(ns) for ns in frame_stamps_ns]
    msg.model_id = model_id
    msg.instruction_id = instruction_id
    msg.layer = int(layer)
    msg.flow_timestep = float(flow_timestep)
    msg.dtype = dtype
    msg.shape = array.array("I", shape)
    # array.array is what rclpy stores uint8[] as; building it from bytes is a memcpy, not a Python loop.
    msg.data = array.array("B", payload)
    return msg


def msg_to_features(msg) -> Features:
    """Decode and validate a VideoFeatures message (zero-copy for float32 payloads)."""
    tensor = bytes_to_tensor(msg.data, msg.dtype, msg.shape)
    if not np.isfinite(tensor).all():
        raise MalformedFeaturesError("feature tensor contains NaN or Inf")
    return Features(
        tensor=tensor,
        stamp_ns=time_to_ns(msg.header.stamp),
        frame_stamps_ns=[time_to_ns(s) for s in msg.frame_stamps],
        frame_id=msg.header.frame_id,
        model_id=msg.model_id,
        instruction_id=msg.instruction_id,
        layer=int(msg.layer),
        flow_timestep=float(msg.flow_timestep),
        wire_dtype=msg.dtype,
    )


def hold_chunk(names, positions, stamp, period_s: float):
    """A two-point action chunk holding `positions` from `stamp` for one period (a trajectory_msgs/JointTrajectory):
    how step-wise sources (the scripted experts, teleop) feed the controller bridge, which interpolates to its own
    rate until the next one arrives."""
    from builtin_interfaces.msg import Duration
    from std_msgs.msg import Header
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    values = [float(v) for v in positions]
    period = Duration(sec=int(period_s), nanosec=round((period_s % 1.0) * 1e9))
    points = [JointTrajectoryPoint(positions=values, time_from_start=Duration()),
              JointTrajectoryPoint(positions=values, time_from_start=period)]
    return JointTrajectory(header=Header(stamp=stamp), joint_names=list(names), points=points)


def camera_info(model, camera: str, width: int, height: int):
    """sensor_msgs/CameraInfo (pinhole, no distortion) of a MuJoCo camera: square pixels, fovy the vertical field
    of view. What the simulation and the fake robot publish beside their images."""
    import math

    from sensor_msgs.msg import CameraInfo

    fovy = math.radians(float(model.cam_fovy[model.camera(camera).id]))
    focal = 0.5 * height / math.tan(fovy / 2)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info
