"""The ExecuteTask action between two processes: the task server runs as its installed executable, the
test drives it through TaskCommander and plays the simulation (task_success) and the planner (action_chunk)."""

import threading
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Duration
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from conftest import installed_executable, wait_until
from dit4dit_ros.ros.commander import TaskCommander, TaskRejectedError
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS


@pytest.fixture
def task_system(rclpy_context, spawn, tmp_path):
    """A task_server process, a commander, and a node that plays simulation + planner."""
    params = tmp_path / "params.yaml"
    params.write_text("/**/task_server:\n  ros__parameters:\n    default_time_limit: 30.0\n    feedback_rate: 20.0\n")
    server = spawn([installed_executable("task_server"), "--ros-args", "--params-file", params])
    commander = TaskCommander(context=rclpy_context)
    peer = rclpy.create_node("sim_and_planner", context=rclpy_context)
    peer.success_pub = peer.create_publisher(Bool, "task_success", COMMAND_QOS)
    peer.chunk_pub = peer.create_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
    peer.instructions = []
    peer.create_subscription(String, "instruction", lambda m: peer.instructions.append(m.data), LATCHED_QOS)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(peer)
    threading.Thread(target=executor.spin, daemon=True).start()
    assert commander.wait_for_server(timeout=30), server.output()
    assert wait_until(lambda: peer.success_pub.get_subscription_count() > 0
                      and peer.chunk_pub.get_subscription_count() > 0, 30), server.output()
    yield commander, peer, server
    commander.close()
    executor.shutdown()
    peer.destroy_node()


def _chunk(peer, age_s: float, points: int) -> JointTrajectory:
    chunk = JointTrajectory()
    chunk.header.stamp = (peer.get_clock().now() - rclpy.duration.Duration(seconds=age_s)).to_msg()
    chunk.joint_names = ["left_shoulder_pitch_joint"]
    chunk.points = [JointTrajectoryPoint(positions=[0.1 * k], time_from_start=Duration(nanosec=20_000_000 * k))
                    for k in range(points)]
    return chunk


def test_feedback_then_success(task_system):
    commander, peer, _ = task_system
    assert commander.start("touch the red cube with the right hand", time_limit=20.0)
    assert wait_until(lambda: commander.feedback_count >= 2, 10)
    assert wait_until(lambda: peer.instructions[-1:] == ["touch the red cube with the right hand"], 5)

    peer.chunk_pub.publish(_chunk(peer, age_s=0.25, points=16))
    peer.chunk_pub.publish(_chunk(peer, age_s=0.25, points=16))
    assert wait_until(lambda: commander.feedback.chunks_executed == 2, 10)
    assert commander.feedback.latest_latency >= 0.25
    assert commander.feedback.elapsed.sec < 20
    assert not commander.is_task_complete()

    # A True before any False of this goal is the previous episode's, still in flight: it does not count.
    peer.success_pub.publish(Bool(data=True))
    time.sleep(0.5)
    assert not commander.is_task_complete()
    peer.success_pub.publish(Bool(data=False))
    peer.success_pub.publish(Bool(data=True))
    result = commander.result(timeout=10)
    assert (result.success, result.reason, result.steps) == (True, "success", 32)
    assert commander.status() == GoalStatus.STATUS_SUCCEEDED
    # The instruction is withdrawn when the goal ends, so the policy stops acting on it.
    assert wait_until(lambda: peer.instructions[-1:] == [""], 5)


def test_cancel(task_system):
    commander, _, _ = task_system
    assert commander.start("push the cube onto the green square", time_limit=20.0)
    assert wait_until(lambda: commander.feedback_count >= 1, 10)
    assert commander.cancel()
    result = commander.result(timeout=10)
    assert (result.success, result.reason) == (False, "canceled")
    assert commander.status() == GoalStatus.STATUS_CANCELED


def test_time_limit_aborts(task_system):
    commander, _, _ = task_system
    started = time.monotonic()
    result = commander.execute("put the cube in the bowl", time_limit=1.0)
    took = time.monotonic() - started
    assert (result.success, result.reason) == (False, "timeout")
    assert commander.status() == GoalStatus.STATUS_ABORTED
    assert 0.9 <= took < 5.0


def test_empty_instruction_and_busy_server_are_rejected(task_system):
    commander, peer, server = task_system
    assert not commander.start("")
    assert not commander.start("   \n")
    with pytest.raises(TaskRejectedError):
        commander.execute("")
    assert "rejected goal: empty instruction" in server.output()

    assert commander.start("touch the red cube with the right hand", time_limit=20.0)
    second = TaskCommander(context=peer.context)
    try:
        assert second.wait_for_server(10)
        assert not second.start("put the cube in the bowl")
    finally:
        second.close()
    assert commander.cancel()
    assert commander.result(timeout=10).reason == "canceled"
