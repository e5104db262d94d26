"""Whole-graph benchmark: sim -> camera_ingest -> video_encoder -> action_planner -> controller_bridge -> sim,
closed loop with the tiny UNTRAINED preset, in both modes of dit4dit-launch (one process per node, and
--single-process), against the same policy run in-process without ROS.

    .venv/bin/python bench/bench_graph.py [--seconds 20] [--model simplified|menagerie] [--modes multi,single]

Per mode: start the launcher on a temporary copy of config/g1.yaml (the sim's `model` from --model), wait until
every managed node is ACTIVE, send "touch the red cube with the right hand" (seed 0, long time limit) through
TaskCommander, let it run --warmup s, then measure --seconds of wall time: frame -> command latency (the bridge's
/diagnostics, and independently here from action_chunk and joint_commands stamps), CPU per process (/proc), rates
(/diagnostics and message counts here) and controller jitter. Writes bench/results/graph.{json,md}. DDS stays on
this machine (LOCALHOST discovery, private domains in 150..170); the launcher and its nodes are always stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

DOMAIN = random.randint(150, 169)  # this run's DDS domains: DOMAIN for the first mode, DOMAIN + 1 for the second
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy is imported: discovery stays local
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ["MUJOCO_GL"] = "egl"

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from dit4dit_ros.graph import LaunchConfig, g1_graph  # noqa: E402
from dit4dit_ros.msg import VideoFeatures  # noqa: E402
from dit4dit_ros.ros.commander import TaskCommander  # noqa: E402
from dit4dit_ros.ros.qos import COMMAND_QOS  # noqa: E402
from dit4dit_ros.ros.readiness import wait_until_active  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INSTRUCTION = "touch the red cube with the right hand"
MODES = {"multi": [], "single": ["--single-process"]}  # dit4dit-launch arguments of each mode
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else None


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# -- processes: /proc, no psutil --------------------------------------------------------------------------------
def _stat(pid) -> list[str]:
    """Fields of /proc/<pid>/stat after "(comm)" (which may hold spaces): [1] ppid, [11] utime, [12] stime."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = _stat(pid)
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError):
        return None


def machine_cpu_seconds() -> float:
    """CPU time of everything on the machine: other jobs share these cores, and distort every number here."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK  # all but idle and iowait


def node_name(pid) -> str | None:
    """<name> when the process runs the installed executable lib/dit4dit_ros/<name> (a Python script)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((Path(a.decode()).name for a in argv if b"/lib/dit4dit_ros/" in a), None)


def graph_pids(launcher_pid: int) -> dict[str, int]:
    """name -> pid of the launcher's children that run lib/dit4dit_ros/<name>."""
    pids = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(_stat(entry.name)[1]) == launcher_pid:
                pids[node_name(entry.name)] = int(entry.name)
        except (OSError, ValueError, IndexError):
            continue  # it ended while we looked
    pids.pop(None, None)  # a child that is not a node
    return pids


def start_launcher(mode: str, params: Path, domain: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
    argv = [str(Path(sys.prefix) / "bin" / "dit4dit-launch"), f"params_file:={params}", *MODES[mode]]
    with open(log, "wb") as out:  # a file, not a pipe: nobody has to drain it for the graph to keep running
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_launcher(proc: subprocess.Popen, known: dict[str, int]) -> None:
    """SIGINT to the launcher's process group (its supervisor stops each node cleanly), SIGKILL after a grace
    period. The supervisor starts each node in a session of its own: survivors are killed by their pid."""
    nodes = set(graph_pids(proc.pid).values()) | {pid for pid in known.values() if pid not in (proc.pid, os.getpid())}
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
    for pid in (pid for pid in nodes if node_name(pid)):  # still one of ours, not a reused pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


# -- the benchmark's own view of the graph ----------------------------------------------------------------------
class Probe:
    """Receive times of video_features, action_chunk and joint_commands, and the latest /diagnostics per node.
    No /clock subscription (a Python one at 250 Hz slows the graph): sim time comes from message stamps."""

    def __init__(self):
        self.node = rclpy.create_node("bench_graph_probe")
        self.features, self.chunks, self.commands, self.diagnostics = [], [], [], {}
        sub = self.node.create_subscription
        sub(VideoFeatures, "video_features", lambda _: self.features.append(time.monotonic()), COMMAND_QOS,
            raw=True)  # raw: only counted, so the feature tensor is not deserialised
        sub(JointTrajectory, "action_chunk", self._on_chunk, COMMAND_QOS)
        sub(JointState, "joint_commands", self._on_command, COMMAND_QOS)
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._executor = SingleThreadedExecutor()  # one thread: chunks and commands are logged in arrival order
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def _on_chunk(self, msg):  # (wall, observation stamp, last point's offset, commands received before it)
        last = stamp_ns(msg.points[-1].time_from_start) if msg.points else 0
        self.chunks.append((time.monotonic(), stamp_ns(msg.header.stamp), last, len(self.commands)))

    def _on_command(self, msg):  # (wall, header.stamp: the bridge's node clock, i.e. sim time)
        self.commands.append((time.monotonic(), stamp_ns(msg.header.stamp)))

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name.lstrip("/")] = {kv.key: kv.value for kv in status.values}

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._executor.remove_node(self.node)
        self.node.destroy_node()


