"""Policy checkpoints as a directory: config.json + model.safetensors (never pickle) + policy.json.

    <dir>/config.json         DiT4DiTConfig (the architecture; travels with the weights)
    <dir>/model.safetensors   weights AND normalisation statistics (buffers), so they cannot drift apart
    <dir>/policy.json         format version, joint names, embodiment, free-form training metadata

Every way a checkpoint can be wrong (missing, truncated, corrupt, from another architecture, a hub id
that is not cached while offline) raises CheckpointError with a message naming the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dit4dit_ros.model import hub

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "policy.json"
FORMAT = "dit4dit_ros.policy/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the reason."""


def resolve(path_or_hub_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local checkpoint directory, or the local snapshot of a Hugging Face hub repository."""
    path = Path(path_or_hub_id).expanduser()
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} is a file; a checkpoint is a directory holding {CONFIG_FILE}, "
                              f"{WEIGHTS_FILE} and {META_FILE}")
    try:
        return hub.resolve_component(path_or_hub_id, revision=revision)
    except hub.PretrainedNotFoundError as error:
        raise CheckpointError(f"no dit4dit_ros checkpoint: {error}") from error


def write(directory: str | os.PathLike, config: dict, state_dict: dict[str, torch.Tensor], meta: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    (directory / META_FILE).write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True) + "\n")
    return directory


def read(directory: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config dict, state dict, meta dict) of a checkpoint directory, or CheckpointError."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE, META_FILE):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} is not a dit4dit_ros checkpoint: {name} is missing")
    config = _read_json(directory / CONFIG_FILE)
    meta = _read_json(directory / META_FILE)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{directory / META_FILE}: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        state_dict = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} is corrupt or truncated: {error}") from error
    return config, state_dict, meta


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def check_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless state_dict has exactly the model's tensors and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape)
    if missing or unexpected or mismatched:
        def few(items):
            return items[:5] + ([f"... {len(items) - 5} more"] if len(items) > 5 else [])
        raise CheckpointError(
            "checkpoint does not match its config's architecture: "
            f"missing {few(missing)}, unexpected {few(unexpected)}, shape mismatch {few(mismatched)}")
