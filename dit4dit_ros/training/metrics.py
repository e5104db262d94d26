"""The training log: output_dir/metrics.csv and metrics.jsonl (one row per log interval), and TensorBoard
(output_dir/tb) when ``torch.utils.tensorboard`` imports.

A resumed run first drops the rows logged after the checkpoint it resumes from (those steps are trained
again), so the files always describe one consistent run.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

FIELDS = ("step", "epoch", "loss", "action_loss", "video_loss", "lr", "grad_norm", "samples_per_s", "wall_time_s")
CSV_NAME = "metrics.csv"
JSONL_NAME = "metrics.jsonl"


def _summary_writer(directory: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(directory), purge_step=purge_step)


def _rewrite(path: Path, lines: list[str]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(lines))
    os.replace(temporary, path)


class MetricsLog:
    def __init__(self, output_dir: Path, resume_step: int | None):
        self.csv_path = output_dir / CSV_NAME
        self.jsonl_path = output_dir / JSONL_NAME
        if resume_step is None:
            _rewrite(self.csv_path, [",".join(FIELDS) + "\n"])
            _rewrite(self.jsonl_path, [])
        else:
            self._truncate(resume_step)
        self.tensorboard = _summary_writer(output_dir / "tb", None if resume_step is None else resume_step + 1)

    def _truncate(self, step: int) -> None:
        rows = []
        if self.csv_path.is_file():
            with open(self.csv_path, newline="") as stream:
                rows = [row for row in csv.DictReader(stream)
                        if row.get("step", "").isdigit() and int(row["step"]) <= step]
        _rewrite(self.csv_path, [",".join(FIELDS) + "\n"] + [",".join(row.get(k, "") for k in FIELDS) + "\n"
                                                              for row in rows])
        kept = []
        if self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines(keepends=True):
                try:
                    if json.loads(line)["step"] <= step:
                        kept.append(line)
                except (json.JSONDecodeError, KeyError, TypeError):  # a line cut short by a kill
                    continue
        _rewrite(self.jsonl_path, kept)

    def log(self, row: dict[str, Any]) -> None:
        with open(self.csv_path, "a", newline="") as stream:
            csv.writer(stream).writerow([row[key] for key in FIELDS])
        with open(self.jsonl_path, "a") as stream:
            stream.write(json.dumps({key: row[key] for key in FIELDS}) + "\n")
        if self.tensorboard is not None:
            for key in FIELDS[2:]:
                self.tensorboard.add_scalar(f"train/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
