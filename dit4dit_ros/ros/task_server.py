"""task_server: the ExecuteTask action, "run the policy on this instruction until it succeeds".

Goal: an instruction (+ time limit). While a goal runs the server
  * latches the instruction on ``instruction`` (std_msgs/String) for the video encoder, and an empty
    string when the goal ends, so the policy stops conditioning on it;
  * counts the action chunks on ``action_chunk`` (trajectory_msgs/JointTrajectory) and measures their
    latency (now - the chunk's observation stamp), reported as feedback;
  * ends the goal on ``task_success`` (std_msgs/Bool, published by the simulation's success check),
    on the time limit (node clock, so sim time when use_sim_time is set) or on cancel.
A goal with ``seed >= 0`` first starts a new simulation episode through ``reset_service``
(dit4dit_ros/ResetEpisode, default ``sim/reset``): the task whose instruction the goal gives, else the
current task, with that seed. Across that reset the controller bridge is switched off through
``bridge_enable_service`` (std_srvs/SetBool, when it exists) and on again after it (it then holds the pose
it measures after being enabled): holding the last episode's final pose, it would swing the reset arm
straight back there. The action is named by the ``action_name`` parameter (default
``execute_task``). One goal at a time: a goal that arrives while another runs is rejected, as is an empty
instruction.
"""

from __future__ import annotations

import threading
import time

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from dit4dit_ros.action import ExecuteTask
from dit4dit_ros.srv import ResetEpisode
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS
from dit4dit_ros.ros.runtime import run_node

_NS_PER_S = 1e9


