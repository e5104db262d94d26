"""Joint-space jogging for keyboard teleoperation, without ROS: keys -> G1 tabletop action targets.

The targets are the G1 tabletop action (g1.ACTION_NAMES: 7 + 7 arm joints, two grips). They start from the
measured pose and move one joint at a time by a fixed step, always inside the joint ranges, so a held key
can never drive an arm past its limits (the controller bridge checks again).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dit4dit_ros import g1

HELP = """keys: l / r  left or right arm      1-7  joint (shoulder pitch, roll, yaw, elbow, wrist roll, pitch, yaw)
      + / -  move the joint           g    toggle the grip       0  back to the measured pose
      R  start / stop (keep) recording    X  discard the recording    q  quit"""


@dataclass
class KeyResult:
    changed: bool = False  # the targets moved
    command: str = ""  # "record", "discard", "quit" or ""
    message: str = ""


class JointJogger:
    def __init__(self, step: float = 0.05):
        if not 0 < step <= 0.5:
            raise ValueError(f"step must be in (0, 0.5] rad, got {step}")
        self.step = step
        self.side = "right"
        self.joint = 0
        self.targets: np.ndarray | None = None  # None until a measured pose arrived
        low = [g1.ARM_JOINT_RANGES[n][0] if n in g1.ARM_JOINT_RANGES else g1.GRIP_RANGE[0] for n in g1.ACTION_NAMES]
        high = [g1.ARM_JOINT_RANGES[n][1] if n in g1.ARM_JOINT_RANGES else g1.GRIP_RANGE[1] for n in g1.ACTION_NAMES]
        self.low, self.high = np.array(low), np.array(high)

    def start_from(self, measured: np.ndarray) -> None:
        """Targets = the measured pose (ACTION_NAMES order), clipped into the ranges."""
        measured = np.asarray(measured, dtype=float)
        if measured.shape != (len(g1.ACTION_NAMES),) or not np.isfinite(measured).all():
            raise ValueError(f"measured pose must be {len(g1.ACTION_NAMES)} finite values")
        self.targets = np.clip(measured, self.low, self.high)

    @property
    def selected(self) -> str:
        return g1.ARM_JOINTS[self.side][self.joint]

    def press(self, key: str) -> KeyResult:
        if key in ("l", "r"):
            self.side = "left" if key == "l" else "right"
            return KeyResult(message=f"selected {self.selected}")
        if key in "1234567" and len(key) == 1:
            self.joint = int(key) - 1
            return KeyResult(message=f"selected {self.selected}")
        if key == "q":
            return KeyResult(command="quit")
        if key == "R":
            return KeyResult(command="record")
        if key == "X":
            return KeyResult(command="discard")
        if self.targets is None:
            return KeyResult(message="no joint state yet")
        if key in ("+", "=", "-", "_"):
            index = g1.ACTION_NAMES.index(self.selected)
            delta = self.step if key in ("+", "=") else -self.step
            self.targets[index] = np.clip(self.targets[index] + delta, self.low[index], self.high[index])
            return KeyResult(changed=True, message=f"{self.selected} -> {self.targets[index]:+.2f} rad")
        if key == "g":
            index = g1.ACTION_NAMES.index(g1.GRIP_NAMES[self.side])
            self.targets[index] = 0.0 if self.targets[index] > 0.5 else 1.0
            return KeyResult(changed=True, message=f"{g1.GRIP_NAMES[self.side]} -> {self.targets[index]:.0f}")
        return KeyResult(message=f"unknown key {key!r}")
