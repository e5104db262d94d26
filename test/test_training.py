"""Training on a LeRobotDataset v3.0 directory: the samples (docs/dataset.md section 4), the training config,
the training command (metrics, checkpoints, a loadable policy), kill-and-resume reproducing an uninterrupted
run, and clear errors for NaNs. Everything runs the tiny preset on a small dataset written by
test/helpers/lerobot_fixture.py."""

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.lerobot_fixture import BAND, IMAGE_KEY, LENGTHS, TASKS, action_values, write_dataset
from safetensors.torch import load_file

from dit4dit_ros.data.dataset import DatasetError, EpisodeDataset, action_stats, collate, select_episodes
from dit4dit_ros.model.configuration_dit4dit import tiny
from dit4dit_ros.model.modeling_dit4dit import DiT4DiTPolicy
from dit4dit_ros.perception.images import FrameProcessor
from dit4dit_ros.training.config import ConfigError, TrainConfig, load_config
from dit4dit_ros.training.train import main, optimizer_digest

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[1]
VIDEO = f"videos/{IMAGE_KEY}/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("lerobot") / "g1")


def _red_code(frame: torch.Tensor) -> int:
    """The frame index written into a sample frame's red channel (see lerobot_fixture)."""
    red = float((frame[0, 8:24, 8:24].mean() + 1) * 127.5)
    return round((red - 20) / 8)


def _config(fps: int = 30):
    config = tiny()
    config.video.fps = fps
    return config


# -- dataset -------------------------------------------------------------------------------------------------
def test_samples_have_the_model_shapes_types_and_range(dataset_root):
    config = tiny()
    dataset = EpisodeDataset(dataset_root, config)
    assert len(dataset) == sum(LENGTHS)
    sample = dataset[5]
    v, a = config.video, config.action
    assert sample["frames"].shape == (v.num_frames, 3, *v.image_size) and sample["frames"].dtype == torch.float32
    assert sample["state"].shape == (a.state_dim,) and sample["state"].dtype == torch.float32
    assert sample["actions"].shape == (a.horizon, a.action_dim) and sample["actions"].dtype == torch.float32
    assert sample["action_is_pad"].shape == (a.horizon,) and sample["action_is_pad"].dtype == torch.bool
    assert sample["instruction"] == TASKS[0]
    assert dataset.frames.dtype == np.uint8 and dataset.frames.shape == (sum(LENGTHS), *v.image_size, 3)
    everything = torch.stack([dataset[i]["frames"] for i in range(len(dataset))])
    assert everything.min() >= -1 and everything.max() <= 1 and everything.min() < -0.5 and everything.max() > 0
    batch = collate([dataset[0], dataset[20]])
    assert batch["instruction"] == [TASKS[0], TASKS[1]] and batch["frames"].shape[0] == 2


def test_frames_are_the_right_video_frames_processed_like_camera_ingest(dataset_root):
    config = tiny()
    dataset = EpisodeDataset(dataset_root, config)
    # Exactly what camera_ingest publishes for each decoded video frame.
    process = FrameProcessor(config.video.image_size, crop="center")
    with av.open(str(dataset_root / VIDEO)) as container:
        expected = np.stack([process(frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)])
    np.testing.assert_array_equal(dataset.frames, expected)
    # The centre crop removed the white (left) and black (right) bands; the colours encode episode and frame.
    sample = dataset[LENGTHS[0] + LENGTHS[1] + 3]  # episode 2, frame 3
    image = (sample["frames"][0] + 1) * 127.5
    assert 20 + 8 * 3 - 8 < image[0, :, 0].mean() < 20 + 8 * 3 + 8  # the left edge is the scene, not the band
    assert 30 + 50 * 2 - 8 < image[1].mean() < 30 + 50 * 2 + 8
    assert BAND > 0 and image[:, :, -1].min() > 10
    assert [_red_code(f) for f in sample["frames"]] == [3, 4, 5, 6, 7]


def test_frame_stride_follows_the_model_fps_and_repeats_the_last_frame(dataset_root):
    dataset = EpisodeDataset(dataset_root, _config(fps=15))  # dataset at 30 fps: every second frame
    assert dataset.stride == 2
    assert [_red_code(f) for f in dataset[2]["frames"]] == [2, 4, 6, 8, 10]
    last = LENGTHS[0] - 1
    assert [_red_code(f) for f in dataset[last - 3]["frames"]] == [last - 3, last - 1, last, last, last]
    with pytest.raises(DatasetError, match="stride 1.5 is not|must be a whole number"):
        EpisodeDataset(dataset_root, _config(fps=20))


