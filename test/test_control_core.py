"""Behaviour and numbers of the controller bridge's plain-Python core: chunk validation, the three merge modes,
the safety filter, and ControllerCore's modes (watchdog, e-stop, enable, dry-run) under hand-made and random
input. No ROS."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from dit4dit_ros import g1
from dit4dit_ros.control.chunks import MERGE_MODES, ActionChunk, ChunkError, ChunkMerger
from dit4dit_ros.control.core import ControllerCore, Mode
from dit4dit_ros.control.safety import JointLimits, SafetyFilter, is_within

MS = 1_000_000
NAMES = ("a", "b")
REPO = Path(__file__).resolve().parents[1]


def chunk(stamp_ms: float, rows, step_s: float = 0.1, names=NAMES) -> ActionChunk:
    rows = np.asarray(rows, dtype=float)
    return ActionChunk.create(names, int(stamp_ms * MS), np.arange(len(rows)) * step_s, rows)


# ---------------------------------------------------------------- chunks


def test_create_makes_absolute_read_only_times():
    c = ActionChunk.create(NAMES, 5 * MS, [0.0, 0.1, 0.25], [[0, 1], [2, 3], [4, 5]])
    assert c.times_ns.dtype == np.int64 and c.times_ns.tolist() == [5 * MS, 105 * MS, 255 * MS]
    assert c.stamp_ns == 5 * MS and c.positions.shape == (3, 2)
    with pytest.raises(ValueError):
        c.positions[0, 0] = 9.0  # shared between merger and caller: nobody may edit it


@pytest.mark.parametrize("names, offsets, positions, message", [
    (NAMES, [0, 0.1, 0.2], [[0, 0], [0, 0], [0, float("nan")]], "non-finite position nan for b at step 2"),
    (NAMES, [0, 0.1], [[float("inf"), 0], [0, 0]], "for a at step 0"),
    (NAMES, [0, 0.2, 0.1], np.zeros((3, 2)), "strictly increasing"),
    (NAMES, [0, 0.1, 0.1], np.zeros((3, 2)), "strictly increasing"),
    (NAMES, [-0.1, 0.0], np.zeros((2, 2)), ">= 0"),
    (NAMES, [0, 0.1], np.zeros((2, 3)), "3 columns for 2 names"),
    (NAMES, [0, 0.1], np.zeros(2), "(H >= 1, J)"),
    (NAMES, [], np.zeros((0, 2)), "(H >= 1, J)"),
    (NAMES, [0, 0.1, 0.2], np.zeros((2, 2)), "offsets must be (2,)"),
    (("a", "a"), [0, 0.1], np.zeros((2, 2)), "duplicate names"),
])
def test_create_rejects_bad_chunks(names, offsets, positions, message):
    with pytest.raises(ChunkError) as err:
        ActionChunk.create(names, 0, offsets, positions)
    assert message in str(err.value)


def test_reorder_by_name():
    c = ActionChunk.create(("a", "b", "c"), 0, [0, 0.1], [[1, 2, 3], [4, 5, 6]])
    assert c.reorder(("c", "a", "b")).positions.tolist() == [[3, 1, 2], [6, 4, 5]]
    with pytest.raises(ChunkError, match=r"lacks \['d'\]"):
        c.reorder(("a", "b", "c", "d"))
    with pytest.raises(ChunkError, match=r"not commanded: \['b'\]"):
        c.reorder(("c", "a"))
    assert c.reorder(("c", "a"), allow_extra=True).positions.tolist() == [[3, 1], [6, 4]]


# ---------------------------------------------------------------- merger

FIRST = [[0, 0], [1, 10], [2, 20], [3, 30]]  # at 0, 100, 200, 300 ms
SECOND = [[10, 0], [11, 0], [12, 0], [13, 0]]  # stamped 100 ms: at 100, 200, 300, 400 ms


def test_splice_drops_past_points_and_bridges_from_the_previous_target():
    m = ChunkMerger(NAMES, "splice")
    assert m.add(chunk(0, FIRST), 0) is None and m.points_dropped == 0  # a point exactly at now is not past
    assert m.target(50 * MS).tolist() == [0.5, 5.0]
    assert m.add(chunk(100, SECOND), 250 * MS) is None
    assert m.points_dropped == 2  # the points at 100 and 200 ms
    np.testing.assert_allclose(m.target(250 * MS), [2.5, 25.0])  # FIRST's value at add time: no jump
    np.testing.assert_allclose(m.target(275 * MS), [7.25, 12.5])  # halfway to SECOND's 300 ms point
    np.testing.assert_allclose(m.target(350 * MS), [12.5, 0.0])
    assert m.target(400 * MS).tolist() == [13.0, 0.0]
    assert m.target(400 * MS + 1) is None and m.horizon_end_ns == 400 * MS
    # A chunk that ended before it arrived is refused and counted; the live one plays on.
    assert m.add(chunk(100, [[5, 5], [6, 6]]), 260 * MS).startswith("stale")  # ended at 200 ms
    assert m.add(chunk(50, [[5, 5]] * 8), 260 * MS).startswith("out_of_order")
    assert (m.received, m.rejected_stale, m.rejected_out_of_order) == (4, 1, 1)
    np.testing.assert_allclose(m.target(350 * MS), [12.5, 0.0])


def test_splice_bridges_from_the_callers_command_and_plays_a_first_chunk_as_stamped():
    m = ChunkMerger(NAMES, "splice")
    m.add(chunk(0, FIRST), 0)
    m.add(chunk(100, SECOND), 250 * MS, current=[0.0, 0.0])
    np.testing.assert_allclose(m.target(275 * MS), [6.0, 0.0])
    fresh = ChunkMerger(NAMES, "splice")  # nothing commanded yet: join the chunk's own trajectory
    fresh.add(chunk(100, SECOND), 250 * MS)
    np.testing.assert_allclose(fresh.target(275 * MS), [11.75, 0.0])
    ahead = ChunkMerger(NAMES, "splice")
    ahead.add(chunk(500, SECOND), 250 * MS)
    assert ahead.target(400 * MS) is None and ahead.target(500 * MS).tolist() == [10.0, 0.0]


def test_latest_ignores_latency():
    m = ChunkMerger(NAMES, "latest")
    m.add(chunk(0, FIRST), 0)
    m.add(chunk(100, SECOND), 250 * MS)  # replayed from its first point at 250 ms
    assert m.target(250 * MS).tolist() == [10.0, 0.0]
    np.testing.assert_allclose(m.target(300 * MS), [10.5, 0.0])
    assert m.horizon_end_ns == 550 * MS and m.points_dropped == 0
    assert m.add(chunk(0, [[5, 5], [6, 6]]), 1000 * MS) is None  # stale by its stamps, played anyway
    assert m.target(1000 * MS).tolist() == [5.0, 5.0]


def test_ensemble_is_the_act_weighted_mean_of_covering_chunks():
    decay = 0.5
    w1 = math.exp(-decay)
    m = ChunkMerger(NAMES, "ensemble", ensemble_decay=decay)
    m.add(chunk(0, [[k, -k] for k in range(5)]), 0)  # A: 0..400 ms, values k
    m.add(chunk(100, [[10 + k, 0] for k in range(5)]), 100 * MS)  # B: 100..500 ms, values 10 + k
    m.add(chunk(300, [[100, 0], [200, 0]], ), 300 * MS)  # C: 300..400 ms
    np.testing.assert_allclose(m.target(250 * MS), [(2.5 + w1 * 11.5) / (1 + w1), -2.5 / (1 + w1)])
    # At 350 ms all three cover: the oldest (A) has weight 1, then B exp(-m), then C exp(-2m).
    w = np.array([1.0, w1, math.exp(-2 * decay)])
    np.testing.assert_allclose(m.target(350 * MS)[0], w @ [3.5, 12.5, 150.0] / w.sum())
    assert m.target(450 * MS).tolist() == [13.5, 0.0]  # only B covers
    assert m.target(501 * MS) is None and m.horizon_end_ns is None  # all ended: dropped


def test_ensemble_keeps_max_chunks_and_rejects_stale():
    m = ChunkMerger(NAMES, "ensemble", ensemble_decay=0.0, max_chunks=2)
    for i, value in enumerate([1.0, 2.0, 4.0]):
        m.add(chunk(i, [[value, 0]] * 10), i * MS)
    assert m.target(5 * MS)[0] == pytest.approx(3.0)  # the oldest (1.0) was pushed out
    assert m.add(chunk(3, [[9, 9]]), 10 * MS).startswith("stale") and m.rejected_stale == 1


@pytest.mark.parametrize("mode", MERGE_MODES)
def test_target_is_a_copy(mode):
    m = ChunkMerger(NAMES, mode)
    m.add(chunk(0, FIRST), 0)
    for t, expected in ((0, [0.0, 0.0]), (150 * MS, [1.5, 15.0]), (300 * MS, [3.0, 30.0])):
        m.target(t)[:] = 99.0
        assert m.target(t).tolist() == expected


# ---------------------------------------------------------------- safety

AB_LIMITS = JointLimits(NAMES, lower=[-1.0, 0.0], upper=[1.0, 1.0], max_velocity=[1.0, 2.0], max_step=[0.5, 0.01])


def test_safety_clips_position_then_rate():
    f = SafetyFilter(AB_LIMITS, 0.1)  # per-step bound: min(1 * 0.1, 0.5) = 0.1 and min(2 * 0.1, 0.01) = 0.01
    np.testing.assert_allclose(f.max_delta, [0.1, 0.01])
    cmd, report = f.apply([2.0, 0.5], [0.95, 0.5])
    np.testing.assert_allclose(cmd, [1.0, 0.5])
    assert (report.rejected, report.clipped_position, report.clipped_rate) == (False, ["a"], [])
    cmd, report = f.apply([-3.0, 1.0], [0.0, 0.5])
    np.testing.assert_allclose(cmd, [-0.1, 0.51])
    assert (report.clipped_position, report.clipped_rate) == (["a"], ["a", "b"])
    cmd, _ = f.apply([0.5, 0.5], [1.5, 0.5])  # a measured seed beyond the range is projected onto it first
    np.testing.assert_allclose(cmd, [0.9, 0.5])


def test_safety_rejects_a_nan_target_whole():
    cmd, report = SafetyFilter(AB_LIMITS, 0.1).apply([float("nan"), 0.45], [0.3, 0.4])
    assert cmd.tolist() == [0.3, 0.4] and report.rejected and "['a']" in report.reason
    with pytest.raises(ValueError):
        SafetyFilter(AB_LIMITS, 0.1).apply([0.0, 0.0], [float("nan"), 0.0])


def test_rate_limit_over_a_long_jump():
    limits = JointLimits.for_g1_action(max_velocity=2.0, max_step=0.1)
    f = SafetyFilter(limits, 1 / 500)  # 500 Hz: 0.004 per step binds before max_step
    np.testing.assert_allclose(f.max_delta, 0.004)
    command, steps = limits.lower.copy(), 0
    while not np.array_equal(command, limits.upper):
        new, _ = f.apply(limits.upper, command)
        assert np.all(np.abs(new - command) <= f.max_delta + 1e-12)
        command, steps = new, steps + 1
        assert steps < 5000
    needed = math.ceil(np.max((limits.upper - limits.lower) / f.max_delta))
    assert steps in (needed, needed + 1)  # +1: float rounding of the accumulated steps
    np.testing.assert_allclose(SafetyFilter(limits, 0.1).max_delta, 0.1)  # here max_step binds (2 * 0.1 > 0.1)


def test_g1_limits_margin_and_overrides():
    limits = JointLimits.for_g1_action(max_velocity={n: 1.0 for n in g1.ACTION_NAMES}, margin=0.1)
    assert limits.names == g1.ACTION_NAMES
    elbow = g1.ACTION_NAMES.index("left_elbow_joint")
    assert (limits.lower[elbow], limits.upper[elbow]) == pytest.approx((-1.0472 + 0.1, 2.0944 - 0.1))
    for grip in g1.GRIP_NAMES.values():
        i = g1.ACTION_NAMES.index(grip)
        assert (limits.lower[i], limits.upper[i]) == (0.0, 1.0)  # the margin is in rad: arms only
    narrow = limits.with_overrides({"left_elbow_joint": (-5.0, 0.5)})
    assert (narrow.lower[elbow], narrow.upper[elbow]) == pytest.approx((-1.0472 + 0.1, 0.5))  # never widened
    with pytest.raises(ValueError, match="unknown"):
        limits.with_overrides({"left_knee_joint": (0, 1)})
    with pytest.raises(ValueError, match="no range"):
        limits.with_overrides({"left_elbow_joint": (2.5, 3.0)})
    inside = (limits.lower + limits.upper) / 2
    assert is_within(limits, inside) and not is_within(limits, np.where(np.arange(16) == 3, 9.0, inside))
    assert not is_within(limits, np.full(16, np.nan))


def test_arm_joint_ranges_match_the_simplified_mjcf():
    root = ET.parse(REPO / "dit4dit_ros" / "sim" / "assets" / "g1_simplified.xml").getroot()
    arm = set(g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"])
    from_xml = {j.get("name"): tuple(float(v) for v in j.get("range").split())
                for j in root.iter("joint") if j.get("name") in arm}
    assert set(g1.ARM_JOINT_RANGES) == arm and g1.ARM_JOINT_RANGES == from_xml


# ---------------------------------------------------------------- ControllerCore

J = len(g1.ACTION_NAMES)
READY = np.array([g1.READY_POSE.get(n, 0.0) for n in g1.ACTION_NAMES])
PERIOD = 0.01


def g1_chunk(stamp_s: float, rows, names=g1.ACTION_NAMES) -> ActionChunk:
    return chunk(stamp_s * 1000, rows, names=names)


def make_core(**kwargs) -> ControllerCore:
    args = dict(names=g1.ACTION_NAMES, period_s=PERIOD, limits=JointLimits.for_g1_action(),
                watchdog_timeout_s=0.5, damp_after_s=1.0)
    return ControllerCore(**{**args, **kwargs})


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def test_waiting_then_rate_limited_start_from_measured():
    core = make_core()
    assert core.step(0).mode is Mode.DISABLED and not core.step(0).publish
    assert core.add_chunk(g1_chunk(0, [READY] * 16), 0).startswith("disabled")
    assert core.enable(True) == (True, "enabled")
    assert core.step(ns(0.01)).positions is None  # nothing measured: nothing to hold
    core.update_measured(READY, ns(0.02))
    cmd = core.step(ns(0.02))
    assert cmd.mode is Mode.WAITING and cmd.publish and np.array_equal(cmd.positions, READY)
    far = READY + np.r_[np.full(14, 1.0), 1.0, 1.0]
    assert core.add_chunk(g1_chunk(0.0, [far] * 16), ns(0.03)) is None
    assert np.array_equal(core.step(ns(0.03)).positions, READY)  # splice starts from what was commanded
    cmd = core.step(ns(0.1))  # the target is now `far`
    assert cmd.mode is Mode.RUNNING and cmd.report.clipped_rate == list(g1.ACTION_NAMES)
    np.testing.assert_allclose(cmd.positions - READY, 2.0 * PERIOD)  # one rate-limited step, no jump


def test_re_enabled_core_holds_the_pose_measured_after_enabling_not_the_old_command():
    """A simulation reset while disabled teleports the arm: holding the old command would swing it back."""
    core = make_core(require_enable=False)
    core.update_measured(READY, 0)
    touching = READY + np.r_[np.full(14, 0.4), 0.0, 0.0]
    core.add_chunk(g1_chunk(0.0, [touching] * 16), ns(0.01))
    for k in range(1, 31):
        last = core.step(ns(k * PERIOD))
    assert last.mode is Mode.RUNNING and not np.allclose(last.positions, READY)
    core.enable(False)
    core.update_measured(last.positions, ns(0.35))  # a measurement from before the reset, still in flight
    core.enable(True)
    assert core.step(ns(0.36)).positions is None  # nothing measured since enabling: nothing to hold yet
    core.update_measured(READY, ns(0.37))  # the reset pose
    held = core.step(ns(0.37))
    assert held.mode is Mode.WAITING and np.array_equal(held.positions, READY)


def test_watchdog_hold_then_damp_then_resume():
    core = make_core(require_enable=False)
    core.update_measured(READY, 0)
    ramp = [READY + np.r_[0.01 * k, np.zeros(J - 1)] for k in range(16)]
    core.add_chunk(g1_chunk(0.0, ramp), ns(0.05))
    commands = [core.step(ns(k * PERIOD)) for k in range(5, 56)]  # 0.05 .. 0.55 s: the last chunk is fresh
    assert all(c.mode is Mode.RUNNING for c in commands)
    assert commands[-1].positions[0] == pytest.approx(READY[0] + 0.1 * 0.55)  # 0.01 per 100 ms
    held = [core.step(ns(k * PERIOD)) for k in range(56, 156)]  # 0.56 .. 1.55 s: HOLD for 0.99 s
    assert all(c.mode is Mode.HOLD and c.publish and not c.damping for c in held)
    assert all(np.array_equal(c.positions, commands[-1].positions) for c in held)
    sagged = READY - 0.2
    sagged[-2:] = 0.0
    core.update_measured(sagged, ns(1.6))
    cmd = core.step(ns(1.6))  # 1.04 s in HOLD > damp_after
    assert cmd.mode is Mode.DAMP and cmd.damping and cmd.publish and np.array_equal(cmd.positions, sagged)
    assert core.stats()["watchdog_trips"] == 1
    core.add_chunk(g1_chunk(1.6, [READY] * 16), ns(1.65))
    cmd = core.step(ns(1.65))
    assert cmd.mode is Mode.RUNNING and not cmd.damping and np.array_equal(cmd.positions, sagged)
    cmd = core.step(ns(1.7))  # the chunk's 1.7 s point: READY
    assert np.max(np.abs(cmd.positions - sagged)) == pytest.approx(2.0 * PERIOD)  # resumed from the arm's pose


def test_estop_is_latched_until_released_and_re_enabled():
    core = make_core()
    core.enable(True)
    core.update_measured(READY, 0)
    core.add_chunk(g1_chunk(0, [READY + 0.1] * 16), 0)
    assert core.step(ns(0.01)).mode is Mode.RUNNING
    core.estop(True, ns(0.02))
    for k in range(3):
        cmd = core.step(ns(0.03 + k))  # long after any timeout: still ESTOP
        assert cmd.mode is Mode.ESTOP and cmd.damping and cmd.publish and np.array_equal(cmd.positions, READY)
    assert core.add_chunk(g1_chunk(3.0, [READY] * 16), ns(3.0)).startswith("estop")
    assert core.enable(True)[0] is False
    assert core.step(ns(3.1)).mode is Mode.ESTOP
    core.estop(False, ns(3.2))
    cmd = core.step(ns(3.3))
    assert cmd.mode is Mode.DISABLED and cmd.positions is None and not cmd.publish
    assert core.enable(True)[0] and core.step(ns(3.4)).mode is Mode.WAITING
    core.update_measured(READY, ns(3.41))  # holds the pose measured after enabling
    assert core.add_chunk(g1_chunk(3.4, [READY] * 16), ns(3.45)) is None
    assert core.step(ns(3.5)).mode is Mode.RUNNING
    auto = make_core(require_enable=False)
    auto.estop(True, 0)
    auto.estop(False, 1)
    assert auto.step(2).mode is Mode.WAITING


def test_dry_run_never_publishes():
    core = make_core(dry_run=True, require_enable=False)
    core.update_measured(READY, 0)
    seen = set()
    core.add_chunk(g1_chunk(0, [READY + 0.05] * 16), 0)
    for k in range(250):
        if k == 200:
            core.estop(True, ns(k * PERIOD))
        cmd = core.step(ns(k * PERIOD))
        seen.add(cmd.mode)
        assert not cmd.publish and cmd.positions is not None
    assert seen == {Mode.RUNNING, Mode.HOLD, Mode.DAMP, Mode.ESTOP}
    assert core.stats()["commands"] == 250


def test_out_of_range_and_malformed_chunks_are_rejected_and_counted():
    core = make_core(require_enable=False, watchdog_timeout_s=2.0)
    core.update_measured(READY, 0)
    elbow = g1.ACTION_NAMES.index("left_elbow_joint")
    beyond = READY.copy()
    beyond[elbow] = 2.0944 + 0.2
    assert "left_elbow_joint" in core.add_chunk(g1_chunk(0, [READY, beyond]), 0)
    nan_rows = np.array([READY, READY])
    nan_rows[1, 3] = np.nan
    raw = ActionChunk(g1.ACTION_NAMES, np.array([0, 100 * MS]), nan_rows, 0)  # skips create's checks
    assert core.add_chunk(raw, 0).startswith("non_finite")
    assert core.add_chunk(chunk(0, [[0.0]], names=("left_elbow_joint",)), 0).startswith("names")
    assert core.add_chunk(g1_chunk(5.0, [READY]), 0).startswith("future_stamp")
    stats = core.stats()
    assert stats["chunks_received"] == 4 and stats["chunks_rejected"] == 4
    assert stats["rejected_reasons"] == {"out_of_range": 1, "non_finite": 1, "names": 1, "future_stamp": 1}
    assert core.step(ns(0.01)).mode is Mode.WAITING  # nothing was accepted
    # Within the tolerance: accepted, then clipped to the range. Reversed name order: reordered by name.
    near = READY.copy()
    near[elbow] = 2.0944 + 0.04
    assert core.add_chunk(g1_chunk(0.01, [near[::-1]] * 16, names=g1.ACTION_NAMES[::-1]), ns(0.01)) is None
    for k in range(2, 150):  # 2.39 rad at 0.02 rad per tick
        cmd = core.step(ns(k * PERIOD))
    assert cmd.mode is Mode.RUNNING
    assert cmd.positions[elbow] == 2.0944 and "left_elbow_joint" in cmd.report.clipped_position


def test_clock_jumping_back_restarts():
    core = make_core(require_enable=False)
    core.update_measured(READY, 0)
    core.add_chunk(g1_chunk(9.9, [READY] * 16), ns(10.0))
    assert core.step(ns(10.0)).mode is Mode.RUNNING
    cmd = core.step(ns(1.0))  # the sim was reset
    assert cmd.mode is Mode.WAITING and cmd.positions is None and core.stats()["clock_resets"] == 1


@pytest.mark.parametrize("mode", MERGE_MODES)
def test_fuzz_every_command_is_finite_inside_limits_and_rate_limited(mode):
    rng = np.random.default_rng(MERGE_MODES.index(mode))
    limits = JointLimits.for_g1_action()
    core = make_core(merge_mode=mode, require_enable=False, watchdog_timeout_s=0.2, damp_after_s=0.3)
    max_delta = core.safety.max_delta
    t, previous, modes = 0, None, []
    for i in range(2000):
        t += int(rng.integers(1, 40)) * MS + (ns(1.0) if rng.random() < 0.01 else 0)
        if rng.random() < 0.2:
            measured = rng.uniform(limits.lower - 0.3, limits.upper + 0.3)
            if rng.random() < 0.1:
                measured[rng.integers(J)] = np.nan
            core.update_measured(measured, t)
        h = int(rng.integers(1, 17))
        rows = rng.uniform(limits.lower - 0.04, limits.upper + 0.04, size=(h, J))  # within the tolerance
        kind, cell = rng.random(), (rng.integers(h), rng.integers(J))
        if kind < 0.05:
            rows[cell] = np.nan
        elif kind < 0.1:
            rows[cell] = rng.choice([1e6, -1e9, np.inf, -np.inf])
        elif kind < 0.15:
            rows[cell] = limits.upper[cell[1]] + rng.uniform(0.06, 1.0)
        stamp = t - int(rng.integers(0, 400)) * MS
        order = rng.permutation(J) if rng.random() < 0.2 else np.arange(J)
        names = tuple(g1.ACTION_NAMES[k] for k in order)
        raw = ActionChunk(names, stamp + np.arange(h, dtype=np.int64) * 100 * MS, rows[:, order], stamp)
        core.add_chunk(raw, t)
        if rng.random() < 0.01:
            core.estop(True, t)
        elif rng.random() < 0.02:
            core.estop(False, t)
            core.enable(True)
        for _ in range(60 if rng.random() < 0.01 else int(rng.integers(1, 8))):  # sometimes an outage
            t += ns(PERIOD)
            cmd = core.step(t)
            modes.append(cmd.mode)
            assert not (cmd.publish and cmd.positions is None and not cmd.damping)
            if cmd.positions is None:
                continue
            assert np.all(np.isfinite(cmd.positions)) and is_within(limits, cmd.positions)
            if previous is not None and previous.mode in (Mode.WAITING, Mode.RUNNING, Mode.HOLD, Mode.DAMP):
                if cmd.mode is Mode.RUNNING:
                    assert np.all(np.abs(cmd.positions - previous.positions) <= max_delta + 1e-12)
                elif cmd.mode is Mode.HOLD and previous.mode is not Mode.DAMP:
                    assert np.array_equal(cmd.positions, previous.positions)
            previous = cmd
    stats = core.stats()
    assert modes.count(Mode.RUNNING) > 1000 and {Mode.HOLD, Mode.DAMP, Mode.ESTOP} <= set(modes)
    assert stats["rejected_reasons"]["non_finite"] > 50 and stats["rejected_reasons"]["out_of_range"] > 50
    assert stats["chunks_received"] == 2000
