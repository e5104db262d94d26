"""Joint limits and the per-command safety filter: what leaves SafetyFilter.apply is finite, inside the position
limits and no further from the previous command than the rate limit allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dit4dit_ros import g1

# A calm tabletop speed (~115 deg/s); grips close fully in half a second.
DEFAULT_MAX_VELOCITY = 2.0  # rad/s (grips: units/s)
# A bound on one command's change that does not depend on the period, so a mis-set period cannot allow a leap.
DEFAULT_MAX_STEP = 0.1  # rad (grips: units)


def _per_joint(value, names: tuple[str, ...], what: str) -> np.ndarray:
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"{what} lacks {missing}")
        return np.array([float(value[n]) for n in names])
    return np.full(len(names), float(value))


def _readonly(values) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class JointLimits:
    """Per-joint position range, velocity limit and largest change of one command, in `names` order."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray  # rad/s (grips: units/s)
    max_step: np.ndarray  # largest change of one command vs the previous one

    def __post_init__(self):
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        for attr in ("lower", "upper", "max_velocity", "max_step"):
            values = _readonly(getattr(self, attr))
            if values.shape != (len(names),) or not np.all(np.isfinite(values)):
                raise ValueError(f"{attr} must be finite with shape ({len(names)},), got {values}")
            object.__setattr__(self, attr, values)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate names in {names}")
        if np.any(self.lower > self.upper):
            raise ValueError(f"empty ranges for {[n for n, e in zip(names, self.lower > self.upper) if e]}")
        if np.any(self.max_velocity <= 0) or np.any(self.max_step <= 0):
            raise ValueError("max_velocity and max_step must be > 0")

    @classmethod
    def for_g1_action(cls, max_velocity=DEFAULT_MAX_VELOCITY, max_step=DEFAULT_MAX_STEP,
                      margin: float = 0.0) -> JointLimits:
        """Limits for g1.ACTION_NAMES: the MJCF arm ranges shrunk by `margin` rad on each side, grips 0..1.

        max_velocity / max_step: one number for every joint, or a mapping name -> number. The margin is in
        radians, so it applies to the arm joints only (the grips are a 0..1 scale with hard ends).
        """
        if margin < 0:
            raise ValueError("margin must be >= 0")
        names = g1.ACTION_NAMES
        ranges = {**g1.ARM_JOINT_RANGES, **{grip: g1.GRIP_RANGE for grip in g1.GRIP_NAMES.values()}}
        shrink = np.array([0.0 if n in g1.GRIP_NAMES.values() else float(margin) for n in names])
        return cls(names, np.array([ranges[n][0] for n in names]) + shrink,
                   np.array([ranges[n][1] for n in names]) - shrink,
                   _per_joint(max_velocity, names, "max_velocity"), _per_joint(max_step, names, "max_step"))

    def with_overrides(self, ranges: Mapping[str, tuple[float, float]]) -> JointLimits:
        """Narrowed limits: each override is intersected with the current range, so it can never widen one."""
        unknown = [n for n in ranges if n not in self.names]
        if unknown:
            raise ValueError(f"overrides for unknown joints {unknown}")
        lower, upper = self.lower.copy(), self.upper.copy()
        for name, (lo, hi) in ranges.items():
            i = self.names.index(name)
            lower[i], upper[i] = max(lower[i], float(lo)), min(upper[i], float(hi))
            if lower[i] > upper[i]:
                raise ValueError(f"override {name}: ({lo}, {hi}) leaves no range inside ({self.lower[i]}, "
                                 f"{self.upper[i]})")
        return JointLimits(self.names, lower, upper, self.max_velocity, self.max_step)

    def select(self, names) -> JointLimits:
        """The limits of `names`, in that order."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"no limits for {missing}")
        idx = [self.names.index(n) for n in names]
        return JointLimits(tuple(names), self.lower[idx], self.upper[idx], self.max_velocity[idx],
                           self.max_step[idx])

    def outside(self, positions, tolerance: float = 0.0) -> list[str]:
        """Names whose value (any row, for a (H, J) array) is non-finite or beyond the range by > tolerance."""
        p = np.asarray(positions, dtype=np.float64).reshape(-1, len(self.names))
        bad = ~np.isfinite(p) | (p < self.lower - tolerance) | (p > self.upper + tolerance)
        return [n for n, b in zip(self.names, bad.any(axis=0)) if b]

    def clip(self, positions) -> np.ndarray:
        return np.clip(np.asarray(positions, dtype=np.float64), self.lower, self.upper)


def is_within(limits: JointLimits, positions, tolerance: float = 0.0) -> bool:
    """True when every value is finite and inside the position limits (widened by tolerance)."""
    return not limits.outside(positions, tolerance)


@dataclass
class SafetyReport:
    rejected: bool = False  # the whole target was refused; the command is the previous one
    reason: str = ""
    clipped_position: list[str] = field(default_factory=list)  # target beyond the position limits
    clipped_rate: list[str] = field(default_factory=list)  # change limited by min(max_velocity * period, max_step)


class SafetyFilter:
    """Clips one target per control period against the limits and the previous command."""

    def __init__(self, limits: JointLimits, period_s: float):
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.limits = limits
        self.period_s = float(period_s)
        self.max_delta = np.minimum(limits.max_velocity * self.period_s, limits.max_step)

    def apply(self, target, previous) -> tuple[np.ndarray, SafetyReport]:
        """(command, report). A previous outside the limits (a measured seed) is first projected onto them, so
        the command is always inside; a target with any NaN/Inf is refused whole (half a target is no target).
        Shapes other than (J,) or a non-finite previous are caller bugs: ValueError."""
        names, n = self.limits.names, len(self.limits.names)
        target = np.asarray(target, dtype=np.float64)
        previous = np.asarray(previous, dtype=np.float64)
        if target.shape != (n,) or previous.shape != (n,):
            raise ValueError(f"target and previous must have shape ({n},), got {target.shape}, {previous.shape}")
        if not np.all(np.isfinite(previous)):
            raise ValueError("previous command must be finite")
        start = self.limits.clip(previous)
        finite = np.isfinite(target)
        if not finite.all():
            bad = [name for name, ok in zip(names, finite) if not ok]
            return start, SafetyReport(rejected=True, reason=f"non-finite target for {bad}")
        clipped = self.limits.clip(target)
        delta = clipped - start
        over = np.abs(delta) > self.max_delta
        # The outer clip only removes float rounding: start and clipped both lie inside the limits.
        command = self.limits.clip(start + np.clip(delta, -self.max_delta, self.max_delta))
        return command, SafetyReport(clipped_position=[name for name, c in zip(names, clipped != target) if c],
                                     clipped_rate=[name for name, o in zip(names, over) if o])
