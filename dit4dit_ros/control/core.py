"""ControllerCore: every decision of the controller bridge, one `step` per control tick, in plain Python.

In: action chunks, measured joint positions, enable / e-stop switches. Out: one Command per tick that is finite,
inside the joint limits and rate-limited from the previous one. The ROS node only converts messages.

Modes:
  DISABLED  require_enable and not enabled (or disabled): send nothing.
  WAITING   enabled, but no accepted chunk or no measured pose yet: hold the pose measured at the first tick.
  RUNNING   tracking the merged target through the safety filter.
  HOLD      no chunk received within watchdog_timeout_s, or the chunks' horizon ran out: hold the last command.
  DAMP      in HOLD for longer than damp_after_s: damping on; positions follow the measured pose (the sim has no
            torque mode, so there damping is 'command where the arm is'). A fresh chunk resumes RUNNING from there.
  ESTOP     latched by estop(True): like DAMP and published even so, until estop(False) and, with require_enable,
            a new enable(True).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

import numpy as np

from dit4dit_ros.control.chunks import ActionChunk, ChunkError, ChunkMerger
from dit4dit_ros.control.safety import JointLimits, SafetyFilter, SafetyReport


class Mode(Enum):
    DISABLED = "disabled"
    WAITING = "waiting"
    RUNNING = "running"
    HOLD = "hold"
    DAMP = "damp"
    ESTOP = "estop"


@dataclass
class Command:
    mode: Mode
    positions: np.ndarray | None  # (J,) in `names` order; None = send nothing
    damping: bool  # the robot side should damp (kp = 0); positions then only mirror the measured pose
    publish: bool  # False in dry-run and in DISABLED
    report: SafetyReport | None = None  # the safety filter's, in RUNNING


class ControllerCore:
    """Merger + safety filter + watchdog + e-stop + enable + dry-run. Not thread-safe: call it from one thread
    (or under one lock). Times are the caller's clock in ns; chunk stamps must be on the same clock."""

    def __init__(self, names, period_s: float, limits: JointLimits, merge_mode: str = "splice",
                 watchdog_timeout_s: float = 0.5, damp_after_s: float = 2.0, dry_run: bool = False,
                 require_enable: bool = True, range_tolerance: float = 0.05, ensemble_decay: float = 0.01):
        if watchdog_timeout_s <= 0 or damp_after_s < 0 or range_tolerance < 0:
            raise ValueError("watchdog_timeout_s must be > 0, damp_after_s and range_tolerance >= 0")
        self.names = tuple(names)
        self.limits = limits.select(self.names)
        self.safety = SafetyFilter(self.limits, period_s)
        self.merger = ChunkMerger(self.names, merge_mode, ensemble_decay)
        self.watchdog_ns = int(watchdog_timeout_s * 1e9)
        self.damp_after_ns = int(damp_after_s * 1e9)
        self.dry_run, self.require_enable, self.range_tolerance = dry_run, require_enable, range_tolerance
        self._enabled = not require_enable
        self._estopped = False
        self._estop_ns: int | None = None
        self._mode = Mode.WAITING if self._enabled else Mode.DISABLED
        self._measured: np.ndarray | None = None
        self._clock_ns: int | None = None  # the last step's time, to notice a clock that jumps back (sim reset)
        self._counts = Counter()
        self._reasons = Counter()
        self._restart()

    @property
    def mode(self) -> Mode:
        return self._mode

    def _restart(self) -> None:
        """Forget chunks and commands: the next command starts again from the measured pose."""
        self.merger.clear()
        self._last_cmd: np.ndarray | None = None
        self._last_chunk_ns: int | None = None  # arrival time of the last accepted chunk
        self._hold_since: int | None = None
        self._tripped = False  # the watchdog already counted this outage

    def _start_pose(self) -> np.ndarray | None:
        """Where the next command starts from: the last command, else the measured pose (inside the limits)."""
        if self._last_cmd is not None:
            return self._last_cmd
        return None if self._measured is None else self.limits.clip(self._measured)

    def enable(self, on: bool) -> tuple[bool, str]:
        if not on:
            self._enabled = False
            self._restart()
            if not self._estopped:
                self._mode = Mode.DISABLED
            return True, "disabled"
        if self._estopped:
            return False, "refused: the e-stop is latched; release it first"
        if self._enabled:
            return True, "already enabled"
        self._enabled = True
        self._restart()
        # Hold the pose measured AFTER enabling: while disabled the robot may have been moved (a simulation
        # reset teleports the arms), and holding the pose measured before would drive it straight back there.
        self._measured = None
        self._mode = Mode.WAITING
        return True, "enabled"

    def estop(self, on: bool, now_ns: int) -> tuple[bool, str]:
        """Latch (on) or release the e-stop. Release leaves DISABLED when require_enable, else WAITING."""
        if on:
            if not self._estopped:
                self._counts["estops"] += 1
                self._estop_ns = int(now_ns)
            self._estopped, self._enabled, self._mode = True, False, Mode.ESTOP
            self.merger.clear()
            self._last_chunk_ns = None  # chunks from before the e-stop are never resumed
            return True, "e-stop latched"
        if not self._estopped:
            return True, "e-stop was not latched"
        self._estopped, self._estop_ns = False, None
        self._enabled = not self.require_enable
        self._restart()
        self._mode = Mode.WAITING if self._enabled else Mode.DISABLED
        return True, "e-stop released" + ("; enable to run" if self.require_enable else "")

    def add_chunk(self, chunk: ActionChunk, now_ns: int) -> str | None:
        """Offer a chunk received at now_ns; returns why it was rejected, or None when accepted."""
        self._counts["chunks_received"] += 1
        reason = self._accept(chunk, int(now_ns))
        if reason is not None:
            self._counts["chunks_rejected"] += 1
            self._reasons[reason.split(":", 1)[0]] += 1
        return reason

    def _accept(self, chunk: ActionChunk, now: int) -> str | None:
        if self._estopped:
            return "estop: chunks are ignored while the e-stop is latched"
        if not self._enabled:
            return "disabled: chunks are ignored until enabled"
        # A chunk built without ActionChunk.create skipped its checks: redo the ones that protect the robot.
        times = np.asarray(chunk.times_ns)
        if (times.ndim != 1 or len(times) < 1 or np.shape(chunk.positions) != (len(times), len(chunk.names))
                or np.any(np.diff(times) <= 0)):
            return "malformed: times must increase and positions be (H, J)"
        try:
            chunk = chunk.reorder(self.names)
        except ChunkError as exc:
            return f"names: {exc}"
        positions = np.asarray(chunk.positions, dtype=np.float64)
        if not np.all(np.isfinite(positions)):
            return f"non_finite: {[n for n, ok in zip(self.names, np.isfinite(positions).all(0)) if not ok]}"
        # Out of range by more than the tolerance means a broken policy or a units/order mix-up: refuse the
        # whole chunk rather than clip it into a plausible-looking but wrong motion.
        outside = self.limits.outside(positions, self.range_tolerance)
        if outside:
            return f"out_of_range: {outside} beyond the limits by more than {self.range_tolerance}"
        if chunk.stamp_ns > now + self.watchdog_ns:
            return f"future_stamp: stamp {(chunk.stamp_ns - now) / 1e9:.3f} s ahead (a different clock?)"
        reason = self.merger.add(chunk, now, current=self._start_pose())
        if reason is None:
            self._last_chunk_ns, self._tripped = now, False
        return reason

    def update_measured(self, positions, now_ns: int) -> bool:
        """The measured pose in `names` order (grips: the measured/estimated grip scalar); NaN/Inf is ignored."""
        p = np.asarray(positions, dtype=np.float64)
        if p.shape != (len(self.names),):
            raise ValueError(f"measured positions must have shape ({len(self.names)},), got {p.shape}")
        if not np.all(np.isfinite(p)):
            self._counts["measured_rejected"] += 1
            return False
        self._measured = p.copy()
        return True

    def step(self, now_ns: int) -> Command:
        """The command for the control tick at now_ns."""
        now = int(now_ns)
        if self._clock_ns is not None and now < self._clock_ns - self.watchdog_ns:
            # The clock went back (a sim reset): chunks, commands and the measured pose belong to another run.
            self._counts["clock_resets"] += 1
            self._restart()
            self._measured = None
        self._clock_ns = now
        if self._estopped:
            return self._damped(Mode.ESTOP)
        if not self._enabled:
            return self._emit(Mode.DISABLED, None)
        if self._last_chunk_ns is None or self._start_pose() is None:
            self._last_cmd = self._start_pose()  # captured once, then held: following it would let the arm sag
            return self._emit(Mode.WAITING, self._last_cmd)
        fresh = now - self._last_chunk_ns <= self.watchdog_ns
        target = self.merger.target(now) if fresh else None
        if target is not None:
            command, report = self.safety.apply(target, self._start_pose())
            if not report.rejected:
                self._hold_since, self._last_cmd = None, command
                self._counts["clipped_rate"] += bool(report.clipped_rate)
                return self._emit(Mode.RUNNING, command, report=report)
        if not fresh and not self._tripped:
            self._counts["watchdog_trips"] += 1
            self._tripped = True
        self._hold_since = now if self._hold_since is None else self._hold_since
        if now - self._hold_since > self.damp_after_ns:
            return self._damped(Mode.DAMP)
        self._last_cmd = self._start_pose()
        return self._emit(Mode.HOLD, self._last_cmd)

    def _damped(self, mode: Mode) -> Command:
        if self._measured is not None:
            self._last_cmd = self.limits.clip(self._measured)  # a later RUNNING starts where the arm is
        return self._emit(mode, self._last_cmd, damping=True)

    def _emit(self, mode: Mode, positions: np.ndarray | None, damping: bool = False,
              report: SafetyReport | None = None) -> Command:
        self._mode = mode
        if positions is not None:
            self._counts["commands"] += 1
            positions = positions.copy()
        publish = not self.dry_run and mode is not Mode.DISABLED and (positions is not None or damping)
        return Command(mode, positions, damping, publish, report)

    def stats(self) -> dict:
        return {"mode": self._mode.name, "chunks_received": self._counts["chunks_received"],
                "chunks_rejected": self._counts["chunks_rejected"], "rejected_reasons": dict(self._reasons),
                "stale_dropped": self.merger.points_dropped, "stale_chunks": self.merger.rejected_stale,
                "commands": self._counts["commands"], "clipped_rate": self._counts["clipped_rate"],
                "watchdog_trips": self._counts["watchdog_trips"], "estops": self._counts["estops"],
                "estop_since_ns": self._estop_ns, "measured_rejected": self._counts["measured_rejected"],
                "clock_resets": self._counts["clock_resets"]}
