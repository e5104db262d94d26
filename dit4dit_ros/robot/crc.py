"""The CRC of the Unitree G1's LowCmd / LowState (unitree_hg), in plain Python and numpy (no ROS import).

The robot checks, and silently drops a LowCmd whose ``crc`` field is wrong. The CRC is Unitree's
``crc32_core``, the STM32 hardware CRC: CRC-32 with polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no
reflection, no final xor, fed 32-bit words most significant bit first. The words are those of the message
packed as its little-endian C struct (natural alignment, zero padding), all but the last one (``crc``).

Fed whole words MSB first, that is CRC-32/MPEG-2 over each word's big-endian bytes. zlib's CRC-32 is the
reflected form of the same polynomial, so MPEG-2 = reflect32(~zlib.crc32(bytes with their bits reversed)):
a table lookup and one zlib call instead of 8000 Python-level bit steps per LowCmd.

Layouts (bytes): LowCmd 1004 = mode_pr, mode_machine, 2 pad, 35 x (mode, 3 pad, q, dq, tau, kp, kd,
reserve), reserve[4], crc. LowState 2092 = version[2], mode_pr, mode_machine, 2 pad, tick, imu (quaternion[4],
gyroscope[3], accelerometer[3], rpy[3], temperature, 2 pad), 35 x (mode, 3 pad, q, dq, ddq, tau_est,
temperature[2], vol, sensor[2], motorstate, reserve[4]), wireless_remote[40], reserve[4], crc.
Floats are float32 on the wire: every value is converted to float32 before the CRC, as the wire does.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

NUM_MOTORS = 35
POLYNOMIAL = 0x04C11DB7

MOTOR_CMD_DTYPE = np.dtype([("mode", "u1"), ("q", "<f4"), ("dq", "<f4"), ("tau", "<f4"), ("kp", "<f4"),
                            ("kd", "<f4"), ("reserve", "<u4")], align=True)
LOWCMD_DTYPE = np.dtype([("mode_pr", "u1"), ("mode_machine", "u1"), ("motor_cmd", MOTOR_CMD_DTYPE, (NUM_MOTORS,)),
                         ("reserve", "<u4", (4,)), ("crc", "<u4")], align=True)

IMU_STATE_DTYPE = np.dtype([("quaternion", "<f4", (4,)), ("gyroscope", "<f4", (3,)), ("accelerometer", "<f4", (3,)),
                            ("rpy", "<f4", (3,)), ("temperature", "<i2")], align=True)
MOTOR_STATE_DTYPE = np.dtype([("mode", "u1"), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"), ("tau_est", "<f4"),
                              ("temperature", "<i2", (2,)), ("vol", "<f4"), ("sensor", "<u4", (2,)),
                              ("motorstate", "<u4"), ("reserve", "<u4", (4,))], align=True)
LOWSTATE_DTYPE = np.dtype([("version", "<u4", (2,)), ("mode_pr", "u1"), ("mode_machine", "u1"), ("tick", "<u4"),
                           ("imu_state", IMU_STATE_DTYPE), ("motor_state", MOTOR_STATE_DTYPE, (NUM_MOTORS,)),
                           ("wireless_remote", "u1", (40,)), ("reserve", "<u4", (4,)), ("crc", "<u4")], align=True)

assert LOWCMD_DTYPE.itemsize == 1004 and LOWSTATE_DTYPE.itemsize == 2092  # Unitree's packed sizes

# Bit reversal of every byte value (numpy for arrays, a list for the four bytes of the result).
_REVERSED_BYTES = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], dtype=np.uint8)
_REVERSED_BYTE_LIST = _REVERSED_BYTES.tolist()


def _reflect32(value: int) -> int:
    table = _REVERSED_BYTE_LIST
    return (table[value & 0xFF] << 24 | table[(value >> 8) & 0xFF] << 16 | table[(value >> 16) & 0xFF] << 8
            | table[value >> 24])


def crc32_mpeg2(data) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no xor out) of a bytes-like object."""
    reversed_bits = _REVERSED_BYTES[np.frombuffer(data, dtype=np.uint8)]
    return _reflect32(~zlib.crc32(reversed_bits) & 0xFFFFFFFF)


def crc32_core(words) -> int:
    """Unitree's crc32_core over uint32 words (each fed most significant bit first): an int in [0, 2**32)."""
    big_endian = np.ascontiguousarray(words, dtype=">u4")  # the words' bytes in the order their bits are fed
    return crc32_mpeg2(big_endian.view(np.uint8))


def record_crc(record: np.ndarray) -> int:
    """The CRC of one packed record (a LOWCMD_DTYPE / LOWSTATE_DTYPE array of shape () or (1,)): all of its
    little-endian 32-bit words but the last, the crc field itself."""
    words = np.frombuffer(np.ascontiguousarray(record).data, dtype="<u4")
    return crc32_core(words[:-1])


