"""PeriodicThread: call a function every `period` seconds of the monotonic clock, on a thread of its own.

The 500 Hz loops of the real-robot path (the bridge's LowCmd, the fake robot's physics) run here rather than on
an rclpy timer: a MultiThreadedExecutor dispatching a 2 ms timer costs a good part of the period in Python and
shares its threads with every subscription. Deadlines are absolute (no drift); a loop more than `max_lag` behind
starts again from now instead of bursting to catch up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class PeriodicThread:
    def __init__(self, period: float, function: Callable[[], None], name: str, max_lag: float = 0.1,
                 on_error: Callable[[BaseException], None] | None = None):
        if period <= 0:
            raise ValueError("period must be > 0")
        self.period, self.function, self.name, self.max_lag, self.on_error = period, function, name, max_lag, on_error
        self.ticks = self.overruns = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        period_ns = int(self.period * 1e9)
        next_ns = time.monotonic_ns()
        while not self._stop.is_set():
            try:
                self.function()
            except Exception as error:  # noqa: BLE001 - reported, and the loop ends: a broken tick must not repeat
                if self.on_error is not None:
                    self.on_error(error)
                return
            self.ticks += 1
            next_ns += period_ns
            delay = next_ns - time.monotonic_ns()
            if delay > 0:
                self._stop.wait(delay / 1e9)
            else:
                self.overruns += 1
                if -delay > self.max_lag * 1e9:
                    next_ns = time.monotonic_ns()
