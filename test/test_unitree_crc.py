"""The G1's LowCmd/LowState CRC (dit4dit_ros.robot.crc) against a bitwise transcription of Unitree's
crc32_core, published check values, the packed C layout, and Unitree's own SDK (unitree_sdk2py: its
compiled CRC, its IDL types, its CycloneDDS transport).

The CRC-vector and packing tests need nothing but numpy and always run; those on ROS messages need the
unitree_hg package built by scripts/setup.sh; those against the SDK skip when it is not importable."""

import json
import os
import struct
import sys
import timeit
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import HELPERS, wait_until
from dit4dit_ros.robot.crc import (LOWCMD_DTYPE, LOWSTATE_DTYPE, crc32_core, crc32_mpeg2, lowcmd_crc,
                                   lowcmd_crc_arrays, lowstate_crc, lowstate_crc_arrays, pack_lowcmd, pack_lowstate,
                                   record_crc)

POLY = 0x04C11DB7
# Unitree's packed layouts (unitree_sdk2_python's crc.py states them as struct formats).
LOWCMD_FORMAT = "<2B2x" + "B3x5fI" * 35 + "5I"
LOWSTATE_FORMAT = "<2I2B2xI" + "13fh2x" + "B3x4f2hf7I" * 35 + "40B5I"


def crc32_core_bitwise(words) -> int:
    """Unitree's crc32_core, transcribed bit for bit: the reference the fast version must equal."""
    crc = 0xFFFFFFFF
    for data in words:
        xbit = 1 << 31
        for _ in range(32):
            if crc & 0x80000000:
                crc = ((crc << 1) & 0xFFFFFFFF) ^ POLY
            else:
                crc = (crc << 1) & 0xFFFFFFFF
            if data & xbit:
                crc ^= POLY
            xbit >>= 1
    return crc


