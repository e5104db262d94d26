"""Training samples from a LeRobotDataset v3.0 directory (docs/dataset.md, sections 3 and 4).

The whole selection is loaded once into memory: parquet columns with pyarrow, and each camera mp4 decoded ONE
time with PyAV into uint8 frames already cropped and resized to the model's input by the same
``FrameProcessor`` that ``camera_ingest`` runs on the robot (a frame the model trains on is a frame it will
see). Holding processed frames keeps memory small (a 64x64 frame is 12 KiB) and makes ``__getitem__`` pure
indexing, so data loading never slows a CPU training step and needs no worker processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from dit4dit_ros.model.configuration_dit4dit import DiT4DiTConfig
from dit4dit_ros.perception.images import FrameProcessor

CODEBASE_VERSION = "v3.0"
IMAGE_KEY = "observation.images.head"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
EPISODES_GLOB = "meta/episodes/*/*.parquet"


class DatasetError(ValueError):
    """A dataset directory that cannot be trained on; the message names the file and the problem."""


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing: not a LeRobotDataset {CODEBASE_VERSION} directory")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{path} does not hold a JSON object")
    return data


def _read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(f"{path} is not a readable parquet file: {error}") from error
    missing = [name for name in columns or () if name not in table.column_names]
    if missing:
        raise DatasetError(f"{path} has no column(s) {missing} (it has {table.column_names})")
    return table


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    return root


def read_info(root: str | os.PathLike) -> dict[str, Any]:
    """meta/info.json, checked for the version and the features training needs."""
    root = _check_root(root)
    info = _read_json(root / "meta" / "info.json")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(f"{root}: codebase_version {version!r}, this loader reads {CODEBASE_VERSION!r} "
                           f"(convert the dataset with LeRobot's v3.0 conversion or dit4dit_ros.data.convert)")
    features = info.get("features", {})
    missing = [key for key in (IMAGE_KEY, STATE_KEY, ACTION_KEY) if key not in features]
    if missing:
        raise DatasetError(f"{root / 'meta/info.json'}: features {missing} are missing (it has {sorted(features)})")
    if features[IMAGE_KEY].get("dtype") != "video":
        raise DatasetError(f"{root}: feature {IMAGE_KEY} has dtype {features[IMAGE_KEY].get('dtype')!r}, "
                           f"expected 'video' (an mp4 per chunk)")
    for key in ("fps", "data_path", "video_path"):
        if key not in info:
            raise DatasetError(f"{root / 'meta/info.json'} has no {key!r}")
    return info


def _read_episodes(root: Path) -> pa.Table:
    files = sorted(root.glob(EPISODES_GLOB))
    if not files:
        raise DatasetError(f"{root}: no episode metadata ({EPISODES_GLOB})")
    return pa.concat_tables([_read_parquet(path, ["episode_index", "tasks", "length"]) for path in files])


def action_stats(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of the actions over the whole dataset, from meta/stats.json: the policy's normalisation."""
    root = _check_root(root)
    path = root / "meta" / "stats.json"
    stats = _read_json(path).get(ACTION_KEY)
    if not isinstance(stats, dict) or "min" not in stats or "max" not in stats:
        raise DatasetError(f"{path} has no {ACTION_KEY!r} min/max")
    low, high = (np.asarray(stats[key], dtype=np.float32).reshape(-1) for key in ("min", "max"))
    if low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all()) or (high < low).any():
        raise DatasetError(f"{path}: {ACTION_KEY} min/max must be finite vectors of one length with max >= min")
    return low, high


