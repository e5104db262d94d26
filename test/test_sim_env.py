"""The plain-Python simulation (no ROS): models, tasks, experts, determinism and command validation."""

import logging

import numpy as np
import pytest

from conftest import MENAGERIE_ROOT, REPO, needs_menagerie
from dit4dit_ros import g1
from dit4dit_ros.sim.env import CommandError, G1TabletopEnv
from dit4dit_ros.sim.experts import ScriptedExpert, run_episode
from dit4dit_ros.sim.tasks import TASKS

# Seeds the experts were NOT tuned on (development used 0..49).
TEST_SEEDS = range(1000, 1020)


@pytest.fixture(scope="module")
def real_env():
    if MENAGERIE_ROOT is None:
        pytest.skip("no local mujoco_menagerie (set MENAGERIE_ROOT)")
    env = G1TabletopEnv("menagerie", render=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def simple_env():
    env = G1TabletopEnv("simplified", render=False)
    yield env
    env.close()


def _success_rate(env, task, seeds=TEST_SEEDS):
    expert = ScriptedExpert(env)
    results = [run_episode(env, expert, seed, task) for seed in seeds]
    return sum(ok for ok, _, _ in results) / len(results), [reason for ok, _, reason in results if not ok]


@needs_menagerie
@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_succeeds_on_the_real_g1(real_env, task):
    rate, failures = _success_rate(real_env, task)
    assert rate >= 0.9, f"{task}: expert success {rate:.0%} over {len(TEST_SEEDS)} seeds; failures {failures}"


@pytest.mark.parametrize("task", ["touch_cube", "touch_bowl_left"])
def test_expert_succeeds_on_the_simplified_g1(simple_env, task):
    # The offline fallback: the reaching tasks. (push_cube needs the real hand's shape: see the README.)
    rate, failures = _success_rate(simple_env, task)
    assert rate >= 0.9, f"{task}: expert success {rate:.0%}; failures {failures}"


def test_doing_nothing_fails_every_task(simple_env):
    # The success predicates can say no: holding the ready pose times out.
    for task in TASKS:
        simple_env.reset(seed=3, task=task)
        hold = simple_env.measured_action_state()
        while not (result := simple_env.step(hold)).done:
            pass
        assert not result.success and result.info["reason"] == "timeout", task
        assert result.observation.time == pytest.approx(TASKS[task].time_limit, abs=simple_env.control_dt)


def test_same_seed_same_trajectory_and_seeds_differ(simple_env):
    def trajectory(seed):
        simple_env.reset(seed=seed, task="push_cube")
        expert = ScriptedExpert(simple_env)
        expert.reset()
        states = []
        for _ in range(60):
            simple_env.step(expert.act())
            states.append(simple_env.data.qpos.copy())
        return np.array(states)

    first, again, other = trajectory(11), trajectory(11), trajectory(12)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.01


def test_reset_draws_initial_states_inside_the_workspace(simple_env):
    cubes = []
    for seed in range(10):
        simple_env.reset(seed=seed, task="push_cube")
        cubes.append(simple_env.world.cube_pos)
        assert simple_env.world.cube_on_table()
        assert np.linalg.norm(simple_env.world.mocap_pos("target")[:2] - cubes[-1][:2]) > 0.05
    assert len({tuple(np.round(c, 4)) for c in cubes}) == 10


def test_bad_commands_are_rejected_and_the_arms_hold(simple_env):
    simple_env.reset(seed=0, task="touch_cube")
    for _ in range(10):
        simple_env.step(simple_env.measured_action_state())
    targets = simple_env.joint_targets()
    arm = [simple_env._joint_qpos[n] for n in g1.ARM_JOINTS["right"]]
    before = simple_env.data.qpos[arm].copy()
    bad = [
        ({"right_elbow_joint": 0.3, "right_elbow_jiont": 0.1}, "unknown joint"),
        ({"right_elbow_joint": float("nan")}, "finite"),
        ({"right_elbow_joint": 5.0}, "outside the joint range"),
        ({"right_grip": 1.5}, "grip"),
    ]
    for command, message in bad:
        with pytest.raises(CommandError, match=message):
            simple_env.set_action(command)
        assert simple_env.joint_targets() == targets  # nothing of the bad command was applied
    with pytest.raises(CommandError, match="shape"):
        simple_env.step(np.zeros(14))
    simple_env.advance(0.5)
    np.testing.assert_allclose(simple_env.data.qpos[arm], before, atol=0.01)
    # ...while a good command does move the arm (so the test above could fail).
    simple_env.set_action({"right_elbow_joint": float(before[3] + 0.3)})
    simple_env.advance(0.5)
    assert simple_env.data.qpos[arm][3] == pytest.approx(before[3] + 0.3, abs=0.02)


def test_estop_freezes_the_arms(simple_env):
    simple_env.reset(seed=0, task="touch_cube")
    elbow = simple_env._joint_qpos["right_elbow_joint"]
    start = simple_env.data.qpos[elbow]
    simple_env.freeze(True)
    simple_env.set_action({"right_elbow_joint": float(start - 0.4)})
    simple_env.advance(0.5)
    assert simple_env.data.qpos[elbow] == pytest.approx(start, abs=0.01)
    simple_env.freeze(False)
    simple_env.set_action({"right_elbow_joint": float(start - 0.4)})
    simple_env.advance(0.5)
    assert simple_env.data.qpos[elbow] == pytest.approx(start - 0.4, abs=0.02)


def test_grips_drive_the_dex3_fingers_by_name(simple_env):
    simple_env.reset(seed=0, task="touch_cube")
    simple_env.set_action({"left_grip": 0.0, "right_grip": 1.0})
    targets = simple_env.joint_targets()
    for name in g1.HAND_JOINTS["right"]:
        assert targets[name] == pytest.approx(g1.DEX3_CLOSED[name])
        low, high = simple_env.joint_limits[name]
        assert low <= g1.DEX3_CLOSED[name] <= high, name
    assert all(targets[name] == 0.0 for name in g1.HAND_JOINTS["left"])
    simple_env.advance(1.0)
    assert simple_env.measured_action_state()[g1.ACTION_NAMES.index("right_grip")] > 0.8


def _red_pixels(image) -> int:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(((r > 90) & (r > 2 * g) & (r > 2 * b)).sum())


def test_head_camera_sees_the_cube():
    env = G1TabletopEnv("simplified", image_size=(224, 224))
    try:
        image = env.reset(seed=0, task="touch_cube").image
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8
        assert _red_pixels(image) > 40, "the red cube is not in the head camera's view"
        env.world.place_cube(0.0, 2.0)  # far behind the robot
        env.advance(0.01)
        assert _red_pixels(env.render()) == 0
    finally:
        env.close()


def test_auto_falls_back_to_the_simplified_g1_offline(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("MENAGERIE_ROOT", raising=False)
    monkeypatch.setenv("MENAGERIE_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("MENAGERIE_BASE_URL", "http://127.0.0.1:9/nothing-listens-here")
    with caplog.at_level(logging.WARNING):
        env = G1TabletopEnv("auto", render=False)
    assert env.model_source == "simplified"
    assert any("simplified G1" in r.message for r in caplog.records)
    with pytest.raises(Exception, match="unreachable"):
        G1TabletopEnv("menagerie", render=False)


@needs_menagerie
def test_simplified_g1_has_the_menageries_joints_limits_and_camera(real_env, simple_env):
    real, simple = real_env.model, simple_env.model
    names = [real.joint(i).name for i in range(real.njnt)]
    assert names == [simple.joint(i).name for i in range(simple.njnt)]
    parents = [real.body(real.body_parentid[i]).name for i in range(real.nbody)]
    assert parents == [simple.body(simple.body_parentid[i]).name for i in range(simple.nbody)]
    np.testing.assert_allclose(simple.jnt_range, real.jnt_range)
    np.testing.assert_allclose(simple.body_pos, real.body_pos, atol=1e-6)
    for field in ("cam_pos", "cam_quat", "cam_fovy"):
        np.testing.assert_allclose(getattr(simple, field), getattr(real, field))
    assert real.nmesh > 40 and simple.nmesh == 0


@needs_menagerie
def test_committed_simplified_g1_is_what_the_generator_writes():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(REPO / "scripts" / "make_simplified_g1.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
