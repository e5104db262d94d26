"""LowLevelCore, the hands and the variants: the real G1's safety rules, in plain Python (no ROS, no robot)."""

from __future__ import annotations

import numpy as np
import pytest

from dit4dit_ros import g1
from dit4dit_ros.robot.hands import Dex1Grippers, Dex3Hands, InspireHands, dex3_mode_byte, make_hands
from dit4dit_ros.robot.lowlevel import LowLevelConfig, LowLevelCore, LowLevelError, State
from dit4dit_ros.robot.variants import (ARM_SDK_WEIGHT_SLOT, JOINT_RANGES, NUM_MOTORS, TORQUE_LIMITS, VARIANTS,
                                        get_variant)

MS = 1_000_000
VARIANT = get_variant("g1_29dof")
ARMS = g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]


def ready_state(offset: float = 0.0) -> np.ndarray:
    q = np.zeros(NUM_MOTORS)
    for slot, name in enumerate(VARIANT.slots):
        if name:
            q[slot] = g1.READY_POSE.get(name, 0.0) + offset
    return q


def action(offset: float, grip: float = 0.0) -> dict[str, float]:
    values = {name: g1.READY_POSE.get(name, 0.0) + offset for name in ARMS}
    return {**values, "left_grip": grip, "right_grip": grip}


def slot(name: str) -> int:
    return VARIANT.slot(name)


class Robot:
    """A perfect robot around a core: LowState every 2 ms, joints where the last command put them."""

    def __init__(self, core: LowLevelCore, q: np.ndarray | None = None, mode_machine: int = 5):
        self.core, self.q, self.mode_machine, self.now = core, ready_state() if q is None else q, mode_machine, 0

    def tick(self, targets, damping=False, state=True, follow=True):
        self.now += 2 * MS
        if state:
            self.core.update_state(self.q, self.mode_machine, self.now)
        frame = self.core.frame(targets, self.now, damping=damping)
        if frame is not None and follow and not frame.damping:
            on = frame.mode == 1
            on[ARM_SDK_WEIGHT_SLOT] = False
            self.q[on] = frame.q[on]
        return frame


def test_nothing_is_sent_without_a_state_or_to_the_wrong_robot():
    core = LowLevelCore(LowLevelConfig())
    assert core.frame(action(0.1), 0) is None and core.state is State.NO_STATE
    robot = Robot(core, mode_machine=4)  # a 23-DoF G1 answers, the bridge is configured for the 29-DoF
    assert robot.tick(action(0.1)) is None
    assert core.state is State.REFUSED and "mode_machine is 4" in core.refusal and "g1_29dof" in core.refusal
    robot.mode_machine = 5  # latched: a later right answer does not undo the refusal
    assert all(robot.tick(action(0.1)) is None for _ in range(10))
    assert core.shutdown_frame(robot.now) is None


def test_ramp_from_the_measured_pose_then_track():
    config = LowLevelConfig(ramp_time=1.0, max_joint_speed=10.0)
    core = LowLevelCore(config, make_hands("dex3"))
    robot = Robot(core)
    target = action(0.2, grip=1.0)
    first = robot.tick(target)
    assert first.state is State.RAMP
    elbow = slot("left_elbow_joint")
    assert first.q[elbow] == pytest.approx(g1.READY_POSE["left_elbow_joint"], abs=1e-6)  # starts where it is
    assert first.mode_machine == 5 and first.topic == "arm_sdk"
    frames = [robot.tick(target) for _ in range(249)]  # 0.5 s in
    assert frames[-1].q[elbow] == pytest.approx(g1.READY_POSE["left_elbow_joint"] + 0.1, abs=0.003)
    frames = [robot.tick(target) for _ in range(300)]
    assert frames[-1].state is State.TRACK
    for name in ARMS:
        assert frames[-1].q[slot(name)] == pytest.approx(target[name], abs=1e-6)
    # Gains: arms 60 / 1.5, wrists 30 / 1 by default; the arm_sdk weight reached 1 after blend_time.
    assert frames[-1].kp[slot("left_elbow_joint")] == 60 and frames[-1].kd[slot("left_wrist_yaw_joint")] == 1.0
    assert frames[-1].q[ARM_SDK_WEIGHT_SLOT] == 1.0
    # Dex3: seven motors per hand, closed by grip 1, each mode byte carrying the motor id and 'enabled'.
    hands = {h.topic: h for h in frames[-1].hands}
    assert set(hands) == {"dex3/left/cmd", "dex3/right/cmd"}
    left = hands["dex3/left/cmd"]
    np.testing.assert_allclose(left.q, [g1.DEX3_CLOSED[n] for n in g1.HAND_JOINTS["left"]], atol=1e-6)
    assert left.mode.tolist() == [0x10 | i for i in range(7)] and (left.kp > 0).all()


