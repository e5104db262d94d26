"""Tests of dit4dit_ros.supervisor with small child Python programs: output prefixes, the graph's lifetime rule,
the SIGINT -> SIGTERM -> SIGKILL escalation and a parent stopped by SIGINT/SIGTERM leaving no child behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dit4dit_ros.supervisor import ProcessSpec, Supervisor

REPO = Path(__file__).resolve().parents[1]

# A child that announces itself once its SIGINT handler is in place (ready file + line), then sleeps; on
# SIGINT it records the signal in <path>.stopped and exits 0. Without the ready file a test could signal it
# while Python is still starting, before the handler exists.
SLEEPER = textwrap.dedent("""
    import os, pathlib, signal, sys, time
    path = pathlib.Path(sys.argv[1])
    def on_signal(signum, frame):
        path.with_suffix(".stopped").write_text(signal.Signals(signum).name)
        sys.exit(0)
    signal.signal(signal.SIGINT, on_signal)
    path.with_suffix(".ready").write_text(str(os.getpid()))
    print("ready", os.getpid(), flush=True)
    time.sleep(60)
""")

# A child that ignores the signals named in argv[2:] (e.g. SIGINT SIGTERM), then sleeps.
STUBBORN = textwrap.dedent("""
    import os, pathlib, signal, sys, time
    for name in sys.argv[2:]:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    pathlib.Path(sys.argv[1]).with_suffix(".ready").write_text(str(os.getpid()))
    time.sleep(60)
""")

# A child that waits until every file in argv[2:] exists, then exits with code argv[1].
EXIT_WHEN_READY = textwrap.dedent("""
    import os, sys, time
    while not all(os.path.exists(p) for p in sys.argv[2:]):
        time.sleep(0.01)
    sys.exit(int(sys.argv[1]))
""")


class Lines:
    """A thread-safe text stream that keeps whole lines."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buffer = ""

    def write(self, text: str) -> None:
        with self._lock:
            self._buffer += text

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return self._buffer.splitlines()


