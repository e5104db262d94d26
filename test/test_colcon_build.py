"""The ROS-install path: `colcon build` of a workspace holding a clean copy of this repository under src/
(with the Unitree message packages of its interfaces/ as a second base path, as the README says),
with the pip-installed colcon/ament/rosidl tools as the underlay; then an installed node starts from the
sourced workspace, and launch/ and config/ sit in share/dit4dit_ros."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy

from conftest import REPO, wait_until

# What a clean clone holds: no build products, no venv.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "install", "log", "__pycache__", "*.pyc",
                                     ".pytest_cache", "*.egg-info", "symlink_install_manifest.txt")


@pytest.fixture(scope="module")
def colcon_workspace(tmp_path_factory):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.fail("colcon is not installed: run scripts/setup.sh (it installs colcon-common-extensions)")
    workspace = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, workspace / "src" / "dit4dit_ros", ignore=_NOT_SOURCE)
    underlay = sys.prefix  # the venv plays /opt/ros/jazzy
    env = {**os.environ, "CMAKE_PREFIX_PATH": underlay, "AMENT_PREFIX_PATH": underlay,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    build = subprocess.run(
        # The README's command: the second base path adds the Unitree message packages nested in interfaces/.
        [str(colcon), "build", "--base-paths", "src", "src/dit4dit_ros/interfaces",
         "--event-handlers", "console_cohesion+", "--cmake-args", "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-3000:]
    return workspace, env


def _sourced(workspace: Path, command: str) -> list[str]:
    return ["bash", "-c", f"source '{workspace}/install/setup.bash' && {command}"]


def test_colcon_installs_share_files_and_interfaces(colcon_workspace):
    workspace, env = colcon_workspace
    share = workspace / "install" / "dit4dit_ros" / "share" / "dit4dit_ros"
    for folder in ("launch", "config", "checkpoints"):
        for source in (p for p in (REPO / folder).rglob("*") if p.is_file()):
            assert (share / source.relative_to(REPO)).read_bytes() == source.read_bytes(), source
    assert (share / "msg" / "VideoFeatures.msg").is_file() and (share / "action" / "ExecuteTask.action").is_file()

    # The sourced workspace's dit4dit_ros (generated + hand-written modules) and Unitree messages shadow the
    # venv's copies.
    probe = subprocess.run(
        _sourced(workspace, f"'{sys.executable}' -c 'import dit4dit_ros.msg, dit4dit_ros.graph, dit4dit_ros.ros."
                 "task_server as t, unitree_hg.msg, unitree_go.msg; print(dit4dit_ros.msg.__file__); "
                 "print(t.__file__); print(unitree_hg.msg.__file__); print(unitree_go.msg.__file__); "
                 "assert len(unitree_hg.msg.LowCmd().motor_cmd) == 35'"),
        env=env, cwd=workspace, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    for line in probe.stdout.split():
        assert line.startswith(str(workspace / "install")), f"{line} is not the colcon-installed module"


def test_installed_node_executable_starts(colcon_workspace, rclpy_context, spawn):
    workspace, env = colcon_workspace
    env = {**env, "ROS_DOMAIN_ID": os.environ["ROS_DOMAIN_ID"]}
    executable = workspace / "install" / "dit4dit_ros" / "lib" / "dit4dit_ros" / "task_server"
    assert os.access(executable, os.X_OK)
    node = spawn(_sourced(workspace, f"exec '{executable}' --ros-args -r __node:=colcon_task_server"),
                 env=env, name="colcon_task_server")
    probe = rclpy.create_node("probe", context=rclpy_context)
    try:
        assert wait_until(lambda: ("colcon_task_server", "/") in probe.get_node_names_and_namespaces(), 30), \
            node.output()
    finally:
        probe.destroy_node()
    assert node.wait_for_output("ready: action '/execute_task'", 10), node.output()
    assert node.stop() == 0, node.output()
