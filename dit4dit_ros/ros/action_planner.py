"""action_planner: System 1 of the policy. At its own (faster) rate, runs the action DiT on the LATEST video
features and the joint state measured at those features' frame time, and publishes an action chunk.

Subscribes  video_features  dit4dit_ros/VideoFeatures       from video_encoder
            joint_states    sensor_msgs/JointState          the robot's measured joints (by name)
Publishes   action_chunk    trajectory_msgs/JointTrajectory  header.stamp = the features' observation stamp;
                                                            point k at time_from_start = k / action_rate
Features older than ``max_feature_age`` (node clock) are dropped and counted: acting on a stale view of the
world is worse than holding. Features of another model (model_id) or malformed ones are refused.
"""

from __future__ import annotations

import threading

from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dit4dit_ros import g1
from dit4dit_ros.inference.buffers import StateHistory
from dit4dit_ros.interfaces import MalformedFeaturesError, msg_to_features, ns_to_time, time_to_ns
from dit4dit_ros.metrics import LatencyStats, RateMeter
from dit4dit_ros.msg import VideoFeatures
from dit4dit_ros.ros.managed import ERROR, FAILURE, OK, SUCCESS, WARN
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.policy_node import PolicyNode
from dit4dit_ros.ros.qos import COMMAND_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node


class ActionPlanner(PolicyNode):
    job_description = "planning"

    def __init__(self, **kwargs):
        super().__init__("action_planner", noise="action", rate=10.0, rate_description="Action chunks",
                         max_rate=200.0, **kwargs)
        self._action_rate = declare(self, "action_rate", 30.0, "Steps per second of the chunk (the rate of the "
                                    "training data's actions)", low=1.0, high=1000.0, read_only=True)
        self._num_steps = declare(self, "num_inference_steps", 0, "Euler steps of the flow (0 = the model's)",
                                  low=0, high=100)
        self._max_age = declare(self, "max_feature_age", 0.5, "Drop features older than this (s, node clock; "
                                "never more than 80 % of a chunk's duration)",
                                low=0.01, high=60.0)
        self._state_tolerance = declare(self, "state_tolerance", 0.05, "Largest gap (s) between the features' "
                                        "frame time and the joint state used with them", low=0.001, high=10.0)
        self._lock = threading.Lock()
        self._features = None
        self._history = StateHistory()
        self.features_received = self.features_refused = self.stale_dropped = self.no_state = 0
        self.published = self.reused = self.bad_states = 0
        self._last_planned_stamp = -1
        self._rate_meter = RateMeter()
        self._inference = LatencyStats()
        self._latency = LatencyStats()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def on_configure(self, state):
        from dit4dit_ros.inference.runtime import ActionPlannerRuntime

        policy = self.load_policy()
        if policy is None:
            return FAILURE
        self._runtime = ActionPlannerRuntime(policy, seed=self._seed, num_steps=self._num_steps or None)
        self._chunk_pub = self.lifecycle_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
        self.subscribe(VideoFeatures, "video_features", self._on_features, COMMAND_QOS)
        self.subscribe(JointState, "joint_states", self._on_joints, SENSOR_QOS)
        self.start_worker(self._plan_once)
        self.get_logger().info(f"model {self._model_id}: {self._rate:g} chunks/s of {self._runtime.horizon} steps "
                               f"at {self._action_rate:g} Hz for {self._runtime.joint_names}")
        return SUCCESS

    # -- inputs -------------------------------------------------------------------------------------------
    def _on_features(self, msg: VideoFeatures) -> None:
        try:
            features = msg_to_features(msg)
            if features.model_id != self._model_id:
                raise MalformedFeaturesError(f"features of model {features.model_id!r}; this planner runs "
                                             f"{self._model_id!r}")
        except MalformedFeaturesError as error:
            self.features_refused += 1
            self._last_error = f"refused features: {error}"
            self.get_logger().warning(self._last_error, throttle_duration_sec=2.0)
            return
        with self._lock:
            self._features = features
        self.features_received += 1

    def _on_joints(self, msg: JointState) -> None:
        if len(msg.name) != len(msg.position):
            self.bad_states += 1
            return
        try:
            state = g1.action_state(dict(zip(msg.name, msg.position)))
        except KeyError as error:
            self.bad_states += 1
            self._last_error = f"joint_states: {error}"
            self.get_logger().warning(self._last_error, throttle_duration_sec=5.0)
            return
        self._history.add(time_to_ns(msg.header.stamp), state)

    # -- the worker ---------------------------------------------------------------------------------------
    def _plan_once(self) -> None:
        if not self.is_active:
            return
        with self._lock:
            features = self._features
        if features is None:
            return
        now_ns = self.get_clock().now().nanoseconds
        # A chunk planned on features older than most of its own duration arrives with its last point in the
        # past (the bridge rejects it as stale): drop such features here, where it costs nothing.
        max_age = min(self._max_age, 0.8 * self._runtime.horizon / self._action_rate)
        if now_ns - features.stamp_ns > max_age * 1e9:
            with self._lock:  # drop it: the next chunk waits for fresh features
                if self._features is features:
                    self._features = None
            self.stale_dropped += 1
            return
        matched = self._history.at(features.stamp_ns, int(self._state_tolerance * 1e9))
        if matched is None:
            self.no_state += 1
            return
        if features.stamp_ns == self._last_planned_stamp:
            self.reused += 1
        actions, seconds = self._runtime.plan(features.tensor, matched[1])
        msg = JointTrajectory(joint_names=list(self._runtime.joint_names))
        msg.header.stamp = ns_to_time(features.stamp_ns)
        for k, positions in enumerate(actions):
            whole, frac = divmod(k / self._action_rate, 1.0)
            msg.points.append(JointTrajectoryPoint(positions=positions.tolist(),
                                                   time_from_start=Duration(sec=int(whole), nanosec=int(frac * 1e9))))
        self._chunk_pub.publish(msg)
        self._last_planned_stamp = features.stamp_ns
        self.published += 1
        self._rate_meter.tick()
        self._inference.add(seconds)
        self._latency.add((self.get_clock().now().nanoseconds - features.stamp_ns) / 1e9)

    def diagnostics(self):
        values = {"model_id": self._model_id, "rate_hz": f"{self._rate_meter.rate():.2f}",
                  "published": self.published, "features_received": self.features_received,
                  "features_refused": self.features_refused, "stale_dropped": self.stale_dropped,
                  "no_matching_state": self.no_state, "features_reused": self.reused,
                  "bad_joint_states": self.bad_states, "errors": self._errors,
                  "skipped_busy": self.worker_skipped(),
                  **self._inference.summary("inference"), **self._latency.summary("observation_to_chunk")}
        if self._errors:
            return ERROR, self._last_error, values
        if self.features_refused or self.bad_states:
            return WARN, self._last_error, values
        return OK, "ok", values


def main(args=None) -> int:
    return run_node(ActionPlanner, args)


if __name__ == "__main__":
    raise SystemExit(main())
