"""dit4dit-launch: the node graph of ``g1.launch.py`` on a machine without ``ros2 launch``.

    dit4dit-launch [sim:=mujoco] [robot:=sim] [use_sim_time:=auto] [namespace:=] [params_file:=] [checkpoint:=]
                   [log_level:=info] [policy:=dit4dit] [record:=false] [record_dir:=episodes]
                   [--single-process] [--execute INSTRUCTION [--time-limit S] [--seed N]]
                   [--print]

The nodes, parameters and remaps come from the same description as the launch file (dit4dit_ros.graph).
* Default: one process per node (the installed executables under lib/dit4dit_ros), supervised: output is
  prefixed with the node's name, Ctrl-C stops every node cleanly, and when one node dies all are stopped
  and the exit code says which failed (launch's ``on_exit=Shutdown``).
* ``--single-process``: every node of the policy and the task server in one process and one
  MultiThreadedExecutor (messages still go through rmw, but without a process hop per node); model inference
  runs on each node's worker thread, off the executor. The simulation, which stands in for the robot, keeps a
  process of its own.
* ``--execute "touch the red cube with the right hand"``: once the graph is up, send that ExecuteTask goal,
  print the result, and stop the graph (the main job of the README).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time

from dit4dit_ros.graph import LAUNCH_ARGUMENTS, LaunchConfig, NodeSpec, g1_graph, parse_launch_arguments


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, LaunchConfig]:
    parser = argparse.ArgumentParser(
        prog="dit4dit-launch", description=__doc__.split("\n\n")[0],
        epilog="launch arguments: " + "; ".join(f"{k}:={v[0]!r} ({v[1]})" for k, v in LAUNCH_ARGUMENTS.items()))
    parser.add_argument("launch_arguments", nargs="*", metavar="name:=value")
    parser.add_argument("--single-process", action="store_true", help="all nodes in one process")
    parser.add_argument("--execute", metavar="INSTRUCTION", help="run this task once the graph is up, then stop")
    parser.add_argument("--time-limit", type=float, default=0.0, help="time limit of --execute (s; 0 = default)")
    parser.add_argument("--seed", type=int, default=-1, help="reset the simulation with this seed first")
    parser.add_argument("--server-timeout", type=float, default=60.0,
                        help="seconds to wait for the task server before --execute gives up")
    parser.add_argument("--print", action="store_true", help="print the node command lines and exit")
    options = parser.parse_args(argv)
    try:
        config = LaunchConfig.from_strings(parse_launch_arguments(options.launch_arguments))
        config.resolved_params_file()
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    return options, config


def executable_path(spec: NodeSpec) -> str:
    """lib/<package>/<executable> of the installed package (what ``ros2 run`` starts)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix(spec.package)
    except PackageNotFoundError:
        raise SystemExit(f"package {spec.package} is not installed (run scripts/setup.sh, or source a workspace)")
    path = os.path.join(prefix, "lib", spec.package, spec.executable)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} is missing: re-run scripts/setup.sh (or colcon build) to install the nodes")
    return path


def node_commands(config: LaunchConfig) -> list[tuple[str, list[str]]]:
    return [(spec.name, [executable_path(spec), *spec.ros_args(config)]) for spec in g1_graph(config)]


# -- one process per node ------------------------------------------------------------------------------------
def run_processes(config: LaunchConfig, options) -> int:
    from dit4dit_ros.supervisor import ProcessSpec, Supervisor

    supervisor = Supervisor([ProcessSpec(name, argv) for name, argv in node_commands(config)])
    supervisor.start()
    supervisor.install_signal_handlers()
    if not options.execute:
        return supervisor.wait()
    outcome: dict = {}
    waiter = threading.Thread(target=lambda: outcome.setdefault("code", supervisor.wait()), daemon=True)
    waiter.start()
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    # Ctrl-C belongs to the supervisor (it stops the nodes); the goal loop notices the graph is gone.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        code = _execute(options, config, alive=waiter.is_alive)
    finally:
        rclpy.try_shutdown()
        supervisor.stop()
        waiter.join()
    return code if outcome.get("code", 0) == 0 else outcome["code"]


