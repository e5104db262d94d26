"""TaskCommander: a blocking Python API over the ExecuteTask action (in the style of nav2_simple_commander).

    import rclpy
    from dit4dit_ros.ros.commander import TaskCommander

    rclpy.init()
    with TaskCommander() as robot:
        robot.wait_for_server()
        result = robot.execute("touch the red cube with the right hand", time_limit=30.0)
        print(result.success, result.reason)

Non-blocking use: ``start()``, then poll ``is_task_complete()`` / ``feedback``, ``cancel()``, ``result()``.
The commander spins its own node on a background thread, so it can be used from plain scripts.
"""

from __future__ import annotations

import threading
import time
import uuid

from builtin_interfaces.msg import Duration
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dit4dit_ros.action import ExecuteTask


class TaskRejectedError(RuntimeError):
    """The task server refused the goal (empty instruction, another task running, bad time limit)."""


class TaskCommander:
    def __init__(self, action_name: str = "execute_task", *, node_name: str | None = None,
                 namespace: str = "", context=None):
        self.node = Node(node_name or f"task_commander_{uuid.uuid4().hex[:8]}", namespace=namespace,
                         context=context)
        self._client = ActionClient(self.node, ExecuteTask, action_name)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        # rclpy's ActionClient registers a goal (and a result request) only AFTER sending it, without a lock: when
        # the spinning thread handled the fast reply in between, the reply was dropped ("Ignoring unexpected goal
        # response") and the goal was lost (twice in ~300 recorded episodes). Sends and spins take turns.
        self._turn = threading.Lock()
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._stop = threading.Event()
        self._spinner.start()
        self._goal_handle = None
        self._result_future = None
        self.feedback: ExecuteTask.Feedback | None = None
        self.feedback_count = 0

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                with self._turn:
                    self._executor.spin_once(timeout_sec=0.02)
            except Exception:  # context shut down under us: stop quietly
                if self._stop.is_set() or not self.node.context.ok():
                    return
                raise
            time.sleep(0.0005)  # outside the lock: a waiting send gets its turn

    # -- API ---------------------------------------------------------------------------------------------
    def wait_for_server(self, timeout: float = 10.0) -> bool:
        """Block until the task server is discovered (discovery can take a few seconds)."""
        return self._client.wait_for_server(timeout_sec=timeout)

    def start(self, instruction: str, *, time_limit: float = 0.0, seed: int = -1, episode_id: str = "",
              timeout: float = 10.0) -> bool:
        """Send a goal; True if accepted, False if the server rejected it."""
        goal = ExecuteTask.Goal()
        goal.instruction = instruction
        whole = int(time_limit)
        goal.time_limit = Duration(sec=whole, nanosec=int(round((time_limit - whole) * 1e9)))
        goal.seed = int(seed)
        goal.episode_id = episode_id
        self.feedback, self.feedback_count = None, 0
        with self._turn:
            future = self._client.send_goal_async(goal, feedback_callback=self._on_feedback)
        handle = self._wait(future, timeout, "the goal response")
        if not handle.accepted:
            self._goal_handle = self._result_future = None
            return False
        self._goal_handle = handle
        with self._turn:
            self._result_future = handle.get_result_async()
        return True

    def is_task_complete(self) -> bool:
        return self._result_future is None or self._result_future.done()

    def cancel(self, timeout: float = 10.0) -> bool:
        """Ask the server to cancel the running goal; True if the request was accepted."""
        if self._goal_handle is None or self.is_task_complete():
            return False
        with self._turn:
            future = self._goal_handle.cancel_goal_async()
        response = self._wait(future, timeout, "the cancel response")
        return len(response.goals_canceling) > 0

    def result(self, timeout: float | None = None) -> ExecuteTask.Result:
        """Wait for and return the result of the last accepted goal."""
        if self._result_future is None:
            raise RuntimeError("no goal was accepted")
        return self._wait(self._result_future, timeout, "the task result").result

    def status(self) -> int | None:
        """action_msgs/GoalStatus code of the finished goal (None while it runs)."""
        if self._result_future is None or not self._result_future.done():
            return None
        return self._result_future.result().status

    def execute(self, instruction: str, *, time_limit: float = 0.0, seed: int = -1,
                episode_id: str = "") -> ExecuteTask.Result:
        """Run one task to completion; raises TaskRejectedError if the goal is refused."""
        if not self.start(instruction, time_limit=time_limit, seed=seed, episode_id=episode_id):
            raise TaskRejectedError(f"task server rejected the instruction {instruction!r}")
        return self.result()

    def close(self) -> None:
        self._stop.set()
        self._spinner.join(timeout=2.0)
        self._client.destroy()
        self._executor.remove_node(self.node)
        self.node.destroy_node()

    def __enter__(self) -> TaskCommander:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------------
    def _on_feedback(self, message) -> None:
        self.feedback = message.feedback
        self.feedback_count += 1

    @staticmethod
    def _wait(future, timeout: float | None, what: str):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not future.done():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout:g}s waiting for {what}")
            time.sleep(0.01)
        return future.result()
