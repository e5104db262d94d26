"""The whole data loop on a tiny scale, through the installed commands as a user runs them:
record 2 expert episodes through the ROS graph -> convert the bags to a LeRobot v3 dataset -> train 20 steps
-> evaluate 2 episodes of the trained checkpoint through the ROS graph."""

import json
import subprocess
import sys
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def _run(args, timeout):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.timeout(600)
def test_record_convert_train_evaluate(ros_domain, tmp_path):
    bags, dataset, run, evaluation = (tmp_path / name for name in ("bags", "dataset", "run", "eval"))

    out = _run([BIN / "dit4dit-record", "--tasks", "touch_cube", "--episodes", "2", "--seed", "0", "-o", bags], 240)
    episodes = sorted(p for p in bags.iterdir() if p.is_dir())
    assert [p.name for p in episodes] == ["touch_cube_seed00000", "touch_cube_seed00001"], out
    for bag in episodes:
        assert list(bag.glob("*.mcap")) and (bag / "metadata.yaml").is_file()

    _run([BIN / "dit4dit-convert", bags, "-o", dataset], 120)
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 2
    frames = pq.read_table(dataset / "data" / "chunk-000" / "file-000.parquet")
    assert frames.num_rows == info["total_frames"] >= 2 * 15  # the expert needs > 0.5 s per touch at 30 fps
    with av.open(str(dataset / "videos" / "observation.images.head" / "chunk-000" / "file-000.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == info["total_frames"]

    _run([BIN / "dit4dit-train", "--config", REPO / "config" / "train" / "g1_tiny.yaml", f"dataset={dataset}",
          f"output_dir={run}", "steps=20", "warmup_steps=2", "save_every=10", "batch_size=4", "log_every=5", "torch_threads=1"], 300)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "action_loss" in rows[0] and "video_loss" in rows[0] and len(rows) >= 1 + 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["000010", "000020"]

    out = _run([BIN / "dit4dit-eval", run, "--tasks", "touch_cube", "--episodes", "2", "--videos", "1",
                "--time-limit", "3", "-o", evaluation], 300)
    (report,) = json.loads((evaluation / "summary.json").read_text())
    assert report["step"] == 20 and report["tasks"]["touch_cube"]["episodes"] == 2, out
    low, high = report["tasks"]["touch_cube"]["ci95"]
    assert 0.0 <= low <= report["tasks"]["touch_cube"]["success_rate"] <= high <= 1.0
    # The policy ran in the graph: chunks arrived, each with a measured frame -> chunk latency.
    assert report["latency_ms_mean"] is not None and 0 < report["latency_ms_mean"] < 3000
    episodes = [json.loads(line) for line in (evaluation / "run_000020" / "episodes.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in episodes] == [1000, 1001] and all(e["chunks"] > 5 for e in episodes)
    video = evaluation / "run_000020" / episodes[0]["video"]
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 30  # 3 s of a 30 Hz camera, minus start-up
    assert (evaluation / "success_vs_step.png").stat().st_size > 5000