def test_arm_sdk_drives_arms_and_waist_only_and_blends_in():
    core = LowLevelCore(LowLevelConfig(blend_time=0.5))
    robot = Robot(core)
    frames = [robot.tick(action(0.0)) for _ in range(300)]
    weights = [f.q[ARM_SDK_WEIGHT_SLOT] for f in frames]
    assert weights[0] == 0.0 and weights[124] == pytest.approx(0.5, abs=0.01) and weights[-1] == 1.0
    assert np.all(np.diff(weights) >= 0)
    legs = [slot(n) for n in VARIANT.joints if VARIANT.group(n) == "legs"]
    assert (frames[-1].mode[legs] == 0).all() and (frames[-1].kp[legs] == 0).all()
    waist = slot("waist_pitch_joint")
    assert frames[-1].mode[waist] == 1 and frames[-1].q[waist] == pytest.approx(0.35, abs=1e-6)  # held as measured


def test_low_level_holds_every_joint_without_a_target_where_the_ramp_found_it():
    core = LowLevelCore(LowLevelConfig(mode="low_level", ramp_time=0.1))
    robot = Robot(core)
    robot.q[slot("left_knee_joint")] = 0.4
    frames = [robot.tick(action(0.1)) for _ in range(100)]
    last = frames[-1]
    assert last.topic == "lowcmd" and last.q[ARM_SDK_WEIGHT_SLOT] == 0.0
    assert (last.mode[:29] == 1).all() and (last.mode[29:] == 0).all()
    assert last.q[slot("left_knee_joint")] == pytest.approx(0.4, abs=1e-6)
    assert last.kp[slot("left_knee_joint")] == 100 and last.kd[slot("left_knee_joint")] == 2


def test_speed_clip_and_joint_limits():
    core = LowLevelCore(LowLevelConfig(ramp_time=0.0, max_joint_speed=2.0))
    robot = Robot(core)
    robot.tick(action(0.0))
    target = action(0.0)
    target["left_elbow_joint"] = 2.5  # beyond the elbow's 2.0944 upper limit
    frames = [robot.tick(target) for _ in range(600)]
    elbow = np.array([f.q[slot("left_elbow_joint")] for f in frames])
    steps = np.abs(np.diff(elbow))
    assert steps.max() <= 2.0 * 0.002 + 1e-6  # max_joint_speed * 2 ms
    assert steps.max() == pytest.approx(0.004, abs=1e-5)
    assert elbow.max() == pytest.approx(JOINT_RANGES["left_elbow_joint"][1], abs=1e-6)  # clipped to the range
    assert core.stats()["speed_clipped"] > 100


@pytest.mark.parametrize("fault", ["stale", "nan_target", "estop", "nan_state"])
def test_faults_damp_and_recovery_ramps_from_the_measured_pose(fault):
    core = LowLevelCore(LowLevelConfig(ramp_time=0.2, damping_kd=3.0), make_hands("dex3"))
    robot = Robot(core)
    for _ in range(200):
        frame = robot.tick(action(0.1))
    assert frame.state is State.TRACK
    bad = action(0.1)
    if fault == "nan_target":
        bad["left_elbow_joint"] = float("nan")
    for k in range(15):  # 30 ms
        if fault == "nan_state":
            q = robot.q.copy()
            q[slot("left_elbow_joint")] = float("nan")
            robot.now += 2 * MS
            core.update_state(q, 5, robot.now)
            frame = core.frame(action(0.1), robot.now)
        else:
            frame = robot.tick(bad, damping=fault == "estop", state=fault not in ("stale",))
    assert frame is not None and frame.state is State.DAMP, core.stats()
    arms = [slot(n) for n in ARMS]
    assert (frame.kp[arms] == 0).all() and (frame.kd[arms] == 3.0).all() and (frame.mode[arms] == 1).all()
    assert np.isfinite(frame.q).all() and np.isfinite(frame.kd).all()
    assert all((h.kp == 0).all() for h in frame.hands)
    assert frame.q[ARM_SDK_WEIGHT_SLOT] == 1.0  # arm_sdk keeps the damping in force on the arms
    expected = {"stale": "stale", "nan_target": "fault", "estop": "requested", "nan_state": "stale"}[fault]
    assert expected in core.last_damping_reason
    # While damped the arm sagged; once the fault clears the next command starts from where it is now.
    robot.q[slot("left_elbow_joint")] -= 0.3
    frame = robot.tick(action(0.1))
    assert frame.state is State.RAMP
    assert frame.q[slot("left_elbow_joint")] == pytest.approx(g1.READY_POSE["left_elbow_joint"] + 0.1 - 0.3, abs=1e-6)


