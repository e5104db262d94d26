"""dit4dit-launch, the launcher for machines without ``ros2 launch``: the node command lines it derives from
the graph description (--print), its refusal of bad launch arguments, the single-process plugins, and the
supervised process graph stopping as a whole when one node fails to start."""

import importlib
import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rclpy.node import Node

from conftest import installed_executable
from dit4dit_ros.graph import LaunchConfig, default_params_file, g1_graph
from dit4dit_ros.launcher import load_plugin

LAUNCH = Path(sys.executable).parent / "dit4dit-launch"


def _launch(*args, timeout=60) -> subprocess.CompletedProcess:
    command = [str(LAUNCH)] if LAUNCH.is_file() else [sys.executable, "-m", "dit4dit_ros.launcher"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)


def _printed(*args) -> dict[str, list[str]]:
    """node name -> argv, from ``dit4dit-launch --print``, in printed order."""
    result = _launch("--print", *args)
    assert result.returncode == 0, result.stderr
    nodes = {}
    for line in result.stdout.splitlines():
        name, sep, command = line.partition(": ")
        assert sep, f"unexpected line {line!r}"
        assert name not in nodes, f"{name} printed twice"
        nodes[name] = command.split()
    return nodes


def _options(argv: list[str], flag: str) -> list[str]:
    """The values after every ``flag`` (-p, -r, --params-file, --log-level) in argv."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _params(argv: list[str]) -> dict[str, str]:
    pairs = [p.split(":=", 1) for p in _options(argv, "-p")]
    assert len({k for k, _ in pairs}) == len(pairs), f"a parameter is set twice: {pairs}"
    return dict(pairs)


def test_print_lists_the_graph_nodes_with_their_ros_args():
    nodes = _printed()
    expected = g1_graph(LaunchConfig.from_strings({}))
    assert list(nodes) == [spec.name for spec in expected] == [
        "sim", "camera_ingest", "video_encoder", "action_planner", "controller_bridge", "task_server"]
    for spec in expected:
        argv = nodes[spec.name]
        assert argv[0] == str(installed_executable(spec.executable))
        assert os.access(argv[0], os.X_OK)
        assert argv[1] == "--ros-args"
        assert _options(argv, "-r") == [f"__node:={spec.name}"]  # no namespace, no remaps by default
        assert _options(argv, "--params-file") == [default_params_file()]
        assert Path(default_params_file()).is_file()
        assert _options(argv, "--log-level") == ["info"]
    # The simulation is the clock: it never follows /clock. Everyone else does while it runs.
    assert _params(nodes["sim"]) == {"use_sim_time": "false"}
    for name in ("camera_ingest", "video_encoder", "action_planner", "controller_bridge", "task_server"):
        assert _params(nodes[name]) == {"use_sim_time": "true"}, name
    # The module form prints the same.
    module = subprocess.run([sys.executable, "-m", "dit4dit_ros.launcher", "--print"], capture_output=True,
                            text=True, timeout=60)
    assert module.returncode == 0 and module.stdout.splitlines() == [
        f"{name}: {' '.join(argv)}" for name, argv in nodes.items()]


def test_print_applies_every_launch_argument(tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text("/**/task_server:\n  ros__parameters:\n    feedback_rate: 3.0\n")
    nodes = _printed("sim:=none", f"params_file:={params}", "checkpoint:=/data/policy_ckpt", "namespace:=g1",
                     "log_level:=debug")
    assert list(nodes) == ["camera_ingest", "video_encoder", "action_planner", "controller_bridge", "task_server"]
    for name, argv in nodes.items():
        assert _options(argv, "-r") == [f"__node:={name}", "__ns:=/g1"], name
        assert _options(argv, "--params-file") == [str(params)], name
        assert _options(argv, "--log-level") == ["debug"], name
        model = {"checkpoint": "/data/policy_ckpt"} if name in ("camera_ingest", "video_encoder",
                                                                 "action_planner") else {}
        # sim:=none: wall time (auto), and the checkpoint reaches exactly the three model nodes.
        assert _params(argv) == {"use_sim_time": "false", **model}, name


def test_print_for_the_real_robot_and_explicit_sim_time():
    real = _printed("robot:=real", "network_interface:=lo")
    assert "sim" not in real and "fake_g1" not in real
    assert _params(real["controller_bridge"]) == {"use_sim_time": "false", "dry_run": "true", "output": "unitree_hg",
                                                  "control_rate": "500.0", "require_enable": "true"}
    assert _params(real["task_server"]) == {"use_sim_time": "false", "reset_service": ""}
    for name in ("camera_ingest", "video_encoder", "action_planner", "g1_state_publisher"):
        assert _params(real[name]) == {"use_sim_time": "false"}, name
    forced = _printed("sim:=mujoco", "use_sim_time:=false")
    assert {name: _params(argv)["use_sim_time"] for name, argv in forced.items()} == dict.fromkeys(forced, "false")
    gazebo = _printed("sim:=gazebo")  # bring-your-own simulator: no sim node, but its clock is followed
    assert "sim" not in gazebo and all(_params(argv)["use_sim_time"] == "true" for argv in gazebo.values())
    assert "output" not in _params(gazebo["controller_bridge"])


@pytest.mark.parametrize("args, reason", [
    (["sim:=isaac"], "sim:='isaac'; expected one of"),
    (["foo:=1"], "unknown launch argument(s) ['foo']"),
    (["params_file:=/nonexistent/params.yaml"], "'/nonexistent/params.yaml' does not exist"),
    (["robot:=real", "sim:=mujoco", "network_interface:=lo"], "robot:=real needs sim:=none"),
    (["robot:=real"], "robot:=real needs network_interface"),
    (["use_sim_time:=maybe"], "expected true or false"),
    (["log_level:=chatty"], "log_level:='chatty'"),
    (["sim"], "launch arguments are name:=value"),
])
def test_bad_launch_arguments_exit_non_zero_with_the_reason(args, reason):
    result = _launch(*args, "--print")  # --print: a bad argument must fail before anything is printed
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert reason in result.stderr and "dit4dit-launch: error:" in result.stderr
    assert result.stdout == ""


def test_every_plugin_imports_to_a_node_class_with_its_module_main():
    specs = g1_graph(LaunchConfig.from_strings({}))
    assert len(specs) == 6
    for spec in specs:
        module_name, sep, class_name = spec.plugin.partition(":")
        assert sep and class_name, spec.plugin
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
        assert inspect.isclass(cls) and issubclass(cls, Node), spec.plugin
        assert cls.__module__ == module_name
        assert callable(module.main) and list(inspect.signature(module.main).parameters) == ["args"]
        assert load_plugin(spec) is cls
        # The installed executable of the node runs the same module's main.
        script = installed_executable(spec.executable).read_text()
        assert f"from {module_name} import main" in script, (spec.name, script)
        assert spec.managed == (spec.name in ("camera_ingest", "video_encoder", "action_planner",
                                              "controller_bridge"))


def _alive(pid: int, executable: str) -> bool:
    """pid is still a running (not zombie) process of ``executable``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and executable in cmdline


