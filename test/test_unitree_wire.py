"""LowCmd / LowState as wire bytes (robot/cdr.py) against rclpy's own serialiser, and the fake robot's motor law."""

from __future__ import annotations

import numpy as np
import pytest

from dit4dit_ros import g1
from dit4dit_ros.robot.cdr import LOWCMD_LAYOUT, LOWSTATE_LAYOUT, CdrError

unitree_hg = pytest.importorskip("unitree_hg.msg")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from dit4dit_ros.robot.crc import lowcmd_crc, lowstate_crc  # noqa: E402
from dit4dit_ros.ros.unitree_msgs import (decode_lowcmd, decode_lowstate, lowcmd_bytes,  # noqa: E402
                                          lowcmd_message, lowstate_bytes, lowstate_message)


def _leaf_mask(layout) -> np.ndarray:
    """True on the bytes that carry values (rclpy leaves whatever was in memory in the padding)."""
    mask = np.zeros(layout.wire_size, dtype=bool)
    mask[:4] = True
    for path, offsets in layout.offsets.items():
        for offset in offsets:
            mask[offset:offset + layout.kinds[path].itemsize] = True
    return mask


def _random_lowcmd(rng):
    motors = [unitree_hg.MotorCmd(mode=int(rng.integers(0, 256)), q=float(rng.normal()), dq=float(rng.normal()),
                                  tau=float(rng.normal()), kp=float(rng.uniform(0, 100)), kd=float(rng.uniform(0, 5)),
                                  reserve=int(rng.integers(0, 2**32))) for _ in range(35)]
    return unitree_hg.LowCmd(mode_pr=1, mode_machine=5, motor_cmd=motors,
                             reserve=rng.integers(0, 2**32, 4).astype(np.uint32), crc=int(rng.integers(0, 2**32)))


def test_layouts_have_the_message_sizes():
    assert LOWCMD_LAYOUT.size == LOWCMD_LAYOUT.wire_size == 1004  # = the packed C struct, by coincidence of layout
    assert LOWSTATE_LAYOUT.size == LOWSTATE_LAYOUT.wire_size == 2092
    assert len(serialize_message(unitree_hg.LowCmd())) == 1004 and len(serialize_message(unitree_hg.LowState())) == 2092
    assert LOWCMD_LAYOUT.offsets["motor_cmd.q"][:2].tolist() == [8, 36]  # motor 0's mode at 6, q at 8 (4-aligned)


def test_lowcmd_bytes_match_rclpy_both_ways():
    rng = np.random.default_rng(1)
    for _ in range(5):
        msg = _random_lowcmd(rng)
        wire = np.frombuffer(serialize_message(msg), dtype=np.uint8)
        decoded = decode_lowcmd(wire.tobytes())
        np.testing.assert_array_equal(decoded.q, np.float32([m.q for m in msg.motor_cmd]))
        np.testing.assert_array_equal(decoded.mode, [m.mode for m in msg.motor_cmd])
        assert decoded.crc_ok == (lowcmd_crc(msg) == msg.crc)
        values = {"mode_pr": msg.mode_pr, "mode_machine": msg.mode_machine, "reserve": msg.reserve, "crc": msg.crc,
                  **{f"motor_cmd.{f}": [getattr(m, f) for m in msg.motor_cmd]
                     for f in ("mode", "q", "dq", "tau", "kp", "kd", "reserve")}}
        ours = np.frombuffer(LOWCMD_LAYOUT.encode(values), dtype=np.uint8)
        mask = _leaf_mask(LOWCMD_LAYOUT)
        np.testing.assert_array_equal(ours[mask], wire[mask])
        back = deserialize_message(ours.tobytes(), unitree_hg.LowCmd)
        assert [m.kd for m in back.motor_cmd] == np.float32([m.kd for m in msg.motor_cmd]).tolist() and back.crc == msg.crc


def test_lowcmd_bytes_of_a_frame_carry_a_crc_the_robot_accepts():
    from dit4dit_ros.robot.lowlevel import LowLevelConfig, LowLevelCore

    core = LowLevelCore(LowLevelConfig())
    core.update_state(np.zeros(35), 5, 0)
    frame = core.frame(dict(zip(g1.ACTION_NAMES, [0.1] * 14 + [0.0, 0.0])), 2_000_000)
    wire = lowcmd_bytes(frame)
    msg = deserialize_message(wire, unitree_hg.LowCmd)
    assert msg.crc == lowcmd_crc(msg) and msg.mode_machine == 5
    assert decode_lowcmd(wire).crc_ok
    assert lowcmd_message(frame).crc == msg.crc  # the message-object path agrees
    corrupted = bytearray(wire)
    corrupted[40] ^= 0x01  # one flipped bit in a motor's value
    assert not decode_lowcmd(bytes(corrupted)).crc_ok


