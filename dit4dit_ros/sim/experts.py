"""Scripted experts for the tabletop tasks: Cartesian scripts for one hand, joint targets by mink IK.

Each task's script is a generator that yields (hand position, grip) set-points, reading the world (the
expert is privileged: it sees the true object poses). `ScriptedExpert.act()` moves a carrot toward the
set-point at a bounded Cartesian speed and solves differential IK (mink, DAQP) for the task's arm on a
commanded configuration, with the rest of the robot frozen. The output is the 16-D tabletop action, the
same interface the policy uses, so the experts' episodes are demonstrations.
"""

from __future__ import annotations

from collections.abc import Iterator

import mink
import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.sim.env import G1TabletopEnv
from dit4dit_ros.sim.scene import BOWL_RADIUS, BOWL_WALL_HEIGHT, HAND_SITES, TABLE_TOP_Z

# (hand-site position in the world, grip 0..1, hand-site orientation as a 3x3 matrix or None = free)
SetPoint = tuple[np.ndarray, float, np.ndarray | None]

HAND_CLEARANCE = 0.035  # m, lowest hand-site height above the table (the fingers are ~3 cm thick)


class ArmIK:
    """Differential IK (mink, DAQP) for one arm's hand site; every other joint of the robot is frozen."""

    def __init__(self, model, side: str, orientation_cost: float = 0.3):
        self.side, self.orientation_cost = side, orientation_cost
        self.qpos_indices = [model.jnt_qposadr[model.joint(n).id] for n in g1.ARM_JOINTS[side]]
        arm_dofs = {model.jnt_dofadr[model.joint(n).id] for n in g1.ARM_JOINTS[side]}
        self.configuration = mink.Configuration(model)
        self.hand_task = mink.FrameTask(HAND_SITES[side], "site", position_cost=1.0, orientation_cost=0.0,
                                        lm_damping=1e-3)
        self.posture_task = mink.PostureTask(model, cost=1e-3)
        self.constraints = [mink.DofFreezingTask(model, dof_indices=[d for d in range(model.nv) if d not in arm_dofs])]

        def colliding(body: str) -> list[int]:
            return [g for g in mink.get_body_geom_ids(model, model.body(body).id)
                    if model.geom_contype[g] or model.geom_conaffinity[g]]

        # IK knows no contacts: keep the upper arm and forearm off the torso (the shoulder roll would
        # otherwise press the elbow into it and the hand would miss its target by centimetres).
        arm_geoms = [g for link in ("shoulder_yaw", "elbow", "wrist_roll") for g in colliding(f"{side}_{link}_link")]
        self.limits = [mink.ConfigurationLimit(model),
                       mink.VelocityLimit(model, {n: 3.0 for n in g1.ARM_JOINTS[side]}),
                       mink.CollisionAvoidanceLimit(model, [(arm_geoms, colliding("torso_link"))],
                                                    minimum_distance_from_collisions=0.01,
                                                    collision_detection_distance=0.05)]

    def reset(self, q: np.ndarray) -> None:
        self.q = q.copy()
        self.posture_task.set_target(self.q)

    def solve(self, position: np.ndarray, orientation: np.ndarray | None, dt: float, iterations: int) -> np.ndarray:
        """Move the commanded configuration toward the hand pose; returns the arm's 7 joint targets."""
        self.configuration.update(self.q)
        rotation = mink.SO3.identity() if orientation is None else mink.SO3.from_matrix(orientation)
        self.hand_task.set_orientation_cost(0.0 if orientation is None else self.orientation_cost)
        self.hand_task.set_target(mink.SE3.from_rotation_and_translation(rotation, position))
        for _ in range(iterations):
            velocity = mink.solve_ik(self.configuration, [self.hand_task, self.posture_task], dt / iterations,
                                     "daqp", damping=1e-3, limits=self.limits, constraints=self.constraints)
            self.configuration.integrate_inplace(velocity, dt / iterations)
        self.q = self.configuration.q.copy()
        return self.q[self.qpos_indices]