def bench_figures(chunks, commands, t0, t1, period_ns) -> dict:
    """Frame -> command seen from here: for each chunk received in [t0, t1), the stamp of the first joint_commands
    received after it minus the chunk's observation stamp. A chunk whose last point is past even a control period
    before that command is one the bridge rejected as stale: counted, not timed. Also the commands' intervals."""
    seen, new, every, stale = set(), [], [], 0
    for wall, stamp, last_offset, index in chunks:
        if not t0 <= wall < t1 or index >= len(commands):
            continue
        is_new, command_stamp = stamp not in seen, commands[index][1]
        seen.add(stamp)
        if stamp + last_offset < command_stamp - period_ns:
            stale += 1
            continue
        every.append((command_stamp - stamp) / 1e6)
        if is_new:
            new.append(every[-1])
    window = [(wall, s) for wall, s in commands if t0 <= wall < t1]
    intervals = np.diff([s for _, s in window]) / 1e6
    error = np.abs(intervals - period_ns / 1e6)
    # The whole window's sim-time / wall-time ratio (the sim's own figure is over its last second only).
    sim_rate = (window[-1][1] - window[0][1]) / 1e9 / (window[-1][0] - window[0][0]) if len(window) > 1 else None
    return {"all_chunks_p50_ms": pct(every, 50), "all_chunks_p99_ms": pct(every, 99), "timed_chunks": len(every),
            "new_stamp_p50_ms": pct(new, 50), "new_stamp_p99_ms": pct(new, 99), "new_stamps": len(new),
            "stale_chunks": stale, "sim_time_per_wall_s": sim_rate,
            "command_interval_mean_ms": float(intervals.mean()) if len(intervals) else None,
            "command_interval_std_ms": float(intervals.std()) if len(intervals) else None,
            "command_interval_error_p50_ms": pct(error, 50), "command_interval_error_p99_ms": pct(error, 99)}


