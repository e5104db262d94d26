"""dit4dit-train: train a DiT4DiT policy on a LeRobotDataset v3.0 directory.

    dit4dit-train --config config/train/g1_tiny.yaml dataset=DIR output_dir=DIR [key=value ...]
    accelerate launch -m dit4dit_ros.training.train --config ... (several GPUs, unchanged)

Runs on ``accelerate`` (CPU, one GPU or many; mixed precision), AdamW with linear warm-up and cosine decay,
gradient clipping, metrics in output_dir (see metrics.py) and LeRobot-style checkpoints (see checkpoints.py).
Running the same command again resumes from the newest checkpoint and continues exactly where the
interrupted run would have been: model, optimiser, scheduler and RNG states come back through
accelerator.load_state, and the data order is a function of (seed, epoch) plus the saved position in the
epoch. A NaN/Inf loss stops the run before that step is applied or saved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from dit4dit_ros.data.dataset import IMAGE_KEY, DatasetError, EpisodeDataset, action_stats, collate, select_episodes
from dit4dit_ros.model.checkpoint import CheckpointError
from dit4dit_ros.model.modeling_dit4dit import DiT4DiTPolicy
from dit4dit_ros.training import checkpoints
from dit4dit_ros.training.config import ConfigError, TrainConfig, load_config
from dit4dit_ros.training.metrics import MetricsLog

RESUME_LOG = "resume.jsonl"


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN/Inf loss or gradient); the message names the step."""


class EpochSampler(Sampler[int]):
    """A permutation of the samples that depends on (seed, epoch) only, so that a resumed run that sets the
    epoch and skips the batches already seen draws exactly the batches of the uninterrupted run."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples).tolist())

    def __len__(self) -> int:
        return self.num_samples


class _LossModule(nn.Module):
    """The policy's loss as forward(): DDP synchronises gradients (and accelerate applies autocast) only for
    computations that go through forward."""

    def __init__(self, policy: DiT4DiTPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.policy.compute_loss(batch)


def optimizer_digest(state_dict: dict[str, Any]) -> str:
    """sha256 of every optimiser state tensor (exp_avg, exp_avg_sq, step per parameter): a compact record that
    the state loaded at resume is, bit for bit, the state that was saved."""
    digest = hashlib.sha256()
    for param_id in sorted(state_dict["state"]):
        for name, value in sorted(state_dict["state"][param_id].items()):
            digest.update(f"{param_id}.{name}".encode())
            if torch.is_tensor(value):
                digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to lr over warmup_steps, then cosine decay to 0 at ``steps``. A LambdaLR saves only its
    step count, so a resumed run follows the schedule of its own config (steps=... raised to train longer)
    instead of the one frozen into the checkpoint."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / (config.steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resume_checkpoint(config: TrainConfig, output_dir: Path) -> Path | None:
    if not (output_dir.is_dir() and any(output_dir.iterdir())):
        return None
    if not config.resume:
        raise ConfigError(f"output_dir {output_dir} is not empty: pick another output_dir, or pass resume=true "
                          f"to continue the run in it")
    return checkpoints.latest(output_dir)  # None: nothing was saved yet, start over


class _Window:
    """Sums over one log interval."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, device=device)  # loss, action_loss, video_loss, grad_norm
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], grad_norm: torch.Tensor) -> None:
        self.sums += torch.stack([losses["loss"].detach().float(), losses["action_loss"].detach().float(),
                                  losses["video_loss"].detach().float(), torch.as_tensor(grad_norm).float()])
        self.steps += 1


