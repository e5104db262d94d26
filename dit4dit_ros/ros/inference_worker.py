"""InferenceWorker: runs a node's model calls on a thread of their own, so the executor keeps serving
subscriptions, timers and services while a forward pass runs (and, in the single-process graph, the other
nodes keep running). A timer on the node's clock (sim time under use_sim_time) sets ``trigger``; the worker
runs ``job`` once per trigger, never queueing more than one pending run (a late run is skipped, not stacked)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class InferenceWorker:
    def __init__(self, name: str, job: Callable[[], None], on_error: Callable[[Exception], None]):
        self._job, self._on_error = job, on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.triggers = self.runs = self.skipped = 0
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        self.triggers += 1
        if self._busy or self._wake.is_set():
            self.skipped += 1  # the previous run is still going: this tick is dropped, not queued
            return
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._busy = True
            self._wake.clear()
            try:
                self._job()
                self.runs += 1
            except Exception as error:  # noqa: BLE001 - reported by the node; the worker keeps serving
                self._on_error(error)
            finally:
                self._busy = False

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
