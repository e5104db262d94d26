"""dit4dit-record: demonstrations recorded through the running graph, one rosbag2 (MCAP) per episode.

    dit4dit-record --tasks touch_cube,touch_bowl_left --episodes 25 --seed 0 -o data/bags [name:=value ...]

Starts the graph with ``policy:=expert record:=true`` (the simulation's scripted expert drives the controller
bridge, the recorder node writes the bags), then for each task runs seeded episodes (seed, seed+1, ...)
until ``--episodes`` successful demonstrations are kept or ``--max-attempts`` episodes were tried. Failed
demonstrations are discarded unless ``--keep-failures``. Launch arguments (``sim:=``, ``params_file:=``,
``namespace:=``, ...) pass through to the graph. Run it with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
ROS_DOMAIN_ID of its own on shared networks.

The bags convert with ``dit4dit-convert`` (docs/dataset.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dit4dit_ros.graph import parse_launch_arguments
from dit4dit_ros.sim.tasks import parse_task_names


def parse_arguments(argv: list[str]):
    parser = argparse.ArgumentParser(prog="dit4dit-record", description=__doc__.split("\n\n")[0])
    parser.add_argument("launch_arguments", nargs="*", metavar="name:=value", help="launch arguments of the graph")
    parser.add_argument("--tasks", default="touch_cube", help="comma-separated task names")
    parser.add_argument("--episodes", type=int, default=10, help="successful demonstrations to keep per task")
    parser.add_argument("--seed", type=int, default=0, help="first seed (each task counts up from it)")
    parser.add_argument("--max-attempts", type=int, default=0, help="episodes tried per task (0: 2 x --episodes)")
    parser.add_argument("--keep-failures", action="store_true", help="keep failed demonstrations too")
    parser.add_argument("-o", "--output", default="episodes", help="folder of the episode bags")
    parser.add_argument("--time-limit", type=float, default=0.0, help="seconds per episode (0: the task's own)")
    options = parser.parse_args(argv)
    try:
        launch = parse_launch_arguments(options.launch_arguments)
        options.tasks = parse_task_names(options.tasks)
    except ValueError as error:
        parser.error(str(error))
    if {"policy", "record", "record_dir"} & set(launch):
        parser.error("policy:=, record:= and record_dir:= are set by dit4dit-record itself")
    if options.episodes < 1:
        parser.error("--episodes must be >= 1")
    return options, launch


def previous_success(bag: Path) -> bool:
    """Whether an episode bag from an earlier run was a successful demonstration (its recorded outcome)."""
    import yaml

    from dit4dit_ros.data.episode_writer import OUTCOME_KEY

    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return bool(json.loads(info.get("custom_data", {}).get(OUTCOME_KEY, "{}")).get("success", False))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return False  # no or unreadable metadata: a recorder that died mid-episode


def main(argv: list[str] | None = None) -> int:
    from dit4dit_ros.ros.session import graph_session

    options, launch = parse_arguments(sys.argv[1:] if argv is None else argv)
    tasks = options.tasks
    output = Path(options.output).resolve()
    launch.update(policy="expert", record="true", record_dir=str(output))
    attempts = options.max_attempts or 2 * options.episodes
    log = output / "graph.log"
    kept_total = 0
    begun = time.monotonic()
    try:
        with graph_session(launch, log_path=log) as (runner, alive):
            for task in tasks:
                kept = 0
                for attempt in range(attempts):
                    if kept >= options.episodes:
                        break
                    seed = options.seed + attempt
                    name = f"{task}_seed{seed:05d}"
                    if (output / name).exists():  # a second run continues where the first stopped
                        success = previous_success(output / name)
                        print(f"{name}: exists ({'success' if success else 'not a success'}), skipped", flush=True)
                        kept += success or options.keep_failures
                        continue
                    result = runner.run(task, seed, time_limit=options.time_limit, record=True, source="expert",
                                        keep_failures=options.keep_failures, episode_name=name, alive=alive)
                    kept += bool(result.bag) and (result.success or options.keep_failures)
                    print(json.dumps({**result.summary(), "kept": bool(result.bag)}), flush=True)
                print(f"{task}: {kept} demonstration(s) kept", flush=True)
                kept_total += kept
    except (RuntimeError, TimeoutError) as error:
        print(f"dit4dit-record: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dit4dit-record: interrupted", file=sys.stderr)
        return 130
    print(f"dit4dit-record: {kept_total} episode bag(s) in {output} ({time.monotonic() - begun:.0f} s); "
          f"graph log: {log}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
