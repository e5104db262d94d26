"""The G1's motor law on the simulated robot: what the fake robot applies instead of the simulation's servos.

    tau = tau_ff + kp (q_des - q) + kd (dq_des - dq), limited to the joint's torque (the model's actuatorfrcrange)

MuJoCo's position actuators are already `gain * ctrl + bias0 + bias1 * q + bias2 * qdot`, so each command only
sets gain = kp, bias1 = -kp, bias2 = -kd and ctrl = q_des; tau_ff + kd dq_des go into qfrc_applied. The damping
then stays implicit in the integrator (implicitfast), as stable at 2 ms as the servos it replaces.
A motor whose mode is 0 (disabled) produces no torque. Joints never commanded keep the model's own servos: on the
robot that is Unitree's locomotion controller holding the stance, which arm_sdk blends with (weight 0..1).
"""

from __future__ import annotations

import mujoco
import numpy as np


class MotorLaw:
    """Per-joint motor commands for the joints `names` of a compiled G1 model (position actuators named as the
    joints, as in mujoco_menagerie and the project's simplified G1)."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, names):
        self.model, self.data, self.names = model, data, tuple(names)
        self.actuators = np.array([model.actuator(n).id for n in self.names])
        self.dofs = np.array([model.jnt_dofadr[model.joint(n).id] for n in self.names])
        fixed, affine = mujoco.mjtGain.mjGAIN_FIXED, mujoco.mjtBias.mjBIAS_AFFINE
        if not all(model.actuator_gaintype[a] == fixed and model.actuator_biastype[a] == affine
                   for a in self.actuators):
            raise ValueError("MotorLaw needs position actuators (fixed gain, affine bias) on every joint")
        # The model's own servos: what an uncommanded joint keeps (the robot's built-in controller).
        self.servo_kp = model.actuator_gainprm[self.actuators, 0].copy()
        self.servo_kd = -model.actuator_biasprm[self.actuators, 2].copy()
        self.servo_targets = data.ctrl[self.actuators].copy()

    def apply(self, kp, kd, q, dq=None, tau=None, enabled=None, weight=None) -> None:
        """Commands for every joint in `names` order. `enabled` False: no torque. `weight` (0..1 per joint): blend
        with the built-in servos holding their current ctrl (arm_sdk); None = the command alone."""
        m, d, a = self.model, self.data, self.actuators
        kp, kd, q = (np.asarray(v, dtype=np.float64) for v in (kp, kd, q))
        dq = np.zeros_like(q) if dq is None else np.asarray(dq, dtype=np.float64)
        tau = np.zeros_like(q) if tau is None else np.asarray(tau, dtype=np.float64)
        on = np.ones(len(q), dtype=bool) if enabled is None else np.asarray(enabled, dtype=bool)
        kp, kd, dq, tau = (np.where(on, v, 0.0) for v in (kp, kd, dq, tau))
        if weight is not None:
            w = np.clip(np.asarray(weight, dtype=np.float64), 0.0, 1.0)
            q = w * q + (1 - w) * self.servo_targets
            kp = w * kp + (1 - w) * self.servo_kp
            kd = w * kd + (1 - w) * self.servo_kd
            tau, dq = w * tau, w * dq
        m.actuator_gainprm[a, 0] = kp
        m.actuator_biasprm[a, 1] = -kp
        m.actuator_biasprm[a, 2] = -kd
        d.ctrl[a] = q
        d.qfrc_applied[self.dofs] = tau + kd * dq

    def servo(self) -> None:
        """Back to the model's own servos, holding the current ctrl (what every joint has after a reset)."""
        a = self.actuators
        self.servo_targets = self.data.ctrl[a].copy()
        self.model.actuator_gainprm[a, 0] = self.servo_kp
        self.model.actuator_biasprm[a, 1] = -self.servo_kp
        self.model.actuator_biasprm[a, 2] = -self.servo_kd
        self.data.qfrc_applied[self.dofs] = 0.0

    def torques(self) -> np.ndarray:
        """The actuator torque of each joint in the last step (LowState's tau_est)."""
        return self.data.actuator_force[self.actuators].copy()
