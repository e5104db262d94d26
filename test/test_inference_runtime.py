"""Live inference without ROS: the frame window and joint-state history, which policy gets loaded (seeded
untrained preset or a checkpoint), the encoder/planner runtimes' input checks and determinism, the G1 action
state read by joint name, and the rate/latency numbers every node reports."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dit4dit_ros import g1
from dit4dit_ros.control.safety import JointLimits
from dit4dit_ros.inference.buffers import FrameWindow, StateHistory
from dit4dit_ros.inference.loading import UNTRAINED_GRIP, load_policy, model_config, model_id
from dit4dit_ros.inference.runtime import ActionPlannerRuntime, InputError, VideoEncoderRuntime
from dit4dit_ros.interfaces import instruction_id
from dit4dit_ros.metrics import LatencyStats, RateMeter
from dit4dit_ros.model.configuration_dit4dit import preset

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MS = 1_000_000


def _frame(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, dtype=np.uint8)


# -- FrameWindow ---------------------------------------------------------------------------------------------
def test_frame_window_snapshots_only_when_full_oldest_first():
    window = FrameWindow(3)
    frames = [_frame(v) for v in (10, 20, 30, 40)]
    assert window.snapshot() is None and window.newest_stamp() is None
    window.add(100, frames[0])
    window.add(200, frames[1])
    assert window.snapshot() is None and len(window) == 2  # not full yet
    window.add(300, frames[2])
    stamps, got = window.snapshot()
    assert stamps == [100, 200, 300]
    assert [f[0, 0, 0] for f in got] == [10, 20, 30]
    window.add(400, frames[3])  # the oldest falls out
    stamps, got = window.snapshot()
    assert stamps == [200, 300, 400] and [f[0, 0, 0] for f in got] == [20, 30, 40]
    assert (window.added, window.resets, window.newest_stamp(), len(window)) == (4, 0, 400, 3)


@pytest.mark.parametrize("stamp", [399, 400], ids=["backwards", "repeated"])
def test_frame_window_is_cleared_when_time_does_not_advance(stamp):
    window = FrameWindow(2)
    for s in (100, 200, 300, 400):
        window.add(s, _frame(s % 256))
    assert window.snapshot()[0] == [300, 400]
    window.add(stamp, _frame(1))  # a simulation reset / bag loop: the old frames are another episode's
    assert window.resets == 1 and len(window) == 1 and window.newest_stamp() == stamp
    assert window.snapshot() is None
    window.add(stamp + 50, _frame(2))
    assert window.snapshot()[0] == [stamp, stamp + 50]


def test_frame_window_size_must_be_positive():
    with pytest.raises(ValueError, match=">= 1"):
        FrameWindow(0)


# -- StateHistory --------------------------------------------------------------------------------------------
def _history(stamps_ms, horizon_ms=2000) -> StateHistory:
    history = StateHistory(horizon_ns=horizon_ms * MS)
    for t in stamps_ms:
        history.add(t * MS, np.array([float(t), -float(t)]))
    return history


def test_state_history_returns_the_nearest_state_within_tolerance():
    history = _history([0, 100, 200, 300])
    assert history.at(0, 0)[0] == 0 and history.at(1, 0) is None
    for query_ms, expected_ms in ((140, 100), (160, 200), (200, 200), (-30, 0), (330, 300), (150, 100)):
        stamp, state = history.at(query_ms * MS, 50 * MS)
        assert stamp == expected_ms * MS, (query_ms, stamp)
        np.testing.assert_array_equal(state, [expected_ms, -expected_ms])
    # Outside the tolerance on either side: None, not the nearest state anyway.
    assert history.at(351 * MS, 50 * MS) is None
    assert history.at(-51 * MS, 50 * MS) is None
    assert history.at(150 * MS, 49 * MS) is None
    assert StateHistory().at(0, 10**12) is None
    # The returned state is a copy: editing it does not change the history.
    _, state = history.at(100 * MS, 0)
    state[:] = 99.0
    np.testing.assert_array_equal(history.at(100 * MS, 0)[1], [100, -100])
    assert history.latest()[0] == 300 * MS


def test_state_history_forgets_states_older_than_the_horizon():
    history = _history(range(0, 3001, 100), horizon_ms=1000)  # 0 .. 3 s every 100 ms, keeps 1 s
    assert history.at(1900 * MS, 0) is None  # pruned
    assert history.at(2000 * MS, 0)[0] == 2000 * MS  # exactly the horizon back: kept
    assert history.at(0, 10**12)[0] == 2000 * MS  # the oldest left is the nearest to t=0
    assert history.latest()[0] == 3000 * MS


def test_state_history_resets_when_time_goes_backwards():
    history = _history([5000, 5100, 5200])
    history.add(1000 * MS, np.array([1.0, 1.0]))
    assert history.at(5100 * MS, 10**12)[0] == 1000 * MS  # the old timeline is gone
    assert history.latest()[0] == 1000 * MS
    history.add(1000 * MS, np.array([2.0, 2.0]))  # an equal stamp is not backwards
    assert history.at(5000 * MS, 10**12)[0] == 1000 * MS


# -- loading ---------------------------------------------------------------------------------------------------
def _state_dict(policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


@pytest.fixture(scope="module")
def policies():
    """Untrained tiny policies by seed (loading is the slow part of this file)."""
    cache = {}

    def get(seed):
        if seed not in cache:
            cache[seed] = load_policy("", "tiny", seed=seed)
        return cache[seed]
    return get


def test_untrained_policy_weights_depend_on_the_seed_only(policies):
    first = _state_dict(policies(3))
    torch.manual_seed(12345)  # the global RNG must not matter
    torch.rand(10)
    again = _state_dict(load_policy("", "tiny", seed=3))
    other = _state_dict(policies(4))
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    differing = [k for k in first if first[k].is_floating_point() and not torch.equal(first[k], other[k])]
    assert len(differing) > len(first) // 2, "another seed should give other weights"
    # load_policy leaves the global RNG where it was (fork_rng): seeding it again gives the same draw.
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_policy("", "tiny", seed=9)
    assert torch.equal(torch.rand(3), expected)
    assert not policies(3).training  # eval mode
    assert model_id("", "tiny", 3) == "untrained:tiny:seed3" and model_id("/ckpt", "tiny", 3) == "/ckpt"


def test_untrained_normalisation_is_centred_on_the_ready_pose(policies):
    policy = policies(0)
    centre = ((policy.action_min + policy.action_max) / 2).numpy()
    half = ((policy.action_max - policy.action_min) / 2).numpy()
    for i, name in enumerate(g1.ACTION_NAMES):
        expected = UNTRAINED_GRIP if name in g1.GRIP_NAMES.values() else g1.READY_POSE[name]
        assert centre[i] == pytest.approx(expected, abs=1e-6), name
        assert half[i] == pytest.approx(0.1, abs=1e-6), name


def _chunks(policy, seed: int, count: int):
    encoder, planner = VideoEncoderRuntime(policy, seed=seed), ActionPlannerRuntime(policy, seed=seed)
    encoder.set_instruction("touch the red cube with the right hand")
    rng = np.random.default_rng(seed)
    ready = np.array([g1.READY_POSE.get(n, 0.3) for n in g1.ACTION_NAMES])
    out = []
    for _ in range(count):
        features, _ = encoder.encode([rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)])
        out.append(planner.plan(features, ready + rng.normal(0.0, 0.05, ready.shape))[0])
    return np.array(out)


def test_untrained_chunks_stay_inside_the_joint_limits(policies):
    """The graph's default (seed 0) on 20 random frames and states: every value inside the G1 action ranges."""
    limits = JointLimits.for_g1_action()
    chunks = _chunks(policies(0), seed=0, count=20)
    assert chunks.shape == (20, 8, 16) and np.isfinite(chunks).all()
    assert [limits.outside(chunk) for chunk in chunks] == [[]] * 20
    # ... and they move: an untrained policy is not a constant (the graph could not be seen acting otherwise).
    assert chunks.std(axis=(0, 1)).min() > 0.02


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_untrained_arm_targets_never_leave_the_joint_limits(policies, seed):
    limits = JointLimits.for_g1_action()
    arms = [n for n in g1.ACTION_NAMES if n not in g1.GRIP_NAMES.values()]
    chunks = _chunks(policies(seed), seed=seed, count=20)
    assert not set().union(*(limits.outside(c) for c in chunks)) - set(g1.GRIP_NAMES.values()), arms
    inside = sum(not limits.outside(c) for c in chunks)
    assert inside >= 17, f"only {inside}/20 untrained chunks inside the limits"  # "nearly all" (loading.py)