def _restore(accelerator: Accelerator, checkpoint: Path, config: TrainConfig, optimizer, scheduler,
             steps_per_epoch: int) -> tuple[int, int, int, float]:
    """Load a checkpoint's training state; returns (step, epoch, batch in epoch, elapsed seconds) and appends a
    record of the resume (with the loaded optimiser state's digest) to output_dir/resume.jsonl."""
    accelerator.load_state(str(checkpoint / checkpoints.STATE_DIR))
    # The optimiser state carries the lr of the schedule that was saved; go on with this run's (lr, steps and
    # warmup_steps may have been changed, e.g. to train longer). Unchanged, this recomputes the same value.
    schedule = scheduler.scheduler
    schedule.base_lrs = [config.lr for _ in schedule.base_lrs]
    schedule.last_epoch -= 1
    schedule.step()
    saved = checkpoints.read_trainer_state(checkpoint)
    step, epoch, batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
    if batch_in_epoch >= steps_per_epoch:  # the dataset or batch size changed since the save
        epoch, batch_in_epoch = epoch + 1, 0
    changed = sorted(k for k, v in config.to_dict().items() if saved["train_config"].get(k) != v)
    accelerator.print(f"resuming from {checkpoint} at step {step} (epoch {epoch}, batch {batch_in_epoch}); "
                      f"settings changed since: {changed or 'none'}")
    if accelerator.is_main_process:
        record = {"checkpoint": str(checkpoint), "step": step, "first_step": step + 1, "epoch": epoch,
                  "batch_in_epoch": batch_in_epoch, "optimizer_digest": optimizer_digest(optimizer.state_dict()),
                  "time": time.time()}
        with open(Path(config.output_dir).expanduser().resolve() / RESUME_LOG, "a") as stream:
            stream.write(json.dumps(record) + "\n")
    return step, epoch, batch_in_epoch, saved["elapsed_s"]


def _step(accelerator: Accelerator, model: nn.Module, optimizer, scheduler, batch: dict[str, Any],
          config: TrainConfig, step: int, last_checkpoint: Path | None) -> tuple[dict[str, torch.Tensor], Any, float]:
    """One optimiser step; returns (losses, gradient norm before clipping, lr used). A NaN/Inf loss or gradient
    raises before anything is applied, so no later checkpoint can hold it."""
    losses = model(batch)
    values = accelerator.gather(losses["loss"].detach().float().reshape(1))
    if not torch.isfinite(values).all():
        raise TrainingError(f"the loss is {values.tolist()} at step {step} (action_loss "
                            f"{losses['action_loss'].item():.4g}, video_loss {losses['video_loss'].item():.4g}); "
                            f"training stopped without applying or saving this step. Last checkpoint: "
                            f"{last_checkpoint or 'none'}. Check the data and try a lower lr.")
    accelerator.backward(losses["loss"])
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
    if not torch.isfinite(torch.as_tensor(grad_norm)) and config.mixed_precision != "fp16":  # fp16: the scaler skips
        raise TrainingError(f"the gradient norm is {float(grad_norm)} at step {step}; training stopped without "
                            f"applying or saving this step. Last checkpoint: {last_checkpoint or 'none'}.")
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return losses, grad_norm, lr


