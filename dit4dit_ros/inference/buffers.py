"""The two buffers live inference reads from: the window of recent camera frames (System 2's input) and the
history of joint states (so System 1 can take the state that matches the features' frame time)."""

from __future__ import annotations

import bisect
import threading
from collections import deque

import numpy as np


class FrameWindow:
    """The newest ``size`` frames with their stamps (thread-safe: a subscriber adds, the encoder reads)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"frame window size must be >= 1, got {size}")
        self.size = size
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.added = 0
        self.resets = 0

    def add(self, stamp_ns: int, frame: np.ndarray) -> None:
        with self._lock:
            # Time going backwards means a simulation reset or a bag loop: old frames belong to another episode.
            if self._frames and stamp_ns <= self._frames[-1][0]:
                self._frames.clear()
                self.resets += 1
            self._frames.append((int(stamp_ns), frame))
            self.added += 1

    def snapshot(self) -> tuple[list[int], list[np.ndarray]] | None:
        """(stamps oldest first, frames) once the window is full, else None."""
        with self._lock:
            if len(self._frames) < self.size:
                return None
            return [s for s, _ in self._frames], [f for _, f in self._frames]

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def newest_stamp(self) -> int | None:
        with self._lock:
            return self._frames[-1][0] if self._frames else None

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


class StateHistory:
    """Timestamped state vectors for ``horizon_ns``; ``at(t)`` returns the one nearest to ``t``."""

    def __init__(self, horizon_ns: int = 2_000_000_000):
        self.horizon_ns = horizon_ns
        self._stamps: list[int] = []
        self._states: list[np.ndarray] = []
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, state: np.ndarray) -> None:
        with self._lock:
            if self._stamps and stamp_ns < self._stamps[-1]:  # reset: forget the old timeline
                self._stamps.clear()
                self._states.clear()
            self._stamps.append(int(stamp_ns))
            self._states.append(np.asarray(state, dtype=np.float64))
            cut = bisect.bisect_left(self._stamps, stamp_ns - self.horizon_ns)
            if cut:
                del self._stamps[:cut], self._states[:cut]

    def at(self, stamp_ns: int, tolerance_ns: int) -> tuple[int, np.ndarray] | None:
        """(stamp, state) nearest to ``stamp_ns`` if within ``tolerance_ns``, else None."""
        with self._lock:
            if not self._stamps:
                return None
            i = bisect.bisect_left(self._stamps, stamp_ns)
            candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
            best = min(candidates, key=lambda j: abs(self._stamps[j] - stamp_ns))
            if abs(self._stamps[best] - stamp_ns) > tolerance_ns:
                return None
            return self._stamps[best], self._states[best].copy()

    def latest(self) -> tuple[int, np.ndarray] | None:
        with self._lock:
            return (self._stamps[-1], self._states[-1].copy()) if self._stamps else None