def test_stale_threshold_is_twenty_milliseconds_by_default():
    core = LowLevelCore(LowLevelConfig())
    robot = Robot(core)
    for _ in range(10):
        robot.tick(action(0.0))
    states = [robot.tick(action(0.0), state=False).state for _ in range(11)]  # 2 .. 22 ms without a LowState
    assert states[:10] == [State.RAMP] * 10 and states[10] is State.DAMP


def test_shutdown_and_disable_damp_only_after_commands_were_sent():
    core = LowLevelCore(LowLevelConfig())
    robot = Robot(core)
    robot.core.update_state(robot.q, 5, 0)
    assert core.shutdown_frame(0) is None  # never commanded: stay silent
    assert robot.tick(None) is None and core.state is State.IDLE
    assert robot.tick(action(0.0), damping=True) is None  # damping before any command: silent too
    robot.tick(action(0.0))
    frame = core.shutdown_frame(robot.now)
    assert frame.state is State.DAMP and "shutdown" in core.last_damping_reason
    assert robot.tick(None).state is State.DAMP  # disabled after running: damping, not silence


def test_configuration_errors():
    with pytest.raises(LowLevelError, match="g1_23dof lacks"):
        LowLevelCore(LowLevelConfig(variant="g1_23dof"))  # the 16-D action needs wrist pitch and yaw
    with pytest.raises(LowLevelError, match="damping_kd"):
        LowLevelCore(LowLevelConfig(damping_kd=0.0))
    with pytest.raises(LowLevelError, match="mode"):
        LowLevelCore(LowLevelConfig(mode="torque"))
    with pytest.raises(ValueError, match="unknown G1 variant"):
        LowLevelCore(LowLevelConfig(variant="h1"))
    with pytest.raises(LowLevelError, match="gains"):
        LowLevelCore(LowLevelConfig(gains={"arms": (1.0, 1.0)}))


def test_variants_slots_and_ranges_match_the_model():
    assert VARIANTS["g1_29dof"].slots[:29] == g1.BODY_JOINTS and VARIANTS["g1_29dof"].mode_machine == 5
    v23 = VARIANTS["g1_23dof"]
    assert v23.mode_machine == 4 and len(v23.joints) == 23
    assert v23.slots[13] == v23.slots[14] == v23.slots[20] == v23.slots[21] == ""  # waist roll/pitch, wrists
    assert v23.slot("left_wrist_roll_joint") == 19 and v23.slot("right_shoulder_pitch_joint") == 22
    import mujoco

    from dit4dit_ros.sim.robot_model import load_g1_spec

    model = load_g1_spec("auto").spec.compile()  # the menagerie's when available, else the simplified copy
    for name, (low, high) in JOINT_RANGES.items():
        joint = model.joint(name).id
        assert model.jnt_range[joint] == pytest.approx([low, high], abs=1e-4), name
        if model.jnt_actfrclimited[joint]:
            assert model.jnt_actfrcrange[joint][1] == pytest.approx(TORQUE_LIMITS[name]), name
    assert isinstance(model, mujoco.MjModel)


