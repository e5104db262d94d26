"""Real-robot path benchmark: the 500 Hz LowCmd/LowState costs, and the closed loop against fake_g1.

    .venv/bin/python bench/bench_real_robot.py [--repeats 2000] [--episodes 1] [--skip-loop]

1. Per message, in this process (median of --repeats): building a LowCmd and reading a LowState as rclpy message
   objects (the baseline) vs as CDR bytes with numpy (robot/cdr.py, what the nodes use), the CRC, and one
   LowLevelCore tick.
2. The closed loop: `dit4dit-launch robot:=fake policy:=expert --execute "touch the red cube with the right hand"`
   (seed 1004) with the bridge's stale_after at the shipped 20 ms and at 100 ms (what the tests use), and at 100 ms
   without the gravity feed-forward (the fake robot has no gravity compensation, as the robot), while a probe here
   records every arm_sdk LowCmd and LowState: rates, LowState gaps, damping spells, right-arm tracking error (each
   command vs the LowState 20 ms later), success, wall time.
Writes bench/results/real_robot.{json,md}. DDS stays on this machine (LOCALHOST, private domains 171..189).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

import numpy as np
import yaml

DOMAIN = random.randint(171, 189)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy is imported: discovery stays local
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ["MUJOCO_GL"] = "egl"

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from unitree_hg.msg import LowCmd, LowState  # noqa: E402

from dit4dit_ros import g1  # noqa: E402
from dit4dit_ros.graph import default_params_file  # noqa: E402
from dit4dit_ros.robot.crc import lowcmd_crc_arrays  # noqa: E402
from dit4dit_ros.robot.lowlevel import LowLevelConfig, LowLevelCore  # noqa: E402
from dit4dit_ros.robot.variants import get_variant  # noqa: E402
from dit4dit_ros.ros.qos import SENSOR_QOS  # noqa: E402
from dit4dit_ros.ros.unitree_msgs import (decode_lowcmd, decode_lowstate, lowcmd_bytes, lowcmd_message,  # noqa: E402
                                          lowstate_bytes, lowstate_positions)

REPO = Path(__file__).resolve().parents[1]
INSTRUCTION = "touch the red cube with the right hand"


def median_us(function, repeats: int) -> float:
    runs = timeit.repeat(function, number=1, repeat=repeats)
    return float(np.median(runs) * 1e6)


def per_message(repeats: int) -> dict:
    core = LowLevelCore(LowLevelConfig())
    core.update_state(np.zeros(35), 5, 0)
    targets = dict(zip(g1.ACTION_NAMES, [0.1] * 14 + [0.0, 0.0]))
    frame = core.frame(targets, 2_000_000)
    rng = np.random.default_rng(0)
    q, dq, tau = rng.normal(size=(3, 35))
    state = lowstate_bytes(q, dq, tau, 5, 1)
    results = {
        "lowcmd_build_objects_us": median_us(lambda: serialize_message(lowcmd_message(frame)), repeats),
        "lowcmd_build_cdr_us": median_us(lambda: lowcmd_bytes(frame), repeats),
        "lowstate_read_objects_us": median_us(lambda: lowstate_positions(deserialize_message(state, LowState)),
                                              repeats),
        "lowstate_read_cdr_us": median_us(lambda: decode_lowstate(state), repeats),
        "lowcmd_crc_us": median_us(lambda: lowcmd_crc_arrays(0, 5, frame.mode, frame.q, frame.dq, frame.tau,
                                                             frame.kp, frame.kd), repeats),
        "lowcmd_decode_and_check_us": median_us(lambda: decode_lowcmd(lowcmd_bytes(frame)), repeats),
        "lowlevel_core_tick_us": median_us(lambda: core.frame(targets, 4_000_000), repeats),
    }
    results["lowcmd_build_speedup"] = results["lowcmd_build_objects_us"] / results["lowcmd_build_cdr_us"]
    results["lowstate_read_speedup"] = results["lowstate_read_objects_us"] / results["lowstate_read_cdr_us"]
    return results


class Recorder:
    def __init__(self, context):
        self.node = rclpy.create_node("bench_real_robot", context=context)
        self.commands, self.states, self.diagnostics = [], [], {}
        self.node.create_subscription(LowCmd, "arm_sdk", lambda d: self.commands.append((time.monotonic(), d)),
                                      SENSOR_QOS, raw=True)
        self.node.create_subscription(LowState, "lowstate", lambda d: self.states.append((time.monotonic(), d)),
                                      SENSOR_QOS, raw=True)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def close(self):
        self.executor.shutdown()
        self.thread.join(5)
        self.node.destroy_node()


def tracking_error(commands, states) -> tuple[float, float]:
    """Right arm: each tracking LowCmd vs the LowState 20 ms after it (median, p95, rad)."""
    slots = [get_variant("g1_29dof").slot(n) for n in g1.ARM_JOINTS["right"]]
    state_t = np.array([t for t, _ in states])
    errors = []
    for t, command in commands[::10]:
        index = np.searchsorted(state_t, t + 0.02)
        if (command.kp[slots] > 0).all() and index < len(states):
            errors.append(np.abs(decode_lowstate(states[index][1])[0][slots] - command.q[slots]))
    if not errors:
        return float("nan"), float("nan")
    return float(np.median(errors)), float(np.percentile(errors, 95))


def closed_loop(stale_after: float, domain: int, feedforward: bool = True) -> dict:
    params = yaml.safe_load(Path(default_params_file()).read_text())
    params["/**/controller_bridge"]["ros__parameters"]["g1"]["stale_after"] = stale_after
    params["/**/controller_bridge"]["ros__parameters"]["g1"]["gravity_feedforward"] = feedforward
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g1.yaml"
        path.write_text(yaml.safe_dump(params))
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        recorder = Recorder(context)
        started = time.monotonic()
        try:
            run = subprocess.run([sys.executable, "-m", "dit4dit_ros.launcher", "robot:=fake", "policy:=expert",
                                  f"params_file:={path}", "--execute", INSTRUCTION, "--seed", "1004",
                                  "--time-limit", "30"], env=env, capture_output=True, text=True, timeout=300)
        finally:
            recorder.close()
            rclpy.try_shutdown(context=context)
    lines = [x for x in run.stdout.splitlines() if x.startswith("dit4dit-launch result: ")]
    result = json.loads(lines[0].split(": ", 1)[1]) if lines else {"success": None, "reason": run.stderr[-300:]}
    decoded = [(t, decode_lowcmd(data)) for t, data in recorder.commands]
    commands = [t for t, command in decoded if command.crc_ok]
    state_times = np.array([t for t, _ in recorder.states])
    gaps = np.diff(state_times) * 1e3 if len(state_times) > 1 else np.array([np.nan])
    median_error, p95_error = tracking_error(decoded, recorder.states)
    span = (commands[-1] - commands[0]) if len(commands) > 1 else float("nan")
    bridge = recorder.diagnostics.get("/controller_bridge", {})
    return {"stale_after_s": stale_after, "gravity_feedforward": feedforward, "success": result.get("success"), "reason": result.get("reason"),
            "task_wall_s": result.get("wall_s"), "total_wall_s": round(time.monotonic() - started, 1),
            "lowcmd_received": len(recorder.commands), "lowcmd_crc_ok": len(commands),
            "lowcmd_rate_hz_at_probe": len(commands) / span if span == span and span > 0 else None,
            "bridge_command_rate_hz": float(bridge.get("command_rate_hz", "nan")),
            "lowstate_rate_hz_at_probe": len(state_times) / (state_times[-1] - state_times[0])
            if len(state_times) > 1 else None,
            "right_arm_error_rad_median": median_error, "right_arm_error_rad_p95": p95_error,
            "lowstate_gap_ms_p50": float(np.median(gaps)), "lowstate_gap_ms_p99": float(np.percentile(gaps, 99)),
            "lowstate_gap_ms_max": float(np.max(gaps)), "lowstate_gaps_over_20ms": int(np.sum(gaps > 20)),
            "bridge_damping_stale_spells": int(bridge.get("damping_stale", 0)),
            "bridge_tick_jitter_p99_ms": float(bridge.get("tick_jitter_p99_ms", "nan"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--skip-loop", action="store_true", help="only the per-message costs")
    options = parser.parse_args()
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "per_message": per_message(options.repeats), "closed_loop": []}
    for k, v in report["per_message"].items():
        print(f"{k:32s} {v:9.2f}")
    if not options.skip_loop:
        for index, (stale_after, feedforward) in enumerate(((0.02, True), (0.1, True), (0.1, False))):
            row = closed_loop(stale_after, DOMAIN + index, feedforward)
            report["closed_loop"].append(row)
            print(json.dumps(row))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_robot.json").write_text(json.dumps(report, indent=2))
    lines = ["# Real-robot path (fake_g1) benchmark", "", f"Machine: {report['machine']}", "",
             "## Per message (median, µs)", "", "| what | µs |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in report["per_message"].items()]
    if report["closed_loop"]:
        keys = list(report["closed_loop"][0])
        lines += ["", "## Closed loop: policy:=expert robot:=fake, touch_cube seed 1004", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
                  for r in report["closed_loop"]]
    (out / "real_robot.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'real_robot.json'} and real_robot.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
