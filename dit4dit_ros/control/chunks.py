"""Action chunks on absolute time, and the merger that turns a stream of them into one target per control tick.

A chunk is H future joint targets, each at an absolute time (the observation stamp + k * step period). The policy
sends a few per second; the merger decides which chunk(s) are live and interpolates them at the control rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MERGE_MODES = ("latest", "ensemble", "splice")


class ChunkError(ValueError):
    """A chunk that cannot be played: wrong shape or names, non-increasing times, non-finite values."""


def _readonly(values, dtype) -> np.ndarray:
    out = np.array(values, dtype=dtype)  # a copy: a chunk is shared between merger and caller, nobody may edit it
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class ActionChunk:
    """H joint targets (columns in `names` order) at absolute times. Build it with `create`, which validates."""

    names: tuple[str, ...]
    times_ns: np.ndarray  # (H,) int64, absolute, strictly increasing
    positions: np.ndarray  # (H, J) float64, physical units (rad; grips 0..1)
    stamp_ns: int  # the stamp of the observation the chunk was predicted from

    @classmethod
    def create(cls, names, stamp_ns: int, offsets_s, positions) -> ActionChunk:
        names = tuple(names)
        try:
            offsets = np.asarray(offsets_s, dtype=np.float64)
            pos = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ChunkError(f"offsets/positions are not numeric arrays: {exc}") from exc
        if pos.ndim != 2 or pos.shape[0] < 1:
            raise ChunkError(f"positions must be (H >= 1, J), got shape {pos.shape}")
        if pos.shape[1] != len(names):
            raise ChunkError(f"positions have {pos.shape[1]} columns for {len(names)} names")
        if len(set(names)) != len(names):
            raise ChunkError(f"duplicate names: {sorted({n for n in names if names.count(n) > 1})}")
        if offsets.shape != (pos.shape[0],):
            raise ChunkError(f"offsets must be ({pos.shape[0]},), got shape {offsets.shape}")
        if not np.all(np.isfinite(offsets)) or offsets[0] < 0 or np.any(np.diff(offsets) <= 0):
            raise ChunkError(f"offsets must be finite, >= 0 and strictly increasing: {offsets.tolist()}")
        bad = np.argwhere(~np.isfinite(pos))
        if len(bad):
            step, joint = bad[0]
            raise ChunkError(f"non-finite position {pos[step, joint]} for {names[joint]} at step {step} "
                             f"({len(bad)} non-finite values in all)")
        times = int(stamp_ns) + np.round(offsets * 1e9).astype(np.int64)
        if np.any(np.diff(times) <= 0):
            raise ChunkError("offsets closer than 1 ns")
        return cls(names, _readonly(times, np.int64), _readonly(pos, np.float64), int(stamp_ns))

    def reorder(self, names, allow_extra: bool = False) -> ActionChunk:
        """The same chunk with its columns in `names` order (by name: never trust two orders to agree)."""
        names = tuple(names)
        if len(set(names)) != len(names):
            raise ChunkError(f"duplicate names requested: {names}")
        index = {name: i for i, name in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ChunkError(f"chunk lacks {missing}")
        extra = [n for n in self.names if n not in set(names)]
        if extra and not allow_extra:
            raise ChunkError(f"chunk has names that are not commanded: {extra}")
        if names == self.names:
            return self
        columns = [index[n] for n in names]
        positions = _readonly(np.asarray(self.positions)[:, columns], np.float64)
        return ActionChunk(names, self.times_ns, positions, self.stamp_ns)


def _interp(times: np.ndarray, positions: np.ndarray, t: int) -> np.ndarray | None:
    """Linear interpolation of one track at t; None outside [times[0], times[-1]]. Always a new array."""
    if t < times[0] or t > times[-1]:
        return None
    k = int(np.searchsorted(times, t, side="right")) - 1  # times[k] <= t < times[k + 1]
    if k == len(times) - 1:
        return positions[k].copy()
    alpha = (t - int(times[k])) / (int(times[k + 1]) - int(times[k]))
    return positions[k] + alpha * (positions[k + 1] - positions[k])


class ChunkMerger:
    """Turns the chunk stream into one target per tick. Modes:

    latest    the newest chunk replaces the others and is played from its FIRST point starting when it is received
              (its times shifted by now - times[0]): the naive baseline that ignores latency (and stamps entirely:
              no stale or out-of-order rejection).
    splice    the newest chunk replaces the others on its absolute times; its points in the past are dropped
              (counted in points_dropped) and the target goes linearly from what was commanded at add time to
              its first future point, so there is no jump. With nothing commanded yet, the chunk plays as stamped.
    ensemble  ACT temporal ensembling on absolute times: at t every stored chunk that covers t contributes its
              interpolated value with weight exp(-ensemble_decay * i), i = 0 for the OLDEST covering chunk (ACT's
              convention: older predictions weigh more, which smooths; with the default 0.01 the weights are
              nearly equal). A new chunk can shift the mean at once: the safety filter's rate limit absorbs that.

    splice and ensemble reject a chunk whose last point is already past (rejected_stale) or whose stamp is older
    than an accepted one's (rejected_out_of_order). Not thread-safe: call it from one thread.
    """

    def __init__(self, names, mode: str = "splice", ensemble_decay: float = 0.01, max_chunks: int = 10):
        if mode not in MERGE_MODES:
            raise ValueError(f"mode must be one of {MERGE_MODES}, got {mode!r}")
        if ensemble_decay < 0 or max_chunks < 1:
            raise ValueError("ensemble_decay must be >= 0 and max_chunks >= 1")
        self.names = tuple(names)
        self.mode = mode
        self.ensemble_decay = float(ensemble_decay)
        self.max_chunks = int(max_chunks)
        self.received = self.rejected_stale = self.rejected_out_of_order = self.points_dropped = 0
        self.clear()

    def clear(self) -> None:
        """Forget every chunk (the counters stay)."""
        self._tracks: list[tuple[np.ndarray, np.ndarray]] = []  # (times_ns, positions), oldest first
        self._newest_stamp: int | None = None

    @property
    def horizon_end_ns(self) -> int | None:
        """Time of the last usable point, or None when nothing is stored."""
        return max(int(times[-1]) for times, _ in self._tracks) if self._tracks else None

    def add(self, chunk: ActionChunk, now_ns: int, current=None) -> str | None:
        """Store a chunk received at now_ns; returns why it was rejected, or None.

        current: what the caller is commanding now, the start of splice's bridge (default: this merger's own
        target at now_ns). A controller whose commands are rate-limited or held should pass its last command.
        """
        if chunk.names != self.names:
            raise ChunkError(f"chunk names {chunk.names} are not the merger's {self.names}: reorder it first")
        self.received += 1
        now = int(now_ns)
        times, positions = chunk.times_ns, chunk.positions
        if self.mode == "latest":
            self._tracks = [(times + (now - int(times[0])), positions)]
            return None
        if self._newest_stamp is not None and chunk.stamp_ns < self._newest_stamp:
            self.rejected_out_of_order += 1
            return f"out_of_order: stamp {chunk.stamp_ns} is older than an accepted chunk's {self._newest_stamp}"
        if times[-1] < now:
            self.rejected_stale += 1
            return f"stale: its last point is {(now - int(times[-1])) / 1e6:.1f} ms in the past"
        self._newest_stamp = chunk.stamp_ns
        if self.mode == "ensemble":
            self._tracks = [track for track in self._tracks if track[0][-1] >= now] + [(times, positions)]
            del self._tracks[:-self.max_chunks]
            return None
        bridge = self._value(now) if current is None else np.asarray(current, dtype=np.float64)
        if bridge is not None and (bridge.shape != (len(self.names),) or not np.all(np.isfinite(bridge))):
            raise ValueError(f"current must be finite with shape ({len(self.names)},)")
        past = times < now
        self.points_dropped += int(past.sum())
        if bridge is None and past.any():
            bridge = _interp(times, positions, now)  # nothing commanded yet: join the chunk's own trajectory
        kept_times, kept_positions = times[~past], positions[~past]
        if bridge is not None and kept_times[0] > now:
            kept_times = np.concatenate([[now], kept_times])
            kept_positions = np.vstack([bridge, kept_positions])
        self._tracks = [(kept_times, kept_positions)]
        return None

    def target(self, now_ns: int) -> np.ndarray | None:
        """The merged target at now_ns (a new array), or None when no chunk covers it (the caller holds)."""
        now = int(now_ns)
        if self.mode == "ensemble":
            self._tracks = [track for track in self._tracks if track[0][-1] >= now]
        return self._value(now)

    def _value(self, t: int) -> np.ndarray | None:
        values = [v for v in (_interp(times, positions, t) for times, positions in self._tracks) if v is not None]
        if not values:
            return None
        if self.mode != "ensemble":
            return values[-1]
        weights = np.exp(-self.ensemble_decay * np.arange(len(values)))  # i = 0: the oldest covering chunk
        return weights @ np.array(values) / weights.sum()
