"""unitree_hg / unitree_go messages <-> the plain arrays of dit4dit_ros.robot (the only place that knows both).

Every LowCmd is built fresh, every field set, and its CRC computed over the float32 values that go on the wire
(the robot silently drops a LowCmd whose CRC does not match). The 500 Hz messages (LowCmd, LowState) also come
as CDR bytes (robot/cdr.py): what the bridge, the state publisher and the fake robot use; the message-object
forms are for everything else (tests, tools, hands at 100 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from unitree_go.msg import MotorCmd as GoMotorCmd
from unitree_go.msg import MotorCmds
from unitree_hg.msg import HandCmd, HandState, IMUState, LowCmd, LowState, MotorCmd, MotorState

from dit4dit_ros.robot.cdr import LOWCMD_LAYOUT, LOWSTATE_LAYOUT
from dit4dit_ros.robot.crc import lowcmd_crc_arrays, lowstate_crc, lowstate_crc_arrays
from dit4dit_ros.robot.hands import HandFrame
from dit4dit_ros.robot.lowlevel import MotorFrame
from dit4dit_ros.robot.variants import NUM_MOTORS

HAND_MESSAGE_TYPES = {"unitree_hg/HandCmd": HandCmd, "unitree_go/MotorCmds": MotorCmds}


def lowcmd_message(frame: MotorFrame) -> LowCmd:
    f32 = [np.asarray(v, dtype=np.float32) for v in (frame.q, frame.dq, frame.tau, frame.kp, frame.kd)]
    crc = lowcmd_crc_arrays(frame.mode_pr, frame.mode_machine, frame.mode, *f32)
    q, dq, tau, kp, kd = (v.tolist() for v in f32)
    mode = frame.mode.tolist()
    motors = [MotorCmd(mode=mode[i], q=q[i], dq=dq[i], tau=tau[i], kp=kp[i], kd=kd[i]) for i in range(NUM_MOTORS)]
    return LowCmd(mode_pr=frame.mode_pr, mode_machine=frame.mode_machine, motor_cmd=motors, crc=crc)


def lowcmd_bytes(frame: MotorFrame) -> bytes:
    """The serialised LowCmd of `frame`, CRC included (what the bridge publishes 500 times a second)."""
    values = {"mode_pr": frame.mode_pr, "mode_machine": frame.mode_machine, "motor_cmd.mode": frame.mode,
              "motor_cmd.q": frame.q, "motor_cmd.dq": frame.dq, "motor_cmd.tau": frame.tau,
              "motor_cmd.kp": frame.kp, "motor_cmd.kd": frame.kd}
    values["crc"] = lowcmd_crc_arrays(frame.mode_pr, frame.mode_machine, frame.mode, frame.q, frame.dq, frame.tau,
                                      frame.kp, frame.kd)
    return LOWCMD_LAYOUT.encode(values)


def hand_message(frame: HandFrame):
    q, kp, kd, mode = frame.q.tolist(), frame.kp.tolist(), frame.kd.tolist(), frame.mode.tolist()
    if frame.message == "unitree_hg/HandCmd":
        return HandCmd(motor_cmd=[MotorCmd(mode=mode[i], q=q[i], kp=kp[i], kd=kd[i]) for i in range(frame.size)])
    return MotorCmds(cmds=[GoMotorCmd(mode=mode[i], q=q[i], kp=kp[i], kd=kd[i]) for i in range(frame.size)])


@dataclass
class LowCmdArrays:
    """A received LowCmd as arrays (the fake robot's and the tests' view), with whether its CRC checked."""

    mode_pr: int
    mode_machine: int
    mode: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    crc_ok: bool


_LOWCMD_PATHS = ("mode_pr", "mode_machine", "motor_cmd.mode", "motor_cmd.q", "motor_cmd.dq", "motor_cmd.tau",
                 "motor_cmd.kp", "motor_cmd.kd", "motor_cmd.reserve", "reserve", "crc")


def decode_lowcmd(data: bytes) -> LowCmdArrays:
    """A serialised LowCmd as arrays, its CRC checked (CdrError for bytes that are not a LowCmd)."""
    v = LOWCMD_LAYOUT.decode(data, _LOWCMD_PATHS)
    crc = lowcmd_crc_arrays(int(v["mode_pr"][0]), int(v["mode_machine"][0]), v["motor_cmd.mode"], v["motor_cmd.q"],
                            v["motor_cmd.dq"], v["motor_cmd.tau"], v["motor_cmd.kp"], v["motor_cmd.kd"],
                            v["motor_cmd.reserve"], v["reserve"])
    f64 = {k: v[f"motor_cmd.{k}"].astype(np.float64) for k in ("q", "dq", "tau", "kp", "kd")}
    return LowCmdArrays(int(v["mode_pr"][0]), int(v["mode_machine"][0]), v["motor_cmd.mode"].copy(), f64["q"],
                        f64["dq"], f64["tau"], f64["kp"], f64["kd"], crc == int(v["crc"][0]))


def decode_lowstate(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """(q, dq, tau_est, mode_machine, imu quaternion+gyro+accelerometer) of a serialised LowState."""
    v = LOWSTATE_LAYOUT.decode(data, ("motor_state.q", "motor_state.dq", "motor_state.tau_est", "mode_machine",
                                      "imu_state.quaternion", "imu_state.gyroscope", "imu_state.accelerometer"))
    imu = np.concatenate([v["imu_state.quaternion"], v["imu_state.gyroscope"], v["imu_state.accelerometer"]])
    return (v["motor_state.q"].astype(np.float64), v["motor_state.dq"].astype(np.float64),
            v["motor_state.tau_est"].astype(np.float64), int(v["mode_machine"][0]), imu.astype(np.float64))


def lowstate_bytes(q, dq, tau, mode_machine: int, tick: int, mode_pr: int = 0) -> bytes:
    """A serialised LowState as the robot sends it (a level, still IMU), CRC included."""
    motors = {"mode": np.ones(NUM_MOTORS, dtype=np.uint8), "q": q, "dq": dq, "tau_est": tau}
    imu = {"quaternion": [1.0, 0.0, 0.0, 0.0], "accelerometer": [0.0, 0.0, 9.81]}
    tick = int(tick) & 0xFFFFFFFF
    crc = lowstate_crc_arrays({"mode_pr": mode_pr, "mode_machine": mode_machine, "tick": tick, "imu_state": imu,
                               "motor_state": motors})
    values = {"mode_pr": mode_pr, "mode_machine": mode_machine, "tick": tick, "crc": crc,
              **{f"motor_state.{k}": v for k, v in motors.items()}, **{f"imu_state.{k}": v for k, v in imu.items()}}
    return LOWSTATE_LAYOUT.encode(values)


def lowstate_positions(msg: LowState) -> np.ndarray:
    return np.array([m.q for m in msg.motor_state], dtype=np.float64)


def lowstate_message(q, dq, tau, mode_machine: int, tick: int, mode_pr: int = 0) -> LowState:
    """A LowState as the robot sends it: motors by slot (NUM_MOTORS values each), a level, still IMU."""
    q, dq, tau = (np.asarray(v, dtype=np.float32).tolist() for v in (q, dq, tau))
    imu = IMUState(quaternion=[1.0, 0.0, 0.0, 0.0], accelerometer=[0.0, 0.0, 9.81])
    msg = LowState(mode_pr=mode_pr, mode_machine=mode_machine, tick=int(tick) & 0xFFFFFFFF, imu_state=imu,
                   motor_state=[MotorState(mode=1, q=q[i], dq=dq[i], tau_est=tau[i]) for i in range(NUM_MOTORS)])
    msg.crc = lowstate_crc(msg)
    return msg


def hand_state_message(q, dq) -> HandState:
    q, dq = (np.asarray(v, dtype=np.float32).tolist() for v in (q, dq))
    return HandState(motor_state=[MotorState(mode=1, q=q[i], dq=dq[i]) for i in range(len(q))])
