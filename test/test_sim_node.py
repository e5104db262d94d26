"""The simulation node as a process: sim-time images at the configured rate, reset, rejected commands."""

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool

from conftest import installed_executable, wait_until
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.srv import ResetEpisode


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_sim_node_images_reset_and_bad_commands(rclpy_context, spawn):
    sim = spawn([installed_executable("sim"), "--ros-args", "-p", "model:=simplified", "-p", "camera_rate:=20.0",
                 "-p", "real_time_factor:=1.0", "-p", "task:=touch_cube", "-p", "seed:=4"])
    node = rclpy.create_node("probe", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    images, clocks, joints, status, diagnostics = [], [], [], [], []
    # Images alone first: a Python probe that also takes /clock (250 Hz) drops best-effort images.
    images_sub = node.create_subscription(Image, "camera/image_raw", images.append, SENSOR_QOS)
    node.create_subscription(DiagnosticStatus, "task_status", status.append, LATCHED_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    commands = node.create_publisher(JointState, "joint_commands", COMMAND_QOS)
    estop = node.create_publisher(Bool, "estop", LATCHED_QOS)

    def spin_until(predicate, timeout):
        return wait_until(lambda: executor.spin_once(timeout_sec=0.01) or predicate(), timeout)

    def elbow() -> float:
        last = joints[-1]
        return last.position[list(last.name).index("right_elbow_joint")]

    try:
        assert spin_until(lambda: len(images) >= 41, 60), sim.output()
        # Images at the configured rate in SIM time, stamped from /clock's time base.
        stamps = np.array([_stamp(m) for m in images[-40:]])
        assert abs(np.mean(np.diff(stamps)) - 0.05) < 0.003, np.diff(stamps)
        assert images[-1].width == 224 and images[-1].encoding == "rgb8" and len(images[-1].data) == 224 * 224 * 3
        node.destroy_subscription(images_sub)
        node.create_subscription(Clock, "/clock", clocks.append, 10)
        node.create_subscription(JointState, "joint_states", joints.append, SENSOR_QOS)
        assert spin_until(lambda: clocks, 10)
        clock_now = clocks[-1].clock.sec + clocks[-1].clock.nanosec * 1e-9
        assert 0 < clock_now - stamps[-1] < 2.0  # images are stamped in /clock's (sim) time base

        # Reset: a new task and seed, answered and visible on task_status.
        client = node.create_client(ResetEpisode, "/sim/reset")
        assert client.wait_for_service(timeout_sec=20)
        future = client.call_async(ResetEpisode.Request(task="push_cube", seed=17))
        executor.spin_until_future_complete(future, timeout_sec=20)
        answer = future.result()
        assert answer.success and answer.seed == 17 and "green square" in answer.instruction
        bad_task = client.call_async(ResetEpisode.Request(task="juggle", seed=1))
        executor.spin_until_future_complete(bad_task, timeout_sec=20)
        assert not bad_task.result().success and "unknown task" in bad_task.result().message
        assert spin_until(lambda: status and {kv.key: kv.value for kv in status[-1].values}.get("seed") == "17", 20)
        assert {kv.key: kv.value for kv in status[-1].values}["task"] == "push_cube"

        # Bad commands are rejected and the arm holds; a good one moves it (so this could fail).
        assert spin_until(lambda: len(joints) > 5, 10)
        start = elbow()
        for name, position in ((["right_elbow_joint", "bogus_joint"], [start - 0.4, 0.0]),
                               (["right_elbow_joint"], [float("nan")]),
                               (["right_elbow_joint"], [start - 0.4, 0.1]),
                               (["right_elbow_joint"], [9.0])):
            commands.publish(JointState(name=name, position=position))
        assert spin_until(lambda: any(kv.key == "rejected_commands" and kv.value == "4"
                                      for d in diagnostics[-1:] for s in d.status for kv in s.values), 20), \
            sim.output()
        assert "rejected" in sim.output() and "bogus_joint" in sim.output()
        assert abs(elbow() - start) < 0.02
        commands.publish(JointState(name=["right_elbow_joint"], position=[start - 0.4]))
        assert spin_until(lambda: abs(elbow() - (start - 0.4)) < 0.03, 20)

        # E-stop freezes: a good command no longer moves the arm.
        estop.publish(Bool(data=True))
        assert spin_until(lambda: "E-STOP" in sim.output(), 10)
        frozen = elbow()
        commands.publish(JointState(name=["right_elbow_joint"], position=[frozen + 0.4]))
        spin_until(lambda: False, 1.5)
        assert abs(elbow() - frozen) < 0.02
    finally:
        executor.remove_node(node)
        node.destroy_node()
    assert sim.stop() == 0, sim.output()
