"""G1 variants on the wire: which joint each LowCmd.motor_cmd index drives, and the mode_machine that names it.

LowCmd and LowState carry 35 motor slots whatever the variant. The 29-DoF G1 uses slots 0..28 in the order of
g1.BODY_JOINTS; the 23-DoF G1 keeps the same slot numbers and leaves the joints it lacks (waist roll/pitch, wrist
pitch/yaw) unused. Slot 29 is unused by the body: on the arm_sdk topic its q is the blend weight (0..1) between
Unitree's own locomotion controller and the arm command. Numbers from ../shared/docs/unitree-g1.md; ranges and
torque limits from mujoco_menagerie's unitree_g1 (a test compares them with the model).
"""

from __future__ import annotations

from dataclasses import dataclass

from dit4dit_ros import g1

NUM_MOTORS = 35
ARM_SDK_WEIGHT_SLOT = 29

# Joint position range [rad] and torque limit [Nm] of every G1 joint (the menagerie's range / actuatorfrcrange).
JOINT_RANGES: dict[str, tuple[float, float]] = {}
TORQUE_LIMITS: dict[str, float] = {}
for _name, (_low, _high, _torque) in {
    "left_hip_pitch_joint": (-2.5307, 2.8798, 88), "left_hip_roll_joint": (-0.5236, 2.9671, 139),
    "left_hip_yaw_joint": (-2.7576, 2.7576, 88), "left_knee_joint": (-0.087267, 2.8798, 139),
    "left_ankle_pitch_joint": (-0.87267, 0.5236, 50), "left_ankle_roll_joint": (-0.2618, 0.2618, 50),
    "right_hip_pitch_joint": (-2.5307, 2.8798, 88), "right_hip_roll_joint": (-2.9671, 0.5236, 139),
    "right_hip_yaw_joint": (-2.7576, 2.7576, 88), "right_knee_joint": (-0.087267, 2.8798, 139),
    "right_ankle_pitch_joint": (-0.87267, 0.5236, 50), "right_ankle_roll_joint": (-0.2618, 0.2618, 50),
    "waist_yaw_joint": (-2.618, 2.618, 88), "waist_roll_joint": (-0.52, 0.52, 50),
    "waist_pitch_joint": (-0.52, 0.52, 50),
    "left_shoulder_pitch_joint": (-3.0892, 2.6704, 25), "left_shoulder_roll_joint": (-1.5882, 2.2515, 25),
    "left_shoulder_yaw_joint": (-2.618, 2.618, 25), "left_elbow_joint": (-1.0472, 2.0944, 25),
    "left_wrist_roll_joint": (-1.97222, 1.97222, 25), "left_wrist_pitch_joint": (-1.61443, 1.61443, 5),
    "left_wrist_yaw_joint": (-1.61443, 1.61443, 5),
    "right_shoulder_pitch_joint": (-3.0892, 2.6704, 25), "right_shoulder_roll_joint": (-2.2515, 1.5882, 25),
    "right_shoulder_yaw_joint": (-2.618, 2.618, 25), "right_elbow_joint": (-1.0472, 2.0944, 25),
    "right_wrist_roll_joint": (-1.97222, 1.97222, 25), "right_wrist_pitch_joint": (-1.61443, 1.61443, 5),
    "right_wrist_yaw_joint": (-1.61443, 1.61443, 5),
    "left_hand_thumb_0_joint": (-1.0472, 1.0472, 2.45), "left_hand_thumb_1_joint": (-0.724312, 1.0472, 1.4),
    "left_hand_thumb_2_joint": (0.0, 1.74533, 1.4), "left_hand_middle_0_joint": (-1.5708, 0.0, 1.4),
    "left_hand_middle_1_joint": (-1.74533, 0.0, 1.4), "left_hand_index_0_joint": (-1.5708, 0.0, 1.4),
    "left_hand_index_1_joint": (-1.74533, 0.0, 1.4),
    "right_hand_thumb_0_joint": (-1.0472, 1.0472, 2.45), "right_hand_thumb_1_joint": (-1.0472, 0.724312, 1.4),
    "right_hand_thumb_2_joint": (-1.74533, 0.0, 1.4), "right_hand_middle_0_joint": (0.0, 1.5708, 1.4),
    "right_hand_middle_1_joint": (0.0, 1.74533, 1.4), "right_hand_index_0_joint": (0.0, 1.5708, 1.4),
    "right_hand_index_1_joint": (0.0, 1.74533, 1.4),
}.items():
    JOINT_RANGES[_name], TORQUE_LIMITS[_name] = (_low, _high), float(_torque)


@dataclass(frozen=True)
class G1Variant:
    name: str
    mode_machine: int  # what LowState.mode_machine reports for this variant
    slots: tuple[str, ...]  # motor slot -> MJCF joint name ("" = unused), NUM_MOTORS entries

    def slot(self, joint: str) -> int:
        try:
            return self.slots.index(joint)
        except ValueError:
            raise KeyError(f"the {self.name} has no joint {joint!r}") from None

    @property
    def joints(self) -> tuple[str, ...]:
        return tuple(name for name in self.slots if name)

    def group(self, joint: str) -> str:
        """legs | waist | arms | wrists: the gain group of a body joint."""
        if "wrist" in joint:
            return "wrists"
        if "shoulder" in joint or "elbow" in joint:
            return "arms"
        if joint.startswith("waist"):
            return "waist"
        return "legs"


def _slots(present: tuple[str, ...]) -> tuple[str, ...]:
    body = tuple(name if name in present else "" for name in g1.BODY_JOINTS)
    return body + ("",) * (NUM_MOTORS - len(body))


_MISSING_23 = {"waist_roll_joint", "waist_pitch_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
               "right_wrist_pitch_joint", "right_wrist_yaw_joint"}
VARIANTS: dict[str, G1Variant] = {
    "g1_29dof": G1Variant("g1_29dof", 5, _slots(g1.BODY_JOINTS)),
    "g1_23dof": G1Variant("g1_23dof", 4, _slots(tuple(n for n in g1.BODY_JOINTS if n not in _MISSING_23))),
}


def get_variant(name: str) -> G1Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown G1 variant {name!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[name]
