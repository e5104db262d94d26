"""Shared fixtures. NETWORK SAFETY comes first: every ROS process the tests start (this one and its
children) discovers peers on localhost only and in a DDS domain of its own."""

import os

# Before anything imports rclpy: DDS discovery must never leave this machine.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)
# A private domain for the whole session (each ROS test then takes its own, see ros_domain).
_DOMAIN_BASE = 1 + (os.getpid() % 25) * 4
os.environ["ROS_DOMAIN_ID"] = str(_DOMAIN_BASE)

import itertools  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import dit4dit_ros  # noqa: E402,F401  (in a venv this also points AMENT_PREFIX_PATH at it)

REPO = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / "helpers"
_domains = itertools.count()
os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering


def _find_menagerie() -> str | None:
    """MENAGERIE_ROOT for the tests: the environment's, else ../shared/menagerie beside this checkout or
    beside the repository it was cloned from (CI runs on a clean clone of this one)."""
    if os.environ.get("MENAGERIE_ROOT"):
        return os.environ["MENAGERIE_ROOT"]
    candidates = [REPO.parent / "shared" / "menagerie"]
    try:
        origin = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if origin and Path(origin).is_dir():
            candidates.append(Path(origin).resolve().parent / "shared" / "menagerie")
    except (OSError, subprocess.SubprocessError):
        pass
    return next((str(c) for c in candidates if (c / "unitree_g1").is_dir()), None)


MENAGERIE_ROOT = _find_menagerie()
if MENAGERIE_ROOT:
    os.environ["MENAGERIE_ROOT"] = MENAGERIE_ROOT
# Never download the menagerie in tests; without a local copy, tests of the real G1 skip (with a reason)
# and their simplified-G1 siblings still run.
needs_menagerie = pytest.mark.skipif(MENAGERIE_ROOT is None, reason="no local mujoco_menagerie (set MENAGERIE_ROOT)")


def next_domain_id() -> int:
    """1..100: inside the range whose DDS ports never collide with Linux's ephemeral ports."""
    return 1 + (_DOMAIN_BASE - 1 + next(_domains)) % 100


@pytest.fixture(scope="session", autouse=True)
def _ros_home(tmp_path_factory):
    """rclpy writes logs under ~/.ros and fails without HOME: keep them in the test's tmp dir."""
    home = tmp_path_factory.mktemp("ros_home")
    os.environ["ROS_HOME"] = str(home)
    os.environ["ROS_LOG_DIR"] = str(home / "log")
    os.environ.setdefault("HOME", str(home))
    yield home


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A DDS domain of this test's own; child processes inherit it through the environment."""
    domain = next_domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return domain


@pytest.fixture
def rclpy_context(ros_domain):
    """An initialised rclpy context in this test's domain, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain)
    yield context
    rclpy.try_shutdown(context=context)


class ManagedProcess:
    """A child process whose output goes to a log file shown when a test fails."""

    def __init__(self, args, log_path: Path, env=None):
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> bool:
        return wait_until(lambda: text in self.output() or self.popen.poll() is not None, timeout) and \
            text in self.output()

    def stop(self, timeout: float = 10.0) -> int:
        """Ctrl-C, as a user would; SIGKILL if it does not end in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def spawn(tmp_path, request):
    """Start child processes; stopped (and their logs printed on failure) at the end of the test."""
    processes: list[ManagedProcess] = []

    def _spawn(args, env=None, name=None) -> ManagedProcess:
        log = tmp_path / f"{name or Path(str(args[0])).name}-{len(processes)}.log"
        process = ManagedProcess(args, log, env=env)
        processes.append(process)
        return process

    yield _spawn
    for process in processes:
        process.stop()
        print(f"----- {' '.join(process.args)} (exit {process.popen.returncode})\n{process.output()}")


@pytest.fixture
def torch_one_thread():
    """Model tests use tiny tensors: a second intra-op thread only adds synchronisation, and on the shared
    2-core machine (ROS processes, parallel runs) oversubscription made them about 10x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def wait_until(predicate, timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def call_service(node, service_type, name: str, request, timeout: float = 30.0):
    """Call a service from a node that another thread spins; the response (assert with a reason otherwise)."""
    client = node.create_client(service_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout), f"{name} is not available"
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f"no answer from {name}"
        return future.result()
    finally:
        node.destroy_client(client)


def installed_executable(name: str) -> Path:
    """lib/dit4dit_ros/<name> of the installed package (what ros2 run / launch would start)."""
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix("dit4dit_ros")) / "lib" / "dit4dit_ros" / name
    assert path.is_file(), f"{path} is not installed: run scripts/setup.sh"
    return path


@pytest.fixture
def python_exe() -> str:
    return sys.executable


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