class TaskServer(Node):
    def __init__(self, **kwargs):
        super().__init__("task_server", **kwargs)
        self._default_time_limit = declare(
            self, "default_time_limit", 60.0,
            "Time limit (s) for goals that give none (node clock: sim time under use_sim_time).",
            low=0.1, high=86400.0)
        self._feedback_rate = declare(
            self, "feedback_rate", 2.0, "Feedback messages per second while a goal runs.", low=0.1, high=100.0)
        # A parameter, not a remap: rcl (Jazzy) does not apply --ros-args remaps to action names.
        action_name = declare(
            self, "action_name", "execute_task",
            "Name of the ExecuteTask action server (relative = namespaced).", read_only=True)

        reset_service = declare(
            self, "reset_service", "sim/reset",
            "ResetEpisode service called for goals with seed >= 0 (empty: goals never reset anything)",
            read_only=True)

        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by success / cancel so the goal loop reacts at once
        self._busy = False
        self._active = False
        self._succeeded = False
        self._seen_unsolved = False  # a task_success False seen since the goal began
        self._chunks = 0
        self._steps = 0
        self._latest_latency = 0.0

        group = ReentrantCallbackGroup()
        self._instruction_pub = self.create_publisher(String, "instruction", LATCHED_QOS)
        self.create_subscription(Bool, "task_success", self._on_success, COMMAND_QOS, callback_group=group)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, COMMAND_QOS, callback_group=group)
        self._reset_client = (self.create_client(ResetEpisode, reset_service, callback_group=group)
                              if reset_service else None)
        bridge_service = declare(
            self, "bridge_enable_service", "controller_bridge/enable",
            "SetBool switched off across a seeded reset and on again after it (empty: none)", read_only=True)
        self._bridge_client = (self.create_client(SetBool, bridge_service, callback_group=group)
                               if bridge_service else None)

        self._server = ActionServer(
            self,
            ExecuteTask,
            action_name,
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=group,
        )
        self.get_logger().info(
            f"ready: action '{self.resolve_topic_name(action_name)}', "
            f"default_time_limit={self._default_time_limit:g}s"
        )

    # -- inputs ---------------------------------------------------------------------------------------
    def _on_success(self, msg: Bool) -> None:
        # Success must be seen BECOMING true during the goal: a True still in flight from the previous episode
        # (published just before the reset, delivered after the goal began) would otherwise end the new goal
        # at once. Measured: 1-3 % of seeded episodes under load, with episodes of 2-3 frames in the bags.
        with self._lock:
            if not self._active:
                return
            if not msg.data:
                self._seen_unsolved = True
            elif self._seen_unsolved:
                self._succeeded = True
                self._wake.set()

    def _call(self, client, request, timeout: float = 10.0):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        return future.result() if done.wait(timeout) else None

    def _switch_bridge(self, on: bool) -> None:
        if self._bridge_client is not None and self._bridge_client.service_is_ready():
            answer = self._call(self._bridge_client, SetBool.Request(data=on))
            if answer is None or not answer.success:
                self.get_logger().warning(f"controller bridge enable({on}) failed: "
                                          f"{answer.message if answer else 'no answer'}")

    def _on_chunk(self, msg: JointTrajectory) -> None:
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            if not self._active:
                return
            self._chunks += 1
            self._steps += len(msg.points)
            observed_ns = Time.from_msg(msg.header.stamp).nanoseconds
            if observed_ns > 0:
                self._latest_latency = max(0.0, (now_ns - observed_ns) / _NS_PER_S)

    # -- action callbacks -----------------------------------------------------------------------------
    def _on_goal(self, goal: ExecuteTask.Goal) -> GoalResponse:
        if not goal.instruction.strip():
            self.get_logger().warning("rejected goal: empty instruction")
            return GoalResponse.REJECT
        if goal.time_limit.sec < 0:
            self.get_logger().warning("rejected goal: negative time limit")
            return GoalResponse.REJECT
        with self._lock:
            if self._busy:
                self.get_logger().warning("rejected goal: another task is running")
                return GoalResponse.REJECT
            self._busy = True
        return GoalResponse.ACCEPT

    def _on_cancel(self, _goal_handle) -> CancelResponse:
        self._wake.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> ExecuteTask.Result:
        goal = goal_handle.request
        limit_s = goal.time_limit.sec + goal.time_limit.nanosec / _NS_PER_S or self._default_time_limit
        result = ExecuteTask.Result()
        if goal.seed >= 0:
            message = self._reset_episode(goal.instruction.strip(), goal.seed)
            if message:
                goal_handle.abort()
                result.reason = f"aborted: {message}"
                with self._lock:
                    self._busy = False
                self.get_logger().error(result.reason)
                return result
        start = self.get_clock().now()
        with self._lock:
            self._active, self._succeeded, self._seen_unsolved = True, False, False
            self._chunks, self._steps, self._latest_latency = 0, 0, 0.0
        self._instruction_pub.publish(String(data=goal.instruction.strip()))
        self.get_logger().info(f"goal '{goal.instruction.strip()}' (limit {limit_s:g}s)")

        try:
            while True:
                elapsed = self.get_clock().now() - start
                with self._lock:
                    succeeded, chunks, steps, latency = (
                        self._succeeded, self._chunks, self._steps, self._latest_latency)
                result.steps = steps
                if goal_handle.is_cancel_requested:
                    goal_handle.canceled()
                    result.reason = "canceled"
                    break
                if succeeded:
                    goal_handle.succeed()
                    result.success, result.reason = True, "success"
                    break
                if elapsed.nanoseconds / _NS_PER_S >= limit_s:
                    goal_handle.abort()
                    result.reason = "timeout"
                    break
                if not goal_handle.is_active:
                    result.reason = "aborted: goal no longer active"
                    break
                feedback = ExecuteTask.Feedback()
                feedback.elapsed = elapsed.to_msg()
                feedback.chunks_executed = chunks
                feedback.latest_latency = latency
                goal_handle.publish_feedback(feedback)
                self._wake.wait(1.0 / self._feedback_rate)
                self._wake.clear()
        finally:
            with self._lock:
                self._active = False
                self._busy = False
            self._instruction_pub.publish(String(data=""))
        self.get_logger().info(f"goal ended: {result.reason} after {result.steps} steps")
        return result


    def _reset_episode(self, instruction: str, seed: int) -> str:
        """Reset the simulation for this goal; returns "" on success, else why not."""
        if self._reset_client is None:
            return "the goal asks for a reset (seed >= 0) but reset_service is empty"
        if not self._reset_client.wait_for_service(timeout_sec=5.0):
            return f"reset service {self._reset_client.srv_name} is not available"
        self._switch_bridge(False)
        try:
            # The instruction names the task when it is one of the simulation's; otherwise keep the current task.
            for task in (instruction, ""):
                answer = self._call(self._reset_client, ResetEpisode.Request(task=task, seed=seed))
                if answer is None:
                    return "reset service did not answer"
                if answer.success:
                    self.get_logger().info(f"episode reset: task={answer.task} seed={seed}")
                    # Let joint states published before the reset drain (they arrive in order, at 100 Hz): the
                    # re-enabled bridge holds the first pose it measures after enabling.
                    time.sleep(0.05)
                    return ""
            return f"reset refused: {answer.message}"
        finally:
            self._switch_bridge(True)


def main(args=None) -> int:
    return run_node(TaskServer, args)


if __name__ == "__main__":
    raise SystemExit(main())
