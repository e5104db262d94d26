"""Read episode bags (docs/dataset.md section 1) into decoded, timestamped messages, and write them for tests.

A bag is read with rosbags' indexed ``Reader`` when it was closed cleanly. A recorder that died leaves a
directory without metadata.yaml and an .mcap file without its footer (possibly cut inside a record): such a
file is read sequentially with the mcap library instead, every message before the damage is kept and the
episode is marked ``truncated`` with a warning saying how much survived. Only the topics the converter
needs are decoded (rosbags' Jazzy typestore), so a bag may hold other (custom) types freely.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from mcap.exceptions import EndOfFile
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
import yaml

from dit4dit_ros.perception.images import SUPPORTED_ENCODINGS

EPISODE_KEY = "dit4dit.episode"  # metadata.yaml custom_data keys
OUTCOME_KEY = "dit4dit.outcome"
METADATA_TOPIC = "episode/metadata"

# Role -> default topic name. The first three are required; the others only add metadata and outcome.
DEFAULT_TOPICS: dict[str, str] = {
    "camera": "camera/image_raw",
    "joint_states": "joint_states",
    "joint_commands": "joint_commands",
    "metadata": METADATA_TOPIC,
    "success": "task_success",
}
REQUIRED_ROLES = ("camera", "joint_states", "joint_commands")
MSGTYPES: dict[str, str] = {
    "camera": "sensor_msgs/msg/Image",
    "joint_states": "sensor_msgs/msg/JointState",
    "joint_commands": "sensor_msgs/msg/JointState",
    "metadata": "std_msgs/msg/String",
    "success": "std_msgs/msg/Bool",
}


class BagError(RuntimeError):
    """A bag that cannot be converted; the message names the file and the problem."""


class TimedMessage(NamedTuple):
    """A decoded message with its bag (arrival) time and its header stamp (the log time for header-less types)."""

    log_ns: int
    stamp_ns: int
    msg: Any


@dataclass
class EpisodeBag:
    """What the converter needs from one episode bag."""

    path: Path
    metadata: dict
    outcome: dict | None
    camera: list[TimedMessage]
    joint_states: list[TimedMessage]
    joint_commands: list[TimedMessage]
    topics: dict[str, str]  # role -> the topic's name in this bag (namespaces included)
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Jazzy typestore that decodes (and, in write_episode, encodes) the bag messages."""
    return get_typestore(Stores.ROS2_JAZZY)


def topic_names(topics: dict[str, str] | None = None) -> dict[str, str]:
    """DEFAULT_TOPICS with the given roles renamed; an unknown role is a ValueError (a typo would be ignored)."""
    unknown = set(topics or {}) - set(DEFAULT_TOPICS)
    if unknown:
        raise ValueError(f"unknown topic role(s) {sorted(unknown)}: the roles are {', '.join(DEFAULT_TOPICS)}")
    return {**DEFAULT_TOPICS, **(topics or {})}


def topic_matches(topic: str, name: str) -> bool:
    """Whether the bag topic ``topic`` is the configured ``name``: an absolute name must be equal, a relative
    one may be under any namespace (``joint_states`` matches ``/joint_states`` and ``/g1/joint_states``)."""
    if name.startswith("/"):
        return topic == name
    relative = topic.lstrip("/")
    return relative == name or relative.endswith("/" + name)


class _Collector:
    """Decodes the messages of the wanted topics as a reader yields them, and remembers every topic's type."""

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.types: dict[str, str] = {}
        self.messages: dict[str, list[TimedMessage]] = {}
        self.undecodable: dict[str, int] = {}
        self.count = 0
        self.first_log_ns: int | None = None
        self.last_log_ns: int | None = None

    def add(self, topic: str, msgtype: str, log_ns: int, raw: bytes | memoryview) -> None:
        self.count += 1
        self.first_log_ns = log_ns if self.first_log_ns is None else min(self.first_log_ns, log_ns)
        self.last_log_ns = log_ns if self.last_log_ns is None else max(self.last_log_ns, log_ns)
        self.types.setdefault(topic, msgtype)
        if not any(topic_matches(topic, name) and MSGTYPES[role] == msgtype for role, name in self.names.items()):
            return
        try:
            msg = typestore().deserialize_cdr(raw, msgtype)
        except Exception:  # noqa: BLE001 - a damaged message can break the CDR decoder in any way: count it
            self.undecodable[topic] = self.undecodable.get(topic, 0) + 1
            return
        header = getattr(msg, "header", None)
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec if header is not None else log_ns
        self.messages.setdefault(topic, []).append(TimedMessage(int(log_ns), int(stamp), msg))