def _py(code: str, *args) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def _wait_for(paths: list[Path], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"children not ready: {[str(p) for p in paths if not p.exists()]}"
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    """Whether the process no longer runs (a zombie waiting for a reaper we do not control counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _make(specs, **kwargs) -> tuple[Supervisor, Lines, list[str]]:
    out, log = Lines(), []
    return Supervisor(specs, output=out, log=log.append, **kwargs), out, log


# Quiet on SIGINT (exit 0), so the only output is what a test prints.
QUIET = "import signal, sys\nsignal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n"


def test_output_lines_are_prefixed_with_the_child_name():
    talker = QUIET + ("print('hello'); print('to stderr', file=sys.stderr); print('second')\n"
                      "sys.stdout.write('tail'); sys.stdout.flush()\nimport time; time.sleep(60)")
    other = QUIET + "import os, time; print(os.environ['EXTRA'], os.environ['PATH'] != ''); time.sleep(60)"
    sup, out, log = _make([ProcessSpec("talker", _py(talker)), ProcessSpec("other", _py(other), env={"EXTRA": "x y"})])
    sup.start()
    deadline = time.monotonic() + 10
    while len(out.lines) < 4 and time.monotonic() < deadline:  # 'tail' has no newline: it comes at EOF
        time.sleep(0.01)
    assert "[talker] tail" not in out.lines
    sup.stop()
    assert sup.wait() == 0
    lines = out.lines
    # Per child, lines keep their order (stderr is merged into stdout); an unterminated last line is flushed.
    talker_lines = [line for line in lines if line.startswith("[talker] ")]
    assert talker_lines == ["[talker] hello", "[talker] to stderr", "[talker] second", "[talker] tail"]
    assert [line for line in lines if line.startswith("[other] ")] == ["[other] x y True"]  # env is added to ours
    assert len(lines) == 5
    assert sup.returncodes == {"talker": 0, "other": 0}
    assert any(message.startswith("started talker [pid ") for message in log)


def test_a_child_exiting_with_0_still_ends_the_graph_with_status_1(tmp_path):
    sup, _, log = _make([ProcessSpec("sleeper", _py(SLEEPER, tmp_path / "s")),
                         ProcessSpec("done", _py(EXIT_WHEN_READY, 0, tmp_path / "s.ready"))])
    sup.start()
    assert sup.wait() == 1
    assert (tmp_path / "s.stopped").read_text() == "SIGINT"
    assert any("done exited with code 0: stopping the whole graph" in message for message in log)


def test_default_log_and_output_go_to_stdout(capfd):
    sup = Supervisor([ProcessSpec("echo", _py("print('hi')"))])
    sup.start()
    assert sup.wait() == 1
    lines = capfd.readouterr().out.splitlines()
    assert "[echo] hi" in lines
    assert any(line.startswith("[supervisor] echo exited with code 0") for line in lines)


def test_a_child_exiting_ends_the_graph_and_the_others_get_sigint(tmp_path):
    sleeper = tmp_path / "sleeper"
    sup, out, log = _make([ProcessSpec("sleeper", _py(SLEEPER, sleeper)),
                           ProcessSpec("crash", _py(EXIT_WHEN_READY, 3, sleeper.with_suffix(".ready")))])
    start = time.monotonic()
    sup.start()
    assert sup.wait() == 3
    assert time.monotonic() - start < 3.0
    assert sleeper.with_suffix(".stopped").read_text() == "SIGINT"
    assert sup.returncodes == {"sleeper": 0, "crash": 3}
    assert any("crash exited with code 3" in message and "stopping" in message for message in log)
    assert f"[sleeper] ready {sup.pids['sleeper']}" in out.lines


def test_a_child_killed_by_a_signal_ends_the_graph_with_128_plus_the_signal(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sup, _, _ = _make([ProcessSpec("a", _py(SLEEPER, a)), ProcessSpec("b", _py(SLEEPER, b))])
    sup.start()
    _wait_for([a.with_suffix(".ready"), b.with_suffix(".ready")])
    os.kill(sup.pids["b"], signal.SIGKILL)
    assert sup.wait() == 128 + signal.SIGKILL
    assert a.with_suffix(".stopped").read_text() == "SIGINT"


def test_stop_ends_every_child_cleanly_and_is_idempotent(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    plain = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('x'); time.sleep(60)"
    sup, out, log = _make([ProcessSpec("a", _py(SLEEPER, a)), ProcessSpec("b", _py(SLEEPER, b)),
                           ProcessSpec("plain", _py(plain, tmp_path / "plain.ready"))])
    sup.start()
    _wait_for([a.with_suffix(".ready"), b.with_suffix(".ready"), tmp_path / "plain.ready"])
    # Two threads stop at once; both return only when every child is gone.
    stoppers = [threading.Thread(target=sup.stop) for _ in range(2)]
    start = time.monotonic()
    for thread in stoppers:
        thread.start()
    assert sup.wait() == 0
    for thread in stoppers:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert time.monotonic() - start < 3.0
    codes = sup.returncodes
    assert codes["a"] == 0 and codes["b"] == 0
    assert codes["plain"] == -signal.SIGINT  # KeyboardInterrupt left unhandled: still a clean stop
    assert a.with_suffix(".stopped").read_text() == "SIGINT" and b.with_suffix(".stopped").read_text() == "SIGINT"
    assert all(_gone(pid) for pid in sup.pids.values())
    sup.stop()  # once more: nothing to do
    assert sup.wait() == 0
    assert not any("SIGTERM" in message for message in log)


def test_children_ignoring_sigint_are_escalated(tmp_path):
    sup, _, log = _make([ProcessSpec("no_int", _py(STUBBORN, tmp_path / "a", "SIGINT")),
                         ProcessSpec("no_int_term", _py(STUBBORN, tmp_path / "b", "SIGINT", "SIGTERM"))],
                        stop_timeout=1.0)
    sup.start()
    _wait_for([tmp_path / "a.ready", tmp_path / "b.ready"])
    start = time.monotonic()
    sup.stop()
    elapsed = time.monotonic() - start
    assert 2.5 < elapsed < 1.0 + 2.0 + 1.5  # 1 s of SIGINT, 2 s of SIGTERM, then SIGKILL is immediate
    assert sup.returncodes == {"no_int": -signal.SIGTERM, "no_int_term": -signal.SIGKILL}
    assert sup.wait() == 1  # stopped, but not cleanly
    assert any("sending SIGTERM" in message for message in log)
    assert any("no_int_term still running after SIGTERM: sending SIGKILL" in message for message in log)


# A child that runs argv[1] as a grandchild (same process group) with the remaining arguments. "wait": it
# ignores SIGINT itself and exits with the grandchild (like ``ros2 run``); "leave": it dies on SIGINT and
# leaves the grandchild behind.
LEADER = textwrap.dedent("""
    import signal, subprocess, sys
    grandchild = subprocess.Popen([sys.executable, "-c", *sys.argv[2:]])
    if sys.argv[1] == "wait":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(grandchild.wait())
    grandchild.wait()
""")


def test_stop_signals_the_whole_process_group_of_a_child(tmp_path):
    grandchild = tmp_path / "g"
    sup, _, log = _make([ProcessSpec("leader", _py(LEADER, "wait", SLEEPER, grandchild))], stop_timeout=2.0)
    sup.start()
    _wait_for([grandchild.with_suffix(".ready")])
    pid = int(grandchild.with_suffix(".ready").read_text())
    sup.stop()
    assert grandchild.with_suffix(".stopped").read_text() == "SIGINT"  # the grandchild got the SIGINT too
    assert sup.wait() == 0 and sup.returncodes == {"leader": 0}
    assert _gone(pid)


def test_nothing_a_child_left_in_its_process_group_survives(tmp_path):
    grandchild = tmp_path / "g"
    sup, _, _ = _make([ProcessSpec("leader", _py(LEADER, "leave", STUBBORN, grandchild, "SIGINT"))],
                      stop_timeout=2.0)
    sup.start()
    _wait_for([grandchild.with_suffix(".ready")])
    pid = int(grandchild.with_suffix(".ready").read_text())
    start = time.monotonic()
    sup.stop()
    assert time.monotonic() - start < 1.5  # the leader died at once; no escalation wait for the orphan
    assert sup.returncodes == {"leader": -signal.SIGINT}
    deadline = time.monotonic() + 2
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(pid)


def test_a_child_that_cannot_start_stops_the_others(tmp_path):
    sup, _, _ = _make([ProcessSpec("a", _py(SLEEPER, tmp_path / "a")),
                       ProcessSpec("missing", [str(tmp_path / "no-such-program")])])
    with pytest.raises(RuntimeError, match="cannot start process 'missing'"):
        sup.start()
    assert _gone(sup.pids["a"])
    assert set(sup.pids) == {"a"}


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError):
        Supervisor([])
    with pytest.raises(ValueError):
        Supervisor([ProcessSpec("a", ["true"]), ProcessSpec("a", ["true"])])
    with pytest.raises(ValueError):
        Supervisor([ProcessSpec("a", [])])


# The parent: a Supervisor.run() over two SLEEPER children; prints its children's pids once they are ready.
PARENT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from dit4dit_ros.supervisor import ProcessSpec, Supervisor
    sleeper, tmp = sys.argv[2], sys.argv[3]
    sup = Supervisor([ProcessSpec(n, [sys.executable, "-c", sleeper, os.path.join(tmp, n)]) for n in ("a", "b")],
                     stop_timeout=5.0)
    if sys.argv[4] == "run":
        import threading
        def announce():
            while not all(os.path.exists(os.path.join(tmp, n + ".ready")) for n in ("a", "b")):
                time.sleep(0.01)
            print("PIDS " + json.dumps(sup.pids), flush=True)
        threading.Thread(target=announce, daemon=True).start()
        sys.exit(sup.run())
    # "leave": start, then exit without stopping; the atexit hook must take the children down.
    sup.start()
    while not all(os.path.exists(os.path.join(tmp, n + ".ready")) for n in ("a", "b")):
        time.sleep(0.01)
    print("PIDS " + json.dumps(sup.pids), flush=True)
    sys.exit(0)
""")


