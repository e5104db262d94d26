"""LowCmd and LowState as CDR bytes, straight from and to numpy arrays: the 500 Hz path without message objects.

Building a unitree_hg LowState as rclpy objects (35 MotorState instances) costs ~0.36 ms and deserialising one
~0.29 ms: at 500 Hz in three processes on two cores that alone kept the loop near 150 Hz. Both messages are
fixed-size (every array bounded), so each leaf value sits at a fixed byte offset of the serialised message:
computed once here from the fields of robot/crc.py's packed-struct dtypes (one description of each message)
with the CDR rules (little-endian, 4-byte encapsulation header, every primitive aligned to its size from the
payload start), then read and written with numpy fancy indexing.
rclpy publishes such bytes as they are (Publisher.publish(bytes)) and hands them over from raw subscriptions.
A test checks the bytes against rclpy's own serialize_message both ways.
"""

from __future__ import annotations

import numpy as np

from dit4dit_ros.robot.crc import LOWCMD_DTYPE, LOWSTATE_DTYPE

HEADER = b"\x00\x01\x00\x00"  # CDR, little-endian, no options


class CdrError(ValueError):
    """Bytes that are not this message (wrong size or encapsulation)."""


class CdrLayout:
    """Byte offsets of every leaf of a fixed-size message, by dotted path ("motor_cmd.q" -> 35 offsets)."""

    def __init__(self, name: str, dtype: np.dtype):
        self.name = name
        offsets: dict[str, list[int]] = {}
        self.kinds: dict[str, np.dtype] = {}
        end = self._walk(dtype, 0, "", offsets)
        self.offsets = {path: np.array(values) for path, values in offsets.items()}
        self.size = len(HEADER) + end
        # Fast DDS pads a serialised payload to a multiple of 4 bytes.
        self.wire_size = len(HEADER) + (end + 3) // 4 * 4
        # Index arrays into views of the buffer of the leaf's type (every leaf is aligned to its size).
        self._index = {path: self.offsets[path] // self.kinds[path].itemsize for path in self.offsets}

    def _walk(self, struct: np.dtype, position: int, prefix: str, offsets: dict) -> int:
        """The fields of a numpy struct dtype in order (its padding is the C struct's, not CDR's: ignored)."""
        for name in struct.names:
            field = struct.fields[name][0]
            kind, shape = field.subdtype if field.subdtype else (field, ())
            path = prefix + name
            for _ in range(int(np.prod(shape, dtype=int))):
                if kind.names is not None:
                    position = self._walk(kind, position, path + ".", offsets)
                    continue
                dtype = kind.newbyteorder("<")
                position = (position + dtype.itemsize - 1) // dtype.itemsize * dtype.itemsize
                offsets.setdefault(path, []).append(len(HEADER) + position)
                self.kinds[path] = dtype
                position += dtype.itemsize
        return position

    def encode(self, values: dict[str, object]) -> bytes:
        """Serialised message with `values` (path -> scalar or array in element order); the rest zero."""
        buffer = np.zeros(self.wire_size, dtype=np.uint8)
        buffer[:len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
        for path, value in values.items():
            if path not in self._index:
                raise KeyError(f"{self.name} has no field {path!r}")
            buffer.view(self.kinds[path])[self._index[path]] = value
        return buffer.tobytes()

    def decode(self, data: bytes, paths) -> dict[str, np.ndarray]:
        """The values of `paths` from serialised bytes (CdrError when the bytes cannot be this message)."""
        if len(data) < self.size or bytes(data[:2]) != HEADER[:2]:
            raise CdrError(f"{len(data)} bytes starting {bytes(data[:4])!r} are not a serialised {self.name} "
                           f"({self.size} bytes, little-endian CDR)")
        buffer = np.frombuffer(data, dtype=np.uint8, count=self.wire_size if len(data) >= self.wire_size
                               else self.size)
        if len(buffer) % 4:
            buffer = np.concatenate([buffer, np.zeros(4 - len(buffer) % 4, dtype=np.uint8)])
        return {path: buffer.view(self.kinds[path])[self._index[path]] for path in paths}


LOWCMD_LAYOUT = CdrLayout("unitree_hg/LowCmd", LOWCMD_DTYPE)
LOWSTATE_LAYOUT = CdrLayout("unitree_hg/LowState", LOWSTATE_DTYPE)