class ScriptedExpert:
    """Solves the env's current task from its current state; call `reset()` after every env.reset()."""

    def __init__(self, env: G1TabletopEnv, speed: float = 0.25, ik_iterations: int = 2):
        self.env, self.speed, self.ik_iterations = env, speed, ik_iterations
        self._ik = {side: ArmIK(env.model, side) for side in g1.SIDES}
        self._script: Iterator[SetPoint] | None = None

    def reset(self) -> None:
        self.side = self.env.task.hand
        self._ik[self.side].reset(self.env.data.qpos)
        self._carrot = self.env.world.hand_pos(self.side)
        self._hold = self.env.measured_action_state()  # the other arm and both grips hold their start
        self._script = getattr(self, f"_{self.env.task.name}")()

    def act(self) -> np.ndarray:
        """The next 16-D action (g1.ACTION_NAMES order)."""
        if self._script is None:
            raise RuntimeError("call reset() after env.reset() before act()")
        target, grip, orientation = next(self._script)
        step = self.speed * self.env.control_dt
        offset = target - self._carrot
        distance = np.linalg.norm(offset)
        self._carrot = target if distance <= step else self._carrot + offset * (step / distance)

        action = self._hold.copy()
        first = g1.ACTION_NAMES.index(g1.ARM_JOINTS[self.side][0])
        action[first:first + 7] = self._ik[self.side].solve(self._carrot, orientation, self.env.control_dt,
                                                            self.ik_iterations)
        action[g1.ACTION_NAMES.index(g1.GRIP_NAMES[self.side])] = grip
        return action

    # --- script building blocks
    def _hand(self) -> np.ndarray:
        return self.env.world.hand_pos(self.side)

    def _move(self, target, grip: float = 0.0, orientation: np.ndarray | None = None, tolerance: float = 0.01,
              max_steps: int = 150, clearance: float = HAND_CLEARANCE) -> Iterator[SetPoint]:
        """Go to `target`; ends when the hand is within `tolerance` or after `max_steps` control steps."""
        target = np.asarray(target, dtype=float)
        target[2] = max(target[2], TABLE_TOP_Z + clearance)
        for _ in range(max_steps):
            if np.linalg.norm(self._hand() - target) < tolerance:
                return
            yield target, grip, orientation

    def _stay(self, grip: float = 0.0, orientation: np.ndarray | None = None,
              steps: int | None = None) -> Iterator[SetPoint]:
        target = self._carrot.copy()
        count = 0
        while steps is None or count < steps:
            count += 1
            yield target, grip, orientation

    def _palm_toward(self, direction) -> np.ndarray:
        """Hand-site orientation: hand upright (fingers horizontal), palm facing the horizontal `direction`."""
        palm = np.r_[np.asarray(direction, dtype=float)[:2], 0.0]
        palm /= np.linalg.norm(palm)
        # Dex3: fingers along the wrist's +x; the palm (the side the fingers close toward) is +y on the
        # right hand and -y on the left; +z is up when the hand is upright.
        y_axis = palm if self.side == "right" else -palm
        up = np.array([0.0, 0.0, 1.0])
        return np.column_stack([np.cross(y_axis, up), y_axis, up])

    # --- task scripts
    def _touch_cube(self) -> Iterator[SetPoint]:
        cube = self.env.world.cube_pos
        yield from self._move(self._hand() + (0.0, 0.0, 0.06))  # clear the table before moving sideways
        yield from self._move(cube + (0.0, 0.0, 0.08))
        yield from self._move(cube + (0.0, 0.0, 0.0), tolerance=0.005)
        yield from self._stay()

    def _push_cube(self) -> Iterator[SetPoint]:
        """The upright hand is a paddle: palm toward the goal, behind the cube; push along the cube -> goal line."""
        world = self.env.world
        goal = world.mocap_pos("target")[:2]
        behind, height = 0.045, 0.05  # m: hand site behind the cube's centre, and above the table

        def line() -> tuple[np.ndarray, np.ndarray]:
            cube = world.cube_pos[:2]
            return cube, (goal - cube) / max(np.linalg.norm(goal - cube), 1e-6)

        cube, direction = line()
        paddle = self._palm_toward(direction)
        yield from self._move(self._hand() + (0.0, 0.0, 0.06))
        yield from self._move(np.r_[cube - behind * direction, TABLE_TOP_Z + height + 0.06], orientation=paddle)
        yield from self._move(np.r_[cube - behind * direction, TABLE_TOP_Z + height], orientation=paddle,
                              tolerance=0.012)
        for _ in range(400):  # closed loop on the cube's pose
            cube, direction = line()
            error = np.linalg.norm(goal - cube)
            if error < 0.012:
                break
            hand = np.r_[cube - (behind - min(0.05, error)) * direction, TABLE_TOP_Z + height]
            yield hand, 0.0, self._palm_toward(direction)
        yield from self._move(self._hand() + (0.0, 0.0, 0.08), orientation=paddle)
        yield from self._stay(orientation=paddle)

    def _touch_bowl_left(self) -> Iterator[SetPoint]:
        """Lower the hand onto the near side of the bowl's rim."""
        bowl = self.env.world.mocap_pos("bowl")
        rim = bowl + (-BOWL_RADIUS, 0.0, BOWL_WALL_HEIGHT)
        yield from self._move(self._hand() + (0.0, 0.0, 0.06))
        yield from self._move(rim + (0.0, 0.0, 0.08))
        yield from self._move(rim + (0.0, 0.0, 0.0), tolerance=0.005, clearance=0.0)
        yield from self._stay()


def run_episode(env: G1TabletopEnv, expert: ScriptedExpert, seed: int, task: str, render: bool = False):
    """One expert episode; returns (success, steps, reason)."""
    env.reset(seed=seed, task=task)
    expert.reset()
    steps = 0
    while True:
        result = env.step(expert.act(), render=render)
        steps += 1
        if result.done:
            return result.success, steps, result.info["reason"]