def test_lowstate_bytes_match_rclpy():
    rng = np.random.default_rng(2)
    q, dq, tau = rng.normal(size=(3, 35))
    wire = lowstate_bytes(q, dq, tau, 5, 123456)
    msg = deserialize_message(wire, unitree_hg.LowState)
    assert msg.crc == lowstate_crc(msg) and msg.tick == 123456 and msg.mode_machine == 5
    np.testing.assert_array_equal([m.q for m in msg.motor_state], np.float32(q))
    reference = np.frombuffer(serialize_message(lowstate_message(q, dq, tau, 5, 123456)), dtype=np.uint8)
    mask = _leaf_mask(LOWSTATE_LAYOUT)
    np.testing.assert_array_equal(np.frombuffer(wire, dtype=np.uint8)[mask], reference[mask])
    q2, dq2, tau2, mode_machine, imu = decode_lowstate(serialize_message(msg))
    np.testing.assert_array_equal(q2, np.float32(q))
    assert mode_machine == 5 and imu[0] == 1.0 and imu[9] == pytest.approx(9.81)


def test_bytes_that_are_not_the_message_are_refused():
    with pytest.raises(CdrError, match="not a serialised unitree_hg/LowState"):
        decode_lowstate(b"\x00\x01\x00\x00" + bytes(100))
    with pytest.raises(CdrError):
        decode_lowcmd(b"\x00\x00\x00\x00" + bytes(1000))  # big-endian encapsulation: not what the robot sends
    with pytest.raises(KeyError, match="no field"):
        LOWCMD_LAYOUT.encode({"motor_cmd.torque": 1.0})


def test_motor_law_on_the_simulated_g1():
    """kp/kd/q from a command drive the joint to q; mode 0 gives no torque; weight blends with the servos."""
    import mujoco

    from dit4dit_ros.sim.env import G1TabletopEnv
    from dit4dit_ros.sim.motor_law import MotorLaw

    env = G1TabletopEnv(render=False)
    env.reset(seed=0)
    arm = g1.ARM_JOINTS["right"]
    law = MotorLaw(env.model, env.data, arm)
    index = {n: env.model.jnt_qposadr[env.model.joint(n).id] for n in arm}
    start = np.array([env.data.qpos[index[n]] for n in arm])
    # Up and away from the torso and the table: nothing but the motors acts on the arm.
    step = np.array([-0.1, -0.05, 0.05, -0.05, 0.05, 0.05, 0.05])
    target = start + 2 * step
    law.apply(np.full(7, 60.0), np.full(7, 1.5), target)
    mujoco.mj_step(env.model, env.data, nstep=1000)  # 2 s
    reached = np.array([env.data.qpos[index[n]] for n in arm])
    np.testing.assert_allclose(reached, target, atol=0.02)
    torque = law.torques()
    assert np.all(np.abs(torque) <= np.array([25, 25, 25, 25, 25, 5, 5]) + 1e-6)  # the motors' limits
    law.servo()  # the built-in servos hold where the arm is now
    law.apply(np.full(7, 60.0), np.full(7, 1.5), target + step, weight=np.zeros(7))  # weight 0: the servos alone
    mujoco.mj_step(env.model, env.data, nstep=250)
    np.testing.assert_allclose([env.data.qpos[index[n]] for n in arm], target, atol=0.02)
    law.apply(np.full(7, 60.0), np.full(7, 1.5), target + step, weight=np.ones(7))  # weight 1: the command alone
    mujoco.mj_step(env.model, env.data, nstep=1000)
    np.testing.assert_allclose([env.data.qpos[index[n]] for n in arm], target + step, atol=0.02)
    law.apply(np.full(7, 60.0), np.full(7, 1.5), target, enabled=np.zeros(7, dtype=bool))
    mujoco.mj_step(env.model, env.data)
    assert np.allclose(law.torques(), 0.0)  # mode 0: the motor is off
