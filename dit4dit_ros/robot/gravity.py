"""GravityModel: the joint torques that hold the G1 against gravity at a measured pose (the feed-forward tau).

With arm gains of kp 40-60 a 2-3 kg arm sags 0.1-0.2 rad under its own weight; Unitree's own teleoperation stack
adds the gravity torques of a rigid-body model as MotorCmd.tau. Here the model is the MuJoCo G1 the simulation
uses (mujoco_menagerie's, else the simplified copy with the same masses), its pelvis pinned upright: right for a
robot on a gantry, and for arm_sdk while the locomotion keeps the pelvis near level (the IMU's tilt is ignored).
Finger joints are taken at 0 (LowState does not carry them; their mass moves the wrist torque very little).
"""

from __future__ import annotations

import mujoco
import numpy as np

from dit4dit_ros.robot.variants import NUM_MOTORS, TORQUE_LIMITS, G1Variant


class GravityModel:
    def __init__(self, variant: G1Variant, source: str = "auto"):
        from dit4dit_ros.sim.robot_model import load_g1_spec
        from dit4dit_ros.sim.scene import _remove_free_joint

        robot = load_g1_spec(source)
        _remove_free_joint(robot.spec)  # the pelvis pinned upright where the spec puts it
        for key in list(robot.spec.keys):
            robot.spec.delete(key)
        self.source = robot.source
        self.model = robot.spec.compile()
        self.model.opt.gravity[:] = (0.0, 0.0, -9.81)
        self.data = mujoco.MjData(self.model)
        self._slots = np.array([slot for slot, name in enumerate(variant.slots) if name])
        names = [variant.slots[slot] for slot in self._slots]
        self._qpos = np.array([self.model.jnt_qposadr[self.model.joint(n).id] for n in names])
        self._dof = np.array([self.model.jnt_dofadr[self.model.joint(n).id] for n in names])
        self._limit = np.array([TORQUE_LIMITS[n] for n in names])
        self._bias = np.zeros(self.model.nv)

    def torques(self, q_by_slot: np.ndarray) -> np.ndarray:
        """Gravity torques (Nm, NUM_MOTORS slots, unused slots 0) at the measured joint positions, within each
        motor's torque limit."""
        d = self.data
        d.qpos[self._qpos] = np.asarray(q_by_slot, dtype=np.float64)[self._slots]
        d.qvel[:] = 0.0
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        mujoco.mj_rne(self.model, d, 0, self._bias)  # qvel = 0: the bias force is gravity alone
        out = np.zeros(NUM_MOTORS)
        out[self._slots] = np.clip(self._bias[self._dof], -self._limit, self._limit)
        return out