def train(config: TrainConfig) -> Path:
    """Run (or resume) the training that ``config`` describes; returns the final checkpoint's directory."""
    for key in ("dataset", "output_dir"):
        if not getattr(config, key):
            raise ConfigError(f"{key} is required: pass {key}=<directory>")
    dataset_root = Path(config.dataset).expanduser().resolve()
    output_dir = Path(config.output_dir).expanduser().resolve()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    # Steps count optimiser steps on every process, so the scheduler steps once per step (not per process);
    # frozen or (lambda = 0) unused video parameters get no gradient, which DDP must be told about.
    accelerator = Accelerator(mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    resume_from = _resume_checkpoint(config, output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpoints.remove_partial(output_dir)
    accelerator.wait_for_everyone()

    set_seed(config.seed)
    model_config = config.model_config()
    episodes = select_episodes(dataset_root, config.episodes_per_task) if config.episodes_per_task else None
    started = time.perf_counter()
    dataset = EpisodeDataset(dataset_root, model_config, episodes=episodes)
    accelerator.print(f"dataset {dataset_root}: {len(dataset.episodes)} episodes, {len(dataset)} samples, "
                      f"frames {tuple(dataset.frames.shape)} decoded in {time.perf_counter() - started:.2f} s")
    if len(dataset) < config.batch_size * accelerator.num_processes:
        raise ConfigError(f"the dataset has {len(dataset)} samples, fewer than one batch (batch_size "
                          f"{config.batch_size} x {accelerator.num_processes} processes)")

    policy = DiT4DiTPolicy(model_config, joint_names=dataset.action_names or None)
    try:
        policy.set_normalization(*action_stats(dataset_root))
    except ValueError as error:
        raise DatasetError(f"{dataset_root}/meta/stats.json: {error}") from error
    model = _LossModule(policy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _schedule(optimizer, config)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=EpochSampler(len(dataset), config.seed),
                        drop_last=True, collate_fn=collate, num_workers=config.num_workers,
                        pin_memory=accelerator.device.type == "cuda",
                        # Its own generator: creating an iterator must not draw from the global RNG, whose
                        # state is part of the checkpoint.
                        generator=torch.Generator().manual_seed(config.seed))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    steps_per_epoch = len(loader)

    step, epoch, batch_in_epoch, elapsed = 0, 0, 0, 0.0
    if resume_from is not None:
        step, epoch, batch_in_epoch, elapsed = _restore(accelerator, resume_from, config, optimizer, scheduler,
                                                          steps_per_epoch)
    if step >= config.steps:
        accelerator.print(f"already trained {step} steps (steps={config.steps})")
        return resume_from

    metadata = {"dataset": str(dataset_root), "train_config": config.to_dict(), "dataset_fps": dataset.fps,
                "dataset_info": {"image_key": IMAGE_KEY, "action_names": dataset.action_names,
                                 "robot_type": dataset.info.get("robot_type"),
                                 "episodes": [e.index for e in dataset.episodes], "samples": len(dataset)}}
    log = MetricsLog(output_dir, None if resume_from is None else step) if accelerator.is_main_process else None
    progress = tqdm(total=config.steps, initial=step, desc="train", dynamic_ncols=True,
                    disable=not accelerator.is_local_main_process)
    run_start = time.perf_counter() - elapsed
    window = _Window(accelerator.device)
    final = resume_from
    model.train()
    try:
        while step < config.steps:
            loader.set_epoch(epoch)
            batches = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
            for batch in batches:
                step += 1
                batch_in_epoch += 1
                losses, grad_norm, lr = _step(accelerator, model, optimizer, scheduler, batch, config, step, final)
                window.add(losses, grad_norm)
                progress.update(1)

                if step % config.log_every == 0 or step == config.steps:
                    means = (accelerator.reduce(window.sums, "mean") / window.steps).tolist()
                    samples = window.steps * config.batch_size * accelerator.num_processes
                    if log is not None:
                        log.log({"step": step, "epoch": epoch, "loss": means[0], "action_loss": means[1],
                                 "video_loss": means[2], "lr": lr, "grad_norm": means[3],
                                 "samples_per_s": samples / (time.perf_counter() - window.start),
                                 "wall_time_s": time.perf_counter() - run_start})
                    progress.set_postfix(loss=f"{means[0]:.4f}", action=f"{means[1]:.4f}", video=f"{means[2]:.4f}")
                    window = _Window(accelerator.device)
                if step % config.save_every == 0 or step == config.steps:
                    position = (epoch, batch_in_epoch) if batch_in_epoch < steps_per_epoch else (epoch + 1, 0)
                    state = {"step": step, "epoch": position[0], "batch_in_epoch": position[1],
                             "steps_per_epoch": steps_per_epoch, "num_samples": len(dataset),
                             "elapsed_s": time.perf_counter() - run_start, "train_config": config.to_dict()}
                    final = checkpoints.save(accelerator, accelerator.unwrap_model(model).policy, output_dir, step,
                                             state, {"step": step, **metadata}, config.keep_checkpoints)
                if step >= config.steps:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
    finally:  # also on an error: the progress bar and TensorBoard files are closed cleanly
        progress.close()
        if log is not None:
            log.close()
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dit4dit-train", description="Train a DiT4DiT policy on a LeRobotDataset v3.0 directory.",
        epilog="example: dit4dit-train --config config/train/g1_tiny.yaml dataset=data/g1 output_dir=runs/g1 "
               "steps=2000 model.flow.video_loss_weight=0")
    parser.add_argument("--config", help="training YAML (default: the built-in defaults = config/train/g1_tiny.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings over the YAML; model keys are dotted (model.flow.video_loss_weight=0)")
    args = parser.parse_args(argv)
    try:
        final = train(load_config(args.config, args.overrides))
    except (ConfigError, DatasetError, CheckpointError, TrainingError) as error:
        raise SystemExit(f"dit4dit-train: error: {error}") from None
    print(f"final checkpoint: {final / checkpoints.POLICY_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
