"""Synthetic episode bags whose every value is a known function of time, so that a converted dataset can be
checked frame by frame (used by test_data_convert.py).

- camera (rgb8, WIDTH x HEIGHT) at ``camera_hz``: message n shows the number ``first_code + n`` in binary,
  one 8-pixel-wide vertical stripe per bit (bit 0 on the left), ON_COLOUR for 1 and OFF_COLOUR for 0:
  block-aligned flat stripes survive H.264 exactly enough to read the number back (see ``read_code``);
- joint_states (every joint of g1.ALL_JOINTS) at ``joint_hz`` with positions giving ``state_at(t)``;
- joint_commands (g1.ACTION_NAMES) at ``joint_hz``, ``COMMAND_PHASE_S`` after the states, giving ``action_at(t)``;
- task_success at 10 Hz (False, then True over the last 0.3 s) and the metadata (write_episode adds it).

``t`` is seconds since the episode's start (stamp START_NS). Each message is logged (bag time) at its true
time plus a fixed transport latency; ``camera_stamp_shift`` moves only the image header stamps, the way a
camera with a wrong clock does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.data.bags import typestore, write_episode

START_NS = 5_000_000_000  # sim time of the first messages
HEIGHT, WIDTH = 48, 64
STRIPE = WIDTH // 8
ON_COLOUR = (240, 180, 120)
OFF_COLOUR = (16, 60, 100)
CAMERA_LATENCY_S = 0.004  # log time - true time
JOINT_LATENCY_S = 0.001
COMMAND_PHASE_S = 0.003
ARM = g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]
METADATA = {"task": "pick_cube", "instruction": "pick up the red cube", "seed": 7, "source": "expert",
            "robot": "unitree_g1"}


def state_at(t: float) -> np.ndarray:
    """observation.state at ``t``: arm joints ramp at 1 rad/s from distinct offsets, grips ramp in [0.1, 0.9]."""
    arms = 0.1 * np.arange(14) - 0.5 + t
    return np.concatenate([arms, [0.1 + 0.2 * t, 0.9 - 0.2 * t]])


def action_at(t: float) -> np.ndarray:
    """action at ``t``: arm targets ramp at -0.5 rad/s, grips at +-0.15 / s."""
    arms = 0.3 - 0.05 * np.arange(14) - 0.5 * t
    return np.concatenate([arms, [0.2 + 0.15 * t, 0.7 - 0.15 * t]])


def frame_image(code: int) -> np.ndarray:
    """The (HEIGHT, WIDTH, 3) uint8 picture that carries ``code`` (0..255)."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(8):
        image[:, bit * STRIPE:(bit + 1) * STRIPE] = ON_COLOUR if code >> bit & 1 else OFF_COLOUR
    return image


def read_code(rgb: np.ndarray) -> int:
    """The number a (decoded, possibly lossy) frame_image carries: each stripe's red mean against the midpoint."""
    threshold = (ON_COLOUR[0] + OFF_COLOUR[0]) / 2
    return sum(1 << bit for bit in range(8)
               if rgb[:, bit * STRIPE + 2:(bit + 1) * STRIPE - 2, 0].mean() > threshold)


def _header(stamp_ns: int):
    types = typestore().types
    time = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=time, frame_id="")


def _joint_state(stamp_ns: int, positions: dict[str, float]):
    return typestore().types["sensor_msgs/msg/JointState"](
        header=_header(stamp_ns), name=list(positions), position=np.array(list(positions.values()), np.float64),
        velocity=np.zeros(0), effort=np.zeros(0))


def _image(stamp_ns: int, rgb: np.ndarray, encoding: str):
    return typestore().types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns), height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
        step=rgb.shape[1] * 3, data=np.ascontiguousarray(rgb).reshape(-1))


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def make_episode_bag(path: Path, *, seconds: float = 2.0, camera_hz: float = 30.0, joint_hz: float = 100.0,
                     first_code: int = 0, camera_stamp_shift: float = 0.0, instruction: str | None = None,
                     outcome: dict | None = None, encoding: str = "rgb8",
                     drop_arm_joint: tuple[float, float] | None = None,
                     nan_command: tuple[float, float] | None = None) -> Path:
    """Write the episode bag at ``path`` (a new directory) and return it.

    ``encoding`` only labels the images (their bytes stay rgb8), to make bags with an encoding the converter
    does not support.
    ``drop_arm_joint=(t0, t1)`` leaves left_elbow_joint out of the joint_states stamped in [t0, t1];
    ``nan_command=(t0, t1)`` makes the commands stamped in [t0, t1] carry NaN for right_elbow_joint.
    """
    path = Path(path)
    messages = []
    for n in range(round(seconds * camera_hz)):
        t = n / camera_hz
        stamp = START_NS + _ns(t + camera_stamp_shift)
        messages.append(("/camera/image_raw", "sensor_msgs/msg/Image", START_NS + _ns(t + CAMERA_LATENCY_S),
                         _image(stamp, frame_image(first_code + n), encoding)))
    for k in range(round(seconds * joint_hz)):
        t = k / joint_hz
        positions = {name: 0.0 for name in g1.ALL_JOINTS}
        positions.update(zip(ARM, state_at(t)[:14]))
        for side, grip in zip(g1.SIDES, state_at(t)[14:]):
            positions.update(g1.grip_targets(side, grip))
        if drop_arm_joint and drop_arm_joint[0] <= t <= drop_arm_joint[1]:
            del positions["left_elbow_joint"]
        messages.append(("/joint_states", "sensor_msgs/msg/JointState", START_NS + _ns(t + JOINT_LATENCY_S),
                         _joint_state(START_NS + _ns(t), positions)))
        tc = t + COMMAND_PHASE_S
        command = dict(zip(g1.ACTION_NAMES, action_at(tc)))
        if nan_command and nan_command[0] <= tc <= nan_command[1]:
            command["right_elbow_joint"] = float("nan")
        messages.append(("/joint_commands", "sensor_msgs/msg/JointState", START_NS + _ns(tc + JOINT_LATENCY_S),
                         _joint_state(START_NS + _ns(tc), command)))
    bool_type = typestore().types["std_msgs/msg/Bool"]
    for k in range(round(seconds * 10)):
        t = k / 10
        messages.append(("/task_success", "std_msgs/msg/Bool", START_NS + _ns(t), bool_type(data=t >= seconds - 0.3)))
    messages.sort(key=lambda m: m[2])
    metadata = {**METADATA, "episode": path.name, "instruction": instruction or METADATA["instruction"]}
    if outcome is None:
        outcome = {"success": True, "reason": "task_success", "duration": seconds}
    return write_episode(path, messages, metadata, outcome)