def test_actions_are_padded_with_the_last_action_past_the_episode_end(dataset_root):
    config = tiny()
    dataset = EpisodeDataset(dataset_root, config)
    horizon, length = config.action.horizon, LENGTHS[1]
    values = action_values(1, length)
    for f in (0, length - horizon, length - 3, length - 1):
        sample = dataset[LENGTHS[0] + f]
        real = min(horizon, length - f)
        assert sample["episode_index"] == 1 and sample["frame_index"] == f
        assert sample["action_is_pad"].tolist() == [False] * real + [True] * (horizon - real)
        np.testing.assert_array_equal(sample["actions"][:real], values[f:f + real])
        np.testing.assert_array_equal(sample["actions"][real:], np.repeat(values[-1:], horizon - real, 0))
        np.testing.assert_allclose(sample["state"], values[f] - 0.5, atol=1e-6)


def test_select_episodes_takes_the_first_n_of_every_task(dataset_root):
    assert select_episodes(dataset_root, 1) == [0, 1]
    assert select_episodes(dataset_root, 5) == [0, 1, 2, 3]
    subset = EpisodeDataset(dataset_root, tiny(), episodes=[3, 1])
    assert len(subset) == LENGTHS[1] + LENGTHS[3]
    samples = [subset[i] for i in range(len(subset))]
    assert {int(s["episode_index"]) for s in samples} == {1, 3} and {s["instruction"] for s in samples} == {TASKS[1]}
    assert [_red_code(f) for f in samples[0]["frames"]] == [0, 1, 2, 3, 4]
    with pytest.raises(DatasetError, match=r"no episode\(s\) \[7\]"):
        EpisodeDataset(dataset_root, tiny(), episodes=[7])


