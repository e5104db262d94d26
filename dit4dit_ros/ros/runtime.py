"""Running nodes as processes: init, spin, clean shutdown on Ctrl-C / SIGTERM, exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_node(node_factory: Callable[[], Node], args: Sequence[str] | None = None, *, threads: int = 2) -> int:
    """Create one node and spin it until shutdown; the body of every node executable's ``main()``.

    ``args`` are the process arguments (``--ros-args --params-file f.yaml -r a:=b ...`` are honoured).
    rclpy's signal handlers turn SIGINT/SIGTERM into a context shutdown, which ends the spin.
    """
    rclpy.init(args=list(sys.argv if args is None else args))
    node = None
    try:
        node = node_factory()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
