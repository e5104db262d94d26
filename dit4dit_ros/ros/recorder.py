"""recorder: each episode to its own rosbag2 (MCAP) on machines without ``ros2 bag`` (and beside it on ROS installs).

Subscribes to ``topics`` from start-up, as soon as each appears in the graph with its type, with a QoS
adapted to its publishers (reliable only when every publisher is, transient-local for latched topics), so
that no episode loses its first second to DDS matching. Subscriptions are raw: the received CDR bytes go
to the bag unchanged, as ``ros2 bag record`` stores them. Messages are written only while an episode is
being recorded; the log time is the node clock (sim time under use_sim_time), the stamps in the headers are
what the converter aligns on.

Services
  ~/start    dit4dit_ros/srv/StartRecording  open <output_dir>/<name>/ with the task, instruction, seed, source
  ~/stop     dit4dit_ros/srv/StopRecording   keep (close, with the outcome) or discard (delete) the episode
  ~/discard  std_srvs/Trigger                discard the episode being recorded
Publishes
  /diagnostics   per-topic message counts, the episode being recorded
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.runtime import run_node
from dit4dit_ros.srv import StartRecording, StopRecording

DEFAULT_TOPICS = ["camera/image_raw", "joint_states", "joint_commands", "action_chunk", "instruction",
                  "task_status", "task_success", "estop"]


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = type_name.partition("/msg/")
    if not name:
        raise ValueError(f"not a message type: {type_name!r}")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def json_object(text: str, what: str) -> dict:
    """A service request's optional JSON-object field ("" = {}); ValueError saying which field is bad."""
    value = json.loads(text) if text else {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def adapted_qos(publishers) -> QoSProfile:
    """A subscription QoS that matches every publisher (what ros2 bag record does)."""
    reliable = bool(publishers) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = bool(publishers) and all(
        p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Recorder(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        from dit4dit_ros.data.episode_writer import EpisodeWriter, RecordingError, typestore_with

        self._writer_cls, self._recording_error = EpisodeWriter, RecordingError
        self._topics = list(declare(self, "topics", DEFAULT_TOPICS,
                                    "Topics recorded into every episode (relative names follow the namespace)"))
        self._output_dir = Path(declare(self, "output_dir", "episodes",
                                        "Folder that receives one bag directory per episode")).expanduser()
        self._robot = declare(self, "robot", "unitree_g1", "Robot name stored in each episode's metadata")
        self._store = typestore_with(self._msg_dirs())
        self._lock = threading.Lock()
        self._writer = None
        self._episodes = 0
        self._subscribed: dict[str, str] = {}  # resolved topic -> type
        # Latched topics (instruction, task status, e-stop): their last message before an episode starts is
        # the state it starts in, so every episode bag begins with it (ros2 bag gets it the same way, from the
        # transient-local history when it subscribes).
        self._latched: dict[str, tuple[str, bytes] | None] = {}
        self._inputs = ReentrantCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(StartRecording, "~/start", self._on_start, callback_group=services)
        self._stop_service = self.create_service(StopRecording, "~/stop", self._on_stop, callback_group=services)
        self.create_service(Trigger, "~/discard", self._on_discard, callback_group=services)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(0.5, self._discover, callback_group=services)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=services)
        self._discover()
        self.get_logger().info(f"recording {self._topics} into {self._output_dir}/<episode> on ~/start")

    @staticmethod
    def _msg_dirs() -> dict[str, Path]:
        """This package's own message definitions (for bags that record VideoFeatures)."""
        try:
            from ament_index_python.packages import get_package_share_directory

            folder = Path(get_package_share_directory("dit4dit_ros")) / "msg"
            return {"dit4dit_ros": folder} if folder.is_dir() else {}
        except Exception:  # noqa: BLE001 - without the share folder only the standard types are recordable
            return {}

    # -- subscriptions ---------------------------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe to every configured topic that has appeared (with one type) since the last look."""
        types = dict(self.get_topic_names_and_types())
        for topic in self._topics:
            resolved = self.resolve_topic_name(topic)
            if resolved in self._subscribed or resolved not in types:
                continue
            names = types[resolved]
            if len(names) != 1:
                self.get_logger().warn(f"not recording {resolved}: it has several types {names}")
                continue
            type_name = names[0]
            try:
                cls = message_class(type_name)
            except (ImportError, AttributeError, ValueError) as error:
                self.get_logger().warn(f"not recording {resolved}: cannot import {type_name} ({error})")
                self._subscribed[resolved] = type_name
                continue
            if type_name not in self._store.types:
                self.get_logger().warn(f"not recording {resolved}: {type_name} has no definition for the bag")
                self._subscribed[resolved] = type_name
                continue
            qos = adapted_qos(self.get_publishers_info_by_topic(resolved))
            if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
                self._latched[resolved] = None
            self.create_subscription(cls, resolved, lambda raw, t=resolved, n=type_name: self._on_message(t, n, raw),
                                     qos, raw=True, callback_group=self._inputs)
            self._subscribed[resolved] = type_name
            self.get_logger().info(f"subscribed to {resolved} [{type_name}]")

    def _on_message(self, topic: str, type_name: str, raw: bytes) -> None:
        if topic in self._latched:
            self._latched[topic] = (type_name, raw)
        writer = self._writer
        if writer is None:
            return
        try:  # the resolved absolute name is the bag's topic name, as `ros2 bag record` writes it

            writer.write(topic, type_name, raw, self.get_clock().now().nanoseconds)
        except Exception as error:  # noqa: BLE001 - one bad topic must not stop the episode
            self.get_logger().error(f"{topic}: not recorded: {error}", throttle_duration_sec=5.0)

    # -- services ----------------------------------------------------------------------------------------------
    def _on_start(self, request, response):
        with self._lock:
            if self._writer is not None:
                response.success, response.message = False, f"already recording {self._writer.path}"
                return response
            self._episodes += 1
            name = request.name or (f"episode_{datetime.now(timezone.utc).strftime('%Y%m%d_%H%M%S')}"
                                    f"_{self._episodes:04d}")
            if "/" in name or name in (".", ".."):
                response.success, response.message = False, f"episode name {name!r} must be a plain folder name"
                return response
            try:
                extra = json_object(request.metadata, "metadata")
            except ValueError as error:
                response.success, response.message = False, f"bad metadata: {error}"
                return response
            metadata = {**extra, "episode": name, "task": request.task, "instruction": request.instruction,
                        "seed": int(request.seed), "source": request.source or "unknown", "robot": self._robot,
                        "namespace": self.get_namespace(), "recorded_at": time.time(),
                        "topics": sorted(self._subscribed)}
            try:
                self._output_dir.mkdir(parents=True, exist_ok=True)
                self._writer = self._writer_cls(self._output_dir / name, metadata,
                                                log_time_ns=self.get_clock().now().nanoseconds,
                                                typestore=self._store)
            except (OSError, self._recording_error) as error:
                response.success, response.message = False, str(error)
                return response
            now = self.get_clock().now().nanoseconds
            for topic, latest in list(self._latched.items()):
                if latest is not None:
                    self._writer.write(topic, latest[0], latest[1], now)
            response.success, response.path = True, str(self._writer.path)
            response.message = f"recording {name}"
            missing = [t for t in self._topics if self.resolve_topic_name(t) not in self._subscribed]
            if missing:
                response.message += f" (not yet in the graph: {missing})"
            self.get_logger().info(response.message)
            return response

    def _on_stop(self, request, response):
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            response.success, response.message = False, "no episode is being recorded"
            return response
        response.messages = writer.message_count
        if request.discard:
            writer.discard()
            response.success, response.message = True, f"discarded {writer.path.name}"
            self.get_logger().info(response.message)
            return response
        try:
            outcome = json_object(request.outcome, "outcome")
        except ValueError as error:
            outcome = {"outcome_error": str(error)}  # the data must not be lost over a bad annotation
        outcome["success"] = bool(request.task_success)
        if writer.first_ns is not None and writer.last_ns is not None:
            outcome.setdefault("duration", (writer.last_ns - writer.first_ns) / 1e9)
        try:
            path = writer.close(outcome)
        except Exception as error:  # noqa: BLE001 - say so; the partial bag stays on disk for bags.py to read
            response.success, response.message = False, f"closing {writer.path} failed: {error}"
            return response
        response.success, response.path = True, str(path)
        response.message = f"kept {path.name}: {writer.message_count} messages, {dict(writer.counts)}"
        self.get_logger().info(response.message)
        return response

    def _on_discard(self, _request, response):
        stop = StopRecording.Request(discard=True)
        result = self._on_stop(stop, StopRecording.Response())
        response.success, response.message = result.success, result.message
        return response

    def _publish_diagnostics(self) -> None:
        writer = self._writer
        values = [KeyValue(key="episode", value=str(writer.path) if writer else ""),
                  KeyValue(key="subscribed", value=",".join(sorted(self._subscribed)))]
        if writer is not None:
            values += [KeyValue(key=f"count {t}", value=str(n)) for t, n in sorted(writer.counts.items())]
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=self.get_fully_qualified_name(),
                                  message="recording" if writer else "idle", values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def destroy_node(self):
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:  # shutting down mid-episode: keep what was recorded, marked as interrupted
            writer.close({"success": False, "reason": "recorder stopped"})
        super().destroy_node()


def main(args=None) -> int:
    return run_node(Recorder, args)


if __name__ == "__main__":
    raise SystemExit(main())
