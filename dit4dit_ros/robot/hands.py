"""Hand commands from the policy's grip scalars (0 open .. 1 closed), for the G1's three hand options.

  dex3     Dex3-1, 7 joints per hand, one unitree_hg/HandCmd per hand on dex3/<side>/cmd (the robot's
           rt/dex3/<side>/cmd); finger targets from g1.grip_targets, the same map the simulation uses.
  inspire  Inspire, 6 actuated DoF per hand commanded 0 (closed) .. 1 (open), one unitree_go/MotorCmds with
           12 entries on inspire/cmd: right hand 0..5, left hand 6..11 (pinky, ring, middle, index, thumb
           bend, thumb rotation).
  dex1     Dex1-1 parallel gripper, one unitree_go/MotorCmds with one entry per side on dex1/<side>/cmd.

Every builder returns plain arrays (HandFrame); the ROS layer turns them into messages. Damping sends kp 0
(the Inspire, position-controlled by its own firmware, has no such mode).
Where the hand reports its state, `grip_from_state` inverts the map (the bridge's measured grip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dit4dit_ros import g1

HAND_KINDS = ("dex3", "inspire", "dex1", "none")


@dataclass
class HandFrame:
    """One hand topic's command: per-motor arrays, in the order the hand's wire protocol uses."""

    topic: str  # relative ROS topic name
    message: str  # "unitree_hg/HandCmd" | "unitree_go/MotorCmds"
    mode: np.ndarray  # uint8
    q: np.ndarray
    kp: np.ndarray
    kd: np.ndarray

    @property
    def size(self) -> int:
        return len(self.q)


def dex3_mode_byte(motor_id: int, status: int = 0x01, timeout: bool = False) -> int:
    """Dex3's MotorCmd.mode packs the motor id (bits 0-3), a status (bits 4-6; 1 = enabled) and a timeout flag
    (bit 7) into one byte."""
    return (motor_id & 0x0F) | ((status & 0x07) << 4) | ((1 if timeout else 0) << 7)


class Hands:
    kind = "none"

    def frames(self, grips: dict[str, float], damping: bool) -> list[HandFrame]:
        return []

    def grip_from_state(self, side: str, q: np.ndarray) -> float:
        raise NotImplementedError(f"{self.kind} hands report no state")


class Dex3Hands(Hands):
    """Wire order per hand: thumb 0, 1, 2, middle 0, 1, index 0, 1 (g1.HAND_LINKS; sources disagree on index vs
    middle per hand, so it is one table here, by name)."""

    kind = "dex3"

    def __init__(self, kp: float = 1.5, kd: float = 0.2, damping_kd: float = 0.2):
        self.kp, self.kd, self.damping_kd = kp, kd, damping_kd
        self.joints = {side: g1.HAND_JOINTS[side] for side in g1.SIDES}
        self.limits = {side: np.array([_HAND_RANGES[name] for name in self.joints[side]]) for side in g1.SIDES}

    def frames(self, grips, damping):
        frames = []
        for side in g1.SIDES:
            if side not in grips:
                continue
            targets = g1.grip_targets(side, grips[side])
            q = np.clip([targets[name] for name in self.joints[side]], *self.limits[side].T)
            n = len(q)
            frames.append(HandFrame(
                topic=f"dex3/{side}/cmd", message="unitree_hg/HandCmd",
                mode=np.array([dex3_mode_byte(i) for i in range(n)], dtype=np.uint8), q=q,
                kp=np.full(n, 0.0 if damping else self.kp), kd=np.full(n, self.damping_kd if damping else self.kd)))
        return frames

    def grip_from_state(self, side, q):
        return g1.grip_estimate(side, dict(zip(self.joints[side], np.asarray(q, dtype=float).tolist())))


class InspireHands(Hands):
    kind = "inspire"

    def __init__(self, thumb_rotation: float = 0.5, kp: float = 0.0, kd: float = 0.0):
        self.thumb_rotation = thumb_rotation  # kept fixed: a grip scalar says nothing about thumb opposition
        self.kp, self.kd = kp, kd  # the Inspire's own controller closes the loop; 0 = its defaults

    def frames(self, grips, damping):
        q = np.ones(12)  # open
        for side, offset in (("right", 0), ("left", 6)):
            grip = float(np.clip(grips.get(side, 0.0), 0.0, 1.0))
            q[offset:offset + 5] = 1.0 - grip
            q[offset + 5] = self.thumb_rotation
        # Damping: the Inspire has no torque mode; the grip keeps following (its fingers are weak and slow).
        return [HandFrame(topic="inspire/cmd", message="unitree_go/MotorCmds", mode=np.ones(12, dtype=np.uint8),
                          q=q, kp=np.full(12, self.kp), kd=np.full(12, self.kd))]

    def grip_from_state(self, side, q):
        q = np.asarray(q, dtype=float)
        offset = 0 if side == "right" else 6
        return float(np.clip(1.0 - np.mean(q[offset:offset + 5]), 0.0, 1.0))


class Dex1Grippers(Hands):
    kind = "dex1"

    def __init__(self, open_q: float = 5.4, closed_q: float = 0.0, kp: float = 5.0, kd: float = 0.05,
                 damping_kd: float = 0.05):
        if open_q == closed_q:
            raise ValueError("dex1 open_q and closed_q must differ")
        self.open_q, self.closed_q, self.kp, self.kd, self.damping_kd = open_q, closed_q, kp, kd, damping_kd

    def frames(self, grips, damping):
        frames = []
        for side in g1.SIDES:
            if side not in grips:
                continue
            grip = float(np.clip(grips[side], 0.0, 1.0))
            q = self.open_q + grip * (self.closed_q - self.open_q)
            frames.append(HandFrame(topic=f"dex1/{side}/cmd", message="unitree_go/MotorCmds",
                                    mode=np.ones(1, dtype=np.uint8), q=np.array([q]),
                                    kp=np.array([0.0 if damping else self.kp]),
                                    kd=np.array([self.damping_kd if damping else self.kd])))
        return frames

    def grip_from_state(self, side, q):
        value = (float(np.asarray(q, dtype=float)[0]) - self.open_q) / (self.closed_q - self.open_q)
        return float(np.clip(value, 0.0, 1.0))


def make_hands(kind: str, **options) -> Hands:
    if kind == "dex3":
        return Dex3Hands(**options)
    if kind == "inspire":
        return InspireHands(**options)
    if kind == "dex1":
        return Dex1Grippers(**options)
    if kind == "none":
        return Hands()
    raise ValueError(f"unknown hand kind {kind!r}; expected one of {HAND_KINDS}")


def _hand_ranges() -> dict[str, tuple[float, float]]:
    from dit4dit_ros.robot.variants import JOINT_RANGES

    return {name: JOINT_RANGES[name] for side in g1.SIDES for name in g1.HAND_JOINTS[side]}


_HAND_RANGES = _hand_ranges()
