"""Running nodes as processes: init, spin, clean shutdown on Ctrl-C / SIGTERM, exit code."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence

import rclpy
import rclpy.logging
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_node(node_factory: Callable[[], Node], args: Sequence[str] | None = None, *, threads: int = 4) -> int:
    """Create one node and spin it until SIGINT/SIGTERM; the body of every node executable's ``main()``.

    ``args`` are the process arguments (``--ros-args --params-file f.yaml -r a:=b ...`` are honoured).
    The signals are this function's, not rclpy's: rclpy's handler shuts the context down at once, after which
    nothing can be published, and a node that drives motors must get its last words out first. So a signal
    only ends the spin; then the node's ``before_shutdown()`` (when it has one) runs with the context still
    valid, and only then is the node destroyed and the context shut down.
    """
    rclpy.init(args=list(sys.argv if args is None else args), signal_handler_options=SignalHandlerOptions.NO)
    node = None
    stop = threading.Event()
    failure: list[BaseException] = []
    try:
        # While the node is being built (a model may take a while to load) a signal interrupts the build.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        try:
            node = node_factory()
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as error:  # a bad parameter, a missing checkpoint: one clear line, exit code 1
            rclpy.logging.get_logger("dit4dit_ros").fatal(f"node failed to start: {error}")
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        if hasattr(node, "start") and not node.start():  # managed nodes: autostart (configure + activate)
            return 1
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)

        def spin() -> None:
            try:
                executor.spin()
            except ExternalShutdownException:
                pass
            except Exception as error:  # noqa: BLE001 - re-raised in the main thread below
                if rclpy.ok():
                    failure.append(error)
            finally:
                stop.set()

        spinner = threading.Thread(target=spin, name="executor", daemon=True)
        spinner.start()
        while not stop.wait(0.2):  # a timed wait: the main thread stays responsive to signals
            pass
        if rclpy.ok() and hasattr(node, "before_shutdown"):
            node.before_shutdown()
        # Then as rclpy's own handler would: the context goes first, which wakes every wait (an action goal's
        # loop, a spin), and only then is the node destroyed.
        rclpy.try_shutdown()
        spinner.join(timeout=5.0)
        if failure:
            raise failure[0]
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
