"""Training checkpoints, LeRobot-style, written so that a kill at any moment leaves only whole checkpoints.

    <output_dir>/checkpoints/<step:06d>/pretrained_model/   the policy (DiT4DiTPolicy.from_pretrained loads it)
    <output_dir>/checkpoints/<step:06d>/training_state/     accelerator.save_state (model, optimizer, scheduler,
                                                            RNG states) + trainer_state.json (step, epoch, data
                                                            order position)
    <output_dir>/checkpoints/last                           symlink (or a text file naming it) -> the newest

A checkpoint is assembled in ``.tmp-<step>`` and renamed into place (a rename is atomic), then ``last`` is
replaced (also by a rename). Only complete checkpoints ever carry a <step:06d> name, so resuming takes the
newest of those, which is ``last`` except in the instant between the two renames.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

CHECKPOINTS = "checkpoints"
LAST = "last"
POLICY_DIR = "pretrained_model"
STATE_DIR = "training_state"
TRAINER_STATE = "trainer_state.json"
_STEP_NAME = re.compile(r"^\d{6,}$")


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _STEP_NAME.match(p.name)), key=lambda p: int(p.name))


def latest(output_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_DIR / TRAINER_STATE).read_text())


def remove_partial(output_dir: Path) -> None:
    """Delete what a killed save or prune left behind (.tmp-* and .trash-* directories)."""
    root = output_dir / CHECKPOINTS
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(path, ignore_errors=True)


def _discard(path: Path) -> None:
    """Rename out of the complete set first, so a kill during the (slow) delete leaves no half checkpoint."""
    trash = path.with_name(f".trash-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(path, trash)
    shutil.rmtree(trash)


def _point_last(root: Path, name: str) -> None:
    link, temporary = root / LAST, root / f".tmp-{LAST}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    try:
        os.symlink(name, temporary, target_is_directory=True)
    except OSError:  # no symlinks on this filesystem: a text file naming the checkpoint
        temporary.write_text(name + "\n")
    os.replace(temporary, link)


def save(accelerator: Accelerator, policy, output_dir: Path, step: int, trainer_state: dict[str, Any],
         metadata: dict[str, Any], keep: int) -> Path:
    """Write checkpoint ``step`` (every process calls this: save_state is collective) and return its path."""
    root = output_dir / CHECKPOINTS
    final = root / f"{step:06d}"
    temporary = root / f".tmp-{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        policy.save_pretrained(temporary / POLICY_DIR, **metadata)
    accelerator.save_state(str(temporary / STATE_DIR))
    if accelerator.is_main_process:
        (temporary / STATE_DIR / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        os.rename(temporary, final)
        _point_last(root, final.name)
        if keep > 0:
            for old in checkpoint_dirs(output_dir)[:-keep]:
                _discard(old)
    accelerator.wait_for_everyone()
    return final
