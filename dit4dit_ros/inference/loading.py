"""Which policy the nodes run: a checkpoint (local directory or hub id) or, when none is given, an untrained
preset built from a fixed seed (so separate processes build identical weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.model.configuration_dit4dit import DiT4DiTConfig, preset

# An untrained policy's normalised output is roughly N(0, 1): +-0.1 rad around the ready pose keeps nearly all of
# its chunks inside the joint ranges, so the graph can be exercised end to end without a trained checkpoint.
UNTRAINED_ARM_RANGE = 0.1
UNTRAINED_GRIP = 0.5  # grips 0.5 +- 0.1: 5 sigma from either end of the range 0..1


def resolve_checkpoint(checkpoint: str) -> str:
    """``package://<package>/<path>`` (the ROS convention of URDFs and launch files) -> that path under the
    package's share folder; anything else (a directory, a hub id, "") unchanged."""
    if not checkpoint.startswith("package://"):
        return checkpoint
    package, _, relative = checkpoint[len("package://"):].partition("/")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = get_package_share_directory(package)
    except PackageNotFoundError:
        raise FileNotFoundError(f"{checkpoint}: package {package!r} is not installed") from None
    path = Path(share) / relative
    if not path.is_dir():
        raise FileNotFoundError(f"{checkpoint}: {path} does not exist (re-run scripts/setup.sh or colcon build)")
    return str(path)


def model_config(checkpoint: str = "", preset_name: str = "tiny") -> DiT4DiTConfig:
    """The model's configuration WITHOUT loading weights (cheap: the camera node needs the image size only)."""
    checkpoint = resolve_checkpoint(checkpoint)
    if not checkpoint:
        return preset(preset_name)
    directory = Path(checkpoint).expanduser()
    if not directory.is_dir():
        from dit4dit_ros.model import checkpoint as checkpoints  # resolves hub ids (imports torch)

        directory = checkpoints.resolve(checkpoint)
    config_file = directory / "config.json"
    try:
        return DiT4DiTConfig.from_dict(json.loads(config_file.read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory} is not a dit4dit_ros checkpoint: config.json is missing") from None
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{config_file}: {error}") from error


def load_policy(checkpoint: str = "", preset_name: str = "tiny", *, seed: int = 0, device: str = "cpu",
                threads: int = 0):
    """The policy in eval mode on ``device``. ``checkpoint`` empty = an UNTRAINED ``preset_name`` policy whose
    weights depend on ``seed`` only (for wiring tests and benchmarks). Its actions are meaningless, so its
    normalisation is set to small motions around the G1's ready pose: the arms move, within the joint ranges."""
    import torch

    from dit4dit_ros.model.modeling_dit4dit import DiT4DiTPolicy

    if threads > 0:
        torch.set_num_threads(threads)
    checkpoint = resolve_checkpoint(checkpoint)
    if checkpoint:
        policy = DiT4DiTPolicy.from_pretrained(checkpoint, map_location=device)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            policy = DiT4DiTPolicy(preset(preset_name))
        centre = np.array([g1.READY_POSE.get(name, UNTRAINED_GRIP) for name in policy.joint_names])
        half_range = np.array([0.1 if name in g1.GRIP_NAMES.values() else UNTRAINED_ARM_RANGE
                               for name in policy.joint_names])
        policy.set_normalization(centre - half_range, centre + half_range)
        policy = policy.to(device)
    return policy.eval()


def model_id(checkpoint: str, preset_name: str, seed: int) -> str:
    """What VideoFeatures.model_id says, so the planner can refuse features of another model."""
    return checkpoint if checkpoint else f"untrained:{preset_name}:seed{seed}"