def test_action_stats_come_from_stats_json(dataset_root):
    low, high = action_stats(dataset_root)
    values = np.concatenate([action_values(k, n) for k, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(low, values.min(0), rtol=1e-6)
    np.testing.assert_allclose(high, values.max(0), rtol=1e-6)


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _drop_feature(info):
    del info["features"]["action"]


@pytest.mark.parametrize("damage, config, message", [
    (lambda root: shutil.rmtree(root), None, "does not exist"),
    (lambda root: (root / "meta/info.json").unlink(), None, "info.json is missing"),
    (lambda root: (root / "data/chunk-000/file-000.parquet").unlink(), None, "file-000.parquet is missing"),
    (lambda root: (root / VIDEO).unlink(), None, "file-000.mp4 is missing"),
    (lambda root: _edit_json(root / "meta/info.json", lambda i: i.update(codebase_version="v2.1")), None,
     "codebase_version 'v2.1'"),
    (lambda root: _edit_json(root / "meta/info.json", _drop_feature), None, r"features \['action'\] are missing"),
    (lambda root: None, "action_dim", r"action has shape \[16\], the model's action_dim is 14"),
], ids=["no-dir", "no-info", "no-data", "no-video", "version", "feature", "dim"])
def test_unusable_datasets_raise_clear_errors(dataset_root, tmp_path, damage, config, message):
    root = Path(shutil.copytree(dataset_root, tmp_path / "copy"))
    damage(root)
    model = tiny()
    if config == "action_dim":
        model.action.action_dim = 14
    with pytest.raises(DatasetError, match=message):
        EpisodeDataset(root, model)


def test_a_video_shorter_than_the_data_is_an_error(tmp_path):
    root = write_dataset(tmp_path / "short", missing_video_frames=2)
    with pytest.raises(DatasetError, match="fewer frames than the data"):
        EpisodeDataset(root, tiny())


# -- config --------------------------------------------------------------------------------------------------
def test_config_file_overrides_and_dotted_model_keys(tmp_path):
    assert load_config(REPO / "config/train/g1_tiny.yaml") == TrainConfig()  # the file documents the defaults
    path = tmp_path / "run.yaml"
    path.write_text("preset: tiny\nsteps: 100\nmodel:\n  action:\n    horizon: 4\n")
    config = load_config(path, ["steps=7", "warmup_steps=1", "lr=1e-3", "model.flow.video_loss_weight=0",
                                "episodes_per_task=10", "mixed_precision=no", "dataset=/data/g1"])
    assert (config.steps, config.lr, config.episodes_per_task, config.mixed_precision) == (7, 1e-3, 10, "no")
    model = config.model_config()
    assert model.flow.video_loss_weight == 0 and model.action.horizon == 4 and model.video.num_frames == 5
    assert config.dataset == "/data/g1"


@pytest.mark.parametrize("yaml_text, overrides, message", [
    ("stepz: 3\n", [], r"unknown key\(s\) \['stepz'\]"),
    ("", ["bach_size=3"], "unknown key 'bach_size'"),
    ("", ["model.flow.video_weight=0"], "unknown key model.flow.video_weight"),
    ("", ["model.vision.layers=2"], "unknown key model.vision"),
    ("", ["steps=many"], "steps must be int"),
    ("", ["steps"], "is not key=value"),
    ("", ["preset=huge"], "unknown preset 'huge'"),
], ids=["yaml-key", "override-key", "model-key", "model-section", "type", "syntax", "preset"])
def test_config_errors_name_the_key(tmp_path, yaml_text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, overrides)


# -- training ------------------------------------------------------------------------------------------------
def _args(dataset, output_dir, *extra):
    return ["--config", str(REPO / "config/train/g1_tiny.yaml"), f"dataset={dataset}", f"output_dir={output_dir}",
            "batch_size=4", "warmup_steps=2", "log_every=1", "torch_threads=1", *extra]


def _metrics(output_dir: Path) -> list[dict[str, float]]:
    with open(output_dir / "metrics.csv", newline="") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def _steps(output_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (output_dir / "checkpoints").iterdir() if p.name.isdigit())


def test_training_logs_both_losses_and_writes_loadable_checkpoints(dataset_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(dataset_root, out, "steps=20", "save_every=5", "keep_checkpoints=2")) == 0
    assert f"final checkpoint: {out / 'checkpoints/000020/pretrained_model'}" in capsys.readouterr().out
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert {"loss", "action_loss", "video_loss", "lr", "grad_norm", "samples_per_s", "wall_time_s"} <= set(rows[0])
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss", "action_loss", "video_loss", "grad_norm"))
    assert all(r["video_loss"] > 0 for r in rows)  # lambda = 1 in the tiny preset
    assert all(abs(r["loss"] - r["action_loss"] - r["video_loss"]) < 1e-4 for r in rows)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 20

    assert _steps(out) == [15, 20]  # saved at 5, 10, 15, 20; keep_checkpoints=2
    assert os.path.realpath(out / "checkpoints/last") == str(out / "checkpoints/000020")
    policy = DiT4DiTPolicy.from_pretrained(out / "checkpoints/last/pretrained_model")
    low, high = action_stats(dataset_root)
    np.testing.assert_array_equal(policy.action_min.numpy(), low)
    np.testing.assert_array_equal(policy.action_max.numpy(), high)
    meta = policy.checkpoint_metadata
    assert meta["step"] == 20 and meta["dataset_fps"] == 30 and meta["dataset"] == str(dataset_root)
    assert meta["dataset_info"]["image_key"] == IMAGE_KEY and len(meta["dataset_info"]["action_names"]) == 16
    assert meta["train_config"]["steps"] == 20
    state = json.loads((out / "checkpoints/000015/training_state/trainer_state.json").read_text())
    assert state["step"] == 15 and (state["epoch"], state["batch_in_epoch"]) == divmod(15, sum(LENGTHS) // 4)


def test_video_loss_is_zero_without_the_video_objective(dataset_root, tmp_path):
    out = tmp_path / "no_video"
    assert main(_args(dataset_root, out, "steps=3", "model.flow.video_loss_weight=0")) == 0
    rows = _metrics(out)
    assert [r["video_loss"] for r in rows] == [0.0, 0.0, 0.0]
    assert all(r["loss"] == r["action_loss"] > 0 for r in rows)


def test_an_existing_output_dir_needs_resume(dataset_root, tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "notes.txt").write_text("someone's run")
    with pytest.raises(SystemExit, match="not empty: pick another output_dir, or pass resume=true"):
        main(_args(dataset_root, out, "steps=3", "resume=false"))


def _train_command(dataset, output_dir):
    return [sys.executable, "-m", "dit4dit_ros.training.train",
            *_args(dataset, output_dir, "steps=30", "batch_size=12", "save_every=5", "keep_checkpoints=0")]


def test_killed_training_resumes_and_matches_an_uninterrupted_run(dataset_root, tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    # batch 12 of 45 samples: 3 steps per epoch, so checkpoints fall both mid-epoch and on epoch ends.
    assert main(_train_command(dataset_root, reference)[3:]) == 0
    with open(tmp_path / "killed.log", "wb") as log:
        killed = subprocess.Popen(_train_command(dataset_root, interrupted), cwd=REPO, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while (not (interrupted / "checkpoints/000010").exists() and killed.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.005)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    saved = _steps(interrupted)
    assert 10 in saved and 30 not in saved, saved
    resume_step = saved[-1]

    resumed = subprocess.run(_train_command(dataset_root, interrupted), cwd=REPO, capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"at step {resume_step} " in resumed.stdout
    record = json.loads((interrupted / "resume.jsonl").read_text().splitlines()[-1])
    assert record["step"] == resume_step and record["first_step"] == resume_step + 1
    assert _steps(interrupted)[-1] == 30
    assert os.path.realpath(interrupted / "checkpoints/last") == str(interrupted / "checkpoints/000030")

    # The optimiser state the resumed process loaded is the saved one, which is the uninterrupted run's.
    saved_optimizer = torch.load(interrupted / f"checkpoints/{resume_step:06d}/training_state/optimizer.bin",
                                 weights_only=True)
    assert record["optimizer_digest"] == optimizer_digest(saved_optimizer)
    assert {float(s["step"]) for s in saved_optimizer["state"].values()} == {float(resume_step)}
    reference_optimizer = torch.load(reference / f"checkpoints/{resume_step:06d}/training_state/optimizer.bin",
                                     weights_only=True)
    assert optimizer_digest(reference_optimizer) == record["optimizer_digest"]

    # Same seed, same data order, same RNG states, one thread: the final weights are bit for bit the same.
    final = load_file(interrupted / "checkpoints/000030/pretrained_model/model.safetensors")
    expected = load_file(reference / "checkpoints/000030/pretrained_model/model.safetensors")
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in final)
    rows, reference_rows = _metrics(interrupted), _metrics(reference)
    assert [r["step"] for r in rows] == list(range(1, 31))  # rows logged after the checkpoint were redone
    assert [(r["loss"], r["action_loss"], r["video_loss"]) for r in rows] == \
        [(r["loss"], r["action_loss"], r["video_loss"]) for r in reference_rows]


def test_a_nan_loss_stops_training_before_saving_that_step(dataset_root, tmp_path, monkeypatch):
    original = DiT4DiTPolicy.compute_loss
    calls = []

    def poisoned(self, batch, generator=None):
        losses = original(self, batch, generator)
        calls.append(1)
        if len(calls) == 3:
            losses["action_loss"] = losses["action_loss"] * float("nan")
            losses["loss"] = losses["action_loss"] + losses["video_loss"]
        return losses

    monkeypatch.setattr(DiT4DiTPolicy, "compute_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit, match=r"the loss is \[nan\] at step 3 .*Last checkpoint: .*000002"):
        main(_args(dataset_root, out, "steps=5", "save_every=1"))
    assert _steps(out) == [1, 2]
    assert os.path.realpath(out / "checkpoints/last") == str(out / "checkpoints/000002")


def test_a_nan_action_in_the_dataset_is_a_clear_error(tmp_path):
    root = write_dataset(tmp_path / "nan_data", nan_action=(1, 4))
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"episode 1: action is NaN or Inf at frame 4, dimension 3"):
        main(_args(root, out, "steps=3", "save_every=1"))
    assert not (out / "checkpoints").exists()


def test_a_half_written_checkpoint_is_never_resumed_from(dataset_root, tmp_path):
    out = tmp_path / "run"
    assert main(_args(dataset_root, out, "steps=4", "save_every=2")) == 0
    half = out / "checkpoints/.tmp-000006"  # what a kill during the save of step 6 leaves
    (half / "training_state").mkdir(parents=True)
    (half / "training_state/optimizer.bin").write_bytes(b"trunc")
    assert main(_args(dataset_root, out, "steps=6", "save_every=2")) == 0
    record = json.loads((out / "resume.jsonl").read_text())
    assert record["step"] == 4 and not half.exists()
    # Raising steps on resume continues on the new schedule: step 5 is halfway down the cosine of steps=6.
    assert _metrics(out)[4]["lr"] == pytest.approx(3e-4 * 0.5)
    assert _steps(out) == [2, 4, 6] and os.path.realpath(out / "checkpoints/last") == str(out / "checkpoints/000006")