def test_untrained_grips_are_never_rejected_by_the_controller(policies):
    limits = JointLimits.for_g1_action()
    chunks = _chunks(policies(1), seed=1, count=20)  # seed 1: a grip of -0.077 among them
    assert [limits.outside(c, tolerance=0.05) for c in chunks] == [[]] * 20


def test_checkpoint_round_trip_through_load_policy_and_model_config(tmp_path, policies):
    policy = policies(5)
    directory = tmp_path / "ckpt"
    policy.save_pretrained(directory, note="test")
    loaded = load_policy(str(directory))
    saved, restored = _state_dict(policy), _state_dict(loaded)
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)  # weights AND normalisation buffers
    assert not loaded.training and loaded.joint_names == list(g1.ACTION_NAMES)
    config = model_config(str(directory))
    assert config == policy.config and config.video.image_size == (32, 32) and config.preset == "tiny"
    # The loaded policy acts exactly like the saved one (same seed -> same chunk).
    a = ActionPlannerRuntime(policy, seed=1).plan(np.zeros((1, 2, 4, 4, 32), np.float32), np.zeros(16))[0]
    b = ActionPlannerRuntime(loaded, seed=1).plan(np.zeros((1, 2, 4, 4, 32), np.float32), np.zeros(16))[0]
    np.testing.assert_array_equal(a, b)