def _get(source: Any, name: str, default: Any = None):
    if isinstance(source, Mapping):
        return source.get(name, default)
    return getattr(source, name, default)


def _has(source: Any, name: str) -> bool:
    return name in source if isinstance(source, Mapping) else hasattr(source, name)


def _fill(record: np.ndarray, dtype: np.dtype, source: Any, partial: bool) -> None:
    """Copy the fields of ``source`` (attributes or mapping keys named as in ``dtype``) into ``record``.

    An array-of-structs field (motor_cmd, motor_state) takes either a sequence of objects (a message's
    list of MotorCmd) or one object / mapping of per-motor arrays. ``partial``: missing fields stay zero
    (otherwise a missing field raises); a name that is no field of the dtype raises either way."""
    if partial and isinstance(source, Mapping):
        unknown = set(source) - set(dtype.names)
        if unknown:
            raise KeyError(f"no such field(s) in the packed struct: {sorted(unknown)} (fields: {dtype.names})")
    for name in dtype.names:
        if name == "crc":
            continue
        if not _has(source, name):
            if partial:
                continue
            raise AttributeError(f"{type(source).__name__} has no field '{name}'")
        value = _get(source, name)
        field = dtype.fields[name][0]
        base = field.subdtype[0] if field.subdtype else field
        if base.names is None:
            record[name] = value
        elif field.subdtype is None:
            _fill(record[name], base, value, partial)
        elif isinstance(value, Mapping) or _has(value, base.names[1]):  # per-field arrays
            _fill(record[name], base, value, partial)
        else:  # a sequence of per-motor objects
            if len(value) != field.shape[0]:
                raise ValueError(f"'{name}' has {len(value)} elements, the packed struct {field.shape[0]}")
            target = record[name]
            getter = operator.itemgetter if isinstance(value[0], Mapping) else operator.attrgetter
            for sub in base.names:
                target[sub] = list(map(getter(sub), value))


def pack_lowcmd(msg: Any) -> np.ndarray:
    """A LowCmd-like object (rclpy unitree_hg/LowCmd, the SDK's LowCmd_, a namespace) as a LOWCMD_DTYPE
    record of shape (), padding zero, its crc field copied when it has one."""
    record = np.zeros((), LOWCMD_DTYPE)
    _fill(record, LOWCMD_DTYPE, msg, partial=False)
    record["crc"] = _get(msg, "crc", 0)
    return record


def pack_lowstate(msg: Any) -> np.ndarray:
    """A LowState-like object as a LOWSTATE_DTYPE record of shape (), padding zero, crc copied if present."""
    record = np.zeros((), LOWSTATE_DTYPE)
    _fill(record, LOWSTATE_DTYPE, msg, partial=False)
    record["crc"] = _get(msg, "crc", 0)
    return record


def lowcmd_crc(msg: Any) -> int:
    """The CRC a LowCmd must carry: any object with the unitree_hg LowCmd field names (attributes)."""
    return record_crc(pack_lowcmd(msg))


def lowstate_crc(msg: Any) -> int:
    """The CRC of a LowState: any object with the unitree_hg LowState field names (attributes)."""
    return record_crc(pack_lowstate(msg))


def lowcmd_crc_arrays(mode_pr: int, mode_machine: int, mode, q, dq, tau, kp, kd, motor_reserve=None,
                      reserve=None) -> int:
    """The LowCmd CRC from per-motor arrays (length 35 each; floats become float32 as on the wire).
    The fast path of the bridge, 500 times a second."""
    record = np.zeros((), LOWCMD_DTYPE)
    record["mode_pr"] = mode_pr
    record["mode_machine"] = mode_machine
    motors = record["motor_cmd"]
    motors["mode"] = mode
    motors["q"] = q
    motors["dq"] = dq
    motors["tau"] = tau
    motors["kp"] = kp
    motors["kd"] = kd
    if motor_reserve is not None:
        motors["reserve"] = motor_reserve
    if reserve is not None:
        record["reserve"] = reserve
    return record_crc(record)


def lowstate_crc_arrays(state: Mapping | Any) -> int:
    """The LowState CRC from a mapping (or namespace) of arrays named as the unitree_hg fields; missing
    fields are zero. ``imu_state`` and ``motor_state`` are nested mappings of arrays, e.g.
    ``{"mode_machine": 5, "tick": t, "imu_state": {"quaternion": quat}, "motor_state": {"q": q35, "dq": dq35}}``.
    An unknown key raises KeyError (a typo would otherwise give a CRC the robot's state never has)."""
    record = np.zeros((), LOWSTATE_DTYPE)
    _fill(record, LOWSTATE_DTYPE, state, partial=True)
    return record_crc(record)