def test_hand_maps():
    assert dex3_mode_byte(3) == 0x13 and dex3_mode_byte(0, timeout=True) == 0x90
    dex3 = Dex3Hands()
    frames = dex3.frames({"left": 0.5, "right": 0.0}, damping=False)
    q = dict(zip(g1.HAND_JOINTS["left"], frames[0].q))
    assert dex3.grip_from_state("left", frames[0].q) == pytest.approx(0.5)
    assert q["left_hand_index_0_joint"] == pytest.approx(0.5 * g1.DEX3_CLOSED["left_hand_index_0_joint"])
    inspire = InspireHands(thumb_rotation=0.3)
    (frame,) = inspire.frames({"left": 1.0, "right": 0.25}, damping=False)
    assert frame.topic == "inspire/cmd" and frame.size == 12
    np.testing.assert_allclose(frame.q[:6], [0.75] * 5 + [0.3])  # right hand first, 1 = open
    np.testing.assert_allclose(frame.q[6:], [0.0] * 5 + [0.3])
    assert inspire.grip_from_state("right", frame.q) == pytest.approx(0.25)
    dex1 = Dex1Grippers(open_q=5.0, closed_q=1.0)
    frames = {f.topic: f for f in dex1.frames({"left": 0.5, "right": 1.0}, damping=True)}
    assert frames["dex1/left/cmd"].q[0] == pytest.approx(3.0) and frames["dex1/right/cmd"].q[0] == pytest.approx(1.0)
    assert frames["dex1/left/cmd"].kp[0] == 0.0
    assert dex1.grip_from_state("left", [3.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown hand kind"):
        make_hands("shadow")


def test_gravity_feedforward_holds_the_arm_the_pd_alone_lets_sag():
    """The model's gravity torques as MotorCmd.tau: on the simulated G1 WITHOUT gravity compensation, kp 60 alone
    lets the arms sag several centiradians; with the feed-forward they stay where commanded."""
    import mujoco

    from dit4dit_ros.robot.gravity import GravityModel
    from dit4dit_ros.sim.env import G1TabletopEnv
    from dit4dit_ros.sim.motor_law import MotorLaw

    gravity = GravityModel(VARIANT)
    tau = gravity.torques(ready_state())
    assert tau.shape == (NUM_MOTORS,) and (tau[29:] == 0).all()
    for name in ARMS:
        assert abs(tau[slot(name)]) <= TORQUE_LIMITS[name]
    assert abs(tau[slot("right_elbow_joint")]) > 1.0  # a forearm held forward weighs on the elbow
    # Mirror symmetry of the two arms (roll and yaw axes mirrored).
    assert tau[slot("left_elbow_joint")] == pytest.approx(tau[slot("right_elbow_joint")], rel=0.05)

    env = G1TabletopEnv(render=False, gravity_compensation=False)
    arms = g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]
    law = MotorLaw(env.model, env.data, arms)
    qpos = {n: env.model.jnt_qposadr[env.model.joint(n).id] for n in VARIANT.joints}
    sag = {}
    for feedforward in (False, True):
        env.reset(seed=0)
        start = np.array([env.data.qpos[qpos[n]] for n in arms])
        core = LowLevelCore(LowLevelConfig(ramp_time=0.0), feedforward=gravity.torques if feedforward else None)
        for k in range(1000):  # 2 s at 500 Hz
            measured = np.zeros(NUM_MOTORS)
            for name in VARIANT.joints:
                measured[slot(name)] = env.data.qpos[qpos[name]]
            core.update_state(measured, 5, k * 2 * MS)
            frame = core.frame(dict(zip(ARMS, start)), k * 2 * MS)
            index = [slot(n) for n in arms]
            law.apply(frame.kp[index], frame.kd[index], frame.q[index], tau=frame.tau[index])
            mujoco.mj_step(env.model, env.data)
        assert (frame.tau[index] != 0).any() == feedforward
        sag[feedforward] = np.abs(np.array([env.data.qpos[qpos[n]] for n in arms]) - start).max()
    assert sag[False] > 0.03 and sag[True] < 0.005, sag


def test_a_feedforward_fault_is_dropped_and_damping_carries_no_torque():
    core = LowLevelCore(LowLevelConfig(ramp_time=0.0), feedforward=lambda q: np.full(NUM_MOTORS, np.nan))
    robot = Robot(core)
    frame = robot.tick(action(0.0))
    assert (frame.tau == 0).all() and core.stats()["feedforward_faults"] == 1
    core = LowLevelCore(LowLevelConfig(ramp_time=0.0), feedforward=lambda q: np.ones(NUM_MOTORS))
    robot = Robot(core)
    assert robot.tick(action(0.0)).tau[slot("left_elbow_joint")] == 1.0
    assert (robot.tick(action(0.0), damping=True).tau == 0).all()