def test_model_config_without_a_checkpoint_is_the_preset():
    assert model_config("", "tiny") == preset("tiny")
    assert model_config("", "small").video.image_size == (64, 64)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        model_config("", "huge")


def test_model_config_of_a_missing_or_broken_checkpoint_says_why(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    with pytest.raises((FileNotFoundError, RuntimeError), match="does not exist") as info:
        model_config(str(missing))
    assert str(missing) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing") as info:
        model_config(str(empty))
    assert str(empty) in str(info.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        model_config(str(broken))
    (broken / "config.json").write_text(json.dumps({"video": {}, "decoder": {}}))
    with pytest.raises(ValueError, match="unknown config sections"):
        model_config(str(broken))


def test_load_policy_of_a_directory_without_weights_fails_clearly(tmp_path):
    (tmp_path / "config.json").write_text(preset("tiny").to_json())
    with pytest.raises(RuntimeError, match="model.safetensors is missing"):
        load_policy(str(tmp_path))


# -- runtimes --------------------------------------------------------------------------------------------------
def test_encoder_rejects_frames_of_another_size_or_type(policies):
    encoder = VideoEncoderRuntime(policies(0))
    assert encoder.image_size == (32, 32)
    encoder.set_instruction("push the cube")
    for frame in (np.zeros((48, 64, 3), np.uint8), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8),
                  np.zeros((32, 32, 3), np.float32)):
        with pytest.raises(InputError, match=r"\(32, 32, 3\) uint8"):
            encoder.encode([frame])
    with pytest.raises(InputError, match="48, 64, 3"):  # the error names the wrong frame too
        encoder.encode([np.zeros((32, 32, 3), np.uint8), np.zeros((48, 64, 3), np.uint8)])


def test_encoder_refuses_to_encode_without_an_instruction(policies):
    encoder = VideoEncoderRuntime(policies(0))
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="no instruction"):
        encoder.encode([frame])
    assert encoder.set_instruction("  touch the bowl \n") == instruction_id("touch the bowl")
    assert encoder.instruction == "touch the bowl"
    features, seconds = encoder.encode([frame])
    assert features.shape == (1, 2, 4, 4, 32) and features.dtype == np.float32 and seconds >= 0
    encoder.set_instruction("   ")  # withdrawn: blank is no instruction
    with pytest.raises(InputError, match="no instruction"):
        encoder.encode([frame])


