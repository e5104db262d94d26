"""Facts about the Unitree G1 (29 DoF + Dex3-1 hands) that the model, the simulation and the bridges share.

Everything is addressed by joint NAME (the MJCF names of mujoco_menagerie's unitree_g1, which are also the
names of Unitree's URDF): mixing wire order, MJCF order and IsaacLab's interleaved order is a known source
of G1 bugs. Numbers are from ../shared/docs/unitree-g1.md and the menagerie model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

ARM_LINKS = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw")
LEG_LINKS = ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
HAND_LINKS = ("thumb_0", "thumb_1", "thumb_2", "middle_0", "middle_1", "index_0", "index_1")
SIDES = ("left", "right")

# The 29 body joints in the order of the unitree_hg wire protocol (LowCmd.motor_cmd[0..28]).
BODY_JOINTS: tuple[str, ...] = (
    tuple(f"{side}_{link}_joint" for side in SIDES for link in LEG_LINKS)
    + ("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint")
    + tuple(f"{side}_{link}_joint" for side in SIDES for link in ARM_LINKS)
)
ARM_JOINTS: dict[str, tuple[str, ...]] = {side: tuple(f"{side}_{link}_joint" for link in ARM_LINKS) for side in SIDES}
HAND_JOINTS: dict[str, tuple[str, ...]] = {
    side: tuple(f"{side}_hand_{link}_joint" for link in HAND_LINKS) for side in SIDES}
ALL_JOINTS: tuple[str, ...] = BODY_JOINTS + HAND_JOINTS["left"] + HAND_JOINTS["right"]

# DiT4DiT's G1 tabletop action (16-D): 7 + 7 arm joint targets [rad] and one grip scalar per hand
# (0 = open .. 1 = closed). The grips are not joints of the robot; GripMap spreads them over the fingers.
GRIP_NAMES: dict[str, str] = {"left": "left_grip", "right": "right_grip"}
ACTION_NAMES: tuple[str, ...] = ARM_JOINTS["left"] + ARM_JOINTS["right"] + (GRIP_NAMES["left"], GRIP_NAMES["right"])

# Arm joint position ranges [rad], the `range` attributes of mujoco_menagerie unitree_g1/g1_with_hands.xml
# (copied unchanged into sim/assets/g1_simplified.xml; a test compares the two). Roll ranges are mirrored.
ARM_JOINT_RANGES: dict[str, tuple[float, float]] = {
    **{f"{side}_{link}_joint": rng for side in SIDES for link, rng in {
        "shoulder_pitch": (-3.0892, 2.6704),
        "shoulder_yaw": (-2.618, 2.618),
        "elbow": (-1.0472, 2.0944),
        "wrist_pitch": (-1.61443, 1.61443),
        "wrist_yaw": (-1.61443, 1.61443),
        "wrist_roll": (-1.97222, 1.97222)}.items()},
    "left_shoulder_roll_joint": (-1.5882, 2.2515),
    "right_shoulder_roll_joint": (-2.2515, 1.5882),
}
GRIP_RANGE: tuple[float, float] = (0.0, 1.0)  # the grip scalar: 0 = open .. 1 = closed

# Dex3-1 finger targets [rad] at grip = 1 (closed). Grip 0 is every finger joint at 0 (straight, open).
# The right hand's finger axes are mirrored, so its closing directions are the left hand's negated
# (thumb_0 rotates about y and is not mirrored). Each value lies inside both hands' joint ranges.
_LEFT_CLOSED = {"thumb_0": 0.0, "thumb_1": 0.55, "thumb_2": 0.95, "middle_0": -0.95, "middle_1": -0.95,
                "index_0": -0.95, "index_1": -0.95}
DEX3_CLOSED: dict[str, float] = {
    **{f"left_hand_{k}_joint": v for k, v in _LEFT_CLOSED.items()},
    **{f"right_hand_{k}_joint": (v if k == "thumb_0" else -v) for k, v in _LEFT_CLOSED.items()},
}

# Intel RealSense D435(i) head camera, fixed to torso_link (d435_link in Unitree's URDF).
HEAD_CAMERA_BODY = "torso_link"
HEAD_CAMERA_POS = (0.0576, 0.0175, 0.4299)  # m, in torso_link
HEAD_CAMERA_PITCH = 0.831  # rad, pitched down about torso_link's y axis
HEAD_CAMERA_FOVY = 58.0  # deg; the D435 depth/colour field of view cropped to a square

# A tabletop "ready" pose: forearms forward and raised, hands open ~15 cm above the table. MJCF joint names -> rad.
# (At zero the G1's forearms point forward; a positive elbow angle lowers them.)
READY_POSE: dict[str, float] = {
    "waist_pitch_joint": 0.35,  # lean over the table: reach and camera view, as a person at a table does
    **{f"left_{k}_joint": v for k, v in
       {"shoulder_pitch": -0.1, "shoulder_roll": 0.3, "shoulder_yaw": 0.0, "elbow": -0.3,
        "wrist_roll": 0.0, "wrist_pitch": 0.0, "wrist_yaw": 0.0}.items()},
    **{f"right_{k}_joint": v for k, v in
       {"shoulder_pitch": -0.1, "shoulder_roll": -0.3, "shoulder_yaw": 0.0, "elbow": -0.3,
        "wrist_roll": 0.0, "wrist_pitch": 0.0, "wrist_yaw": 0.0}.items()},
}


def head_camera_quat() -> np.ndarray:
    """The head camera's orientation in torso_link (w, x, y, z).

    A MuJoCo camera looks along its -z axis with +y up. Level, it looks along the torso's +x with image
    right = torso -y and image up = torso +z; the D435 is then pitched down by HEAD_CAMERA_PITCH.
    """
    import mujoco

    level = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # columns: camera x, y, z
    level_quat = np.zeros(4)
    mujoco.mju_mat2Quat(level_quat, level.flatten())
    pitch = np.zeros(4)
    mujoco.mju_axisAngle2Quat(pitch, np.array([0.0, 1.0, 0.0]), HEAD_CAMERA_PITCH)
    quat = np.zeros(4)
    mujoco.mju_mulQuat(quat, pitch, level_quat)
    return quat


def grip_targets(side: str, grip: float) -> dict[str, float]:
    """Dex3 finger joint targets for one hand's grip scalar (clipped to 0..1)."""
    closing = float(np.clip(grip, 0.0, 1.0))
    return {name: closing * DEX3_CLOSED[name] for name in HAND_JOINTS[side]}


