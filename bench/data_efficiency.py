"""The paper's central claim at small scale: does the video objective help with few demonstrations?

For each number of demonstrations per task (10, 25, 50) this trains DiT4DiT twice with the same seed, data and
steps, once with the video flow-matching loss (lambda = 1) and once without it (lambda = 0), then evaluates both
in closed loop THROUGH the ROS graph (dit4dit-eval) on the same seeds. Prints a table and writes
bench/results/data_efficiency.{json,md}.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=43 .venv/bin/python bench/data_efficiency.py \\
        --dataset data/g1_tabletop --work runs/data_efficiency [--demos 10 25 50] [--steps 4000] [--episodes 10]

Runs and evaluations already on disk are reused, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list, log: Path) -> None:
    with open(log, "a", encoding="utf-8") as out:
        code = subprocess.call([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"{args[0]} failed with {code}; see {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--work", default="runs/data_efficiency")
    parser.add_argument("--config", default=str(REPO / "config" / "train" / "g1_tabletop.yaml"))
    parser.add_argument("--demos", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 0.0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="touch_cube,touch_bowl_left")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "data_efficiency"))
    options = parser.parse_args()
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST" or "ROS_DOMAIN_ID" not in os.environ:
        raise SystemExit("set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of this study's own")
    work = Path(options.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for demos in options.demos:
        for lam in options.lambdas:
            name = f"demos{demos:03d}_lambda{lam:g}"
            run_dir, eval_dir = work / name, work / f"{name}_eval"
            began = time.monotonic()
            if not (run_dir / "checkpoints" / f"{options.steps:06d}").is_dir():
                run([BIN / "dit4dit-train", "--config", options.config, f"dataset={options.dataset}",
                     f"output_dir={run_dir}", f"episodes_per_task={demos}", f"model.flow.video_loss_weight={lam}",
                     f"steps={options.steps}", f"seed={options.seed}", f"save_every={options.steps}"],
                    work / f"{name}.train.log")
            trained = time.monotonic() - began
            if not (eval_dir / "summary.json").is_file():
                run([BIN / "dit4dit-eval", run_dir, "--tasks", options.tasks, "--episodes", options.episodes,
                     "--videos", "0", "-o", eval_dir], work / f"{name}.eval.log")
            (report,) = json.loads((eval_dir / "summary.json").read_text())
            rows.append({"demos_per_task": demos, "lambda": lam, "train_s": round(trained), **{
                task: report["tasks"][task] for task in report["tasks"]}, "all": report["all"]})
            print(json.dumps(rows[-1]), flush=True)
    tasks = options.tasks.split(",")
    lines = [f"# Video objective on/off ({options.steps} steps, seed {options.seed}, {options.episodes} episodes per "
             "task through the ROS graph, success with 95 % Wilson interval)", "",
             "| demos per task | lambda | " + " | ".join(tasks) + " | all |", "|" + "---|" * (len(tasks) + 3)]
    for row in rows:
        cells = [f"{row[t]['successes']}/{row[t]['episodes']} ({100 * row[t]['ci95'][0]:.0f}-"
                 f"{100 * row[t]['ci95'][1]:.0f} %)" for t in [*tasks, "all"]]
        lines.append(f"| {row['demos_per_task']} | {row['lambda']:g} | " + " | ".join(cells) + " |")
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({"options": vars(options), "rows": rows}, indent=2) + "\n")
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
