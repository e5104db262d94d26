"""LowLevelCore: the controller bridge's joint targets -> one G1 LowCmd's worth of motor commands per tick (500 Hz).

Plain Python; the ROS node converts messages and keeps the clock. Safety lives here, every rule in one place:
  * nothing is sent before a LowState has arrived, and never when LowState.mode_machine does not name the
    configured variant (REFUSED, latched: a 23-DoF robot must not get 29-DoF commands);
  * from the measured pose to the targets over `ramp_time` (linear), again after every damping spell;
  * every command is clipped to the variant's joint ranges and to `max_joint_speed` from the previous one;
  * damping (mode 1, kp 0, kd > 0) when the bridge asks for it (e-stop, watchdog, disable), on a fault (a
    non-finite target or state) and when the newest LowState is older than `stale_after` (20 ms = ten robot
    ticks): a controller that no longer sees the robot must not keep pushing it;
  * `shutdown_frame()` is damping too, sent by the node as it exits.
Tracking frames carry a feed-forward torque when a `feedforward` (measured q by slot -> tau by slot, e.g.
robot/gravity.py) is given; damping frames never do (kp 0, kd > 0, tau 0).
Modes: `low_level` drives every joint of the variant on lowcmd (the motion service released, the robot on a
gantry: joints without a policy target hold the pose measured at the ramp's start); `arm_sdk` drives the arms
and the waist on arm_sdk while Unitree's locomotion keeps balance, slot 29 carrying the blend weight, ramped
0 -> 1 over `blend_time` at the first start.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.robot.hands import Hands, HandFrame
from dit4dit_ros.robot.variants import ARM_SDK_WEIGHT_SLOT, JOINT_RANGES, NUM_MOTORS, get_variant

MODES = ("arm_sdk", "low_level")
GAIN_GROUPS = ("legs", "waist", "arms", "wrists")


class LowLevelError(ValueError):
    """A configuration that cannot drive this robot safely (the message says why)."""


class State(Enum):
    NO_STATE = "no_state"  # no LowState yet: nothing is sent
    REFUSED = "refused"  # mode_machine did not match the variant: nothing is ever sent
    IDLE = "idle"  # state seen, not started (the bridge is disabled): nothing is sent
    RAMP = "ramp"
    TRACK = "track"
    DAMP = "damp"


@dataclass
class LowLevelConfig:
    variant: str = "g1_29dof"
    mode: str = "arm_sdk"
    # (kp, kd) per gain group; arms 60 / 1.5 as Unitree's arm_sdk example, legs 100 / 2.
    gains: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "legs": (100.0, 2.0), "waist": (60.0, 1.5), "arms": (60.0, 1.5), "wrists": (30.0, 1.0)})
    damping_kd: float = 2.0
    ramp_time: float = 3.0  # s, measured pose -> targets
    max_joint_speed: float = 3.0  # rad/s, the last clip before the wire
    stale_after: float = 0.02  # s
    blend_time: float = 1.0  # s, arm_sdk weight 0 -> 1
    mode_pr: int = 0  # 0 = series pitch/roll for ankles and waist

    def validate(self) -> None:
        get_variant(self.variant)
        if self.mode not in MODES:
            raise LowLevelError(f"mode {self.mode!r}; expected one of {MODES}")
        missing = [group for group in GAIN_GROUPS if group not in self.gains]
        if missing:
            raise LowLevelError(f"gains lack group(s) {missing}")
        for group, (kp, kd) in self.gains.items():
            if not (np.isfinite(kp) and np.isfinite(kd) and 0 <= kp <= 500 and 0 <= kd <= 50):
                raise LowLevelError(f"gains[{group}] = ({kp}, {kd}); expected 0 <= kp <= 500, 0 <= kd <= 50")
        if not self.damping_kd > 0:
            raise LowLevelError("damping_kd must be > 0 (damping is kp 0 with kd > 0)")
        if not (self.ramp_time >= 0 and self.max_joint_speed > 0 and self.stale_after > 0 and self.blend_time >= 0):
            raise LowLevelError("ramp_time and blend_time must be >= 0; max_joint_speed and stale_after > 0")


@dataclass
class MotorFrame:
    """One LowCmd (minus the CRC, which the ROS layer computes over the packed message) plus the hand commands."""

    topic: str  # "lowcmd" | "arm_sdk"
    mode_pr: int
    mode_machine: int
    mode: np.ndarray  # (35,) uint8
    q: np.ndarray  # (35,) float32 from here on: q, dq, tau, kp, kd
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    state: State
    grips: dict[str, float] = field(default_factory=dict)  # side -> grip scalar (0 open .. 1 closed)
    hand_model: Hands = field(default_factory=Hands)

    @property
    def damping(self) -> bool:
        return self.state is State.DAMP

    @property
    def hands(self) -> list[HandFrame]:
        """The hand commands of this frame, built on demand: the bridge sends them at 100 Hz, not every tick."""
        return self.hand_model.frames(self.grips, damping=self.damping)


class LowLevelCore:
    def __init__(self, config: LowLevelConfig, hands: Hands | None = None, feedforward=None):
        config.validate()
        self.feedforward = feedforward
        self.config = config
        self.variant = get_variant(config.variant)
        self.hands = hands or Hands()
        arms = g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]
        lacking = [name for name in arms if name not in self.variant.joints]
        if lacking:
            raise LowLevelError(f"the policy's action drives {lacking}, which the {self.variant.name} lacks")
        if config.mode == "arm_sdk":
            controlled = [n for n in self.variant.joints if self.variant.group(n) in ("arms", "wrists", "waist")]
        else:
            controlled = list(self.variant.joints)
        self.controlled = tuple(controlled)
        self.slots = np.array([self.variant.slot(n) for n in controlled])
        self.arm_index = {name: i for i, name in enumerate(controlled) if name in arms}
        self.lower = np.array([JOINT_RANGES[n][0] for n in controlled])
        self.upper = np.array([JOINT_RANGES[n][1] for n in controlled])
        gains = np.array([config.gains[self.variant.group(n)] for n in controlled])
        self.kp, self.kd = gains[:, 0], gains[:, 1]
        self.topic = "arm_sdk" if config.mode == "arm_sdk" else "lowcmd"

        self.state = State.NO_STATE
        self.refusal = ""
        self.mode_machine: int | None = None
        self._measured: np.ndarray | None = None  # (len(controlled),)
        self._measured_slots: np.ndarray | None = None  # (NUM_MOTORS,), for the feed-forward model
        self._measured_ns: int | None = None
        self._ramp_from: np.ndarray | None = None
        self._hold: np.ndarray | None = None
        self._ramp_start_ns = 0
        self._blend_start_ns: int | None = None
        self._last_q: np.ndarray | None = None
        self._last_ns: int | None = None
        self._last_grips = {side: 0.0 for side in g1.SIDES}
        self._started = False  # sent a tracking frame since construction: from then on "not tracking" = damping
        self.counts = Counter()
        self.last_damping_reason = ""

    # -- inputs -----------------------------------------------------------------------------------------
    def update_state(self, q, mode_machine: int, now_ns: int) -> None:
        """A LowState: motor positions by slot (NUM_MOTORS values) and its mode_machine, received at now_ns."""
        if self.state is State.REFUSED:
            return
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (NUM_MOTORS,):
            self.counts["bad_states"] += 1
            return
        if self.mode_machine is None:
            if int(mode_machine) != self.variant.mode_machine:
                self.state = State.REFUSED
                self.refusal = (f"LowState.mode_machine is {int(mode_machine)} but the configured variant "
                                f"{self.variant.name} is {self.variant.mode_machine}: refusing to command this robot")
                return
            self.mode_machine = int(mode_machine)
            self.state = State.IDLE
        elif int(mode_machine) != self.mode_machine:
            self.counts["mode_machine_changes"] += 1  # the robot changed mode under us: treated as a stale state
            return
        measured = q[self.slots]
        if not np.all(np.isfinite(measured)):
            self.counts["bad_states"] += 1  # not fresh: if it persists, the stale rule damps
            return
        self._measured, self._measured_ns, self._measured_slots = measured, int(now_ns), q

    def state_age(self, now_ns: int) -> float:
        return float("inf") if self._measured_ns is None else (int(now_ns) - self._measured_ns) / 1e9

    # -- outputs ----------------------------------------------------------------------------------------
    def frame(self, targets: dict[str, float] | None, now_ns: int, damping: bool = False,
              reason: str = "") -> MotorFrame | None:
        """The commands for the tick at now_ns. `targets`: the bridge's action (ACTION_NAMES -> value), or None
        when it has nothing to send (disabled). Returns None when nothing may be sent."""
        now = int(now_ns)
        if self.state in (State.NO_STATE, State.REFUSED):
            return None
        if self.state_age(now) > self.config.stale_after:
            return self._damping(now, f"stale state: the newest LowState is {self.state_age(now) * 1e3:.1f} ms old")
        if damping:
            return self._damping(now, reason or "requested")
        if targets is None:
            return self._damping(now, reason or "disabled") if self._started else self._idle()
        desired = self._desired(targets)
        if desired is None:
            return self._damping(now, "fault: a non-finite target")
        if self.state not in (State.RAMP, State.TRACK):
            self._begin_ramp(now)
        alpha = 1.0 if self.config.ramp_time == 0 else min(1.0, (now - self._ramp_start_ns) / 1e9
                                                            / self.config.ramp_time)
        q = self._ramp_from + alpha * (desired - self._ramp_from)
        dt = 0.0 if self._last_ns is None else min(max((now - self._last_ns) / 1e9, 0.0), 0.02)
        step = self.config.max_joint_speed * dt
        clipped = np.clip(q, self._last_q - step, self._last_q + step)
        self.counts["speed_clipped"] += int(np.any(np.abs(clipped - q) > 1e-9))
        q = np.clip(clipped, self.lower, self.upper)
        if not np.all(np.isfinite(q)):
            return self._damping(now, "fault: a non-finite command")
        self.state = State.TRACK if alpha >= 1.0 else State.RAMP
        self._last_q, self._last_ns, self._started = q, now, True
        self.counts["frames"] += 1
        frame = self._empty(State.TRACK if alpha >= 1.0 else State.RAMP)
        frame.mode[self.slots] = 1
        frame.q[self.slots] = q
        frame.kp[self.slots] = self.kp
        frame.kd[self.slots] = self.kd
        if self.feedforward is not None:
            tau = np.asarray(self.feedforward(self._measured_slots), dtype=np.float64)[self.slots]
            if np.all(np.isfinite(tau)):
                frame.tau[self.slots] = tau
            else:
                self.counts["feedforward_faults"] += 1  # dropped: PD alone is still safe
        self._set_weight(frame, now)
        grips = {side: float(targets[g1.GRIP_NAMES[side]]) for side in g1.SIDES if g1.GRIP_NAMES[side] in targets}
        self._last_grips.update(grips)
        frame.grips = dict(self._last_grips)
        return frame

    def shutdown_frame(self, now_ns: int) -> MotorFrame | None:
        """Damping for the node's last words (None when nothing was ever sent, or the robot is refused)."""
        if self.state in (State.NO_STATE, State.REFUSED) or not self._started:
            return None
        return self._damping(int(now_ns), "shutdown", force=True)

    # -- helpers ----------------------------------------------------------------------------------------
    def _desired(self, targets: dict[str, float]) -> np.ndarray | None:
        desired = self._hold.copy() if self._hold is not None else self._measured.copy()
        for name, index in self.arm_index.items():
            if name in targets:
                desired[index] = float(targets[name])
        grips = [targets[g] for g in g1.GRIP_NAMES.values() if g in targets]
        if not (np.all(np.isfinite(desired)) and np.all(np.isfinite(grips))):
            self.counts["faults"] += 1
            return None
        return desired

    def _begin_ramp(self, now: int) -> None:
        self._ramp_from = np.clip(self._measured, self.lower, self.upper)
        self._hold = self._ramp_from.copy()  # joints the policy does not drive hold where the ramp found them
        self._ramp_start_ns = now
        self._last_q, self._last_ns = self._ramp_from, None
        if self._blend_start_ns is None:
            self._blend_start_ns = now
        self.counts["ramps"] += 1

    def _set_weight(self, frame: MotorFrame, now: int) -> None:
        if self.config.mode != "arm_sdk":
            return
        elapsed = (now - (self._blend_start_ns if self._blend_start_ns is not None else now)) / 1e9
        weight = 1.0 if self.config.blend_time == 0 else min(1.0, elapsed / self.config.blend_time)
        frame.q[ARM_SDK_WEIGHT_SLOT] = weight

    def _idle(self) -> None:
        self.state = State.IDLE
        return None

    def _damping(self, now: int, reason: str, force: bool = False) -> MotorFrame | None:
        if not self._started and not force:
            # Never sent anything: stay silent rather than start the robot's motors in damping.
            self.state = State.IDLE
            self.last_damping_reason = reason
            return None
        if self.state is not State.DAMP:
            self.counts["damping_spells"] += 1
            self.counts["damping_" + reason.split(":")[0].split(" ")[0]] += 1
        self.state = State.DAMP
        self.last_damping_reason = reason
        self.counts["damping_frames"] += 1
        frame = self._empty(State.DAMP)
        frame.mode[self.slots] = 1
        frame.q[self.slots] = self._measured if self._measured is not None else 0.0
        frame.kd[self.slots] = self.config.damping_kd
        if self.config.mode == "arm_sdk":
            frame.q[ARM_SDK_WEIGHT_SLOT] = 1.0  # keep the damping in force on the arms
        frame.grips = dict(self._last_grips)  # an Inspire keeps its grip
        self._last_ns = None  # the next tracking frame ramps again from where damping left the arms
        return frame

    def _empty(self, state: State) -> MotorFrame:
        zeros = np.zeros(NUM_MOTORS, dtype=np.float32)
        return MotorFrame(self.topic, self.config.mode_pr, self.mode_machine or 0, np.zeros(NUM_MOTORS, np.uint8),
                          zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), state,
                          hand_model=self.hands)

    def stats(self) -> dict:
        return {"lowlevel_state": self.state.value, "mode_machine": self.mode_machine, "refusal": self.refusal,
                "last_damping_reason": self.last_damping_reason, **dict(self.counts)}