def _custom_data(yaml_text: str) -> dict[str, str]:
    """custom_data of a rosbag2 metadata document: metadata.yaml, or the copy a closed MCAP file holds (the
    same fields without the top-level ``rosbag2_bagfile_information`` key)."""
    info = yaml.safe_load(yaml_text) or {}
    return info.get("rosbag2_bagfile_information", info).get("custom_data") or {}


def _read_mcap_sequentially(path: Path, collector: _Collector) -> tuple[dict[str, str], str | None]:
    """Feed every message of one .mcap file to ``collector`` in file order, without the summary at its end.

    Returns the custom_data found in the file's rosbag2 metadata record (written only at close) and, when the
    file is damaged, what stopped the reading (None for an intact file).
    """
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    custom: dict[str, str] = {}
    with path.open("rb") as stream:
        records = StreamReader(stream, validate_crcs=True).records
        while True:
            try:
                record = next(records)
            except StopIteration:
                return custom, None
            except EndOfFile:
                return custom, "cut off before the MCAP footer"
            except Exception as exc:  # noqa: BLE001 - a corrupt file can break the parser in any way: stop there
                return custom, f"{type(exc).__name__}: {exc}"
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
            elif isinstance(record, Message) and record.channel_id in channels:
                topic, msgtype = channels[record.channel_id]
                collector.add(topic, msgtype, record.log_time, record.data)
            elif isinstance(record, Metadata) and record.name == "rosbag2":
                custom = _custom_data(record.metadata.get("serialized_metadata", ""))


def _read_indexed(path: Path, collector: _Collector) -> None:
    with Reader(path) as reader:
        for connection, log_ns, raw in reader.messages():
            collector.add(connection.topic, connection.msgtype, log_ns, raw)


def _read_messages(path: Path, names: dict[str, str]) -> tuple[_Collector, dict[str, str], bool, list[str]]:
    """Read the bag at ``path``: (collected messages, custom_data, truncated, warnings)."""
    if not path.exists():
        raise BagError(f"{path}: no such bag (the path does not exist)")
    warnings: list[str] = []
    custom: dict[str, str] = {}
    if path.is_dir():
        yaml_path = path / "metadata.yaml"
        files = sorted(path.glob("*.mcap"))
        if yaml_path.is_file():
            collector = _Collector(names)
            try:
                custom = _custom_data(yaml_path.read_text())
                _read_indexed(path, collector)
                return collector, custom, False, warnings
            except Exception as exc:  # noqa: BLE001 - any failure of the indexed reader: try the files one by one
                if not files:
                    raise BagError(f"{path}: the bag cannot be read ({type(exc).__name__}: {exc})") from exc
                warnings.append(f"{path}: the indexed reader failed ({exc}); read its .mcap file(s) sequentially")
        elif not files:
            what = "the directory is empty" if not any(path.iterdir()) else "no metadata.yaml and no .mcap file in it"
            raise BagError(f"{path}: not a rosbag2 bag: {what}")
        else:
            warnings.append(f"{path}: no metadata.yaml (was the recorder stopped before closing the bag?): "
                            f"read its .mcap file(s) sequentially")
    elif path.suffix == ".mcap":
        files = [path]
    else:
        raise BagError(f"{path}: not a rosbag2 bag: expected a bag directory or an .mcap file")

    collector = _Collector(names)
    damaged = []
    for file in files:
        before = collector.count
        file_custom, damage = _read_mcap_sequentially(file, collector)
        custom = custom or file_custom
        if damage is not None:
            damaged.append(f"{file.name}: {damage}")
            span = (collector.last_log_ns - collector.first_log_ns) / 1e9 if collector.count else 0.0
            warnings.append(f"{file}: truncated or corrupt ({damage}); kept the {collector.count - before} "
                            f"messages before the damage, the first {span:.3f} s of the bag (log times up to "
                            f"{collector.last_log_ns} ns)")
    if not collector.count:
        raise BagError(f"{path}: no readable messages: not an MCAP bag, or damaged before its first complete "
                       f"chunk ({'; '.join(damaged) or 'the bag is empty'})")
    return collector, custom, bool(damaged), warnings


def _json_object(text: str, what: str, warnings: list[str]) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.append(f"{what} is not valid JSON ({exc}): ignored")
        return None
    if not isinstance(value, dict):
        warnings.append(f"{what} is not a JSON object: ignored")
        return None
    return value


