"""A small LeRobotDataset v3.0 directory (docs/dataset.md section 3), written directly with pyarrow and PyAV so
that the training tests do not depend on the bag converter.

Every frame's pixels say where it came from: red = 20 + 8 * frame_index, green = 30 + 50 * episode_index
(flat colours survive H.264), and the 8-pixel bands that the model's centre crop cuts off are white on
the left and black on the right, so a frame that was not centre-cropped shows at its edges.
state / action values are just as traceable: action[j, d] = episode + 0.01 * j + 0.1 * d, state = action - 0.5.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dit4dit_ros.g1 import ACTION_NAMES

IMAGE_KEY = "observation.images.head"
TASKS = ("pick up the red cube", "put the cube in the bowl")
LENGTHS = (12, 10, 14, 9)  # episodes alternate between the two tasks
HEIGHT, WIDTH = 48, 64  # 4:3 like a camera; a square model input centre-crops the middle 48x48
BAND = (WIDTH - HEIGHT) // 2


def frame_pixels(episode: int, frame: int) -> np.ndarray:
    """The (HEIGHT, WIDTH, 3) uint8 picture of one frame."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[...] = ((20 + 8 * frame) % 256, (30 + 50 * episode) % 256, 128)  # unique up to frame 29, episode 4
    image[:, :BAND] = 255
    image[:, WIDTH - BAND:] = 0
    return image


def action_values(episode: int, length: int) -> np.ndarray:
    return (episode + 0.01 * np.arange(length)[:, None] + 0.1 * np.arange(len(ACTION_NAMES))[None, :]
            ).astype(np.float32)


def _fixed_lists(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def _stats(values: np.ndarray) -> dict:
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [len(values)]}


def write_dataset(root: Path, *, lengths: tuple[int, ...] = LENGTHS, fps: int = 30,
                  missing_video_frames: int = 0, nan_action: tuple[int, int] | None = None) -> Path:
    """Write the dataset under ``root`` and return it. ``missing_video_frames`` leaves that many frames off the
    end of the mp4; ``nan_action=(episode, frame)`` puts a NaN into that frame's action."""
    root = Path(root)
    for folder in ("meta/episodes/chunk-000", "data/chunk-000", f"videos/{IMAGE_KEY}/chunk-000"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    dim = len(ACTION_NAMES)
    episode_of = np.concatenate([np.full(n, k) for k, n in enumerate(lengths)]).astype(np.int64)
    frame_of = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
    task_of = episode_of % len(TASKS)
    actions = np.concatenate([action_values(k, n) for k, n in enumerate(lengths)])
    states = actions - 0.5
    if nan_action is not None:
        actions[np.flatnonzero((episode_of == nan_action[0]) & (frame_of == nan_action[1]))[0], 3] = np.nan
    total = len(episode_of)

    pq.write_table(pa.table({
        "observation.state": _fixed_lists(states), "action": _fixed_lists(actions),
        "timestamp": pa.array(frame_of / fps, pa.float32()), "frame_index": frame_of, "episode_index": episode_of,
        "index": np.arange(total, dtype=np.int64), "task_index": task_of.astype(np.int64),
    }), root / "data/chunk-000/file-000.parquet")

    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    video = f"videos/{IMAGE_KEY}"
    pq.write_table(pa.table({
        "episode_index": np.arange(len(lengths), dtype=np.int64),
        "tasks": [[TASKS[k % len(TASKS)]] for k in range(len(lengths))],
        "length": np.asarray(lengths, np.int64),
        "data/chunk_index": np.zeros(len(lengths), np.int64), "data/file_index": np.zeros(len(lengths), np.int64),
        "dataset_from_index": starts, "dataset_to_index": starts + np.asarray(lengths),
        f"{video}/chunk_index": np.zeros(len(lengths), np.int64),
        f"{video}/file_index": np.zeros(len(lengths), np.int64),
        f"{video}/from_timestamp": starts / fps, f"{video}/to_timestamp": (starts + np.asarray(lengths)) / fps,
        "meta/source": ["expert"] * len(lengths), "meta/success": [True] * len(lengths),
    }), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task": list(TASKS), "task_index": np.arange(len(TASKS), dtype=np.int64)}),
                   root / "meta/tasks.parquet")

    with av.open(str(root / video / "chunk-000/file-000.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(total - missing_video_frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(int(episode_of[i]), int(frame_of[i])), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())

    vector = {"dtype": "float32", "shape": [dim], "names": list(ACTION_NAMES)}
    scalar = {"dtype": "int64", "shape": [1], "names": None}
    info = {
        "codebase_version": "v3.0", "robot_type": "unitree_g1", "fps": fps, "total_episodes": len(lengths),
        "total_frames": total, "total_tasks": len(TASKS), "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "splits": {"train": f"0:{len(lengths)}"},
        "features": {
            IMAGE_KEY: {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channels"],
                        "info": {"video.fps": fps, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                                 "video.height": HEIGHT, "video.width": WIDTH, "video.channels": 3}},
            "observation.state": vector, "action": vector,
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": scalar, "episode_index": scalar, "index": scalar, "task_index": scalar,
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    channel = {"min": [[[0.0]]] * 3, "max": [[[1.0]]] * 3, "mean": [[[0.5]]] * 3, "std": [[[0.2]]] * 3}
    finite = np.isfinite(actions).all(1)  # stats as a converter that skipped the bad frame would write them
    (root / "meta/stats.json").write_text(json.dumps({
        "observation.state": _stats(states), "action": _stats(actions[finite]), IMAGE_KEY: channel}))
    return root
