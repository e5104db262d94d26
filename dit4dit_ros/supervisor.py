"""Run a graph of processes the way ``ros2 launch`` would, for machines without it: start them, forward their
output with a ``[name] `` prefix, end the whole graph when any one exits, and stop every child on request
(SIGINT, then SIGTERM, then SIGKILL). Plain Python, no ROS import.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence, TextIO

# Exit statuses that count as "stopped cleanly" after our SIGINT: a normal exit, death by the SIGINT itself
# (a Python program that lets KeyboardInterrupt escape re-raises the signal), or the shell's 128 + SIGINT.
_CLEAN_CODES = frozenset((0, -signal.SIGINT, 128 + signal.SIGINT))
_POLL_S = 0.02


@dataclass
class ProcessSpec:
    """One child process: a display name, its command line and extra environment variables.

    ``env`` is ADDED to the supervisor's own environment (a ROS node needs the sourced ROS variables), it does
    not replace it.
    """

    name: str
    argv: list[str]
    env: dict[str, str] | None = None


class _Child:
    def __init__(self, spec: ProcessSpec, proc: subprocess.Popen):
        self.spec = spec
        self.proc = proc
        self.done = threading.Event()  # set by the waiter thread once proc.returncode is known
        self.escalated = False  # needed SIGTERM or SIGKILL to stop
        self.reader: threading.Thread | None = None
        self.waiter: threading.Thread | None = None


def _exit_status(code: int) -> int:
    """A non-zero process exit status for a graph ended by a child that exited with ``code``."""
    if code < 0:
        return 128 - code  # killed by a signal: the shell's convention, e.g. 137 for SIGKILL
    return code if code > 0 else 1


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"code {code}"


class Supervisor:
    """Start processes, forward their output, and keep them alive or dead TOGETHER.

    Lifetime rule (launch's ``on_exit=Shutdown`` for every node): any child exiting, with any code, ends the
    whole graph. ``wait()`` then stops the others and returns that child's exit status if non-zero, 128 + N if
    signal N killed it, or 1 if it exited with 0 (a node of a long-running graph is never meant to finish).
    After ``stop()`` (e.g. from SIGINT/SIGTERM) ``wait()`` returns 0 when every child stopped cleanly on
    SIGINT and 1 when one had to be escalated to SIGTERM/SIGKILL or exited with an error.

    Each child runs in its own session (``start_new_session=True``), so a Ctrl-C at the terminal reaches only
    the supervisor, which then stops the children in order, signalling each child's whole process group (so
    what a child started, e.g. ``ros2 run``'s node process, is stopped with it).
    """

    def __init__(self, specs: Sequence[ProcessSpec], *, stop_timeout: float = 10.0, kill_timeout: float = 2.0,
                 log: Callable[[str], object] | None = None, output: TextIO | None = None):
        specs = list(specs)
        if not specs:
            raise ValueError("Supervisor needs at least one ProcessSpec")
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique, got {names}")
        for spec in specs:
            if not spec.argv or not all(isinstance(arg, str) for arg in spec.argv):
                raise ValueError(f"process {spec.name!r}: argv must be a non-empty list of strings, got {spec.argv!r}")
        if stop_timeout < 0 or kill_timeout < 0:
            raise ValueError("stop_timeout and kill_timeout must be >= 0")
        self.specs = specs
        self.stop_timeout = float(stop_timeout)
        self.kill_timeout = float(kill_timeout)
        self._log_fn = log
        self._output = output  # None: sys.stdout, looked up at each write (so redirections made later apply)

        self._lock = threading.Lock()  # _children, _trigger, _started
        self._out_lock = threading.RLock()  # one whole line at a time on the output
        self._children: list[_Child] = []
        self._started = False
        self._trigger: tuple | None = None  # ("stop",) or ("exit", name, code): what ends the graph
        self._wake = threading.Event()  # set once _trigger is
        self._hurry = threading.Event()  # a repeated signal: cut the current grace period short
        self._stop_lock = threading.Lock()  # held by the one thread that runs the shutdown
        self._stopper: int | None = None
        self._stopped = threading.Event()  # the shutdown has completed
        self._signals_seen = 0
        self._old_handlers: dict[int, object] = {}

    # ----------------------------------------------------------------------------------------------- output
    def _emit(self, line: str) -> None:
        with self._out_lock:
            out = self._output if self._output is not None else sys.stdout
            try:
                out.write(line + "\n")
                out.flush()
            except (OSError, ValueError):
                pass  # our stdout is gone (closed pipe): keep draining the children so they never block

    def _log(self, message: str) -> None:
        if self._log_fn is not None:
            self._log_fn(message)
        else:
            self._emit(f"[supervisor] {message}")

    # ------------------------------------------------------------------------------------------ introspection
    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the children started so far, by name."""
        with self._lock:
            return {child.spec.name: child.proc.pid for child in self._children}

    @property
    def returncodes(self) -> dict[str, int | None]:
        """Exit codes of the children started so far (None while running), by name."""
        with self._lock:
            return {child.spec.name: child.proc.returncode if child.done.is_set() else None
                    for child in self._children}

    # ------------------------------------------------------------------------------------------------ start
    def start(self) -> None:
        """Start every process. Raises RuntimeError (after stopping those already started) if one cannot start."""
        with self._lock:
            if self._started:
                raise RuntimeError("Supervisor.start() may be called only once")
            self._started = True
        atexit.register(self._at_exit)
        base_env = dict(os.environ)
        # Python children block-buffer a piped stdout: their lines would arrive late and out of order.
        base_env.setdefault("PYTHONUNBUFFERED", "1")
        for spec in self.specs:
            env = {**base_env, **(spec.env or {})}
            # Spawn and register under the lock, and not at all once a stop was requested: stop() snapshots
            # the children under the same lock after setting _trigger, so no child can slip past it.
            with self._lock:
                if self._trigger is not None:
                    return
                try:
                    proc = subprocess.Popen(spec.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                except OSError as exc:
                    error = exc
                else:
                    error = None
                    child = _Child(spec, proc)
                    self._children.append(child)
            if error is not None:
                self._log(f"cannot start {spec.name}: {error}")
                self.stop()
                raise RuntimeError(f"cannot start process {spec.name!r} ({shlex.join(spec.argv)}): {error}"
                                   ) from error
            self._log(f"started {spec.name} [pid {proc.pid}]: {shlex.join(spec.argv)}")
            child.reader = threading.Thread(target=self._forward, args=(child,), daemon=True,
                                            name=f"supervisor-out-{spec.name}")
            child.waiter = threading.Thread(target=self._watch, args=(child,), daemon=True,
                                            name=f"supervisor-wait-{spec.name}")
            child.reader.start()
            child.waiter.start()

    def _forward(self, child: _Child) -> None:
        prefix = f"[{child.spec.name}] "
        stream = child.proc.stdout
        # Bytes, decoded per line with replacement: a child printing invalid UTF-8 must not kill its reader.
        for raw in iter(stream.readline, b""):
            self._emit(prefix + raw.decode("utf-8", "replace").rstrip("\r\n"))
        stream.close()

    def _watch(self, child: _Child) -> None:
        code = child.proc.wait()
        child.done.set()
        with self._lock:
            if self._trigger is None:
                self._trigger = ("exit", child.spec.name, code)
        self._log(f"{child.spec.name} [pid {child.proc.pid}] exited with {_describe(code)}")
        self._wake.set()

    # ------------------------------------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop every child: SIGINT to each process group, SIGTERM after stop_timeout, SIGKILL after
        kill_timeout more. Blocks until done; thread-safe and idempotent (a concurrent call waits for the
        shutdown in progress, a later one returns at once)."""
        with self._lock:
            if self._trigger is None:
                self._trigger = ("stop",)
        self._wake.set()
        if self._stopped.is_set():
            return
        if not self._stop_lock.acquire(blocking=False):
            if self._stopper == threading.get_ident():
                return  # re-entered from a signal handler while this very thread runs the shutdown
            self._stopped.wait()
            return
        self._stopper = threading.get_ident()
        completed = False
        try:
            self._shutdown()
            completed = True
        finally:
            if completed:
                self._stopped.set()
                atexit.unregister(self._at_exit)
            else:  # interrupted (e.g. KeyboardInterrupt): let a later stop() or the atexit hook finish the job
                self._stopper = None
                self._stop_lock.release()

    def _shutdown(self) -> None:
        with self._lock:
            children = list(self._children)
        stages = ((signal.SIGINT, self.stop_timeout), (signal.SIGTERM, self.kill_timeout),
                  (signal.SIGKILL, self.kill_timeout))
        previous = None
        for sig, timeout in stages:
            running = [child for child in children if not child.done.is_set()]
            if not running:
                break
            names = ", ".join(child.spec.name for child in running)
            if previous is None:
                self._log(f"stopping {names} (SIGINT)")
            else:
                self._log(f"{names} still running after {previous.name}: sending {sig.name}")
                for child in running:
                    child.escalated = True
            for child in running:
                self._signal_group(child, sig)
            self._wait_done(running, timeout)
            previous = sig
        else:
            running = [child for child in children if not child.done.is_set()]
            if running:
                self._log(f"{', '.join(child.spec.name for child in running)} survived SIGKILL; giving up on it")
        # Whatever a child started and left behind in its process group goes too: nothing outlives the graph.
        for child in children:
            self._signal_group(child, signal.SIGKILL, quiet=True)
        for child in children:
            if child.reader is not None:
                child.reader.join(timeout=1.0)  # its last lines are on the output before stop() returns

    def _wait_done(self, children: list[_Child], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(child.done.is_set() for child in children):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._hurry.wait(min(_POLL_S, remaining)):
                self._hurry.clear()
                return

    def _signal_group(self, child: _Child, sig: int, quiet: bool = False) -> None:
        try:
            os.killpg(child.proc.pid, sig)  # pgid == pid: the child leads its own session and group
        except ProcessLookupError:
            pass  # the group is gone already
        except OSError as exc:
            # e.g. EPERM on macOS for a group whose leader is a zombie: fall back to the child itself.
            if not child.done.is_set():
                try:
                    child.proc.send_signal(sig)
                except OSError:
                    pass
            elif not quiet:
                self._log(f"cannot signal {child.spec.name}'s process group: {exc}")

    def _at_exit(self) -> None:
        if self._started and not self._stopped.is_set():
            self._log("interpreter exiting with processes still running: stopping them")
            self.stop()

    # ------------------------------------------------------------------------------------------------- wait
    def wait(self) -> int:
        """Block until the graph ends (a child exited, or stop() was called) and every child is stopped;
        returns the graph's exit status (see the class docstring)."""
        with self._lock:
            if not self._started:
                raise RuntimeError("Supervisor.wait() called before start()")
        try:
            while True:
                with self._lock:
                    trigger = self._trigger
                if trigger is not None:
                    break
                # Every wake-up is a _trigger change; the timeout only keeps the loop responsive to signals.
                self._wake.wait(1.0)
        except KeyboardInterrupt:  # no handlers installed: Ctrl-C still takes the children down with us
            self.stop()
            raise
        if trigger[0] == "exit":
            _, name, code = trigger
            self._log(f"{name} exited with {_describe(code)}: stopping the whole graph")
        self.stop()
        if trigger[0] == "exit":
            return _exit_status(trigger[2])
        with self._lock:
            children = list(self._children)
        clean = all(not child.escalated and child.proc.returncode in _CLEAN_CODES for child in children)
        return 0 if clean else 1

    # ---------------------------------------------------------------------------------------------- signals
    def install_signal_handlers(self) -> None:
        """Make SIGINT and SIGTERM of this process stop the graph (main thread only). A repeated signal cuts
        the current grace period short (SIGINT -> SIGTERM -> SIGKILL at once), like a second Ctrl-C of launch."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signal_handlers(self) -> None:
        """Put back the handlers that install_signal_handlers() replaced."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame) -> None:
        # Runs in the main thread, possibly inside start() or wait(): only hand the work to a thread, so the
        # handler never blocks and never takes a lock the interrupted code may hold.
        self._signals_seen += 1
        if self._signals_seen == 1:
            threading.Thread(target=self._stop_on_signal, args=(signum,), daemon=True, name="supervisor-stop").start()
        else:
            self._hurry.set()

    def _stop_on_signal(self, signum: int) -> None:
        self._log(f"received {signal.Signals(signum).name}: stopping all processes (send it again to hurry)")
        self.stop()

    def run(self) -> int:
        """install_signal_handlers() + start() + wait(); returns the graph's exit status. The handlers come
        first so that a Ctrl-C during start() already stops what was started; they are restored at the end."""
        self.install_signal_handlers()
        try:
            self.start()
            return self.wait()
        finally:
            self.restore_signal_handlers()
