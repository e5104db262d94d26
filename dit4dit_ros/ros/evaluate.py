"""dit4dit-eval: closed-loop evaluation of checkpoints THROUGH the ROS graph (the deployment path).

    dit4dit-eval CHECKPOINT [CHECKPOINT ...] --tasks touch_cube,touch_bowl_left --episodes 10 -o eval/
    dit4dit-eval runs/g1_tiny --all-steps ...      # every checkpoint of a training run: success vs step

For each checkpoint the whole graph (simulation, camera ingestion, video encoder, action planner, controller
bridge, task server) starts with ``checkpoint:=<dir>``; each task runs ``--episodes`` seeded episodes
(seeds from ``--seed``, 1000 by default, away from the demonstrations' seeds 0..). Written to ``-o``:
  <name>/episodes.jsonl   one line per episode (success, reason, steps, frame -> chunk latency)
  <name>/videos/*.mp4     the head camera of the first ``--videos`` episodes of each task
  summary.json / .md      success rate per task with a 95 % Wilson interval, mean latency, per checkpoint
  success_vs_step.png     success against training step (checkpoints that carry a step)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dit4dit_ros.evaluation.stats import success_summary
from dit4dit_ros.graph import parse_launch_arguments
from dit4dit_ros.sim.tasks import parse_task_names


def checkpoints_of(path: Path, all_steps: bool) -> list[Path]:
    """A policy directory itself, or the checkpoints of a training run (the newest, or all with --all-steps)."""
    if (path / "config.json").is_file():
        return [path]
    run = path / "checkpoints"
    if run.is_dir():
        steps = sorted(p / "pretrained_model" for p in run.iterdir()
                       if p.name.isdigit() and (p / "pretrained_model" / "config.json").is_file())
        if steps:
            return steps if all_steps else steps[-1:]
    raise FileNotFoundError(f"{path}: neither a policy checkpoint (config.json) nor a training run "
                            "(checkpoints/<step>/pretrained_model)")


def checkpoint_step(checkpoint: Path) -> int | None:
    try:
        meta = json.loads((checkpoint / "policy.json").read_text()).get("metadata", {})
        return int(meta["step"]) if "step" in meta else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_name(checkpoint: Path) -> str:
    if checkpoint.name == "pretrained_model":  # runs/x/checkpoints/000500/pretrained_model -> x_000500
        return f"{checkpoint.parents[2].name}_{checkpoint.parent.name}"
    return checkpoint.name


def evaluate_checkpoint(checkpoint: Path, tasks: list[str], options, launch: dict[str, str], out: Path) -> dict:
    from dit4dit_ros.evaluation.videos import write_mp4
    from dit4dit_ros.ros.session import graph_session

    out.mkdir(parents=True, exist_ok=True)
    results = []
    with graph_session({**launch, "checkpoint": str(checkpoint)}, log_path=out / "graph.log") as (runner, alive), \
            open(out / "episodes.jsonl", "w", encoding="utf-8") as lines:
        for task in tasks:
            for index in range(options.episodes):
                seed = options.seed + index
                capture = index < options.videos
                result = runner.run(task, seed, time_limit=options.time_limit, capture=capture, alive=alive)
                summary = result.summary()
                if capture and result.frames:
                    video = write_mp4(out / "videos" / f"{task}_seed{seed:05d}.mp4", result.frames,
                                      fps=options.video_fps)
                    summary["video"] = str(video.relative_to(out))
                results.append((summary, result.latencies_s))
                lines.write(json.dumps(summary) + "\n")
                lines.flush()
                print(f"  {checkpoint_name(checkpoint)} {task} seed {seed}: "
                      f"{'success' if result.success else result.reason} ({result.wall_s:.1f} s)", flush=True)
    per_task = {}
    for task in tasks:
        rows = [(s, lat) for s, lat in results if s["task"] == task]
        latencies = [x for _, lat in rows for x in lat]
        per_task[task] = {**success_summary([s["success"] for s, _ in rows]),
                          "latency_ms_mean": round(1e3 * float(np.mean(latencies)), 1) if latencies else None}
    latencies = [x for _, lat in results for x in lat]
    report = {"checkpoint": str(checkpoint), "name": checkpoint_name(checkpoint), "step": checkpoint_step(checkpoint),
              "tasks": per_task, "all": success_summary([s["success"] for s, _ in results]),
              "latency_ms_mean": round(1e3 * float(np.mean(latencies)), 1) if latencies else None,
              "latency_ms_p95": round(1e3 * float(np.percentile(latencies, 95)), 1) if latencies else None}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def markdown(reports: list[dict], tasks: list[str]) -> str:
    head = "| checkpoint | step | " + " | ".join(tasks) + " | all | latency mean / p95 (ms) |"
    rule = "|" + "---|" * (len(tasks) + 4)
    rows = []
    for r in reports:
        cells = [f"{t['successes']}/{t['episodes']} ({100 * t['success_rate']:.0f} %, "
                 f"CI {100 * t['ci95'][0]:.0f}-{100 * t['ci95'][1]:.0f})" for t in (r["tasks"][x] for x in tasks)]
        total = r["all"]
        rows.append(f"| {r['name']} | {r['step'] if r['step'] is not None else '-'} | " + " | ".join(cells)
                    + f" | {total['successes']}/{total['episodes']} ({100 * total['success_rate']:.0f} %) | "
                    f"{r['latency_ms_mean']} / {r['latency_ms_p95']} |")
    return "\n".join([head, rule, *rows]) + "\n"


def parse_arguments(argv: list[str]):
    parser = argparse.ArgumentParser(prog="dit4dit-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="policy directories, training runs, or name:=value "
                                                       "launch arguments for the graph")
    parser.add_argument("--tasks", default="touch_cube,touch_bowl_left", help="comma-separated task names")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (away from the demonstrations')")
    parser.add_argument("--videos", type=int, default=2, help="episodes per task saved as mp4")
    parser.add_argument("--video-fps", type=float, default=30.0, help="frame rate of the saved videos")
    parser.add_argument("--time-limit", type=float, default=0.0, help="seconds per episode (0: the task's own)")
    parser.add_argument("--all-steps", action="store_true", help="every checkpoint of a training run")
    parser.add_argument("-o", "--output", default="eval", help="output folder")
    options = parser.parse_args(argv)
    paths = [Path(item) for item in options.checkpoints if ":=" not in item]
    try:
        launch = parse_launch_arguments([item for item in options.checkpoints if ":=" in item])
        options.tasks = parse_task_names(options.tasks)
    except ValueError as error:
        parser.error(str(error))
    if not paths:
        parser.error("give at least one checkpoint or training run")
    if {"checkpoint", "policy", "record"} & set(launch):
        parser.error("checkpoint:=, policy:= and record:= are set by dit4dit-eval itself")
    if options.episodes < 1:
        parser.error("--episodes must be >= 1")
    return options, launch, paths


def main(argv: list[str] | None = None) -> int:
    from dit4dit_ros.evaluation.plots import plot_success_vs_step

    options, launch, paths = parse_arguments(sys.argv[1:] if argv is None else argv)
    tasks = options.tasks
    try:
        checkpoints = [c.resolve() for path in paths for c in checkpoints_of(path, options.all_steps)]
    except FileNotFoundError as error:
        print(f"dit4dit-eval: {error}", file=sys.stderr)
        return 2
    output = Path(options.output)
    reports = []
    begun = time.monotonic()
    try:
        for checkpoint in checkpoints:
            print(f"evaluating {checkpoint}", flush=True)
            reports.append(evaluate_checkpoint(checkpoint, tasks, options, launch, output / checkpoint_name(checkpoint)))
    except (RuntimeError, TimeoutError) as error:
        print(f"dit4dit-eval: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dit4dit-eval: interrupted", file=sys.stderr)
        return 130
    (output / "summary.json").write_text(json.dumps(reports, indent=2) + "\n")
    table = markdown(reports, tasks)
    (output / "summary.md").write_text(table)
    stepped = [r for r in reports if r["step"] is not None]
    if stepped:
        series = {}
        for r in stepped:
            for label, s in [*r["tasks"].items(), ("all", r["all"])]:
                series.setdefault(label, []).append((r["step"], s["success_rate"], *s["ci95"]))
        plot_success_vs_step(series, output / "success_vs_step.png")
    print(table, end="")
    print(f"dit4dit-eval: {len(reports)} checkpoint(s) in {time.monotonic() - begun:.0f} s; results in {output}",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
