"""Tabletop tasks: a language instruction, a seeded random initial state, a success predicate, a time limit.

Each task reads and writes the world through `World` (named handles on a MjModel/MjData), so the same task
runs on the menagerie G1 and on the simplified G1. Objects a task does not use are parked under the floor,
where the camera cannot see them and nothing touches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.sim.scene import CUBE_HALF, HAND_SITES, TABLE_CENTER, TABLE_HALF, TABLE_TOP_Z, TARGET_HALF

PARKED = np.array([0.0, 2.0, -1.0])  # under the floor, out of view


class World:
    """Named views of the tabletop scene's state."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        self._cube_qpos = model.jnt_qposadr[model.joint("cube_joint").id]
        self._cube_qvel = model.jnt_dofadr[model.joint("cube_joint").id]
        self._mocap = {name: model.body_mocapid[model.body(name).id] for name in ("target", "bowl")}
        hand_bodies = {side: {model.body(f"{side}_wrist_yaw_link").id} for side in g1.SIDES}
        for side, bodies in hand_bodies.items():
            for body in range(model.nbody):  # the wrist's subtree: palm and fingers
                parent = body
                while parent > 0 and parent not in bodies:
                    parent = model.body_parentid[parent]
                if parent in bodies:
                    bodies.add(body)
        self._hand_bodies = hand_bodies

    # --- objects
    @property
    def cube_pos(self) -> np.ndarray:
        return self.data.qpos[self._cube_qpos:self._cube_qpos + 3].copy()

    def place_cube(self, x: float, y: float, yaw: float = 0.0) -> None:
        q = self._cube_qpos
        self.data.qpos[q:q + 3] = (x, y, TABLE_TOP_Z + CUBE_HALF)
        self.data.qpos[q + 3:q + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.qvel[self._cube_qvel:self._cube_qvel + 6] = 0.0

    def mocap_pos(self, name: str) -> np.ndarray:
        return self.data.mocap_pos[self._mocap[name]].copy()

    def place_mocap(self, name: str, xyz) -> None:
        self.data.mocap_pos[self._mocap[name]] = xyz

    def hand_pos(self, side: str) -> np.ndarray:
        return self.data.site(HAND_SITES[side]).xpos.copy()

    def hand_touches(self, side: str, body: str) -> bool:
        """Whether any geom of that hand (wrist, palm, fingers) is in contact with `body`."""
        hand, target = self._hand_bodies[side], self.model.body(body).id
        bodies = self.model.geom_bodyid
        for contact in self.data.contact[: self.data.ncon]:
            first, second = bodies[contact.geom1], bodies[contact.geom2]
            if (first == target and second in hand) or (second == target and first in hand):
                return True
        return False

    def cube_on_table(self) -> bool:
        x, y, z = self.cube_pos
        return (abs(x - TABLE_CENTER[0]) < TABLE_HALF[0] and abs(y - TABLE_CENTER[1]) < TABLE_HALF[1]
                and z > TABLE_TOP_Z)


@dataclass(frozen=True)
class Task:
    """A tabletop task. Subclasses place objects in `randomise` and judge the world in `success`."""

    name: str
    instruction: str
    time_limit: float  # s of simulated time
    hand: str = "right"  # the hand the task is done with (the scripted expert moves that arm)

    def randomise(self, rng: np.random.Generator, world: World) -> None:
        raise NotImplementedError

    def success(self, world: World) -> bool:
        raise NotImplementedError

    def failure(self, world: World) -> str | None:
        """A reason when the episode cannot succeed any more (checked every step)."""
        return None if world.cube_on_table() else "the cube left the table"


class TouchCube(Task):
    def randomise(self, rng, world):
        world.place_cube(rng.uniform(0.30, 0.42), rng.uniform(-0.28, -0.05), rng.uniform(-0.6, 0.6))
        world.place_mocap("target", PARKED)
        world.place_mocap("bowl", PARKED + (0.3, 0, 0))

    def success(self, world):
        return world.hand_touches("right", "cube")


class PushCubeOntoSquare(Task):
    # The right hand pushes to the left (and a little forward or back): its palm faces that way naturally.
    def randomise(self, rng, world):
        cube = np.array([rng.uniform(0.30, 0.34), rng.uniform(-0.25, -0.12)])
        heading = rng.uniform(np.radians(50), np.radians(110))
        goal = cube + rng.uniform(0.09, 0.12) * np.array([np.cos(heading), np.sin(heading)])
        world.place_cube(*cube, rng.uniform(-0.3, 0.3))
        world.place_mocap("target", (*goal, TABLE_TOP_Z))
        world.place_mocap("bowl", PARKED + (0.3, 0, 0))

    def success(self, world):
        offset = world.cube_pos[:2] - world.mocap_pos("target")[:2]
        return bool(np.all(np.abs(offset) < TARGET_HALF - 0.01)) and world.cube_on_table()


class TouchBowlLeft(Task):
    # The other arm and another object: the instruction, not the scene, says which hand and what to touch.
    def randomise(self, rng, world):
        world.place_mocap("bowl", (rng.uniform(0.32, 0.40), rng.uniform(0.08, 0.20), TABLE_TOP_Z))
        world.place_cube(rng.uniform(0.30, 0.40), rng.uniform(-0.25, -0.10), rng.uniform(-0.6, 0.6))
        world.place_mocap("target", PARKED)

    def success(self, world):
        return world.hand_touches("left", "bowl")


TASKS: dict[str, Task] = {task.name: task for task in (
    TouchCube("touch_cube", "touch the red cube with the right hand", time_limit=8.0),
    PushCubeOntoSquare("push_cube", "push the red cube onto the green square", time_limit=12.0),
    TouchBowlLeft("touch_bowl_left", "touch the blue bowl with the left hand", time_limit=8.0, hand="left"),
)}
DEFAULT_TASK = "touch_cube"


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None


def parse_task_names(text: str) -> list[str]:
    """"touch_cube, push_cube" -> ["touch_cube", "push_cube"]; ValueError naming unknown or missing tasks."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {unknown or [text]}; known: {sorted(TASKS)}")
    return names
