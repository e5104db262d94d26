"""Small, thread-safe measurements every node reports on /diagnostics: event rates and latency percentiles
over a sliding window. Plain Python (the benchmark and the tests read the same numbers)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds of a clock (wall by default)."""

    def __init__(self, window_s: float = 5.0, clock=time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            while self._times and self._times[0] < now - self.window_s:
                self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        with self._lock:
            recent = [t for t in self._times if t >= now - self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class LatencyStats:
    """Percentiles of the last ``size`` samples (seconds)."""

    def __init__(self, size: int = 500):
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(float(seconds))

    def percentiles(self, *qs: float) -> list[float]:
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.percentile(samples, qs)]

    def summary(self, prefix: str) -> dict[str, str]:
        p50, p99 = self.percentiles(50, 99)
        return {f"{prefix}_p50_ms": f"{p50 * 1e3:.2f}", f"{prefix}_p99_ms": f"{p99 * 1e3:.2f}"}