def _resolve_topic(path: Path, role: str, name: str, types: dict[str, str]) -> str | None:
    """The bag topic that plays ``role`` (None if absent); an ambiguous or mistyped match is a BagError."""
    candidates = [topic for topic in types if topic_matches(topic, name)]
    if len(candidates) > 1:
        exact = [topic for topic in candidates if topic.lstrip("/") == name]
        if len(exact) != 1:
            raise BagError(f"{path}: {len(candidates)} topics match {name!r} ({', '.join(sorted(candidates))}): "
                           f"name the one to use with its full name")
        candidates = exact
    if not candidates:
        return None
    topic = candidates[0]
    if types[topic] != MSGTYPES[role]:
        raise BagError(f"{path}: topic {topic} has type {types[topic]}, but the {role} topic must be "
                       f"{MSGTYPES[role]}")
    return topic


def read_episode(path: str | Path, topics: dict[str, str] | None = None) -> EpisodeBag:
    """The decoded episode in the bag at ``path`` (a bag directory or an .mcap file).

    ``topics`` renames roles of DEFAULT_TOPICS. Raises BagError for what cannot be converted: a path that is
    not a bag, a bag without readable messages, a missing camera/joint_states/joint_commands topic or an
    image encoding the converter does not decode.
    """
    path = Path(path)
    names = topic_names(topics)
    collector, custom, truncated, warnings = _read_messages(path, names)

    found: dict[str, str] = {}
    for role, name in names.items():
        topic = _resolve_topic(path, role, name, collector.types)
        if topic is not None and topic in collector.messages:
            found[role] = topic
        elif role in REQUIRED_ROLES:
            listed = ", ".join(f"{t} ({collector.types[t]})" for t in sorted(collector.types)) or "none"
            raise BagError(f"{path}: no {MSGTYPES[role]} messages on {name!r} (the {role} topic); "
                           f"topics in the bag: {listed}")
    for topic, count in collector.undecodable.items():
        warnings.append(f"{path}: {count} message(s) on {topic} could not be decoded: skipped")

    def of(role: str) -> list[TimedMessage]:
        return collector.messages.get(found.get(role, ""), [])

    encodings = {m.msg.encoding for m in of("camera")} - set(SUPPORTED_ENCODINGS)
    if encodings:
        raise BagError(f"{path}: the camera topic {found['camera']} has image encoding(s) {sorted(encodings)}, "
                       f"which the converter cannot decode (supported: {', '.join(SUPPORTED_ENCODINGS)})")

    metadata = None
    if EPISODE_KEY in custom:
        metadata = _json_object(custom[EPISODE_KEY], f"{path}: custom_data {EPISODE_KEY}", warnings)
    if metadata is None and of("metadata"):
        metadata = _json_object(of("metadata")[0].msg.data, f"{path}: the first {found['metadata']} message",
                                warnings)
    if metadata is None:
        warnings.append(f"{path}: no episode metadata (custom_data {EPISODE_KEY} or {names['metadata']} topic)")

    outcome = None
    if OUTCOME_KEY in custom:
        outcome = _json_object(custom[OUTCOME_KEY], f"{path}: custom_data {OUTCOME_KEY}", warnings)
    if outcome is None and of("success"):
        outcome = {"success": bool(of("success")[-1].msg.data), "reason": f"last {found['success']} message"}

    return EpisodeBag(path=path, metadata=metadata or {}, outcome=outcome, camera=of("camera"),
                      joint_states=of("joint_states"), joint_commands=of("joint_commands"), topics=found,
                      truncated=truncated, warnings=warnings)


def write_episode(path: str | Path, messages: Iterable[tuple[str, str, int, Any]], metadata: dict,
                  outcome: dict | None = None, storage: str = "mcap") -> Path:
    """Write an episode bag as the recorder does: ``messages`` are (topic, msgtype, log_time_ns, message built
    from typestore().types), in log-time order. The metadata goes into custom_data and, as the recorder also
    does, into a first ``episode/metadata`` message; the outcome (if given) into custom_data."""
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    store = typestore()
    messages = list(messages)
    text = json.dumps(metadata, sort_keys=True)
    first_ns = min((log_ns for _, _, log_ns, _ in messages), default=0)
    messages.insert(0, (METADATA_TOPIC, MSGTYPES["metadata"], first_ns, store.types[MSGTYPES["metadata"]](data=text)))
    writer = Writer(Path(path), version=9, storage_plugin=plugins[storage])
    writer.set_custom_data(EPISODE_KEY, text)
    if outcome is not None:
        writer.set_custom_data(OUTCOME_KEY, json.dumps(outcome, sort_keys=True))
    with writer:
        connections: dict[str, Any] = {}
        for topic, msgtype, log_ns, message in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], int(log_ns), store.serialize_cdr(message, msgtype))
    return Path(path)
