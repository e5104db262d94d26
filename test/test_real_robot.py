"""The real-robot path, closed loop against fake_g1 (a MuJoCo G1 that speaks LowCmd/LowState like the robot).

controller_bridge (output:=unitree_hg) -> arm_sdk / lowcmd -> fake_g1 -> lowstate -> g1_state_publisher ->
joint_states -> bridge. Every LowCmd the tests see is decoded from the wire bytes and its CRC checked.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import call_service, installed_executable, needs_menagerie, wait_until

rclpy = pytest.importorskip("rclpy")

from dit4dit_ros import g1  # noqa: E402
from dit4dit_ros.robot.variants import ARM_SDK_WEIGHT_SLOT, get_variant  # noqa: E402

VARIANT = get_variant("g1_29dof")
RIGHT_ARM = [VARIANT.slot(n) for n in g1.ARM_JOINTS["right"]]
ARMS = [VARIANT.slot(n) for n in g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]]


def params_file(tmp_path: Path, **bridge_g1) -> str:
    """The shipped params with the bridge's g1.* overridden. stale_after: 2 cores here carry the fake robot's
    physics and camera, the bridge and the policy; the robot's own computer sends LowState without such gaps
    (bench/bench_real_robot.py measures how often 20 ms is exceeded here)."""
    from dit4dit_ros.graph import default_params_file

    params = yaml.safe_load(Path(default_params_file()).read_text())
    params["/**/controller_bridge"]["ros__parameters"]["g1"].update({"stale_after": 0.1, **bridge_g1})
    path = tmp_path / "g1_test.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


class WireProbe:
    """Records LowCmd (arm_sdk and lowcmd) and LowState as decoded arrays, with receive times."""

    def __init__(self, context):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from unitree_hg.msg import LowCmd, LowState

        from dit4dit_ros.ros.qos import SENSOR_QOS
        from dit4dit_ros.ros.unitree_msgs import decode_lowcmd, decode_lowstate

        self.node = rclpy.create_node("wire_probe", context=context)
        self.commands: list[tuple[float, str, object]] = []
        self.states: list[tuple[float, np.ndarray, int]] = []
        self.diagnostics: dict[str, tuple[int, str, dict]] = {}
        self._lock = threading.Lock()

        def on_command(data, topic):
            with self._lock:
                self.commands.append((time.monotonic(), topic, decode_lowcmd(data)))

        def on_state(data):
            q, _, _, mode_machine, _ = decode_lowstate(data)
            with self._lock:
                self.states.append((time.monotonic(), q, mode_machine))

        for topic in ("arm_sdk", "lowcmd"):
            self.node.create_subscription(LowCmd, topic, lambda d, t=topic: on_command(d, t), SENSOR_QOS, raw=True)
        self.node.create_subscription(LowState, "lowstate", on_state, SENSOR_QOS, raw=True)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_diagnostics(self, msg) -> None:
        with self._lock:
            for status in msg.status:
                self.diagnostics[status.name] = (status.level, status.message,
                                                 {kv.key: kv.value for kv in status.values})

    def diag(self, name: str) -> dict:
        with self._lock:
            return dict(self.diagnostics.get(name, (None, "", {}))[2])

    def level(self, name: str):
        with self._lock:
            return self.diagnostics.get(name, (None, "", {}))[0]

    def commands_since(self, t0: float) -> list:
        with self._lock:
            return [c for c in self.commands if c[0] >= t0]

    def call(self, service_type, name: str, request, timeout: float = 30.0):
        return call_service(self.node, service_type, name, request, timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(5)
        self.node.destroy_node()


@pytest.fixture
def wire(rclpy_context):
    probe = WireProbe(rclpy_context)
    yield probe
    probe.close()


def _damping(command) -> bool:
    return bool((command.kp[ARMS] == 0).all() and (command.kd[ARMS] > 0).all() and (command.mode[ARMS] == 1).all())


def _start_robot(spawn, params: str, *fake_args, bridge_args=()):
    fake = spawn([installed_executable("fake_g1"), "--ros-args", "--params-file", params, "-p", "camera_rate:=1.0",
                  *fake_args], name="fake_g1")
    state = spawn([installed_executable("g1_state_publisher"), "--ros-args", "--params-file", params],
                  name="g1_state_publisher")
    bridge = spawn([installed_executable("controller_bridge"), "--ros-args", "--params-file", params,
                    "-p", "output:=unitree_hg", "-p", "control_rate:=500.0", "-p", "require_enable:=false",
                    "-p", "diagnostics_period:=0.25", "-p", "watchdog_timeout:=5.0", "-p", "damp_after:=60.0",
                    *bridge_args], name="controller_bridge")
    return fake, state, bridge


def _chunk(wire, target, points: int = 120):
    from builtin_interfaces.msg import Duration
    from std_msgs.msg import Header
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory(header=Header(stamp=wire.node.get_clock().now().to_msg()), joint_names=list(g1.ACTION_NAMES))
    for k in range(points):
        sec, frac = divmod(k / 30, 1.0)
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in target],
                                               time_from_start=Duration(sec=int(sec), nanosec=int(frac * 1e9))))
    return msg


@needs_menagerie
@pytest.mark.timeout(300)
def test_expert_task_closed_loop_through_lowcmd(tmp_path, ros_domain, wire, spawn):
    """policy:=expert robot:=fake: the scripted expert's chunks go through the bridge as 500 Hz LowCmds with valid
    CRCs; the fake applies the motor law; the task succeeds and the arm follows the commands."""
    params = params_file(tmp_path)
    launch = spawn([sys.executable, "-m", "dit4dit_ros.launcher", "robot:=fake", "policy:=expert",
                    f"params_file:={params}", "--execute", "touch the red cube with the right hand",
                    "--seed", "1004", "--time-limit", "30"], name="dit4dit-launch")
    assert wait_until(lambda: launch.popen.poll() is not None, 240), launch.output()
    assert launch.popen.returncode == 0, launch.output()
    line = next(x for x in launch.output().splitlines() if x.startswith("dit4dit-launch result: "))
    result = json.loads(line.split(": ", 1)[1])
    assert result["success"], (result, launch.output()[-4000:])

    with wire._lock:
        commands, states = list(wire.commands), list(wire.states)
    arm_sdk = [c for c in commands if c[1] == "arm_sdk"]
    assert len(arm_sdk) > 500 and not [c for c in commands if c[1] == "lowcmd"]  # arm_sdk mode only
    assert all(c[2].crc_ok for c in arm_sdk)  # the robot would have taken every one
    assert {c[2].mode_machine for c in arm_sdk} == {5} and {s[2] for s in states} == {5}  # echoed
    times = np.array([c[0] for c in arm_sdk])
    # Commands flow at the bridge's 500 Hz (the probe, on the same 2 cores, receives at least half of them).
    assert len(arm_sdk) / (times[-1] - times[0]) > 250, len(arm_sdk) / (times[-1] - times[0])
    tracking = [c for c in arm_sdk if (c[2].kp[RIGHT_ARM] > 0).all() and c[2].q[ARM_SDK_WEIGHT_SLOT] == 1.0]
    assert len(tracking) > 500
    # The fake robot has no gravity compensation: the bridge's feed-forward carries the arms, as on the robot.
    assert all(np.abs(c[2].tau[ARMS]).max() > 0.5 for c in tracking)
    # Following: each LowState vs the command sent 20 ms before it (the motor law's lag), right arm.
    state_t = np.array([s[0] for s in states])
    errors = []
    for t, _, command in tracking[::10]:
        index = np.searchsorted(state_t, t + 0.02)
        if index < len(states):
            errors.append(np.abs(states[index][1][RIGHT_ARM] - command.q[RIGHT_ARM]))
    errors = np.array(errors)
    print(f"{len(arm_sdk)} arm_sdk LowCmds at {len(arm_sdk) / (times[-1] - times[0]):.0f}/s; right-arm tracking "
          f"error median {np.median(errors):.4f} rad, p95 {np.percentile(errors, 95):.4f} rad")
    assert np.median(errors) < 0.02 and np.percentile(errors, 95) < 0.08, (np.median(errors),
                                                                           np.percentile(errors, 95))


@needs_menagerie
@pytest.mark.timeout(240)
def test_faults_damp_and_never_reach_a_motor(tmp_path, ros_domain, wire, spawn):
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    from dit4dit_ros.ros.qos import COMMAND_QOS

    fake, _, bridge = _start_robot(spawn, params_file(tmp_path, ramp_time=0.5))
    chunks = wire.node.create_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
    assert wait_until(lambda: wire.diag("/controller_bridge").get("lowlevel_state") in ("ramp", "track"), 90), \
        bridge.output()
    target = np.array([g1.READY_POSE.get(n, 0.0) for n in g1.ACTION_NAMES])
    target[g1.ACTION_NAMES.index("right_elbow_joint")] += 0.3
    chunks.publish(_chunk(wire, target))
    elbow = VARIANT.slot("right_elbow_joint")
    assert wait_until(lambda: wire.states and abs(wire.states[-1][1][elbow] - target[g1.ACTION_NAMES.index(
        "right_elbow_joint")]) < 0.03, 20), (wire.states[-1][1][elbow] if wire.states else None, bridge.output())

    # NaN in a chunk: rejected whole; no LowCmd ever carries a non-finite number.
    bad = target.copy()
    bad[3] = float("nan")
    t0 = time.monotonic()
    chunks.publish(_chunk(wire, bad))
    assert wait_until(lambda: int(wire.diag("/controller_bridge").get("malformed_chunks", 0)) >= 1, 10)
    time.sleep(0.5)
    after = wire.commands_since(t0)
    assert after and all(np.isfinite(c[2].q).all() and c[2].crc_ok for c in after)
    assert not any(_damping(c[2]) for c in after[-50:])  # still tracking the last good chunk

    # Stale state: the robot stops answering (SIGSTOP) -> damping; it answers again -> a new ramp.
    fake.popen.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert wait_until(lambda: any(_damping(c[2]) for c in wire.commands_since(t0)), 5), bridge.output()
        assert "stale" in wire.diag("/controller_bridge").get("last_damping_reason", "") or wait_until(
            lambda: "stale" in wire.diag("/controller_bridge").get("last_damping_reason", ""), 3)
    finally:
        fake.popen.send_signal(signal.SIGCONT)
    t0 = time.monotonic()
    assert wait_until(lambda: any(not _damping(c[2]) for c in wire.commands_since(t0)), 10)
    assert int(wire.diag("/controller_bridge").get("damping_stale", 0)) >= 1

    # E-stop: damping, latched.
    answer = wire.call(SetBool, "/controller_bridge/estop", SetBool.Request(data=True))
    assert answer.success, answer.message
    time.sleep(0.3)
    t0 = time.monotonic()
    time.sleep(0.5)
    during = wire.commands_since(t0)
    assert len(during) > 50 and all(_damping(c[2]) for c in during)

    # Killed (SIGTERM, as a launch shutdown or Ctrl-C): its last words are damping, and it exits cleanly.
    answer = wire.call(SetBool, "/controller_bridge/estop", SetBool.Request(data=False))
    chunks.publish(_chunk(wire, target))
    t0 = time.monotonic()
    assert wait_until(lambda: any(not _damping(c[2]) for c in wire.commands_since(t0)), 10), bridge.output()
    bridge.popen.send_signal(signal.SIGTERM)
    assert wait_until(lambda: bridge.popen.poll() is not None, 15)
    assert bridge.popen.returncode == 0, bridge.output()
    time.sleep(0.3)
    last = wire.commands_since(0)[-20:]
    assert last and all(_damping(c[2]) for c in last), [c[2].kp[ARMS].max() for c in last]
    assert int(wire.diag("/fake_g1").get("crc_errors", -1)) == 0


@needs_menagerie
@pytest.mark.timeout(180)
def test_wrong_robot_is_refused(tmp_path, ros_domain, wire, spawn):
    from diagnostic_msgs.msg import DiagnosticStatus

    params = params_file(tmp_path)
    # A 23-DoF G1 answers (mode_machine 4) where the bridge is configured for the 29-DoF one.
    _, _, bridge = _start_robot(spawn, params, "-p", "mode_machine:=4")
    assert wait_until(lambda: wire.diag("/controller_bridge").get("lowlevel_state") == "refused", 90), bridge.output()
    assert wire.level("/controller_bridge") == DiagnosticStatus.ERROR
    assert "mode_machine is 4" in wire.diag("/controller_bridge")["refusal"]
    time.sleep(1.0)
    assert wire.commands == [] and wire.diag("/controller_bridge")["lowcmd_computed"] == "0"
    assert "refusing to command this robot" in bridge.output()
    assert bridge.stop() == 0


@needs_menagerie
@pytest.mark.timeout(180)
def test_dry_run_computes_but_never_publishes(tmp_path, ros_domain, wire, spawn):
    params = params_file(tmp_path)
    _, _, bridge = _start_robot(spawn, params, bridge_args=("-p", "dry_run:=true"))
    assert wait_until(lambda: int(wire.diag("/controller_bridge").get("lowcmd_computed", 0)) > 200, 90), \
        bridge.output()
    assert wire.diag("/controller_bridge")["lowcmd_sent"] == "0" and wire.commands == []
    assert wire.states  # the robot is there; the bridge just does not command it
    assert "DRY RUN" in bridge.output()


@needs_menagerie
@pytest.mark.timeout(180)
def test_deactivate_leaves_the_robot_damped_and_the_bridge_configures_again(tmp_path, ros_domain, wire, spawn):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    def transition(transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return wire.call(ChangeState, "/controller_bridge/change_state", request, timeout=60).success

    _, _, bridge = _start_robot(spawn, params_file(tmp_path, ramp_time=0.2))
    assert wait_until(lambda: wire.diag("/controller_bridge").get("lowlevel_state") in ("ramp", "track"), 90), \
        bridge.output()
    assert wait_until(lambda: any(not _damping(c[2]) for c in wire.commands_since(time.monotonic() - 0.2)), 10)
    assert transition(Transition.TRANSITION_DEACTIVATE), bridge.output()
    time.sleep(0.5)
    last = wire.commands_since(0)[-10:]
    assert last and all(_damping(c[2]) for c in last)  # the G1 keeps the last command: it is damping
    count = len(wire.commands_since(0))
    time.sleep(0.5)
    assert len(wire.commands_since(0)) == count  # inactive: nothing more is sent
    assert transition(Transition.TRANSITION_CLEANUP) and transition(Transition.TRANSITION_CONFIGURE), bridge.output()
    assert transition(Transition.TRANSITION_ACTIVATE), bridge.output()
    t0 = time.monotonic()
    assert wait_until(lambda: any(not _damping(c[2]) for c in wire.commands_since(t0)), 20), bridge.output()
