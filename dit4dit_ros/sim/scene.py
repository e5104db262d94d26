"""The tabletop world: a pelvis-pinned G1 at a table with a cube, a target square and a bowl.

DiT4DiT's G1 experiments use the upper body at a table, so the pelvis is welded to the world (its free
joint removed) and the legs and waist are held by their position actuators. Objects that tasks move around
between episodes are mocap bodies (the target square and the bowl: fixed for physics, placed at reset); the
cube is a free body. Rendering is set up for speed on a CPU: no shadows, no reflections, small textures.
"""

from __future__ import annotations

import numpy as np
import mujoco

from dit4dit_ros import g1

TABLE_TOP_Z = 0.72  # m, the table surface (the pelvis is at 0.793; the hands reach it at x = 0.25..0.42)
TABLE_CENTER = (0.45, 0.0)  # m, x forward, y left, in the pelvis frame (= world frame here)
TABLE_HALF = (0.22, 0.45)  # m
CUBE_HALF = 0.02  # m
TARGET_HALF = 0.05  # m, half side of the green square
BOWL_RADIUS = 0.065  # m, inner radius of the bowl's wall
BOWL_WALL_HEIGHT = 0.035  # m
HAND_SITES = {side: f"{side}_hand_site" for side in g1.SIDES}  # between the fingers, for IK and success checks
CAMERA_NAME = "head_camera"


def _remove_free_joint(spec: mujoco.MjSpec) -> None:
    pelvis = spec.body("pelvis")
    for joint in list(pelvis.joints):
        if joint.type == mujoco.mjtJoint.mjJNT_FREE:
            spec.delete(joint)


def _add_robot_extras(spec: mujoco.MjSpec, gravity_compensation: bool = True) -> None:
    # Gravity compensation, as the real G1's arm controllers add it as feed-forward torque: without it the
    # kp 500 position actuators sag ~1.5 cm at the hand and targets are not reached. The fake robot turns it
    # off: there the controller bridge's own feed-forward must carry the arms, as on the robot.
    if gravity_compensation:
        for body in spec.body("pelvis").find_all(mujoco.mjtObj.mjOBJ_BODY):
            body.gravcomp = 1.0
    torso = spec.body(g1.HEAD_CAMERA_BODY)
    if spec.camera(CAMERA_NAME) is None:
        torso.add_camera(name=CAMERA_NAME, pos=list(g1.HEAD_CAMERA_POS), quat=list(g1.head_camera_quat()),
                         fovy=g1.HEAD_CAMERA_FOVY)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        wrist = spec.body(f"{side}_wrist_yaw_link")
        if spec.site(HAND_SITES[side]) is None:
            # Between the palm and the finger roots, slightly to the palm side.
            wrist.add_site(name=HAND_SITES[side], pos=[0.12, -sign * 0.015, 0.0], size=[0.01, 0, 0], group=5)


def _add_world(spec: mujoco.MjSpec) -> None:
    world = spec.worldbody
    spec.visual.quality.shadowsize = 0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    for light in world.lights:
        light.castshadow = False
    world.add_light(name="room", pos=[0.6, 0.0, 2.5], dir=[0.0, 0.0, -1.0], castshadow=False,
                    diffuse=[0.5, 0.5, 0.5])
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.05], rgba=[0.35, 0.38, 0.42, 1])

    table = world.add_body(name="table", pos=[TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP_Z - 0.02])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TABLE_HALF[0], TABLE_HALF[1], 0.02],
                   rgba=[0.62, 0.5, 0.38, 1], friction=[0.6, 0.005, 0.0001])
    for ix in (-1, 1):
        for iy in (-1, 1):
            table.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.02, 0.02, (TABLE_TOP_Z - 0.04) / 2],
                           pos=[ix * (TABLE_HALF[0] - 0.03), iy * (TABLE_HALF[1] - 0.03), -(TABLE_TOP_Z) / 2],
                           rgba=[0.3, 0.25, 0.2, 1], contype=0, conaffinity=0)

    cube = world.add_body(name="cube", pos=[0.45, -0.1, TABLE_TOP_Z + CUBE_HALF])
    cube.add_freejoint(name="cube_joint")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=0.05,
                  rgba=[0.85, 0.1, 0.1, 1], friction=[1.2, 0.01, 0.001], condim=4)

    target = world.add_body(name="target", mocap=True, pos=[0.5, 0.1, TABLE_TOP_Z])
    target.add_geom(name="target", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TARGET_HALF, TARGET_HALF, 0.0005],
                    rgba=[0.1, 0.75, 0.2, 1], contype=0, conaffinity=0)

    bowl = world.add_body(name="bowl", mocap=True, pos=[0.5, 0.15, TABLE_TOP_Z])
    bowl.add_geom(name="bowl_base", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[BOWL_RADIUS + 0.005, 0.003, 0],
                  pos=[0, 0, 0.003], rgba=[0.15, 0.3, 0.85, 1])
    segments = 12
    for k in range(segments):
        angle = 2 * np.pi * k / segments
        quat = np.zeros(4)
        mujoco.mju_axisAngle2Quat(quat, np.array([0.0, 0.0, 1.0]), angle)
        half_len = (BOWL_RADIUS + 0.005) * np.tan(np.pi / segments) + 0.002
        bowl.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.004, half_len, BOWL_WALL_HEIGHT / 2],
                      pos=[(BOWL_RADIUS + 0.004) * np.cos(angle), (BOWL_RADIUS + 0.004) * np.sin(angle),
                           BOWL_WALL_HEIGHT / 2], quat=list(quat), rgba=[0.15, 0.3, 0.85, 1])


def build_scene(robot: mujoco.MjSpec, gravity_compensation: bool = True) -> mujoco.MjSpec:
    """Turn a G1 robot spec (menagerie or simplified) into the tabletop scene, in place, and return it."""
    _remove_free_joint(robot)
    for key in list(robot.keys):  # keyframes were written for the floating base (nq 50)
        robot.delete(key)
    _add_robot_extras(robot, gravity_compensation)
    _add_world(robot)
    robot.modelname = "g1_tabletop"
    return robot
