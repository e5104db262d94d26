"""The training run's settings: a YAML file plus ``key=value`` command-line overrides.

Every key is checked (an unknown or mistyped key is an error naming it, never silently ignored) and the
model part is validated by building the model config, so a bad run fails before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from dit4dit_ros.model.configuration_dit4dit import DiT4DiTConfig, preset

MIXED_PRECISION = ("no", "bf16", "fp16")


class ConfigError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


@dataclass
class TrainConfig:
    """Defaults are config/train/g1_tiny.yaml's (a test keeps the two equal)."""

    dataset: str = ""  # a LeRobotDataset v3.0 directory (docs/dataset.md)
    output_dir: str = ""  # metrics, TensorBoard and checkpoints/<step>/ go here
    preset: str = "tiny"  # model preset (configuration_dit4dit.PRESETS)
    # Nested overrides of the preset's config dict, e.g. {"flow": {"video_loss_weight": 0.0}}.
    model: dict[str, Any] = field(default_factory=dict)
    episodes_per_task: int | None = None  # the first N episodes of each task; None = all
    steps: int = 3000
    batch_size: int = 16  # per process
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping (the norm is still logged)
    seed: int = 0
    save_every: int = 500
    log_every: int = 10
    num_workers: int = 0
    torch_threads: int = 0  # 0 = torch's default
    mixed_precision: str = "no"
    keep_checkpoints: int = 3  # newest checkpoints kept; 0 = keep all
    resume: bool = True  # continue from output_dir/checkpoints/last when it exists

    def model_config(self) -> DiT4DiTConfig:
        """The preset's config with the ``model`` overrides applied."""
        try:
            data = preset(self.preset).to_dict()
        except ValueError as error:
            raise ConfigError(f"preset: {error}") from None
        _merge(data, self.model, "model")
        try:
            return DiT4DiTConfig.from_dict(data)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _merge(base: dict[str, Any], overrides: dict[str, Any], where: str) -> None:
    for key, value in overrides.items():
        if key not in base:
            raise ConfigError(f"unknown key {where}.{key} (known: {sorted(base)})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key} is a section; give its keys, e.g. {where}.{key}.<name>=...")
            _merge(base[key], value, f"{where}.{key}")
        else:
            base[key] = value


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(key: str, value: Any) -> Any:
    """``value`` as the type of TrainConfig.<key>. YAML reads 3e-4 (no dot) as a string: floats accept it."""
    hint = _HINTS[key]
    if key == "mixed_precision" and value is False:  # YAML 1.1 reads an unquoted `no` as false
        value = "no"
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        if origin in (str, dict) and isinstance(value, origin):
            return value
    raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return " or ".join("null" if o is type(None) else getattr(typing.get_origin(o) or o, "__name__", str(o))
                       for o in options)


def _set_override(data: dict[str, Any], assignment: str) -> None:
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} is not key=value")
    parts = key.split(".")
    if parts[0] not in _FIELDS:
        raise ConfigError(f"unknown key {parts[0]!r} in override {assignment!r} (known: {sorted(_FIELDS)})")
    value = yaml.safe_load(text)
    if len(parts) == 1:
        data[key] = value
        return
    if parts[0] != "model":
        raise ConfigError(f"{parts[0]} is not a section: write {parts[0]}=<value>")
    section = data.setdefault("model", {})
    for part in parts[1:-1]:
        section = section.setdefault(part, {})
        if not isinstance(section, dict):
            raise ConfigError(f"override {assignment!r}: {part} is not a section")
    section[parts[-1]] = value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """TrainConfig from a YAML file (None = the defaults) with ``key=value`` overrides applied in order."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path) as stream:
                loaded = yaml.safe_load(stream)
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error}") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of training keys")
        data = loaded or {}
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown} (known: {sorted(_FIELDS)})")
    for assignment in overrides:
        _set_override(data, assignment)
    config = TrainConfig(**{key: _coerce(key, value) for key, value in data.items()})
    _validate(config)
    return config


def _validate(config: TrainConfig) -> None:
    positive = ("steps", "batch_size", "save_every", "log_every")
    for key in positive:
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(config, key)}")
    for key in ("warmup_steps", "num_workers", "torch_threads", "keep_checkpoints", "weight_decay", "grad_clip"):
        if getattr(config, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(config, key)}")
    if not config.lr > 0:
        raise ConfigError(f"lr must be > 0, got {config.lr}")
    if config.warmup_steps >= config.steps:
        raise ConfigError(f"warmup_steps ({config.warmup_steps}) must be smaller than steps ({config.steps})")
    if config.episodes_per_task is not None and config.episodes_per_task < 1:
        raise ConfigError(f"episodes_per_task must be >= 1 or null, got {config.episodes_per_task}")
    if config.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"mixed_precision must be one of {MIXED_PRECISION}, got {config.mixed_precision!r}")
    config.model_config()