def test_planner_rejects_wrong_features_and_bad_states(policies):
    planner = ActionPlannerRuntime(policies(0))
    assert planner.feature_shape == (2, 4, 4, 32) and planner.horizon == 8
    good_features, good_state = np.zeros((1, 2, 4, 4, 32), np.float32), np.zeros(16)
    for features in (np.zeros((1, 2, 4, 4, 16)), np.zeros((1, 3, 4, 4, 32)), np.zeros((2, 4, 4)),
                     np.zeros((1, 1, 2, 4, 4, 32))):
        with pytest.raises(InputError, match=r"\[1, 2, 4, 4, 32\]"):
            planner.plan(features, good_state)
    for state, message in ((np.zeros(15), "15 values"), (np.zeros(17), "17 values"),
                           (np.r_[np.zeros(15), np.nan], "NaN"), (np.r_[np.inf, np.zeros(15)], "NaN or Inf")):
        with pytest.raises(InputError, match=message):
            planner.plan(good_features, state)
    actions, seconds = planner.plan(good_features[0], good_state)  # (T, h, w, D) without the batch is fine too
    assert actions.shape == (8, 16) and actions.dtype == np.float64 and np.isfinite(actions).all()


def test_same_seed_same_features_and_chunks(policies):
    """Two processes with the same seed act identically: the encoder's noise and the planner's sampling are
    seeded per runtime, and a sequence of calls repeats exactly."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    state = np.array([g1.READY_POSE.get(n, 0.3) for n in g1.ACTION_NAMES])

    def run(policy, seed):
        encoder, planner = VideoEncoderRuntime(policy, seed=seed), ActionPlannerRuntime(policy, seed=seed)
        encoder.set_instruction("put the cube in the bowl")
        out = []
        for frame in frames:
            features, _ = encoder.encode([frame])
            out.append((features, planner.plan(features, state)[0]))
        return out

    first = run(policies(0), seed=0)
    again = run(load_policy("", "tiny", seed=0), seed=0)  # a fresh load, as another process would do
    for (f1, a1), (f2, a2) in zip(first, again):
        np.testing.assert_array_equal(f1, f2)
        np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(first[0][1], first[1][1])  # the chunks depend on the input
    other = run(policies(0), seed=1)
    assert not np.array_equal(first[0][0], other[0][0]) and not np.array_equal(first[0][1], other[0][1])


# -- g1.action_state ----------------------------------------------------------------------------------------
def _joint_positions(left_grip=0.6, right_grip=0.6, seed=0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    positions = {name: float(rng.uniform(-1, 1)) for name in g1.ALL_JOINTS}
    positions.update(g1.grip_targets("left", left_grip))
    positions.update(g1.grip_targets("right", right_grip))
    names = list(positions)
    rng.shuffle(names)  # wire order is not action order: everything goes by name
    return {name: positions[name] for name in names}


def test_action_state_orders_by_action_names_and_reads_grips_from_fingers():
    positions = _joint_positions(left_grip=0.6, right_grip=0.25)
    state = g1.action_state(positions)
    assert state.shape == (16,) and len(g1.ACTION_NAMES) == 16
    arms = g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]
    assert g1.ACTION_NAMES[:14] == arms
    np.testing.assert_array_equal(state[:14], [positions[n] for n in arms])
    assert state[14] == pytest.approx(0.6) and state[15] == pytest.approx(0.25)
    assert g1.ACTION_NAMES[14:] == ("left_grip", "right_grip")
    # Mirrored right hand: its closing directions are negated, the estimate is still 0..1.
    assert g1.grip_estimate("right", g1.grip_targets("right", 1.0)) == pytest.approx(1.0)
    assert g1.grip_estimate("left", g1.grip_targets("left", 0.0)) == 0.0
    # Clipped at both ends: past closed reads 1, opened the wrong way reads 0.
    assert g1.grip_estimate("left", {n: 1.3 * v for n, v in g1.DEX3_CLOSED.items()}) == 1.0
    assert g1.grip_estimate("left", {n: -0.5 * v for n, v in g1.DEX3_CLOSED.items()}) == 0.0
    assert g1.grip_targets("left", 1.7) == g1.grip_targets("left", 1.0)


def test_action_state_names_the_missing_joints():
    positions = _joint_positions()
    del positions["right_elbow_joint"], positions["left_wrist_yaw_joint"]
    with pytest.raises(KeyError, match="right_elbow_joint") as info:
        g1.action_state(positions)
    assert "left_wrist_yaw_joint" in str(info.value)
    positions = _joint_positions()
    del positions["right_hand_index_1_joint"]
    with pytest.raises(KeyError, match="right_hand_index_1_joint.*right grip"):
        g1.action_state(positions)
    positions = _joint_positions()
    del positions["left_hand_thumb_0_joint"]  # does not move when the hand closes: not needed
    assert g1.action_state(positions)[14] == pytest.approx(0.6)


# -- metrics -------------------------------------------------------------------------------------------------
def test_rate_meter_counts_events_per_second_over_its_window():
    now = [0.0]  # binary fractions of a second: exact in floating point
    meter = RateMeter(window_s=2.0, clock=lambda: now[0])
    assert meter.rate() == 0.0
    meter.tick()
    assert meter.rate() == 0.0  # one event is no rate
    for k in range(1, 33):  # 32 more ticks at 16 Hz: 1/16 .. 2.0 s
        now[0] = k / 16
        meter.tick()
    assert meter.count == 33
    assert meter.rate() == 16.0
    for k in range(1, 9):  # slower: 8 Hz for 1 s; the 2 s window then holds 1 s of each
        now[0] = 2.0 + k / 8
        meter.tick()
    assert meter.rate() == 24 / 2.0  # ticks at 1.0 .. 3.0 s: 16 + 8 intervals
    assert meter.count == 41
    assert meter.rate(now=3.0 + 1.9375) == 0.0  # only the tick at 3.0 is left in the window
    assert meter.rate(now=3.0 + 1.875) == 8.0  # 2.875 and 3.0


def test_latency_stats_percentiles_over_the_last_samples():
    stats = LatencyStats(size=100)
    assert all(math.isnan(v) for v in stats.percentiles(50, 99))
    assert stats.summary("inference") == {"inference_p50_ms": "nan", "inference_p99_ms": "nan"}
    for ms in range(1, 101):
        stats.add(ms / 1000)
    p50, p99, p100 = stats.percentiles(50, 99, 100)
    assert p50 == pytest.approx(0.0505) and p99 == pytest.approx(0.09901) and p100 == pytest.approx(0.1)
    assert stats.summary("inference") == {"inference_p50_ms": "50.50", "inference_p99_ms": "99.01"}
    for _ in range(100):  # the window slides: only the newest 100 samples count
        stats.add(1.0)
    assert stats.percentiles(0, 50) == [1.0, 1.0]


def test_package_urls_resolve_to_the_share_folder_with_clear_errors():
    from ament_index_python.packages import get_package_share_directory

    from dit4dit_ros.inference.loading import resolve_checkpoint

    share = get_package_share_directory("dit4dit_ros")
    assert resolve_checkpoint("package://dit4dit_ros/config") == f"{share}/config"
    assert resolve_checkpoint("/some/dir") == "/some/dir" and resolve_checkpoint("") == ""
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_checkpoint("package://no_such_package/x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint("package://dit4dit_ros/checkpoints/nope")


def test_the_shipped_checkpoint_is_the_default_and_loads():
    """config/g1.yaml runs checkpoints/g1_tabletop; it must load, carry its normalisation and act in range."""
    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "g1.yaml").read_text())
    checkpoint = params["/**/video_encoder"]["ros__parameters"]["checkpoint"]
    assert checkpoint == "package://dit4dit_ros/checkpoints/g1_tabletop"
    config = model_config(checkpoint)
    policy = load_policy(checkpoint, threads=1)
    assert list(policy.joint_names) == list(g1.ACTION_NAMES)
    frames = torch.zeros(1, 1, 3, *config.video.image_size)
    features = policy.encode_video(frames, policy.embed_instructions(["touch the red cube with the right hand"]))
    state = torch.tensor([[g1.READY_POSE.get(n, 0.0) for n in g1.ACTION_NAMES]], dtype=torch.float32)
    actions = policy.predict_action(features, state, generator=torch.Generator().manual_seed(0))[0].numpy()
    assert actions.shape == (config.action.horizon, 16) and np.isfinite(actions).all()
    for index, name in enumerate(g1.ACTION_NAMES):  # inside the joint ranges the controller bridge enforces
        low, high = g1.ARM_JOINT_RANGES.get(name, g1.GRIP_RANGE)
        assert (actions[:, index] >= low - 0.05).all() and (actions[:, index] <= high + 0.05).all(), name