def run_mode(mode: str, args, params: Path, domain: int, period_ns: int, workdir: Path) -> dict:
    result: dict = {"domain_id": domain}
    log, started = workdir / f"launch_{mode}.log", time.monotonic()
    proc = start_launcher(mode, params, domain, log)
    pids: dict[str, int] = {}
    rclpy.init(domain_id=domain)
    probe = commander = None
    try:
        probe, commander = Probe(), TaskCommander(node_name="bench_graph_commander")
        deadline = started + args.ready_timeout
        while not commander.wait_for_server(timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the task server did not come up (launcher exit code {proc.poll()})")
        # The goal starts the clock on the task: first every model loaded and every output on.
        managed = [f"/{spec.name}" for spec in g1_graph(LaunchConfig()) if spec.managed]
        inactive = wait_until_active(commander.node, managed, max(1.0, deadline - time.monotonic()))
        if inactive:
            raise RuntimeError(f"not active within {args.ready_timeout:g}s: {inactive}")
        ready_s = time.monotonic() - started
        pids = ({**graph_pids(proc.pid), "dit4dit-launch (supervisor)": proc.pid} if mode == "multi"
                else {"graph (one process)": proc.pid})
        pids["bench process"] = os.getpid()  # it shares the cores, so its cost is part of the picture
        if not commander.start(INSTRUCTION, time_limit=args.time_limit, seed=0):
            raise RuntimeError("the task server rejected the goal")
        time.sleep(args.warmup)  # episode reset, instruction embedding, first features
        machine0, cpu0, t0 = machine_cpu_seconds(), {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        while time.monotonic() < t0 + args.seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"the launcher exited with code {proc.returncode} during the window")
            time.sleep(0.2)
        machine1, cpu1, t1 = machine_cpu_seconds(), {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        result["diagnostics"] = {name: dict(values) for name, values in probe.diagnostics.items()}
        result["goal"] = "ended early" if commander.is_task_complete() else "running at the end of the window"
        cpu = {n: None if None in (cpu0[n], cpu1[n]) else 100 * (cpu1[n] - cpu0[n]) / (t1 - t0) for n in pids}
        cpu["outside this benchmark"] = 100 * (machine1 - machine0) / (t1 - t0) - sum(v or 0 for v in cpu.values())
        result["cpu_percent"] = cpu
        count = (lambda walls: sum(t0 <= w < t1 for w in walls) / (t1 - t0))
        result["bench"] = {"ready_s": ready_s, "video_features_hz": count(probe.features),
                           "action_chunk_hz": count(c[0] for c in probe.chunks),
                           "joint_commands_hz": count(c[0] for c in probe.commands),
                           **bench_figures(list(probe.chunks), list(probe.commands), t0, t1, period_ns)}
        try:
            commander.cancel(timeout=10.0)
            result["goal_result"] = commander.result(timeout=10.0).reason
        except TimeoutError as error:
            result["goal_result"] = str(error)
    except Exception as error:  # noqa: BLE001 - report the mode as failed, still stop the graph, run the next
        result["error"] = str(error)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        print(f"{mode}: {error}\n--- launcher output (tail) ---\n{tail}", flush=True)
    finally:
        for part in (commander, probe):
            if part is not None:
                part.close()
        rclpy.try_shutdown()
        stop_launcher(proc, pids)
    return result


def in_process_baseline(iterations: int) -> dict:
    """The same policy without ROS: frame (uint8, the model's size) -> encode -> plan, one torch thread."""
    from dit4dit_ros.inference.loading import load_policy
    from dit4dit_ros.inference.runtime import ActionPlannerRuntime, VideoEncoderRuntime

    policy = load_policy("", "tiny", seed=0, threads=1)
    encoder, planner = VideoEncoderRuntime(policy, seed=0), ActionPlannerRuntime(policy, seed=0)
    encoder.set_instruction(INSTRUCTION)
    rng, state = np.random.default_rng(0), np.zeros(policy.config.action.state_dim)
    times = {"encode": [], "plan": [], "total": []}
    machine0, own0, t0 = machine_cpu_seconds(), cpu_seconds(os.getpid()), time.monotonic()
    for i in range(iterations + 10):  # the first 10 warm up torch's allocator and kernels
        frame = rng.integers(0, 256, (*encoder.image_size, 3), dtype=np.uint8)
        start = time.perf_counter()
        features, encode_s = encoder.encode([frame])
        _, plan_s = planner.plan(features, state)
        for key, seconds in (("encode", encode_s), ("plan", plan_s), ("total", time.perf_counter() - start)):
            times[key] += [seconds * 1e3] if i >= 10 else []
    other = machine_cpu_seconds() - machine0 - (cpu_seconds(os.getpid()) - own0)  # other jobs slow this too
    return {"iterations": iterations, "cpu_outside_percent": 100 * other / (time.monotonic() - t0),
            **{f"{k}_p{q}_ms": pct(v, q) for k, v in times.items() for q in (50, 99)}}


B, E, P = "controller_bridge", "video_encoder", "action_planner"
ROWS = [  # label, unit, digits, keys: "<node>/<key>" (its last /diagnostics in the window), "bench/...", "ratio/..."
    ("ready: launcher start -> every managed node ACTIVE", " s", 1, "bench/ready_s"),
    ("**frame -> command p50 / p99: bridge /diagnostics** (accepted chunks)", " ms", 1,
     f"{B}/frame_to_command_p50_ms {B}/frame_to_command_p99_ms"),
    ("frame -> command p50 / p99: bench, every chunk not stale", " ms", 1, "bench/all_chunks_p50_ms "
     "bench/all_chunks_p99_ms"),
    ("frame -> command p50 / p99: bench, first chunk of each new observation", " ms", 1, "bench/new_stamp_p50_ms "
     "bench/new_stamp_p99_ms"),
    ("p50 from the frame stamp to: features out / chunk out / command out (nodes)", " ms", 1,
     f"{E}/feature_age_p50_ms {P}/observation_to_chunk_p50_ms {B}/frame_to_command_p50_ms"),
    ("bridge p50 / in-process compute p50", "x", 1, "ratio/in_process"),
    ("bridge p50 / ideal bound; bridge p50 / expected (all chunks); bench new-observation p50 / expected", "x", 2,
     "ratio/ideal ratio/all_chunks ratio/new_stamp"),
    ("bench (window): chunks timed / new observations / stale chunks", "", 0,
     "bench/timed_chunks bench/new_stamps bench/stale_chunks"),
    ("bridge (since start): stale chunks / chunks received", "", 0, f"{B}/stale_chunks {B}/chunks_received"),
    ("planner (since start): features reused / stale dropped / skipped busy", "", 0,
     f"{P}/features_reused {P}/stale_dropped {P}/skipped_busy"),
    ("encoder / planner inference p50 in the node", " ms", 1, f"{E}/inference_p50_ms {P}/inference_p50_ms"),
    ("rates (/diagnostics): camera_ingest / video_encoder / action_planner / controller_bridge", " Hz", 2,
     f"camera_ingest/stream0_output_rate_hz {E}/rate_hz {P}/rate_hz {B}/command_rate_hz"),
    ("sim: real-time factor (its last /diagnostics; window average from joint_commands stamps)", "", 2,
     "sim/real_time_factor bench/sim_time_per_wall_s"),
    ("sim: images per wall second (/diagnostics)", " Hz", 1, "sim/image_rate_wall_hz"),
    ("received by the bench: video_features / action_chunk / joint_commands", " Hz", 2,
     "bench/video_features_hz bench/action_chunk_hz bench/joint_commands_hz"),
    ("bridge tick jitter p50 / p99 (wall clock)", " ms", 2, f"{B}/tick_jitter_p50_ms {B}/tick_jitter_p99_ms"),
    ("joint_commands stamps (sim time): interval mean / std; abs(interval - period) p50 / p99", " ms", 2,
     "bench/command_interval_mean_ms bench/command_interval_std_ms bench/command_interval_error_p50_ms "
     "bench/command_interval_error_p99_ms")]


def flat(r: dict) -> dict:
    values = {f"{node}/{key}": v for node, diag in r["diagnostics"].items() for key, v in diag.items()}
    return {**values, **{f"bench/{k}": v for k, v in r["bench"].items()},
            **{f"ratio/{k}": v for k, v in r.get("ratios", {}).items()}}


def show(value, digits: int, unit: str = "") -> str:
    try:
        return f"{float(value):.{digits}f}{unit}"
    except (TypeError, ValueError):
        return "n/a"


def ratios(r: dict, expect: dict, compute_ms: float) -> dict:
    bridge, bench = flat(r).get(f"{B}/frame_to_command_p50_ms"), r["bench"]["new_stamp_p50_ms"]
    div = (lambda a, b: None if a is None else float(a) / b)
    return {"in_process": div(bridge, compute_ms), "ideal": div(bridge, expect["ideal_ms"]),
            "all_chunks": div(bridge, expect["all_chunks_ms"]), "new_stamp": div(bench, expect["new_stamp_ms"])}


def markdown(report: dict) -> str:
    m, base, expect = report["machine"], report["in_process"], report["expected"]
    lines = ["# Whole-graph benchmark (closed loop in the simulation)", "",
             f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}, MUJOCO_GL={m['mujoco_gl']}, "
             f"commit {report['git_commit'][:12]}. Sim model {report['sim_model']}, tiny untrained preset, goal "
             f"\"{INSTRUCTION}\" (seed 0); {report['seconds']:g} s measured after {report['warmup_s']:g} s of the "
             "goal. Percentiles from /diagnostics cover each node's recent samples (up to 500), warm-up included.",
             "", "## In-process baseline (same policy, no ROS, one torch thread)", "",
             "| step | p50 | p99 |", "|---|---|---|"]
    lines += [f"| {k} | {base[f'{k}_p50_ms']:.2f} ms | {base[f'{k}_p99_ms']:.2f} ms |" for k in ("encode", "plan",
                                                                                                "total")]
    lines += ["", f"CPU used by other jobs on the machine meanwhile: {base['cpu_outside_percent']:.0f} % of one core."]
    lines += ["", "The graph's latency also contains waiting for the encoder and planner rate ticks, so it is also "
              f"compared with compute p50 ({base['total_p50_ms']:.1f} ms) plus that waiting. *Ideal bound*: + half an "
              f"encoder period + half a planner period = {expect['ideal_ms']:.1f} ms. *Expected from the stamps*: the "
              "newest frame at an encoder tick is half a camera period old; the newest features at a planner tick are "
              "half an encoder period old over all chunks (the planner reuses features between encoder ticks; the "
              "bridge's measure) or half a planner period old for the first chunk of new features; then half a "
              f"control tick: {expect['all_chunks_ms']:.1f} ms (all chunks), {expect['new_stamp_ms']:.1f} ms (new)."]
    for mode, r in report["modes"].items():
        lines += ["", f"## {'One process per node' if mode == 'multi' else 'One process (--single-process)'}", ""]
        if "error" in r:
            lines.append(f"failed: {r['error']}")
            continue
        values, cpu = flat(r), r["cpu_percent"]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {label} | {' / '.join(show(values.get(k), digits) for k in keys.split())}{unit} |"
                  for label, unit, digits, keys in ROWS]
        lines += [f"| CPU {name} (100 % = one core) | {show(v, 1, ' %')} |" for name, v in cpu.items()]
        graph = sum(v or 0 for k, v in cpu.items() if k not in ("bench process", "outside this benchmark"))
        lines += [f"| CPU graph total | {graph:.1f} % of {m['cores'] * 100} % |", "",
                  f"Goal: {r['goal']}, then {r.get('goal_result')}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured wall time per mode")
    parser.add_argument("--warmup", type=float, default=3.0, help="wall time between the goal and the window")
    parser.add_argument("--model", choices=("simplified", "menagerie"), default="simplified")
    parser.add_argument("--modes", default="multi,single", help="comma-separated: multi, single")
    parser.add_argument("--iterations", type=int, default=200, help="in-process baseline iterations")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="the goal's time limit (sim s)")
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind through run_mode's finally: graph stopped
    local = REPO.parent / "shared" / "menagerie"  # where the tests find it; else the sim node's own fallback
    if args.model == "menagerie" and not os.environ.get("MENAGERIE_ROOT") and (local / "unitree_g1").is_dir():
        os.environ["MENAGERIE_ROOT"] = str(local)

    import torch

    from dit4dit_ros.inference.loading import model_config

    config = yaml.safe_load((REPO / "config" / "g1.yaml").read_text())
    config["/**/sim"]["ros__parameters"]["model"] = args.model
    p = {node.split("/")[-1]: values["ros__parameters"] for node, values in config.items()}
    ingest_fps = p["camera_ingest"]["fps"] if p["camera_ingest"]["fps"] >= 0 else model_config("", "tiny").video.fps
    periods = {"camera": 1e3 / min(p["sim"]["camera_rate"], ingest_fps or 1e9),
               "encoder": 1e3 / p["video_encoder"]["rate"], "planner": 1e3 / p["action_planner"]["rate"],
               "control": 1e3 / p["controller_bridge"]["control_rate"]}
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"]).returncode != 0
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "mujoco_gl": os.environ["MUJOCO_GL"]},
              "git_commit": commit.strip() + ("+dirty" if dirty else ""), "sim_model": args.model,
              "preset": "tiny (untrained, seed 0)", "instruction": INSTRUCTION, "seconds": args.seconds,
              "warmup_s": args.warmup, "periods_ms": periods}
    report["in_process"] = base = in_process_baseline(args.iterations)  # first, while no graph runs
    print("in-process baseline", base, flush=True)
    compute = base["total_p50_ms"]
    report["expected"] = {  # compute + the waiting for rate ticks (explained in markdown())
        "ideal_ms": compute + periods["encoder"] / 2 + periods["planner"] / 2,
        "all_chunks_ms": compute + (periods["camera"] + periods["encoder"] + periods["control"]) / 2,
        "new_stamp_ms": compute + (periods["camera"] + periods["planner"] + periods["control"]) / 2}
    report["modes"] = {}
    with tempfile.TemporaryDirectory(prefix="bench_graph_") as tmp:
        params = Path(tmp) / "g1_bench.yaml"
        params.write_text(yaml.safe_dump(config, sort_keys=False))
        for offset, mode in enumerate(args.modes.split(",")):  # a fresh domain per mode: no stale discovery
            report["modes"][mode] = r = run_mode(mode, args, params, DOMAIN + offset,
                                                 round(periods["control"] * 1e6), Path(tmp))
            if "error" not in r:
                r["ratios"] = ratios(r, report["expected"], compute)
            print(mode, json.dumps({k: v for k, v in r.items() if k != "diagnostics"}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graph.json").write_text(json.dumps(report, indent=2))
    (args.out / "graph.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all("error" not in r for r in report["modes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