def select_episodes(root: str | os.PathLike, per_task: int) -> list[int]:
    """The first ``per_task`` episodes (by episode index) of every task: the 10/25/50-demonstration subsets."""
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    episodes = _read_episodes(_check_root(root))
    taken: dict[str, int] = {}
    chosen = []
    rows = sorted(zip(episodes.column("episode_index").to_pylist(), episodes.column("tasks").to_pylist()))
    for index, tasks in rows:
        task = tasks[0] if tasks else ""
        if taken.get(task, 0) < per_task:
            taken[task] = taken.get(task, 0) + 1
            chosen.append(int(index))
    return chosen


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; instructions stay a list of strings (the text encoder takes strings)."""
    return {key: [s[key] for s in samples] if isinstance(samples[0][key], str) else
            torch.stack([s[key] for s in samples]) for key in samples[0]}


@dataclass(frozen=True)
class _Episode:
    index: int
    length: int
    data_file: Path
    video_file: Path
    from_timestamp: float


class EpisodeDataset(Dataset):
    """One sample per frame of every selected episode (docs/dataset.md, section 4).

    A sample at frame f: ``frames`` (num_frames, 3, H, W) float in [-1, 1], frames f, f + s, f + 2s, ... with
    the stride s = dataset fps / model fps and the episode's last frame repeated past its end; ``state``
    (state_dim,); ``actions`` (horizon, action_dim) = action[f : f + horizon] in physical units with the last
    action repeated past the end and ``action_is_pad`` marking those steps; ``instruction`` (the task string);
    ``episode_index`` and ``frame_index`` (for tracing a sample back to its source).
    """

    def __init__(self, root: str | os.PathLike, config: DiT4DiTConfig, *, episodes: Sequence[int] | None = None):
        self.root = _check_root(root)
        self.info = read_info(self.root)
        self.fps = float(self.info["fps"])
        self.config = config
        self.stride = self._frame_stride(self.fps, config.video.fps)
        features = self.info["features"]
        for key, dim in ((STATE_KEY, config.action.state_dim), (ACTION_KEY, config.action.action_dim)):
            shape = list(features[key].get("shape", []))
            if shape != [dim]:
                raise DatasetError(f"{self.root}: {key} has shape {shape}, the model's "
                                   f"{'state_dim' if key == STATE_KEY else 'action_dim'} is {dim}")
        names = features[ACTION_KEY].get("names") or []
        if isinstance(names, dict):  # older LeRobot datasets: {"motors": [...]}
            names = next(iter(names.values()), [])
        self.action_names = [str(n) for n in names] if len(names) == config.action.action_dim else []
        self.tasks = self._read_tasks()
        self.episodes = self._select(episodes)

        self.state, self.actions, self.task_index = self._read_data()
        self.frames = self._decode_frames()
        lengths = np.array([e.length for e in self.episodes], dtype=np.int64)
        self._episode_end = np.cumsum(lengths)  # exclusive end of each episode's rows
        self._episode_of_row = np.repeat(np.arange(len(self.episodes)), lengths)

    # -- loading --------------------------------------------------------------------------------------------
    @staticmethod
    def _frame_stride(dataset_fps: float, model_fps: float) -> int:
        ratio = dataset_fps / model_fps
        stride = round(ratio)
        if stride < 1 or abs(ratio - stride) > 1e-6:
            raise DatasetError(f"the dataset is at {dataset_fps:g} fps and the model's video runs at {model_fps:g} "
                               f"fps: the frame stride {ratio:g} must be a whole number (record at a multiple of "
                               f"the model's fps, or set model.video.fps)")
        return stride

    def _read_tasks(self) -> list[str]:
        """Task strings by task_index. LeRobot stores the task as the table's index, which pandas writes as a
        column named after the index ("task") or "__index_level_0__": take the one string column."""
        path = self.root / "meta" / "tasks.parquet"
        table = _read_parquet(path, ["task_index"])
        names = [f.name for f in table.schema if f.name != "task_index" and pa.types.is_string(f.type)]
        if len(names) != 1:
            raise DatasetError(f"{path}: expected one string column holding the tasks, found {names}")
        tasks: dict[int, str] = dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist()))
        return [tasks.get(i, "") for i in range(max(tasks, default=-1) + 1)]

    def _select(self, wanted: Sequence[int] | None) -> list[_Episode]:
        video = f"videos/{IMAGE_KEY}"
        columns = ["data/chunk_index", "data/file_index", f"{video}/chunk_index", f"{video}/file_index",
                   f"{video}/from_timestamp"]
        table = _read_episodes(self.root)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DatasetError(f"{self.root}: episode metadata has no column(s) {missing}")
        rows = {int(row["episode_index"]): row for row in table.to_pylist()}
        order = sorted(rows) if wanted is None else [int(i) for i in wanted]
        unknown = [i for i in order if i not in rows]
        if unknown:
            raise DatasetError(f"{self.root}: no episode(s) {unknown} (it has {len(rows)}: {min(rows)}..{max(rows)})")
        if not order:
            raise DatasetError(f"{self.root}: no episodes selected")
        episodes = []
        for index in order:
            row = rows[index]
            data_path = self.info["data_path"].format(chunk_index=row["data/chunk_index"],
                                                      file_index=row["data/file_index"])
            video_path = self.info["video_path"].format(video_key=IMAGE_KEY, chunk_index=row[f"{video}/chunk_index"],
                                                        file_index=row[f"{video}/file_index"])
            episodes.append(_Episode(index, int(row["length"]), self.root / data_path, self.root / video_path,
                                     float(row[f"{video}/from_timestamp"])))
        return episodes

    def _read_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """state, actions and task_index of the selected episodes' rows, in selection order."""
        state_dim, action_dim = self.config.action.state_dim, self.config.action.action_dim
        columns = [STATE_KEY, ACTION_KEY, "episode_index", "frame_index", "task_index"]
        tables = {path: _read_parquet(path, columns) for path in {e.data_file for e in self.episodes}}
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for episode in self.episodes:
            table = tables[episode.data_file]
            rows = np.flatnonzero(table.column("episode_index").to_numpy() == episode.index)
            where = f"{episode.data_file} episode {episode.index}"
            if len(rows) != episode.length:
                raise DatasetError(f"{where}: {len(rows)} rows, the episode metadata says {episode.length}")
            rows = rows[np.argsort(table.column("frame_index").to_numpy()[rows], kind="stable")]
            if not np.array_equal(table.column("frame_index").to_numpy()[rows], np.arange(episode.length)):
                raise DatasetError(f"{where}: frame_index is not 0..{episode.length - 1}")
            picked = table.take(pa.array(rows))
            state = self._vectors(picked, STATE_KEY, state_dim, where)
            actions = self._vectors(picked, ACTION_KEY, action_dim, where)
            tasks = picked.column("task_index").to_numpy().astype(np.int64)
            if tasks.min() < 0 or tasks.max() >= len(self.tasks):
                raise DatasetError(f"{where}: task_index {int(tasks.max())} is not in meta/tasks.parquet")
            parts.append((state, actions, tasks))
        return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]

    @staticmethod
    def _vectors(table: pa.Table, key: str, dim: int, where: str) -> np.ndarray:
        column = table.column(key).combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        if values.size != len(column) * dim:
            raise DatasetError(f"{where}: {key} rows are not {dim}-vectors "
                               f"({values.size} values in {len(column)} rows)")
        values = values.reshape(len(column), dim)
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            raise DatasetError(f"{where}: {key} is NaN or Inf at frame {int(bad[0, 0])}, dimension {int(bad[0, 1])} "
                               f"({len(bad)} values in this episode): fix or drop the episode")
        return values

    def _decode_frames(self) -> np.ndarray:
        """(rows, H, W, 3) uint8 at the model's image size; each mp4 is decoded once, front to back."""
        height, width = self.config.video.image_size
        frames = np.empty((sum(e.length for e in self.episodes), height, width, 3), dtype=np.uint8)
        process = FrameProcessor((height, width), crop="center")
        # Frame j of an episode sits at from_timestamp + j / fps: its index in the mp4 is that time * fps.
        wanted_by_file: dict[Path, dict[int, int]] = {}
        row = 0
        for episode in self.episodes:
            first = round(episode.from_timestamp * self.fps)
            wanted = wanted_by_file.setdefault(episode.video_file, {})
            wanted.update({first + j: row + j for j in range(episode.length)})
            row += episode.length
        for path, wanted in wanted_by_file.items():
            if not path.is_file():
                raise DatasetError(f"video {path} is missing")
            remaining = dict(wanted)
            try:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in container.decode(stream):
                        target = remaining.pop(round(frame.time * self.fps), None)
                        if target is not None:
                            frames[target] = process(frame.to_ndarray(format="rgb24"))
                        if not remaining:
                            break
            except (av.error.FFmpegError, IndexError) as error:
                raise DatasetError(f"video {path} cannot be decoded: {error}") from error
            if remaining:
                first_missing = min(remaining)
                raise DatasetError(f"video {path} has fewer frames than the data: frame {first_missing} "
                                   f"(t = {first_missing / self.fps:.3f} s) and {len(remaining) - 1} more are "
                                   f"missing; the video may be truncated")
        return frames

    # -- samples --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, row: int) -> dict[str, Any]:
        if not 0 <= row < len(self):
            raise IndexError(f"sample {row} of {len(self)}")
        slot = int(self._episode_of_row[row])
        last = int(self._episode_end[slot]) - 1
        start = last + 1 - self.episodes[slot].length
        frame_rows = np.minimum(row + self.stride * np.arange(self.config.video.num_frames), last)
        action_rows = row + np.arange(self.config.action.horizon)
        clip = torch.from_numpy(self.frames[frame_rows]).permute(0, 3, 1, 2)
        return {
            # The same scaling as inference.runtime.VideoEncoderRuntime.frames_to_tensor.
            "frames": clip.float() / 127.5 - 1.0,
            "state": torch.from_numpy(self.state[row]),
            "actions": torch.from_numpy(self.actions[np.minimum(action_rows, last)]),
            "action_is_pad": torch.from_numpy(action_rows > last),
            "instruction": self.tasks[int(self.task_index[row])],
            "episode_index": torch.tensor(self.episodes[slot].index),
            "frame_index": torch.tensor(row - start),
        }