def _children(pid: int) -> dict[int, str]:
    """Running children of pid: child pid -> command line."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children[int(entry.name)] = cmdline
    return children


def test_one_node_failing_to_start_stops_the_whole_graph(spawn, ros_domain, tmp_path):
    """controller_bridge refuses merge_mode bogus in on_configure -> autostart fails -> it exits 1 -> the
    supervisor stops every other node and the launcher exits non-zero, leaving no process behind."""
    params = tmp_path / "bad_bridge.yaml"
    params.write_text(Path(default_params_file()).read_text().replace("merge_mode: splice", "merge_mode: bogus"))
    assert "merge_mode: bogus" in params.read_text()
    started = time.monotonic()
    launcher = spawn([LAUNCH, "sim:=none", f"params_file:={params}"], name="dit4dit-launch")
    seen: dict[int, str] = {}
    while launcher.popen.poll() is None and time.monotonic() - started < 90:
        # Between fork and exec a child's command line is not yet the node's: keep the node's once seen.
        seen.update({pid: cmd for pid, cmd in _children(launcher.popen.pid).items() if "lib/dit4dit_ros/" in cmd})
        time.sleep(0.05)
    took = time.monotonic() - started
    code = launcher.popen.poll()
    out = launcher.output()
    assert code is not None, f"the launcher still runs after {took:.0f} s:\n{out}"
    assert code == 1, out  # the failing node's exit status
    assert took < 60, out

    pids = {name: int(pid) for name, pid in re.findall(r"\[supervisor\] started (\w+) \[pid (\d+)\]", out)}
    assert list(pids) == ["camera_ingest", "video_encoder", "action_planner", "controller_bridge", "task_server"]
    assert f"[supervisor] controller_bridge [pid {pids['controller_bridge']}] exited with code 1\n" in out
    assert "[supervisor] controller_bridge exited with code 1: stopping the whole graph" in out
    for name in ("camera_ingest", "video_encoder", "action_planner", "task_server"):  # stopped, not crashed
        assert f"[supervisor] {name} [pid {pids[name]}] exited with" in out, name
    assert "merge_mode='bogus'" in out and "autostart: configure failed" in out
    assert out.index("[controller_bridge]") > 0  # the node's own lines are prefixed with its name
    # Every node started as a child of the launcher, and none outlives it.
    assert set(pids.values()) <= set(seen), (pids, seen)
    assert all(f"lib/dit4dit_ros/{name} " in seen[pid] for name, pid in pids.items()), seen
    survivors = {pid: cmd for pid, cmd in seen.items() if _alive(pid, "dit4dit_ros")}
    assert not survivors, survivors
