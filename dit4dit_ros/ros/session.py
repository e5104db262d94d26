"""A graph for a batch of episodes: start the nodes as supervised processes, wait until every one is ready,
hand out an EpisodeRunner, stop everything afterwards. What dit4dit-record and dit4dit-eval share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from dit4dit_ros.graph import LaunchConfig, g1_graph


@contextlib.contextmanager
def graph_session(launch_arguments: dict[str, str], *, log_path: str | Path, ready_timeout: float = 180.0
                  ) -> Iterator[tuple[object, object]]:
    """Yields (EpisodeRunner, alive) for the graph of ``launch_arguments`` (name -> value, as name:=value).

    The nodes' output goes to ``log_path``. Raises RuntimeError naming what did not come up in time.
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from dit4dit_ros.launcher import node_commands
    from dit4dit_ros.ros.episodes import EpisodeRunner
    from dit4dit_ros.supervisor import ProcessSpec, Supervisor

    config = LaunchConfig.from_strings(launch_arguments)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        supervisor = Supervisor([ProcessSpec(name, argv) for name, argv in node_commands(config)], output=log)
        supervisor.start()
        # SIGINT / SIGTERM stop the nodes (also when SIGINT came in ignored, as for `cmd &` in a script); the
        # episode loop then sees the graph gone and ends with an error, and a half-recorded episode is kept
        # by the recorder, marked as not a success.
        supervisor.install_signal_handlers()

        def alive() -> bool:
            return all(code is None for code in supervisor.returncodes.values())

        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        runner = None
        try:
            runner = EpisodeRunner(namespace=config.namespace, use_sim_time=config.use_sim_time)
            managed = [f"{config.namespace}/{spec.name}" for spec in g1_graph(config) if spec.managed]
            missing = runner.wait_until_ready(ready_timeout, managed=managed, recorder=config.record)
            if missing or not alive():
                raise RuntimeError(f"the graph did not come up within {ready_timeout:g} s: missing {missing}, "
                                   f"exit codes {supervisor.returncodes}; see {log_path}")
            yield runner, alive
        finally:
            if runner is not None:
                runner.close()
            rclpy.try_shutdown()
            supervisor.stop()
            supervisor.restore_signal_handlers()
