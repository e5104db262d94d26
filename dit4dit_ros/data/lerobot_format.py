"""Write a LeRobotDataset v3.0 directory (docs/dataset.md section 3): parquet files with pyarrow, the head camera
video with PyAV, and the JSON metadata (info, stats, modality).

Everything fits one data file, one episodes file and one mp4: the frames of all episodes follow each other in
episode order, frame j of the dataset's video at pts j (time base 1 / fps), so episode k's video segment is
[first global frame / fps, (last + 1) / fps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dit4dit_ros import g1

IMAGE_KEY = "observation.images.head"
VIDEO = f"videos/{IMAGE_KEY}"
DATA_FILE = "data/chunk-000/file-000.parquet"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
VIDEO_FILE = f"{VIDEO}/chunk-000/file-000.mp4"
PIX_FMT = "yuv420p"
IMAGE_STATS_FRAMES = 100  # frames per episode that image stats are computed on (evenly spaced)
GROUPS = {"left_arm": (0, 7), "right_arm": (7, 14), "left_hand": (14, 15), "right_hand": (15, 16)}
MODALITY = {
    "state": {name: {"start": start, "end": end} for name, (start, end) in GROUPS.items()},
    "action": {name: {"start": start, "end": end} for name, (start, end) in GROUPS.items()},
    "video": {"head": {"original_key": IMAGE_KEY}},
    "annotation": {"human.task_description": {"original_key": "task_index"}},
}


@dataclass
class EpisodeMeta:
    """The per-episode columns beyond the LeRobot ones: where the episode came from and how well it aligned."""

    source_bag: str
    seed: int | None = None
    source: str | None = None
    success: bool | None = None
    warnings: list[str] = field(default_factory=list)
    alignment: dict[str, float | None] = field(default_factory=dict)  # column name after "alignment/"


def _fixed_lists(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def _vector_stats(values: np.ndarray) -> dict[str, list]:
    values = values.astype(np.float64)
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [len(values)]}


class _ImageStats:
    """Per-channel min / max / mean / std of pixels scaled to [0, 1] over sampled frames, from per-channel
    histograms of the uint8 values: exact, and far cheaper than float reductions over every pixel."""

    def __init__(self):
        self.count = 0
        self.histograms = np.zeros((3, 256), np.int64)

    def add(self, rgb: np.ndarray) -> None:
        self.count += 1
        for channel in range(3):
            self.histograms[channel] += np.bincount(rgb[..., channel].ravel(), minlength=256)

    def as_dict(self) -> dict[str, list]:
        levels = np.arange(256) / 255.0
        total = self.histograms.sum(1)
        mean = self.histograms @ levels / total
        std = np.sqrt(np.maximum(self.histograms @ levels ** 2 / total - mean ** 2, 0.0))
        present = self.histograms > 0
        low = np.array([levels[row].min() for row in present])
        high = np.array([levels[row].max() for row in present])

        def channels(values: np.ndarray) -> list:
            return values.reshape(3, 1, 1).tolist()

        return {"min": channels(low), "max": channels(high), "mean": channels(mean), "std": channels(std),
                "count": [self.count]}


class DatasetWriter:
    """Builds the dataset under ``root`` episode by episode; ``close`` writes everything but the video frames,
    which are encoded as episodes arrive (only the small per-frame vectors are kept in memory)."""

    def __init__(self, root: Path, fps: float, *, vcodec: str = "libx264", crf: int = 18,
                 robot_type: str = "unitree_g1"):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.root = Path(root)
        self.fps = fps
        self.rate = Fraction(fps).limit_denominator(1001)  # 30 -> 30/1, 29.97 -> 30000/1001
        self.vcodec = vcodec
        self.crf = crf
        self.robot_type = robot_type
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.timestamps: list[np.ndarray] = []
        self.task_of_episode: list[int] = []
        self.total_frames = 0
        self.image_stats = _ImageStats()
        self.shape: tuple[int, int] | None = None
        self._container = None
        self._stream = None

    def _open_video(self, height: int, width: int) -> None:
        path = self.root / VIDEO_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream(self.vcodec, rate=self.rate, options={"crf": str(self.crf)})
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        self._stream.time_base = 1 / self.rate
        self.shape = (height, width)

    def check_frame_size(self, height: int, width: int) -> None:
        """Raise ValueError if frames of this size cannot join the dataset's single video."""
        if self.shape is not None and (height, width) != self.shape:
            raise ValueError(f"images are {width}x{height}, but the dataset's video is "
                             f"{self.shape[1]}x{self.shape[0]} (one video holds all episodes)")
        if height % 2 or width % 2:
            raise ValueError(f"{PIX_FMT} video needs an even image size, the camera gives {width}x{height}")

    def add_episode(self, frames: list[np.ndarray], states: np.ndarray, actions: np.ndarray,
                    timestamps: np.ndarray, task: str, meta: EpisodeMeta) -> int:
        """Append one episode (frames: (H, W, 3) uint8 RGB, all of one size) and return its episode index."""
        length = len(frames)
        if not length or len(states) != length or len(actions) != length or len(timestamps) != length:
            raise ValueError(f"an episode needs as many states, actions and timestamps as frames (>= 1), got "
                             f"{length} frames, {len(states)} states, {len(actions)} actions, "
                             f"{len(timestamps)} timestamps")
        # Checked before encoding anything: a rejected episode leaves no frames behind in the video.
        sizes = {rgb.shape for rgb in frames}
        if len(sizes) > 1:
            raise ValueError(f"an episode's images must all have one size, got {sorted(sizes)}")
        self.check_frame_size(*frames[0].shape[:2])
        if self._container is None:
            self._open_video(*frames[0].shape[:2])
        first = self.total_frames
        for j, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = first + j
            self._container.mux(self._stream.encode(frame))
        for j in np.unique(np.linspace(0, length - 1, min(length, IMAGE_STATS_FRAMES)).round().astype(int)):
            self.image_stats.add(frames[j])

        index = len(self.episodes)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        self.states.append(np.asarray(states, np.float32))
        self.actions.append(np.asarray(actions, np.float32))
        self.timestamps.append(np.asarray(timestamps, np.float32))
        self.task_of_episode.append(task_index)
        self.total_frames += length
        self.episodes.append({
            "episode_index": index, "tasks": [task], "length": length,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": first, "dataset_to_index": first + length,
            f"{VIDEO}/chunk_index": 0, f"{VIDEO}/file_index": 0,
            f"{VIDEO}/from_timestamp": float(first / self.rate),
            f"{VIDEO}/to_timestamp": float((first + length) / self.rate),
            "meta/source_bag": meta.source_bag, "meta/seed": meta.seed, "meta/source": meta.source,
            "meta/success": meta.success, "meta/warnings": list(meta.warnings),
            **{f"alignment/{name}": value for name, value in meta.alignment.items()},
        })
        return index

    def close(self) -> None:
        """Finish the video and write the parquet and JSON files."""
        if not self.episodes:
            raise ValueError("the dataset has no episodes")
        self._container.mux(self._stream.encode())  # flush the encoder's delayed frames
        self._container.close()
        self._write_data()
        self._write_episodes()
        self._write_tasks()
        states, actions = np.concatenate(self.states), np.concatenate(self.actions)
        stats = {"observation.state": _vector_stats(states), "action": _vector_stats(actions),
                 IMAGE_KEY: self.image_stats.as_dict()}
        self._write_json("meta/stats.json", stats)
        self._write_json("meta/modality.json", MODALITY)
        self._write_json("meta/info.json", self._info())

    def discard(self) -> None:
        """Release the video file after a failed conversion (the caller deletes the directory)."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def _write_data(self) -> None:
        lengths = [len(t) for t in self.timestamps]
        table = pa.table({
            "observation.state": _fixed_lists(np.concatenate(self.states)),
            "action": _fixed_lists(np.concatenate(self.actions)),
            "timestamp": pa.array(np.concatenate(self.timestamps), pa.float32()),
            "frame_index": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]),
            "episode_index": np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
            "index": np.arange(self.total_frames, dtype=np.int64),
            "task_index": np.repeat(np.asarray(self.task_of_episode, np.int64), lengths),
        })
        self._write_parquet(DATA_FILE, table)

    def _write_episodes(self) -> None:
        fields = [("episode_index", pa.int64()), ("tasks", pa.list_(pa.string())), ("length", pa.int64()),
                  ("data/chunk_index", pa.int64()), ("data/file_index", pa.int64()),
                  ("dataset_from_index", pa.int64()), ("dataset_to_index", pa.int64()),
                  (f"{VIDEO}/chunk_index", pa.int64()), (f"{VIDEO}/file_index", pa.int64()),
                  (f"{VIDEO}/from_timestamp", pa.float64()), (f"{VIDEO}/to_timestamp", pa.float64()),
                  ("meta/source_bag", pa.string()), ("meta/seed", pa.int64()), ("meta/source", pa.string()),
                  ("meta/success", pa.bool_()), ("meta/warnings", pa.list_(pa.string()))]
        alignment = sorted({key for row in self.episodes for key in row if key.startswith("alignment/")})
        schema = pa.schema(fields + [(key, pa.float64()) for key in alignment])
        self._write_parquet(EPISODES_FILE, pa.Table.from_pylist(self.episodes, schema=schema))

    def _write_tasks(self) -> None:
        # LeRobot reads this file with pandas and looks tasks up by the index (the task string): the pandas
        # metadata marks the "task" column as that index. A plain pyarrow reader sees both columns.
        pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None}], "creator": {"library": "pyarrow", "version": pa.__version__}}
        schema = pa.schema([("task", pa.string()), ("task_index", pa.int64())],
                           metadata={"pandas": json.dumps(pandas_meta)})
        table = pa.table({"task": list(self.tasks), "task_index": list(self.tasks.values())}, schema=schema)
        self._write_parquet("meta/tasks.parquet", table)

    def _info(self) -> dict:
        with av.open(str(self.root / VIDEO_FILE)) as container:  # what was written, as a reader sees it
            video = container.streams.video[0]
            codec, pix_fmt = video.codec_context.name, video.codec_context.pix_fmt
            height, width = video.codec_context.height, video.codec_context.width
        fps = int(self.fps) if float(self.fps).is_integer() else float(self.fps)
        vector = {"dtype": "float32", "shape": [len(g1.ACTION_NAMES)], "names": list(g1.ACTION_NAMES)}
        scalar = {"dtype": "int64", "shape": [1], "names": None}
        return {
            "codebase_version": "v3.0", "robot_type": self.robot_type, "fps": fps,
            "total_episodes": len(self.episodes), "total_frames": self.total_frames, "total_tasks": len(self.tasks),
            "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "splits": {"train": f"0:{len(self.episodes)}"},
            "features": {
                IMAGE_KEY: {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                            "info": {"video.fps": fps, "video.codec": codec, "video.pix_fmt": pix_fmt,
                                     "video.height": height, "video.width": width, "video.channels": 3,
                                     "video.is_depth_map": False, "has_audio": False}},
                "observation.state": vector, "action": vector,
                "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                "frame_index": scalar, "episode_index": scalar, "index": scalar, "task_index": scalar,
            },
        }

    def _write_parquet(self, relative: str, table: pa.Table) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

    def _write_json(self, relative: str, value: dict) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2) + "\n")