def crc32_mpeg2_bitwise(data: bytes) -> int:
    """Textbook MSB-first CRC-32/MPEG-2 over bytes (no relation to the word loop above but the maths)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


# --- the CRC itself (offline) ---------------------------------------------------------------------------

def test_published_check_values():
    # CRC-32/MPEG-2 check value (the CRC catalogue: crc32_mpeg2("123456789") = 0x0376E6E7).
    assert crc32_mpeg2_bitwise(b"123456789") == 0x0376E6E7
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7
    # The same algorithm is the STM32 CRC unit's (32-bit words, MSB first); its widely quoted example:
    # one word 0x12345678 gives 0xDF8A8A2B.
    assert crc32_core_bitwise([0x12345678]) == 0xDF8A8A2B
    assert crc32_core([0x12345678]) == 0xDF8A8A2B
    assert crc32_core([]) == 0xFFFFFFFF  # nothing fed: the initial value, no final xor


def test_word_api_is_mpeg2_over_big_endian_words():
    # "12345678" as two words MSB first = the bytes in order: the word API, the word reference and the
    # byte-level textbook CRC agree on a 4-byte-aligned input.
    words = list(struct.unpack(">2I", b"12345678"))
    assert words == [0x31323334, 0x35363738]
    expected = crc32_mpeg2_bitwise(b"12345678")
    assert crc32_core(words) == crc32_core_bitwise(words) == expected == crc32_mpeg2(b"12345678")


@pytest.mark.parametrize("length", [0, 1, 2, 3, 7, 64, 250, 251, 523])
def test_fast_crc_equals_bitwise_reference_on_random_words(length):
    rng = np.random.default_rng(length)
    for _ in range(3):
        words = rng.integers(0, 2**32, length, dtype=np.uint64).astype(np.uint32)
        reference = crc32_core_bitwise(words.tolist())
        assert crc32_core(words) == reference
        assert crc32_core(words.tolist()) == reference  # a plain list of ints too
        assert crc32_core(words.astype(">u4")) == reference  # the values count, not the array's byte order


def test_every_single_bit_flip_changes_the_crc():
    rng = np.random.default_rng(7)
    words = rng.integers(0, 2**32, 8, dtype=np.uint64).astype(np.uint32)
    base = crc32_core(words)
    for bit in range(words.size * 32):
        flipped = words.copy()
        flipped[bit // 32] ^= np.uint32(1 << (bit % 32))
        assert crc32_core(flipped) != base, bit


def _random_lowcmd_values(rng):
    return dict(mode_pr=int(rng.integers(0, 2)), mode_machine=int(rng.integers(0, 256)),
                mode=rng.integers(0, 2, 35).astype(np.uint8), q=rng.normal(0, 2, 35), dq=rng.normal(0, 5, 35),
                tau=rng.normal(0, 10, 35), kp=rng.uniform(0, 100, 35), kd=rng.uniform(0, 3, 35),
                motor_reserve=rng.integers(0, 2**32, 35, dtype=np.uint64), reserve=rng.integers(0, 2**32, 4,
                                                                                                 dtype=np.uint64))


def _lowcmd_namespace(v):
    motors = [SimpleNamespace(mode=int(v["mode"][i]), q=float(v["q"][i]), dq=float(v["dq"][i]),
                              tau=float(v["tau"][i]), kp=float(v["kp"][i]), kd=float(v["kd"][i]),
                              reserve=int(v["motor_reserve"][i])) for i in range(35)]
    return SimpleNamespace(mode_pr=v["mode_pr"], mode_machine=v["mode_machine"], motor_cmd=motors,
                           reserve=[int(r) for r in v["reserve"]], crc=0)


def test_packed_lowcmd_is_unitrees_layout_and_crc_excludes_the_crc_word():
    assert LOWCMD_DTYPE.itemsize == 1004 == struct.calcsize(LOWCMD_FORMAT)
    v = _random_lowcmd_values(np.random.default_rng(1))
    msg = _lowcmd_namespace(v)
    msg.crc = 0xDEADBEEF
    values = [v["mode_pr"], v["mode_machine"]]
    for i in range(35):
        values += [int(v["mode"][i]), *(float(v[k][i]) for k in ("q", "dq", "tau", "kp", "kd")),
                   int(v["motor_reserve"][i])]
    values += [int(r) for r in v["reserve"]] + [0xDEADBEEF]
    packed = struct.pack(LOWCMD_FORMAT, *values)  # what Unitree's SDK packs (zero padding, float32)
    assert pack_lowcmd(msg).tobytes() == packed
    words = struct.unpack("<251I", packed)
    expected = crc32_core_bitwise(words[:250])
    assert lowcmd_crc(msg) == expected
    assert lowcmd_crc_arrays(**v) == expected
    msg.crc = 12345  # the crc field is not part of its own CRC
    assert lowcmd_crc(msg) == expected
    msg.motor_cmd[34].reserve ^= 1  # ...but the word before it is
    assert lowcmd_crc(msg) != expected


def test_packed_lowstate_is_unitrees_layout():
    assert LOWSTATE_DTYPE.itemsize == 2092 == struct.calcsize(LOWSTATE_FORMAT)
    rng = np.random.default_rng(2)
    motors = [SimpleNamespace(mode=int(rng.integers(0, 256)), q=rng.normal(), dq=rng.normal(), ddq=rng.normal(),
                              tau_est=rng.normal(), temperature=[int(t) for t in rng.integers(-40, 120, 2)],
                              vol=rng.uniform(20, 60), sensor=[int(s) for s in rng.integers(0, 2**32, 2)],
                              motorstate=int(rng.integers(0, 2**32)),
                              reserve=[int(r) for r in rng.integers(0, 2**32, 4)]) for _ in range(35)]
    imu = SimpleNamespace(quaternion=rng.normal(size=4).tolist(), gyroscope=rng.normal(size=3).tolist(),
                          accelerometer=rng.normal(size=3).tolist(), rpy=rng.normal(size=3).tolist(),
                          temperature=-5)
    msg = SimpleNamespace(version=[3, 4], mode_pr=1, mode_machine=5, tick=4_000_000_000, imu_state=imu,
                          motor_state=motors, wireless_remote=rng.integers(0, 256, 40).tolist(),
                          reserve=[9, 8, 7, 6], crc=0xCAFEF00D)
    values = [*msg.version, msg.mode_pr, msg.mode_machine, msg.tick, *imu.quaternion, *imu.gyroscope,
              *imu.accelerometer, *imu.rpy, imu.temperature]
    for m in motors:
        values += [m.mode, m.q, m.dq, m.ddq, m.tau_est, *m.temperature, m.vol, *m.sensor, m.motorstate, *m.reserve]
    values += [*msg.wireless_remote, *msg.reserve, msg.crc]
    packed = struct.pack(LOWSTATE_FORMAT, *values)
    assert pack_lowstate(msg).tobytes() == packed
    expected = crc32_core_bitwise(struct.unpack("<523I", packed)[:522])
    assert lowstate_crc(msg) == expected
    arrays = {"version": msg.version, "mode_pr": 1, "mode_machine": 5, "tick": msg.tick,
              "imu_state": vars(imu),
              "motor_state": {name: [getattr(m, name) for m in motors] for name in vars(motors[0])},
              "wireless_remote": msg.wireless_remote, "reserve": msg.reserve}
    assert lowstate_crc_arrays(arrays) == expected


def test_lowstate_arrays_default_to_zero_and_reject_unknown_fields():
    zero = crc32_core_bitwise([0] * 522)
    assert lowstate_crc_arrays({}) == zero
    assert lowstate_crc_arrays({"motor_state": {"q": np.zeros(35)}}) == zero
    assert lowstate_crc_arrays({"motor_state": {"q": np.full(35, 0.5)}}) != zero
    with pytest.raises(KeyError):
        lowstate_crc_arrays({"motor_states": {"q": np.zeros(35)}})
    with pytest.raises(KeyError):
        lowstate_crc_arrays({"imu_state": {"quat": [1, 0, 0, 0]}})


def test_crc_is_over_float32_values():
    v = _random_lowcmd_values(np.random.default_rng(3))
    base = lowcmd_crc_arrays(**v)
    assert lowcmd_crc_arrays(**{**v, "q": v["q"].astype(np.float32)}) == base
    # A change below float32 resolution does not reach the wire, so not the CRC; one above it does.
    q = v["q"].copy()
    q[0] = float(np.float32(q[0])) + abs(float(np.float32(q[0]))) * 1e-12
    assert lowcmd_crc_arrays(**{**v, "q": q}) == base
    q[0] = float(np.nextafter(np.float32(q[0]), np.float32(np.inf)))
    assert lowcmd_crc_arrays(**{**v, "q": q}) != base


def test_lowcmd_crc_arrays_is_fast():
    v = _random_lowcmd_values(np.random.default_rng(4))
    args = (v["mode_pr"], v["mode_machine"], v["mode"], *(v[k].astype(np.float32) for k in
                                                           ("q", "dq", "tau", "kp", "kd")))
    runs = 2000
    best = min(timeit.repeat(lambda: lowcmd_crc_arrays(*args), number=runs, repeat=5)) / runs
    # About 6 us on the 2-core CI machine; the bitwise loop takes milliseconds. Generous for a busy machine.
    assert best < 200e-6, f"lowcmd_crc_arrays took {best * 1e6:.0f} us"


# --- on the ROS messages built from interfaces/unitree_hg ------------------------------------------------

@pytest.fixture(scope="module")
def hg():
    return pytest.importorskip("unitree_hg.msg", reason="unitree_hg is not built: run scripts/setup.sh")


def _ros_lowcmd(hg, v):
    msg = hg.LowCmd(mode_pr=v["mode_pr"], mode_machine=v["mode_machine"], reserve=v["reserve"].astype(np.uint32))
    for i, motor in enumerate(msg.motor_cmd):
        motor.mode, motor.reserve = int(v["mode"][i]), int(v["motor_reserve"][i])
        motor.q, motor.dq, motor.tau = float(v["q"][i]), float(v["dq"][i]), float(v["tau"][i])
        motor.kp, motor.kd = float(v["kp"][i]), float(v["kd"][i])
    return msg


def test_ros_lowcmd_crc_equals_the_array_path(hg):
    assert len(hg.LowCmd().motor_cmd) == 35 and len(hg.LowState().motor_state) == 35
    for seed in range(5):
        v = _random_lowcmd_values(np.random.default_rng(100 + seed))
        msg = _ros_lowcmd(hg, v)
        assert lowcmd_crc(msg) == lowcmd_crc_arrays(**v) == lowcmd_crc(_lowcmd_namespace(v))
    # The bridge's call: reserves left out are zero, as in a fresh message.
    v["motor_reserve"], v["reserve"] = np.zeros(35, np.uint64), np.zeros(4, np.uint64)
    bridge = lowcmd_crc_arrays(v["mode_pr"], v["mode_machine"], v["mode"], v["q"], v["dq"], v["tau"], v["kp"], v["kd"])
    assert bridge == lowcmd_crc(_ros_lowcmd(hg, v)) == lowcmd_crc_arrays(**v)


def test_ros_lowstate_crc_equals_the_array_path(hg):
    rng = np.random.default_rng(5)
    q, dq, tau = rng.normal(size=(3, 35))
    temperature = rng.integers(20, 80, (35, 2)).astype(np.int16)
    msg = hg.LowState(mode_machine=5, tick=123456,
                      imu_state=hg.IMUState(quaternion=[1.0, 0.0, 0.0, 0.0], accelerometer=[0.0, 0.0, 9.81]),
                      motor_state=[hg.MotorState(mode=1, q=q[i], dq=dq[i], tau_est=tau[i], temperature=temperature[i])
                                   for i in range(35)])
    arrays = {"mode_machine": 5, "tick": 123456,
              "imu_state": {"quaternion": [1, 0, 0, 0], "accelerometer": [0, 0, 9.81]},
              "motor_state": {"mode": np.ones(35), "q": q, "dq": dq, "tau_est": tau, "temperature": temperature}}
    assert lowstate_crc(msg) == lowstate_crc_arrays(arrays)
    assert lowstate_crc(msg) == record_crc(pack_lowstate(msg))


# --- against Unitree's SDK (an independent implementation) -------------------------------------------------

@pytest.fixture(scope="module")
def sdk():
    pytest.importorskip("cyclonedds", reason="cyclonedds is not installed (scripts/requirements.txt)")
    pytest.importorskip("unitree_sdk2py", reason="unitree-sdk2py-dimos is not installed "
                                                 "(scripts/requirements-nodeps.txt)")
    from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_, unitree_hg_msg_dds__LowState_
    from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
    from unitree_sdk2py.utils.crc import CRC

    return SimpleNamespace(CRC=CRC(), LowCmd_=LowCmd_, LowState_=LowState_, new_lowcmd=unitree_hg_msg_dds__LowCmd_,
                           new_lowstate=unitree_hg_msg_dds__LowState_)


def _sdk_lowcmd(sdk, v):
    msg = sdk.new_lowcmd()
    msg.mode_pr, msg.mode_machine, msg.reserve = v["mode_pr"], v["mode_machine"], [int(r) for r in v["reserve"]]
    for i, motor in enumerate(msg.motor_cmd):
        motor.mode, motor.reserve = int(v["mode"][i]), int(v["motor_reserve"][i])
        motor.q, motor.dq, motor.tau = float(v["q"][i]), float(v["dq"][i]), float(v["tau"][i])
        motor.kp, motor.kd = float(v["kp"][i]), float(v["kd"][i])
    return msg


def test_sdk_crc_equals_ours_on_random_messages(sdk):
    for seed in range(20):
        v = _random_lowcmd_values(np.random.default_rng(200 + seed))
        msg = _sdk_lowcmd(sdk, v)
        theirs = sdk.CRC.Crc(msg)  # Unitree's compiled crc32_core (crc_amd64.so)
        assert lowcmd_crc(msg) == theirs
        assert lowcmd_crc_arrays(**v) == theirs
    rng = np.random.default_rng(9)
    for _ in range(5):
        state = sdk.new_lowstate()
        state.version, state.mode_machine, state.tick = [1, 2], 5, int(rng.integers(0, 2**32))
        state.imu_state.quaternion = rng.normal(size=4).tolist()
        state.imu_state.temperature = int(rng.integers(-40, 80))
        for motor in state.motor_state:
            motor.mode, motor.q, motor.tau_est = 1, float(rng.normal()), float(rng.normal())
            motor.temperature = [int(t) for t in rng.integers(-40, 120, 2)]
            motor.sensor = [int(s) for s in rng.integers(0, 2**32, 2)]
        state.wireless_remote = rng.integers(0, 256, 40).tolist()
        assert lowstate_crc(state) == sdk.CRC.Crc(state)


def test_ros_wire_format_is_the_sdks(hg, sdk):
    from rclpy.serialization import deserialize_message, serialize_message

    v = _random_lowcmd_values(np.random.default_rng(11))
    msg = _ros_lowcmd(hg, v)
    msg.crc = lowcmd_crc(msg)
    data = serialize_message(msg)
    assert data[:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation header, as the SDK reads it
    received = sdk.LowCmd_.deserialize(data)
    assert (received.mode_pr, received.mode_machine) == (v["mode_pr"], v["mode_machine"])
    for name in ("q", "dq", "tau", "kp", "kd"):
        np.testing.assert_array_equal(np.float32([getattr(m, name) for m in received.motor_cmd]),
                                      v[name].astype(np.float32))
    assert [m.mode for m in received.motor_cmd] == v["mode"].tolist()
    assert [m.reserve for m in received.motor_cmd] == v["motor_reserve"].tolist()
    assert list(received.reserve) == v["reserve"].tolist()
    assert received.crc == msg.crc == sdk.CRC.Crc(received)  # the SDK accepts the CRC we put in

    # ...and the other way: the SDK's serialisation read by rclpy, its CRC checked by ours.
    theirs = _sdk_lowcmd(sdk, _random_lowcmd_values(np.random.default_rng(12)))
    theirs.crc = sdk.CRC.Crc(theirs)
    back = deserialize_message(theirs.serialize(), hg.LowCmd)
    assert lowcmd_crc(back) == back.crc == theirs.crc


def test_dds_round_trip_with_the_sdk(hg, sdk, rclpy_context, ros_domain, spawn):
    """rclpy (Fast DDS) <-> the SDK (CycloneDDS) on loopback: our LowCmd on /lowcmd reaches the SDK's
    rt/lowcmd subscriber with a CRC it accepts; the SDK's rt/lowstate reaches us with a CRC ours accepts."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    env = {**os.environ, "ROS_DOMAIN_ID": str(ros_domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    peer = spawn([sys.executable, HELPERS / "unitree_sdk_peer.py", str(ros_domain), "60"], env=env,
                 name="unitree_sdk_peer")
    assert peer.wait_for_output("ready", 30), peer.output()

    v = _random_lowcmd_values(np.random.default_rng(13))
    v["reserve"] = np.zeros(4, np.uint64)
    msg = _ros_lowcmd(hg, v)
    msg.crc = lowcmd_crc(msg)
    states = []
    node = rclpy.create_node("sdk_round_trip", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        publisher = node.create_publisher(hg.LowCmd, "lowcmd", 10)
        node.create_subscription(hg.LowState, "lowstate", states.append, 10)

        def exchanged() -> bool:
            publisher.publish(msg)
            executor.spin_once(timeout_sec=0.05)
            return bool(states) and '"crc"' in peer.output()

        assert wait_until(exchanged, 30), f"no exchange with the SDK peer:\n{peer.output()}"
    finally:
        executor.shutdown()
        node.destroy_node()
    received = json.loads(next(line for line in peer.output().splitlines() if line.startswith("{")))
    assert received["crc"] == received["sdk_crc"] == msg.crc
    assert received["mode_machine"] == v["mode_machine"] and received["mode"] == v["mode"].tolist()
    np.testing.assert_array_equal(np.float32(received["q"]), v["q"].astype(np.float32))
    state = states[0]
    assert state.mode_machine == 5 and state.tick >= 1
    assert lowstate_crc(state) == state.crc
    assert [int(m.temperature[0]) for m in state.motor_state] == [30 + i for i in range(35)]
