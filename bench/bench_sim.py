"""Simulation benchmark: physics steps/s, head-camera render rate (real meshes, decimated meshes, simplified
G1), the ROS node's publish rate and sim/wall time ratio, and the scripted experts' success over N seeds.

    MENAGERIE_ROOT=../shared/menagerie .venv/bin/python bench/bench_sim.py [--seeds 50] [--node-seconds 8]

Prints a table and writes bench/results/sim.json and sim.md. Render rates are medians of per-frame times;
the baseline in the same run is the menagerie G1 with its ORIGINAL meshes (the speed-up of decimation is the
ratio). The node figures come from the node's own /diagnostics (measured inside it, so a slow subscriber
does not distort them). DDS stays on this machine (LOCALHOST discovery, a private domain).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(60, 99)))


from dit4dit_ros.sim.env import G1TabletopEnv  # noqa: E402
from dit4dit_ros.sim.experts import ScriptedExpert, run_episode  # noqa: E402
from dit4dit_ros.sim.tasks import TASKS  # noqa: E402

MODELS = {  # label -> (model source, max mesh faces)
    "menagerie, original meshes": ("menagerie", None),
    "menagerie, meshes <= 2000 faces": ("menagerie", 2000),
    "simplified G1 (offline fallback)": ("simplified", None),
}


def render_hz(env: G1TabletopEnv, frames: int) -> float:
    env.reset(seed=0, task="touch_cube")
    env.render()
    times = []
    for _ in range(frames):
        env.advance(1 / 30)
        start = time.perf_counter()
        env.render()
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)


def physics_steps_per_s(env: G1TabletopEnv, steps: int) -> float:
    env.reset(seed=0, task="push_cube")
    start = time.perf_counter()
    env.advance(steps * env.model.opt.timestep)
    return steps / (time.perf_counter() - start)


def expert_success(env: G1TabletopEnv, seeds: int) -> dict[str, float]:
    expert = ScriptedExpert(env)
    return {task: sum(run_episode(env, expert, s, task)[0] for s in range(seeds)) / seeds for task in TASKS}


def node_figures(model: str, real_time_factor: float, seconds: float) -> dict[str, float]:
    """Start the sim node, read its /diagnostics for `seconds`; median real-time factor and image rate."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from ament_index_python.packages import get_package_prefix

    executable = Path(get_package_prefix("dit4dit_ros")) / "lib" / "dit4dit_ros" / "sim"
    process = subprocess.Popen([str(executable), "--ros-args", "-p", f"model:={model}",
                                "-p", f"real_time_factor:={real_time_factor}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rclpy.init()
    node = rclpy.create_node("bench_sim_probe")
    samples = []

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name == "sim":
                values = {kv.key: float(kv.value) for kv in status.values if kv.key != "model"}
                samples.append(values)

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    deadline = time.monotonic() + seconds + 15
    while time.monotonic() < deadline and len(samples) < seconds + 1:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    process.terminate()
    process.wait(timeout=10)
    steady = samples[1:] or samples  # the first window includes start-up
    if not steady:
        return {"error": "no /diagnostics from the node"}
    return {"real_time_factor": statistics.median(s["real_time_factor"] for s in steady),
            "image_rate_wall_hz": statistics.median(s["image_rate_wall_hz"] for s in steady)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--node-seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "mujoco_gl": os.environ.get("MUJOCO_GL"), "models": {}}
    for label, (source, faces) in MODELS.items():
        try:
            env = G1TabletopEnv(source, max_faces=faces, render=False)
        except Exception as exc:  # noqa: BLE001 - no menagerie here: report, do not fail the other rows
            report["models"][label] = {"skipped": str(exc)}
            continue
        row = {"faces": int(env.model.mesh_facenum.sum()), "physics_steps_per_s": physics_steps_per_s(env, 5000),
               "render_hz_224": render_hz(env, args.frames)}
        if faces is not None or source == "simplified":  # the models the node uses by default
            env.render_images = False
            row["expert_success"] = expert_success(env, args.seeds)
        env.close()
        report["models"][label] = row
        print(label, row, flush=True)
    base = report["models"]["menagerie, original meshes"].get("render_hz_224")
    if base:
        for row in report["models"].values():
            if "render_hz_224" in row:
                row["render_speedup_vs_original"] = row["render_hz_224"] / base

    report["node"] = {}
    for model in ("auto", "simplified"):
        for rtf in (1.0, 0.0):
            key = f"{model}, real_time_factor={rtf:g}"
            report["node"][key] = node_figures(model, rtf, args.node_seconds)
            print("node", key, report["node"][key], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim.json").write_text(json.dumps(report, indent=2))
    lines = ["# Simulation benchmark", "", f"{report['machine']}, MUJOCO_GL={report['mujoco_gl']}", "",
             "| model | faces | physics steps/s | render Hz (224x224) | vs original | expert success |",
             "|---|---|---|---|---|---|"]
    for label, row in report["models"].items():
        if "skipped" in row:
            lines.append(f"| {label} | skipped: {row['skipped']} | | | | |")
            continue
        success = ", ".join(f"{t} {v:.0%}" for t, v in row.get("expert_success", {}).items())
        lines.append(f"| {label} | {row['faces']} | {row['physics_steps_per_s']:.0f} | {row['render_hz_224']:.1f} "
                     f"| {row.get('render_speedup_vs_original', float('nan')):.2f}x | {success} |")
    lines += ["", "| sim node | sim/wall time | images/s (wall) |", "|---|---|---|"]
    for key, row in report["node"].items():
        lines.append(f"| {key} | {row.get('real_time_factor', float('nan')):.2f} | "
                     f"{row.get('image_rate_wall_hz', float('nan')):.1f} |")
    (args.out / "sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
