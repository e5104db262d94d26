"""EpisodeRunner: seeded episodes through a running graph, the deployment path, for recording and evaluation.

One episode: ``controller_bridge/enable`` false -> ``sim/reset`` (task, seed) -> enable again once the joint
states come from the new episode -> optionally ``recorder/start`` -> an ExecuteTask goal (the task server
latches the instruction, the policy or the expert acts, the goal ends on task_success or the time limit) ->
optionally ``recorder/stop`` (keep or discard). The reset comes first and the goal does not reset again, so a
recorded bag starts in the new episode's initial state. The bridge is switched off across the reset because
it would otherwise go on holding the LAST episode's final pose: the arm, teleported to the ready pose, swung
straight back to where it had touched the previous object (seen as 0.2 s "successes" and as demonstrations
that began with a jerk toward the old pose). Re-enabled, it holds the pose measured then. While an episode runs the runner can
also keep the head-camera frames (for videos) and measures each action chunk's age on arrival (node clock
minus the chunk's observation stamp: camera frame -> chunk latency).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from dit4dit_ros.interfaces import time_to_ns
from dit4dit_ros.ros.commander import TaskCommander
from dit4dit_ros.ros.qos import COMMAND_QOS, SENSOR_QOS
from dit4dit_ros.srv import ResetEpisode, StartRecording, StopRecording


@dataclass
class EpisodeResult:
    task: str
    instruction: str
    seed: int
    success: bool
    reason: str
    steps: int
    wall_s: float
    bag: str = ""  # the kept bag directory, "" when not recorded or discarded
    latencies_s: list[float] = field(default_factory=list)  # frame -> chunk arrival, per chunk
    frames: list[np.ndarray] = field(default_factory=list)  # head camera (rgb8), when captured

    def summary(self) -> dict:
        return {"task": self.task, "seed": self.seed, "success": self.success, "reason": self.reason,
                "steps": self.steps, "wall_s": round(self.wall_s, 2), "bag": self.bag,
                "chunks": len(self.latencies_s),
                "latency_ms_mean": round(1e3 * float(np.mean(self.latencies_s)), 1) if self.latencies_s else None}


class EpisodeRunner:
    def __init__(self, *, namespace: str = "", use_sim_time: bool = True, context=None,
                 reset_service: str = "sim/reset", recorder: str = "recorder", camera_topic: str = "camera/image_raw",
                 chunk_topic: str = "action_chunk", bridge: str = "controller_bridge"):
        self.commander = TaskCommander(namespace=namespace, context=context)
        node = self.node = self.commander.node
        node.set_parameters([Parameter("use_sim_time", Parameter.Type.BOOL, use_sim_time)])
        self._reset = node.create_client(ResetEpisode, reset_service)
        self._start = node.create_client(StartRecording, f"{recorder}/start")
        self._stop = node.create_client(StopRecording, f"{recorder}/stop")
        self._enable = node.create_client(SetBool, f"{bridge}/enable")
        self._state_stamp_ns = 0  # header stamp of the newest joint state
        self._lock = threading.Lock()
        self._capturing = False
        self._measuring = False
        self._frames: list[np.ndarray] = []
        self._latencies: list[float] = []
        node.create_subscription(Image, camera_topic, self._on_image, SENSOR_QOS)
        node.create_subscription(JointTrajectory, chunk_topic, self._on_chunk, COMMAND_QOS)
        node.create_subscription(JointState, "joint_states", self._on_joint_state, SENSOR_QOS)

    # -- readiness ---------------------------------------------------------------------------------------------
    def wait_until_ready(self, timeout: float, *, managed: list[str] = (), recorder: bool = False) -> list[str]:
        """Block until the task server, the reset service, every managed node (ACTIVE) and, if asked, the
        recorder are up; returns what is still missing (empty = ready)."""
        from dit4dit_ros.ros.readiness import wait_until_active

        deadline = time.monotonic() + timeout
        missing = []
        if not self.commander.wait_for_server(timeout=timeout):
            missing.append("task server")
        clients = [("sim reset service", self._reset), ("controller bridge enable service", self._enable)]
        clients += [("recorder", self._start)] if recorder else []
        for name, client in clients:
            if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
                missing.append(name)
        missing += wait_until_active(self.node, list(managed), max(0.1, deadline - time.monotonic()))
        return missing

    # -- one episode -------------------------------------------------------------------------------------------
    def run(self, task: str, seed: int, *, time_limit: float = 0.0, record: bool = False, source: str = "policy",
            keep_failures: bool = False, capture: bool = False, episode_name: str = "",
            metadata: dict | None = None, alive=lambda: True) -> EpisodeResult:
        """One seeded episode; ``alive()`` False (the graph died) aborts it with RuntimeError. ``time_limit`` 0
        means the task's own limit (the simulation ends the episode there, the goal must end with it)."""
        if time_limit <= 0:
            from dit4dit_ros.sim.tasks import get_task

            time_limit = get_task(task).time_limit
        self._set_bridge(False)
        reset = self._call(self._reset, ResetEpisode.Request(task=task, seed=int(seed)), "sim/reset")
        if not reset.success:
            raise RuntimeError(f"sim/reset({task!r}, {seed}) failed: {reset.message}")
        self._wait_for_new_state(self.node.get_clock().now().nanoseconds)
        self._set_bridge(True)
        bag = ""
        if record:
            started = self._call(self._start, StartRecording.Request(
                name=episode_name, task=reset.task, instruction=reset.instruction, seed=int(reset.seed),
                source=source, metadata=json.dumps(metadata or {})), "recorder/start")
            if not started.success:
                raise RuntimeError(f"recorder/start failed: {started.message}")
        with self._lock:
            self._frames, self._latencies = [], []
            self._capturing, self._measuring = capture, True
        begun = time.monotonic()
        try:
            if not self.commander.start(reset.instruction, time_limit=time_limit, episode_id=episode_name):
                raise RuntimeError(f"the task server rejected {reset.instruction!r}")
            while not self.commander.is_task_complete():
                if not alive():
                    raise RuntimeError("the graph stopped during the episode")
                time.sleep(0.05)
            result = self.commander.result()
        except BaseException:
            if record:  # close the bag (kept, marked as not a success) so that the recorder is free again
                try:
                    self._call(self._stop, StopRecording.Request(outcome='{"reason": "interrupted"}'),
                               "recorder/stop", timeout=5.0)
                except Exception:  # noqa: BLE001 - the graph may be gone; the original error matters more
                    pass
            raise
        finally:
            with self._lock:
                self._capturing = self._measuring = False
                frames, latencies = self._frames, self._latencies
        wall = time.monotonic() - begun
        if record:
            discard = not result.success and not keep_failures
            outcome = json.dumps({"reason": result.reason, "steps": int(result.steps), "wall_s": wall})
            stopped = self._call(self._stop, StopRecording.Request(
                discard=discard, task_success=bool(result.success), outcome=outcome), "recorder/stop")
            if not stopped.success:
                raise RuntimeError(f"recorder/stop failed: {stopped.message}")
            bag = stopped.path
        return EpisodeResult(task=reset.task, instruction=reset.instruction, seed=int(reset.seed),
                             success=bool(result.success), reason=result.reason, steps=int(result.steps),
                             wall_s=wall, bag=bag, latencies_s=latencies, frames=frames)

    def close(self) -> None:
        self.commander.close()

    def __enter__(self) -> EpisodeRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _call(self, client, request, what: str, timeout: float = 20.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{what} is not available")
        return self.commander._wait(client.call_async(request), timeout, what)

    def _set_bridge(self, on: bool) -> None:
        answer = self._call(self._enable, SetBool.Request(data=on), "controller_bridge/enable")
        if not answer.success:
            raise RuntimeError(f"controller_bridge/enable({on}) refused: {answer.message}")

    def _wait_for_new_state(self, after_ns: int, timeout: float = 10.0) -> None:
        """Until a joint state stamped 30 ms after ``after_ns`` arrived: by then the bridge, on the same stream,
        measures the reset pose too (joint states come at 100 Hz)."""
        deadline = time.monotonic() + timeout
        while self._state_stamp_ns < after_ns + 30_000_000:
            if time.monotonic() > deadline:
                raise TimeoutError("no joint_states from the new episode within 10 s of the reset")
            time.sleep(0.01)

    def _on_joint_state(self, msg: JointState) -> None:
        self._state_stamp_ns = max(self._state_stamp_ns, time_to_ns(msg.header.stamp))

    def _on_image(self, msg: Image) -> None:
        if not self._capturing or msg.encoding != "rgb8":
            return
        frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        with self._lock:
            if self._capturing:
                self._frames.append(frame.reshape(msg.height, msg.width, 3).copy())

    def _on_chunk(self, msg: JointTrajectory) -> None:
        if not self._measuring:
            return
        age = (self.node.get_clock().now().nanoseconds - time_to_ns(msg.header.stamp)) / 1e9
        with self._lock:
            if self._measuring:
                self._latencies.append(age)
