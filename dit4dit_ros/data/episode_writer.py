"""One episode -> one rosbag2 directory in MCAP storage, from raw CDR bytes (what the recorder node receives).

Plain Python (rosbags, no rclpy), so that it is tested without ROS. It stores what `ros2 bag record` would
store, the received bytes unchanged (re-serialising in Python can change padding, see
../shared/docs/ros2-from-pip.md), plus the episode's metadata twice: in metadata.yaml (`custom_data`, what
`ros2 bag info` shows) and as the bag's first message on `episode/metadata`, which survives a recorder that
dies before closing the bag (no metadata.yaml then, see dit4dit_ros/data/bags.py for reading such bags).
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from dit4dit_ros.data.bags import EPISODE_KEY, METADATA_TOPIC, OUTCOME_KEY  # what the converter reads back


class RecordingError(RuntimeError):
    """The episode cannot be written (the directory exists, a type is unknown, the bag is closed)."""


def typestore_with(package_msg_dirs: dict[str, Path] | None = None):
    """The Jazzy typestore plus the .msg files of the given packages ({"dit4dit_ros": share/.../msg})."""
    store = get_typestore(Stores.ROS2_JAZZY)
    for package, folder in (package_msg_dirs or {}).items():
        types = {}
        for path in sorted(Path(folder).glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(types)
    return store


class EpisodeWriter:
    """Writes one episode bag. Thread-safe: subscription callbacks on several threads call ``write``."""

    def __init__(self, path: str | Path, metadata: dict, *, log_time_ns: int, typestore=None):
        self.path = Path(path)
        if self.path.exists():
            raise RecordingError(f"{self.path} exists already: choose another episode name")
        self.metadata = dict(metadata)
        self._store = typestore or typestore_with()
        self._lock = threading.Lock()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.set_custom_data(EPISODE_KEY, json.dumps(self.metadata, sort_keys=True))
        self._writer.open()
        self._closed = False
        text = self._store.types["std_msgs/msg/String"](data=json.dumps(self.metadata, sort_keys=True))
        self.write(METADATA_TOPIC, "std_msgs/msg/String",
                   bytes(self._store.serialize_cdr(text, "std_msgs/msg/String")), log_time_ns)

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    def write(self, topic: str, msgtype: str, raw: bytes, log_time_ns: int) -> None:
        """Append one message (CDR bytes as received) on ``topic`` of ROS type ``msgtype`` (pkg/msg/Name)."""
        with self._lock:
            if self._closed:
                return  # a callback that raced the stop: the episode is over
            connection = self._connections.get(topic)
            if connection is None:
                if msgtype not in self._store.types:
                    raise RecordingError(f"cannot record {topic}: message type {msgtype} is unknown to the typestore")
                connection = self._writer.add_connection(topic, msgtype, typestore=self._store)
                self._connections[topic] = connection
            self._writer.write(connection, int(log_time_ns), bytes(raw))
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.first_ns = log_time_ns if self.first_ns is None else min(self.first_ns, log_time_ns)
            self.last_ns = log_time_ns if self.last_ns is None else max(self.last_ns, log_time_ns)

    def close(self, outcome: dict | None = None) -> Path:
        """Finish the bag (metadata.yaml with the outcome) and return its directory."""
        with self._lock:
            if self._closed:
                raise RecordingError(f"{self.path} is already closed")
            self._closed = True
            if outcome is not None:
                self._writer.set_custom_data(OUTCOME_KEY, json.dumps(outcome, sort_keys=True))
            self._writer.close()
        return self.path

    def discard(self) -> None:
        """Close and delete the bag (a failed or aborted demonstration)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._writer.close()
                except Exception:  # noqa: BLE001 - it is being deleted anyway
                    pass
        shutil.rmtree(self.path, ignore_errors=True)
