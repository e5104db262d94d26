"""The bag -> LeRobotDataset v3.0 converter (docs/dataset.md), checked against synthetic bags whose images,
states and commands are known functions of time (test/helpers/bags.py). The dataset is read back with
pyarrow and PyAV directly, never with the converter's own code."""

from __future__ import annotations

import json
import os
import shutil

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.bags import CAMERA_LATENCY_S, JOINT_LATENCY_S, METADATA, action_at, make_episode_bag, read_code, state_at

from dit4dit_ros import g1
from dit4dit_ros.data.bags import BagError, read_episode
from dit4dit_ros.data.convert import _Track, convert, main
from dit4dit_ros.inference.buffers import StateHistory

VIDEO = "videos/observation.images.head"
FPS = 30
# Frames pair with the nearest message of a 100 Hz stream: at most 5 ms away, and the fastest ramp is 1 / s.
RAMP_TOLERANCE = 1.0 * 0.005 + 1e-5
OTHER_TASK = "put the cube in the bowl"


def data_table(root) -> pa.Table:
    return pq.read_table(root / "data/chunk-000/file-000.parquet")


def episodes_rows(root) -> list[dict]:
    return pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()


def vectors(table: pa.Table, column: str) -> np.ndarray:
    return np.array(table.column(column).to_pylist(), np.float64)


def decoded_frames(root) -> dict[int, np.ndarray]:
    """Every frame of the dataset's mp4 by its time in frames (round(time * fps)), decoded by PyAV."""
    frames = {}
    with av.open(str(root / VIDEO / "chunk-000/file-000.mp4")) as container:
        for frame in container.decode(video=0):
            frames[round(frame.time * FPS)] = frame.to_ndarray(format="rgb24")
    return frames


def video_codes(root, row: dict) -> list[int]:
    """The numbers carried by the frames of one episode (its rows of meta/episodes), read at
    from_timestamp + j / fps."""
    frames = decoded_frames(root)
    start = row[f"{VIDEO}/from_timestamp"]
    return [read_code(frames[round((start + j / FPS) * FPS)]) for j in range(row["length"])]


