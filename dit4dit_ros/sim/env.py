"""G1TabletopEnv: the plain-Python simulation API (no ROS), used by the ROS node, the experts and the tests.

    env = G1TabletopEnv()                       # menagerie G1 if available, else the simplified G1
    obs = env.reset(seed=3, task="push_cube")
    result = env.step(action)                   # 16-D: 7 + 7 arm targets [rad], 2 grips (0 open .. 1 closed)
    result.observation.image, result.success, result.done

Commands are validated before they reach an actuator: unknown joint names, wrong sizes, NaN/inf and targets
outside the joint limits raise `CommandError`, and the previous targets stay in force (the arms hold).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.sim.robot_model import DEFAULT_MAX_FACES, load_g1_spec
from dit4dit_ros.sim.scene import CAMERA_NAME, build_scene
from dit4dit_ros.sim.tasks import DEFAULT_TASK, TASKS, Task, World, get_task

log = logging.getLogger(__name__)

LIMIT_TOLERANCE = 1e-3  # rad; targets this far outside a joint range are still accepted (and clipped)


class CommandError(ValueError):
    """A joint command that must not reach the actuators (the message says what was wrong)."""


@dataclass
class Observation:
    time: float  # s of simulated time since reset
    state: np.ndarray  # (16,) measured, in g1.ACTION_NAMES order (grips estimated from the finger joints)
    joint_names: tuple[str, ...]  # every actuated joint, g1.ALL_JOINTS order
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    image: np.ndarray | None = None  # (H, W, 3) uint8 from the head camera, when rendered


@dataclass
class StepResult:
    observation: Observation
    success: bool
    done: bool
    info: dict = field(default_factory=dict)  # "reason": success | timeout | failure text


class G1TabletopEnv:
    def __init__(self, model: str = "auto", max_faces: int | None = DEFAULT_MAX_FACES,
                 image_size: tuple[int, int] = (224, 224), control_hz: float = 50.0, render: bool = True,
                 gravity_compensation: bool = True):
        robot = load_g1_spec(model, max_faces)
        self.model_source, self.model_detail = robot.source, robot.detail
        self.model = build_scene(robot.spec, gravity_compensation).compile()
        self.data = mujoco.MjData(self.model)
        self.world = World(self.model, self.data)
        physics_dt = self.model.opt.timestep
        self.substeps = max(1, round(1.0 / (control_hz * physics_dt)))
        self.control_dt = self.substeps * physics_dt
        self.image_size = tuple(image_size)
        self.render_images = render
        self._renderer: mujoco.Renderer | None = None

        m = self.model
        self._joint_qpos = {n: m.jnt_qposadr[m.joint(n).id] for n in g1.ALL_JOINTS}
        self._joint_dof = {n: m.jnt_dofadr[m.joint(n).id] for n in g1.ALL_JOINTS}
        self._actuator = {n: m.actuator(n).id for n in g1.ALL_JOINTS}
        self.joint_limits = {n: tuple(m.jnt_range[m.joint(n).id]) for n in g1.ALL_JOINTS}
        # Index arrays for the per-step reads (observe runs every control step and at 100 Hz in the node).
        self._all_qpos = np.array([self._joint_qpos[n] for n in g1.ALL_JOINTS])
        self._all_dof = np.array([self._joint_dof[n] for n in g1.ALL_JOINTS])
        self._arm_qpos = np.array([self._joint_qpos[n] for n in g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]])
        self._grip_closure = {  # per hand: finger qpos indices and their closed targets (0-target joints skipped)
            side: (np.array([self._joint_qpos[n] for n in g1.HAND_JOINTS[side] if g1.DEX3_CLOSED[n] != 0.0]),
                   np.array([g1.DEX3_CLOSED[n] for n in g1.HAND_JOINTS[side] if g1.DEX3_CLOSED[n] != 0.0]))
            for side in g1.SIDES}
        self.task: Task = get_task(DEFAULT_TASK)
        self.seed = 0
        self._done = False
        self._start_time = 0.0
        self.frozen = False

    # --- episode
    @property
    def tasks(self) -> dict[str, Task]:
        return TASKS

    @property
    def time(self) -> float:
        return self.data.time - self._start_time

    def reset(self, seed: int = 0, task: str | None = None) -> Observation:
        """Start an episode of `task` (default: the current one) from the state that `seed` draws."""
        if task is not None:
            self.task = get_task(task)
        self.seed = int(seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = np.random.default_rng(self.seed)
        ready = {name: value + rng.uniform(-0.05, 0.05) for name, value in g1.READY_POSE.items()}
        for name, value in ready.items():
            self.data.qpos[self._joint_qpos[name]] = value
        self.data.ctrl[:] = 0.0
        self.set_joint_targets(ready)
        self.task.randomise(rng, self.world)
        mujoco.mj_forward(self.model, self.data)
        self._start_time = self.data.time
        self._done = False
        self.frozen = False
        return self.observe()

    def step(self, action: Sequence[float] | np.ndarray, render: bool | None = None) -> StepResult:
        """Apply a 16-D action (g1.ACTION_NAMES order) and advance one control period.

        `render` overrides the env's `render_images` for this step's observation."""
        values = np.asarray(action, dtype=np.float64)
        if values.shape != (len(g1.ACTION_NAMES),):
            raise CommandError(f"action has shape {values.shape}; expected ({len(g1.ACTION_NAMES)},) "
                               f"in the order {list(g1.ACTION_NAMES)}")
        self.set_action(dict(zip(g1.ACTION_NAMES, values.tolist())))
        self.advance(self.control_dt)
        return self.evaluate(render)

    def evaluate(self, render: bool | None = None) -> StepResult:
        """Observe, judge success/failure/timeout; once done, an episode stays done until reset."""
        success = self.task.success(self.world)
        failure = self.task.failure(self.world)
        timeout = self.time >= self.task.time_limit - 1e-9
        reason = "success" if success else failure or ("timeout" if timeout else "")
        self._done = self._done or bool(reason)
        return StepResult(self.observe(render), success, self._done, {"reason": reason})

    # --- commands
    def set_action(self, action: Mapping[str, float]) -> None:
        """Targets by name: any of the 14 arm joints and the two grips (0 open .. 1 closed)."""
        targets = {}
        for name, value in action.items():
            side = next((s for s, grip in g1.GRIP_NAMES.items() if grip == name), None)
            if side is None:
                targets[name] = value
                continue
            if not (math.isfinite(value) and -1e-6 <= value <= 1.0 + 1e-6):
                raise CommandError(f"{name} = {value!r}; a grip must be a finite number in [0, 1]")
            targets.update(g1.grip_targets(side, value))
        self.set_joint_targets(targets)

    def set_joint_targets(self, targets: Mapping[str, float]) -> None:
        """Position targets for joints by MJCF name. All are validated before any is applied."""
        checked = validate_joint_targets(targets, self.joint_limits)
        if self.frozen:
            return
        for name, value in checked.items():
            self.data.ctrl[self._actuator[name]] = value

    def freeze(self, frozen: bool = True) -> None:
        """E-stop: hold every joint where it is now and ignore targets until unfrozen."""
        if frozen and not self.frozen:
            for name in g1.ALL_JOINTS:
                self.data.ctrl[self._actuator[name]] = self.data.qpos[self._joint_qpos[name]]
        self.frozen = frozen

    def joint_targets(self) -> dict[str, float]:
        return {name: float(self.data.ctrl[self._actuator[name]]) for name in g1.ALL_JOINTS}

    # --- physics and sensing
    def advance(self, duration: float) -> None:
        steps = max(1, round(duration / self.model.opt.timestep))
        mujoco.mj_step(self.model, self.data, nstep=steps)

    def observe(self, render: bool | None = None) -> Observation:
        q, dq = self.data.qpos[self._all_qpos], self.data.qvel[self._all_dof]  # fancy indexing: copies
        render = self.render_images if render is None else render
        return Observation(self.time, self.measured_action_state(), g1.ALL_JOINTS, q, dq,
                           self.render() if render else None)

    def measured_action_state(self) -> np.ndarray:
        """The measured state in action coordinates: arm joint angles and a grip estimate per hand."""
        grips = [np.clip(np.mean(self.data.qpos[index] / closed), 0.0, 1.0)
                 for index, closed in (self._grip_closure[side] for side in g1.SIDES)]
        return np.concatenate([self.data.qpos[self._arm_qpos], grips])

    def render(self) -> np.ndarray:
        if self._renderer is None:  # the GL context belongs to the thread that first renders
            self._renderer = mujoco.Renderer(self.model, self.image_size[0], self.image_size[1])
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._renderer.update_scene(self.data, CAMERA_NAME)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def validate_joint_targets(targets: Mapping[str, float], limits: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Check names, finiteness and limits of joint targets; returns them clipped into the joint ranges."""
    unknown = [name for name in targets if name not in limits]
    if unknown:
        raise CommandError(f"unknown joint name(s) {unknown}; the G1 tabletop joints are {list(limits)}")
    checked = {}
    for name, value in targets.items():
        value = float(value)
        low, high = limits[name]
        if not math.isfinite(value):
            raise CommandError(f"{name} = {value}; targets must be finite")
        if not (low - LIMIT_TOLERANCE <= value <= high + LIMIT_TOLERANCE):
            raise CommandError(f"{name} = {value:.4f} rad is outside the joint range [{low:.4f}, {high:.4f}]")
        checked[name] = min(max(value, low), high)
    return checked