def grip_estimate(side: str, positions: Mapping[str, float]) -> float:
    """One hand's grip scalar (0 open .. 1 closed) from its measured finger angles: the inverse of grip_targets,
    averaged over the fingers that move when the hand closes (the same estimate the simulation reports). Hands
    without the model's finger joints (Inspire, Dex1 on the real robot) report the grip itself as `<side>_grip`."""
    if GRIP_NAMES[side] in positions:
        return float(np.clip(positions[GRIP_NAMES[side]], 0.0, 1.0))
    moving = [name for name in HAND_JOINTS[side] if DEX3_CLOSED[name] != 0.0]
    missing = [name for name in moving if name not in positions]
    if missing:
        raise KeyError(f"joint state lacks finger joint(s) {missing} needed for the {side} grip")
    closure = np.mean([positions[name] / DEX3_CLOSED[name] for name in moving])
    return float(np.clip(closure, 0.0, 1.0))


def action_state(positions: Mapping[str, float]) -> np.ndarray:
    """The measured state in action coordinates (ACTION_NAMES order) from joint positions BY NAME: the 14 arm
    angles and a grip estimate per hand. Raises KeyError naming any joint the state lacks."""
    arms = ARM_JOINTS["left"] + ARM_JOINTS["right"]
    missing = [name for name in arms if name not in positions]
    if missing:
        raise KeyError(f"joint state lacks arm joint(s) {missing}")
    return np.array([positions[name] for name in arms] + [grip_estimate(side, positions) for side in SIDES])