@pytest.fixture(scope="module")
def two_bags(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bags")
    make_episode_bag(folder / "ep_a", seconds=2.0)
    make_episode_bag(folder / "ep_b", seconds=1.5, first_code=128, instruction=OTHER_TASK)
    return folder


@pytest.fixture(scope="module")
def dataset(two_bags, tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets") / "two"
    report = convert([two_bags / "ep_a", two_bags / "ep_b"], root, fps=FPS)
    return root, report


def test_two_bags_make_a_lerobot_v3_dataset(dataset):
    root, report = dataset
    info = json.loads((root / "meta/info.json").read_text())
    table = data_table(root)
    rows = episodes_rows(root)
    n = table.num_rows
    assert [e.frames for e in report.episodes] == [60, 45] and report.total_frames == n == 105
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "unitree_g1" and info["fps"] == FPS
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, n, 2)
    assert info["splits"] == {"train": "0:2"} and info["chunks_size"] == 1000
    assert info["data_path"].format(chunk_index=0, file_index=0) == "data/chunk-000/file-000.parquet"
    assert info["video_path"].format(video_key="observation.images.head", chunk_index=0, file_index=0) == \
        f"{VIDEO}/chunk-000/file-000.mp4"
    features = info["features"]
    image = features["observation.images.head"]
    assert image["dtype"] == "video" and image["shape"] == [48, 64, 3]
    assert image["names"] == ["height", "width", "channels"]
    assert {k: image["info"][k] for k in ("video.fps", "video.codec", "video.pix_fmt", "video.height",
                                          "video.width", "video.channels")} == {
        "video.fps": FPS, "video.codec": "h264", "video.pix_fmt": "yuv420p", "video.height": 48,
        "video.width": 64, "video.channels": 3}
    for key in ("observation.state", "action"):
        assert features[key] == {"dtype": "float32", "shape": [16], "names": list(g1.ACTION_NAMES)}
        assert table.schema.field(key).type == pa.list_(pa.float32(), 16)
    assert features["timestamp"]["dtype"] == "float32" and table.schema.field("timestamp").type == pa.float32()
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert features[key]["dtype"] == "int64" and table.schema.field(key).type == pa.int64()

    # Frames: contiguous index, and each episode's rows are its from/to range with frame_index 0..length-1.
    assert table.column("index").to_pylist() == list(range(n))
    episode_index = np.array(table.column("episode_index").to_pylist())
    frame_index = np.array(table.column("frame_index").to_pylist())
    assert [row["episode_index"] for row in rows] == [0, 1]
    assert rows[0]["dataset_from_index"] == 0 and rows[-1]["dataset_to_index"] == n
    for row in rows:
        lo, hi = row["dataset_from_index"], row["dataset_to_index"]
        assert hi - lo == row["length"]
        assert (episode_index[lo:hi] == row["episode_index"]).all()
        assert frame_index[lo:hi].tolist() == list(range(row["length"]))
        assert row["data/chunk_index"] == row["data/file_index"] == 0
        assert row[f"{VIDEO}/from_timestamp"] == pytest.approx(lo / FPS)
        assert row[f"{VIDEO}/to_timestamp"] == pytest.approx(hi / FPS)
        assert (row["meta/seed"], row["meta/source"], row["meta/success"], row["meta/warnings"]) == \
            (METADATA["seed"], METADATA["source"], True, [])
    assert [row["meta/source_bag"] for row in rows] == [str(report.episodes[0].source_bag),
                                                        str(report.episodes[1].source_bag)]

    # Video: one frame per dataset frame; frame j of episode k shows that episode's image j.
    assert len(decoded_frames(root)) == n
    assert video_codes(root, rows[0]) == list(range(60))
    assert video_codes(root, rows[1]) == [128 + j for j in range(45)]

    # Tasks: the instruction of each episode, by task_index.
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    task_of = {t["task_index"]: t["task"] for t in tasks}
    assert sorted(task_of.values()) == sorted([METADATA["instruction"], OTHER_TASK])
    assert [row["tasks"] for row in rows] == [[METADATA["instruction"]], [OTHER_TASK]]
    task_index = np.array(table.column("task_index").to_pylist())
    for row in rows:
        assert {task_of[t] for t in task_index[row["dataset_from_index"]:row["dataset_to_index"]]} == set(row["tasks"])

    modality = json.loads((root / "meta/modality.json").read_text())
    groups = {"left_arm": {"start": 0, "end": 7}, "right_arm": {"start": 7, "end": 14},
              "left_hand": {"start": 14, "end": 15}, "right_hand": {"start": 15, "end": 16}}
    assert modality == {"state": groups, "action": groups,
                        "video": {"head": {"original_key": "observation.images.head"}},
                        "annotation": {"human.task_description": {"original_key": "task_index"}}}
    for kind in ("state", "action"):
        covered = sorted(i for g in modality[kind].values() for i in range(g["start"], g["end"]))
        assert covered == list(range(16))


def test_stats_match_the_data(dataset):
    root, _ = dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    table = data_table(root)
    for key in ("observation.state", "action"):
        values = vectors(table, key)
        for name, expected in (("min", values.min(0)), ("max", values.max(0)), ("mean", values.mean(0)),
                               ("std", values.std(0))):
            np.testing.assert_allclose(stats[key][name], expected, rtol=1e-5, atol=1e-6, err_msg=f"{key} {name}")
        assert stats[key]["count"] == [table.num_rows]
    pixels = np.stack(list(decoded_frames(root).values())).reshape(-1, 3) / 255.0
    image = {name: np.array(value) for name, value in stats["observation.images.head"].items() if name != "count"}
    for name, value in image.items():
        assert value.shape == (3, 1, 1) and ((value >= 0) & (value <= 1)).all(), name
    # The stats are over the source images, the check over the lossy video: equal to within H.264's error.
    np.testing.assert_allclose(image["mean"].reshape(3), pixels.mean(0), atol=0.02)
    np.testing.assert_allclose(image["std"].reshape(3), pixels.std(0), atol=0.02)
    np.testing.assert_allclose(image["min"].reshape(3), pixels.min(0), atol=0.03)
    np.testing.assert_allclose(image["max"].reshape(3), pixels.max(0), atol=0.03)


def test_state_and_action_are_the_ramps_at_the_image_stamps(dataset):
    root, _ = dataset
    table = data_table(root)
    episode_index = np.array(table.column("episode_index").to_pylist())
    states, actions = vectors(table, "observation.state"), vectors(table, "action")
    timestamps = np.array(table.column("timestamp").to_pylist())
    for k in (0, 1):
        rows = np.flatnonzero(episode_index == k)
        image_times = np.arange(len(rows)) / FPS  # image n at n / 30 s, none dropped
        np.testing.assert_allclose(timestamps[rows], image_times, atol=1e-6)
        np.testing.assert_allclose(states[rows], [state_at(t) for t in image_times], atol=RAMP_TOLERANCE)
        np.testing.assert_allclose(actions[rows], [action_at(t) for t in image_times], atol=RAMP_TOLERANCE)


def test_nearest_lookup_is_the_state_history_rule():
    rng = np.random.default_rng(3)
    stamps = np.sort(rng.integers(0, 10_000, 50))
    history = StateHistory(horizon_ns=1 << 40)
    for stamp in stamps:
        history.add(int(stamp), np.full(16, float(stamp)))
    track = _Track(list(stamps), [np.full(16, float(s)) for s in stamps], [""] * len(stamps))
    queries = np.concatenate([rng.integers(-500, 10_500, 500), (stamps[:-1] + stamps[1:]) // 2])  # + ties
    index, _ = track.nearest(queries, 150)
    for query, i in zip(queries, index):
        expected = history.at(int(query), 150)
        assert (None if i < 0 else int(track.stamps[i])) == (None if expected is None else expected[0]), query


def test_a_camera_clock_offset_shows_and_can_be_corrected(tmp_path, dataset):
    bag = make_episode_bag(tmp_path / "shifted", seconds=2.0, camera_stamp_shift=0.1)
    shifted = convert([bag], tmp_path / "raw")
    table = data_table(tmp_path / "raw")
    states = vectors(table, "observation.state")
    true_times = np.arange(table.num_rows) / FPS  # image n, truly taken at n / 30 s, is stamped n / 30 + 0.1
    inside = true_times + 0.1 <= 1.99  # stamps within the joint_states stream (last state at 1.99 s)
    np.testing.assert_allclose(states[inside], [state_at(t + 0.1) for t in true_times[inside]], atol=RAMP_TOLERANCE)

    def camera_vs_joints_ms(report) -> float:
        a = report.episodes[0].alignment
        return a["camera_log_minus_stamp_ms_p50"] - a["joint_states_log_minus_stamp_ms_p50"]

    normal = camera_vs_joints_ms(dataset[1])
    assert normal == pytest.approx((CAMERA_LATENCY_S - JOINT_LATENCY_S) * 1e3, abs=0.01)
    assert camera_vs_joints_ms(shifted) - normal == pytest.approx(-100.0, abs=0.01)
    row = episodes_rows(tmp_path / "raw")[0]
    assert row["alignment/camera_log_minus_stamp_ms_p50"] - row["alignment/joint_states_log_minus_stamp_ms_p50"] \
        == pytest.approx(normal - 100.0, abs=0.01)

    assert main([str(bag), "-o", str(tmp_path / "corrected"), "--offset", "camera/image_raw=-0.1"]) == 0
    table = data_table(tmp_path / "corrected")
    assert table.num_rows == 60
    true_times = np.arange(table.num_rows) / FPS
    np.testing.assert_allclose(vectors(table, "observation.state"), [state_at(t) for t in true_times],
                               atol=RAMP_TOLERANCE)
    np.testing.assert_allclose(vectors(table, "action"), [action_at(t) for t in true_times], atol=RAMP_TOLERANCE)
    assert episodes_rows(tmp_path / "corrected")[0]["alignment/state_to_image_ms_max"] <= 5.0


def test_a_truncated_bag_keeps_its_readable_start(tmp_path):
    full = 4 * FPS
    bag = make_episode_bag(tmp_path / "killed", seconds=4.0)  # several 1 MiB MCAP chunks
    (bag / "metadata.yaml").unlink()  # what a recorder killed before closing the bag leaves
    mcap = next(bag.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * 0.6))

    episode = read_episode(bag)
    assert episode.truncated and 0 < len(episode.camera) < full
    assert any("truncated" in w and mcap.name in w for w in episode.warnings)
    report = convert([bag], tmp_path / "out")
    root = tmp_path / "out"
    table = data_table(root)
    n = table.num_rows
    assert 0 < n < full and report.episodes[0].frames == n and report.episodes[0].truncated
    np.testing.assert_allclose(table.column("timestamp").to_pylist(), np.arange(n) / FPS, atol=1e-6)
    row = episodes_rows(root)[0]
    assert video_codes(root, row) == list(range(n))
    assert any("truncated" in w for w in row["meta/warnings"])
    # The metadata survives in the bag's first message; the outcome falls back to the last task_success.
    assert row["meta/seed"] == METADATA["seed"] and row["tasks"] == [METADATA["instruction"]]
    assert row["meta/success"] is False


def test_what_is_not_a_bag_is_a_clear_bag_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "noise.mcap").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "noise.mcap").write_bytes(np.random.default_rng(1).bytes(4096))
    (tmp_path / "notes.txt").write_text("not a bag")
    cases = {"empty": "empty", "noise": "no readable messages", "noise.mcap": "no readable messages",
             "notes.txt": "not a rosbag2 bag", "missing": "does not exist"}
    for name, problem in cases.items():
        with pytest.raises(BagError, match=problem) as error:
            read_episode(tmp_path / name)
        assert str(tmp_path / name) in str(error.value)
    with pytest.raises(BagError, match="no readable messages"):
        convert([tmp_path / "noise"], tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(list(cases)[:-1])  # nothing left behind


def test_a_closed_mcap_without_metadata_yaml_is_complete(tmp_path):
    bag = make_episode_bag(tmp_path / "no_yaml", seconds=0.5)
    (bag / "metadata.yaml").unlink()
    for path in (bag, next(bag.glob("*.mcap"))):  # the directory, or the .mcap file itself
        episode = read_episode(path)
        assert not episode.truncated and len(episode.camera) == 15 and len(episode.joint_states) == 50
        # custom_data comes from the copy of metadata.yaml that a closed MCAP file holds.
        assert episode.outcome == {"success": True, "reason": "task_success", "duration": 0.5}
        assert episode.metadata["seed"] == METADATA["seed"]


def test_only_success_leaves_out_failed_episodes(tmp_path, two_bags):
    failed = make_episode_bag(tmp_path / "failed", seconds=0.5, outcome={"success": False, "reason": "timeout"})
    report = convert([two_bags / "ep_a", failed], tmp_path / "out", only_success=True)
    assert [e.source_bag for e in report.episodes] == [two_bags / "ep_a"]
    assert [path for path, _ in report.skipped] == [failed] and "not a successful episode" in report.skipped[0][1]
    with pytest.raises(BagError, match="no episode to write"):
        convert([failed], tmp_path / "none", only_success=True)


def test_an_unsupported_image_encoding_is_named(tmp_path):
    bag = make_episode_bag(tmp_path / "bayer", seconds=0.5, encoding="bayer_rggb8")
    with pytest.raises(BagError, match="bayer_rggb8"):
        read_episode(bag)


def test_cli_skips_a_corrupt_bag_among_good_ones(tmp_path, two_bags, capsys):
    corrupt = tmp_path / "bags" / "ep_0_corrupt"
    corrupt.mkdir(parents=True)
    (corrupt / "ep_0_corrupt.mcap").write_bytes(b"\x89MCAP0\r\n" + np.random.default_rng(2).bytes(2048))
    for name in ("ep_a", "ep_b"):
        shutil.copytree(two_bags / name, tmp_path / "bags" / name)
    (tmp_path / "bags" / "notes.txt").write_text("not a bag, not a bag directory: ignored")

    assert main([str(tmp_path / "bags"), "-o", str(tmp_path / "out")]) == 0  # a folder: its bags by name
    printed = capsys.readouterr().out
    assert f"skipped {corrupt}" in printed and "60 frames kept" in printed and "45 frames kept" in printed
    assert "notes.txt" not in printed and "skipped 1 bag(s)" in printed
    assert [row["meta/source_bag"] for row in episodes_rows(tmp_path / "out")] == \
        [str(tmp_path / "bags" / name) for name in ("ep_a", "ep_b")]

    # A single bad bag is an error; a non-empty output is refused unless --overwrite.
    assert main([str(corrupt), "-o", str(tmp_path / "single")]) == 1
    assert str(corrupt) in capsys.readouterr().err and not (tmp_path / "single").exists()
    assert main([str(tmp_path / "bags" / "ep_b"), "-o", str(tmp_path / "out")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main([str(tmp_path / "bags" / "ep_b"), "-o", str(tmp_path / "out"), "--overwrite"]) == 0
    assert [row["length"] for row in episodes_rows(tmp_path / "out")] == [45]


def test_a_60_hz_camera_at_30_fps_keeps_every_other_frame(tmp_path):
    bag = make_episode_bag(tmp_path / "fast", seconds=2.0, camera_hz=60.0)
    report = convert([bag], tmp_path / "out", fps=FPS)
    root = tmp_path / "out"
    assert report.episodes[0].dropped == {"resampled": 60} and report.episodes[0].frames == 60
    np.testing.assert_allclose(data_table(root).column("timestamp").to_pylist(), np.arange(60) / FPS, atol=1e-6)
    assert video_codes(root, episodes_rows(root)[0]) == [2 * j for j in range(60)]


def test_bad_joint_states_and_nan_commands_drop_their_frames(tmp_path):
    # joint_states stamped 0.50..0.60 s lack left_elbow_joint: the images at 0.500, 0.533, 0.567 and 0.600 s are
    # nearest to them. Commands stamped in [1.0, 1.02] s (1.003 and 1.013) carry NaN: the image at 1.000 s is
    # nearest to 1.003; the one at 1.033 s has a good command 0.3 ms away.
    bag = make_episode_bag(tmp_path / "bad", seconds=2.0, drop_arm_joint=(0.5, 0.6), nan_command=(1.0, 1.02))
    report = convert([bag], tmp_path / "out")
    episode = report.episodes[0]
    assert episode.dropped == {"bad_state": 4, "bad_action": 1} and episode.frames == 55
    table = data_table(tmp_path / "out")
    states, actions = vectors(table, "observation.state"), vectors(table, "action")
    assert np.isfinite(states).all() and np.isfinite(actions).all()
    image_times = np.array(table.column("timestamp").to_pylist(), np.float64)
    lost = [15, 16, 17, 18, 30]
    np.testing.assert_allclose(image_times, np.delete(np.arange(60), lost) / FPS, atol=1e-6)
    np.testing.assert_allclose(states, [state_at(t) for t in image_times], atol=RAMP_TOLERANCE)
    np.testing.assert_allclose(actions, [action_at(t) for t in image_times], atol=RAMP_TOLERANCE)
    warnings = " ".join(episodes_rows(tmp_path / "out")[0]["meta/warnings"])
    assert "left_elbow_joint" in warnings and "non-finite" in warnings and "right_elbow_joint" in warnings