# -- one process --------------------------------------------------------------------------------------------
def load_plugin(spec: NodeSpec):
    if ":" not in spec.plugin:
        raise ValueError(f"node {spec.name} names no plugin (module:Class): it can only run as its own process")
    module, _, cls = spec.plugin.partition(":")
    return getattr(importlib.import_module(module), cls)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_single_process(config: LaunchConfig, options) -> int:
    import rclpy
    import rclpy.logging
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from dit4dit_ros.supervisor import ProcessSpec, Supervisor

    specs = g1_graph(config)
    # The simulation stands in for the robot and keeps its own process: its physics and rendering thread under
    # the same GIL as every node made the whole graph fall to 0.1-0.5x real time on 2 cores.
    robot = [spec for spec in specs if spec.executable in ("sim", "fake_g1")]
    supervisor = Supervisor([ProcessSpec(spec.name, [executable_path(spec), *spec.ros_args(config)])
                             for spec in robot])
    from rclpy.signals import SignalHandlerOptions

    # Not rclpy's signal handler: it invalidates the context at once, and the bridge's last words (damping for
    # the robot) must still go out. A signal raises KeyboardInterrupt in the spin below instead.
    rclpy.init(args=["--ros-args", "--log-level", config.log_level], signal_handler_options=SignalHandlerOptions.NO)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    supervisor.start()
    # The simulation ending ends the graph, as any node's would.
    threading.Thread(target=lambda: (supervisor.wait(), rclpy.try_shutdown()), daemon=True).start()
    nodes = []
    code = 0
    try:
        for spec in (spec for spec in specs if spec not in robot):
            try:
                node = load_plugin(spec)(cli_args=spec.ros_args(config, log_level=False), use_global_arguments=False)
            except Exception as error:  # noqa: BLE001 - one clear line per failing node, then stop the graph
                rclpy.logging.get_logger("dit4dit-launch").fatal(f"{spec.name} failed to start: {error}")
                return 1
            nodes.append(node)
            if hasattr(node, "start") and not node.start():
                return 1
        # Threads: enough that no node's callbacks wait for another's (inference is on worker threads anyway).
        executor = MultiThreadedExecutor(num_threads=max(4, 2 * len(nodes)))
        for node in nodes:
            executor.add_node(node)
        if options.execute:
            def execute():
                nonlocal code
                code = _execute(options, config, alive=rclpy.ok)
                rclpy.try_shutdown()
            threading.Thread(target=execute, daemon=True).start()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:  # last words first (the bridge's damping), while the context still works
            if rclpy.ok() and hasattr(node, "before_shutdown"):
                node.before_shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
        supervisor.stop()
    return code


# -- --execute --------------------------------------------------------------------------------------------------
def _execute(options, config: LaunchConfig, alive) -> int:
    """Send the goal through the blocking TaskCommander and print the result as one JSON line."""
    from dit4dit_ros.ros.commander import TaskCommander

    from dit4dit_ros.ros.readiness import wait_until_active

    with TaskCommander(namespace=config.namespace) as commander:
        deadline = time.monotonic() + options.server_timeout
        while not commander.wait_for_server(timeout=1.0):
            if time.monotonic() > deadline or not alive():
                print("dit4dit-launch: the task server did not come up", file=sys.stderr, flush=True)
                return 1
        # The goal starts the clock on the task: wait until every model is loaded and every output is on.
        managed = [f"{config.namespace}/{spec.name}" for spec in g1_graph(config) if spec.managed]
        inactive = wait_until_active(commander.node, managed, max(1.0, deadline - time.monotonic()))
        if inactive:
            print(f"dit4dit-launch: not active in time: {inactive}", file=sys.stderr, flush=True)
            return 1
        started = time.monotonic()
        if not commander.start(options.execute, time_limit=options.time_limit, seed=options.seed):
            print(f"dit4dit-launch: the task server rejected {options.execute!r}", file=sys.stderr, flush=True)
            return 1
        while not commander.is_task_complete():
            if not alive():
                print("dit4dit-launch: the graph stopped before the task ended", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.1)
        result = commander.result()
        summary = {"instruction": options.execute, "success": result.success, "reason": result.reason,
                   "steps": result.steps, "wall_s": round(time.monotonic() - started, 2)}
        print("dit4dit-launch result: " + json.dumps(summary), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    options, config = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        os.environ.update(config.network_environment())  # robot:=real: every node, and this process's client
    except ValueError as error:
        raise SystemExit(f"dit4dit-launch: {error}")
    if options.print:
        for name, argv_ in node_commands(config):
            print(f"{name}: {' '.join(argv_)}")
        return 0
    return run_single_process(config, options) if options.single_process else run_processes(config, options)


if __name__ == "__main__":
    raise SystemExit(main())
