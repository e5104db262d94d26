"""Evaluation helpers without ROS: Wilson intervals, episode videos, success-vs-step plots, finding checkpoints."""

import json

import av
import numpy as np
import pytest

from dit4dit_ros.evaluation.plots import plot_success_vs_step
from dit4dit_ros.evaluation.stats import success_summary, wilson_interval
from dit4dit_ros.evaluation.videos import write_mp4
from dit4dit_ros.ros.evaluate import checkpoint_name, checkpoint_step, checkpoints_of, markdown


def test_wilson_interval_matches_known_values_and_stays_in_bounds():
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint(method="wilson")).
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(1 - high) and high - low < 0.2
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_success_summary_counts():
    summary = success_summary([True, False, True, True])
    assert (summary["episodes"], summary["successes"], summary["success_rate"]) == (4, 3, 0.75)
    assert summary["ci95"][0] < 0.75 < summary["ci95"][1]


def test_episode_video_has_every_frame_and_the_picture(tmp_path):
    frames = [np.full((48, 64, 3), (10 * i, 0, 200), np.uint8) for i in range(12)]
    path = write_mp4(tmp_path / "v" / "ep.mp4", frames, fps=30)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert float(container.streams.video[0].average_rate) == pytest.approx(30)
    assert len(decoded) == 12 and decoded[0].shape == (48, 64, 3)
    assert abs(int(decoded[5][20, 30, 0]) - 50) < 8 and abs(int(decoded[5][20, 30, 2]) - 200) < 8
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "empty.mp4", [])


def test_success_vs_step_plot_is_written(tmp_path):
    path = plot_success_vs_step({"touch_cube": [(500, 0.2, 0.05, 0.5), (100, 0.0, 0.0, 0.3)]}, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def _policy_dir(path, step=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "policy.json").write_text(json.dumps({"metadata": {"step": step} if step is not None else {}}))
    return path


def test_checkpoints_of_a_policy_dir_and_of_a_training_run(tmp_path):
    single = _policy_dir(tmp_path / "policy")
    assert checkpoints_of(single, all_steps=False) == [single]
    for step in (500, 1000, 1500):
        _policy_dir(tmp_path / "run" / "checkpoints" / f"{step:06d}" / "pretrained_model", step)
    newest = checkpoints_of(tmp_path / "run", all_steps=False)
    assert [p.parent.name for p in newest] == ["001500"]
    every = checkpoints_of(tmp_path / "run", all_steps=True)
    assert [checkpoint_step(p) for p in every] == [500, 1000, 1500]
    assert checkpoint_name(every[0]) == "run_000500" and checkpoint_step(single) is None
    with pytest.raises(FileNotFoundError, match="neither a policy checkpoint"):
        checkpoints_of(tmp_path / "nothing", all_steps=False)


def test_markdown_table_has_one_row_per_checkpoint():
    task = {**success_summary([True, False]), "latency_ms_mean": 120.0}
    report = {"name": "run_000500", "step": 500, "tasks": {"touch_cube": task}, "all": success_summary([True, False]),
              "latency_ms_mean": 120.0, "latency_ms_p95": 180.0}
    table = markdown([report], ["touch_cube"])
    assert "| run_000500 | 500 | 1/2 (50 %" in table and "120.0 / 180.0" in table
