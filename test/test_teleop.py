"""Keyboard teleoperation's key -> target logic (no terminal, no ROS)."""

import numpy as np
import pytest

from dit4dit_ros import g1
from dit4dit_ros.teleop.jogger import JointJogger


def _ready():
    return np.array([g1.READY_POSE.get(name, 0.0) for name in g1.ACTION_NAMES])


def test_keys_select_and_move_one_joint_inside_its_range():
    jogger = JointJogger(step=0.1)
    assert jogger.press("+").message == "no joint state yet" and jogger.targets is None
    jogger.start_from(_ready())
    jogger.press("r"), jogger.press("4")
    assert jogger.selected == "right_elbow_joint"
    before = jogger.targets.copy()
    assert jogger.press("+").changed
    moved = np.flatnonzero(jogger.targets != before)
    assert [g1.ACTION_NAMES[i] for i in moved] == ["right_elbow_joint"]
    assert jogger.targets[moved[0]] == pytest.approx(before[moved[0]] + 0.1)
    for _ in range(100):  # held down: stops at the menagerie's elbow limit, never past it
        jogger.press("+")
    assert jogger.targets[moved[0]] == pytest.approx(g1.ARM_JOINT_RANGES["right_elbow_joint"][1])


def test_grip_toggles_and_commands_are_reported():
    jogger = JointJogger()
    jogger.start_from(_ready())
    jogger.press("l")
    grip = g1.ACTION_NAMES.index("left_grip")
    jogger.press("g")
    assert jogger.targets[grip] == 1.0
    jogger.press("g")
    assert jogger.targets[grip] == 0.0
    assert [jogger.press(k).command for k in "RXq"] == ["record", "discard", "quit"]


def test_bad_measured_pose_and_step_are_refused():
    with pytest.raises(ValueError):
        JointJogger(step=2.0)
    jogger = JointJogger()
    with pytest.raises(ValueError):
        jogger.start_from(np.full(16, np.nan))
    with pytest.raises(ValueError):
        jogger.start_from(np.zeros(3))
