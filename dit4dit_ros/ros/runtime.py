"""Running nodes as processes: init, spin, clean shutdown on Ctrl-C / SIGTERM, exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
import rclpy.logging
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_node(node_factory: Callable[[], Node], args: Sequence[str] | None = None, *, threads: int = 4) -> int:
    """Create one node and spin it until shutdown; the body of every node executable's ``main()``.

    ``args`` are the process arguments (``--ros-args --params-file f.yaml -r a:=b ...`` are honoured).
    rclpy's signal handlers turn SIGINT/SIGTERM into a context shutdown, which ends the spin.
    """
    rclpy.init(args=list(sys.argv if args is None else args))
    node = None
    try:
        try:
            node = node_factory()
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as error:  # a bad parameter, a missing checkpoint: one clear line, exit code 1
            rclpy.logging.get_logger("dit4dit_ros").fatal(f"node failed to start: {error}")
            return 1
        if hasattr(node, "start") and not node.start():  # managed nodes: autostart (configure + activate)
            return 1
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        try:
            executor.spin()
        except Exception:  # noqa: BLE001
            # SIGINT shuts the context down; an executor between two waits then fails to build its wait set
            # ("context is not valid"): that is a clean shutdown, not an error. Anything else is.
            if rclpy.ok():
                raise
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