def _spawn_parent(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, queue.Queue]:
    parent = subprocess.Popen(_py(PARENT, REPO, SLEEPER, tmp_path, mode), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in parent.stdout], daemon=True).start()
    return parent, lines


def _read_pids(parent: subprocess.Popen, lines: queue.Queue) -> dict[str, int]:
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith("PIDS "):
            return json.loads(line[5:])
    parent.kill()
    pytest.fail("parent never reported its children:\n" + "".join(seen))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_a_running_parent_stops_children_and_exits_0(tmp_path, sig):
    parent, lines = _spawn_parent(tmp_path, "run")
    pids = _read_pids(parent, lines)
    assert set(pids) == {"a", "b"}
    start = time.monotonic()
    parent.send_signal(sig)
    assert parent.wait(timeout=10) == 0
    assert time.monotonic() - start < 3.0
    # The children got SIGINT (not the parent's signal: the supervisor translates), and are gone.
    assert (tmp_path / "a.stopped").read_text() == "SIGINT" and (tmp_path / "b.stopped").read_text() == "SIGINT"
    assert all(_gone(pid) for pid in pids.values())


def test_children_are_not_left_behind_when_the_parent_exits(tmp_path):
    parent, lines = _spawn_parent(tmp_path, "leave")
    pids = _read_pids(parent, lines)
    assert parent.wait(timeout=10) == 0
    assert (tmp_path / "a.stopped").read_text() == "SIGINT"
    assert all(_gone(pid) for pid in pids.values())
