"""Waiting until a graph is ready: every managed node reports the lifecycle state ACTIVE (models loaded,
outputs on). What the launcher does before it sends a goal, and what tests and benchmarks wait for."""

from __future__ import annotations

import time

from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rclpy.node import Node


def wait_until_active(node: Node, targets: list[str], timeout: float) -> list[str]:
    """Block until every target (fully qualified node name) is ACTIVE or ``timeout`` passes; returns the targets
    that are not active. ``node`` must be spun by another thread (e.g. TaskCommander's)."""
    deadline = time.monotonic() + timeout
    # One client per target for the whole wait: a new client must be discovered again (up to seconds), and a
    # node that is still loading its model answers late, not never.
    clients = {t: node.create_client(GetState, f"{t.rstrip('/')}/get_state") for t in targets}
    futures: dict[str, object] = {}
    pending = set(targets)
    try:
        while pending and time.monotonic() < deadline:
            for target in sorted(pending):
                future = futures.get(target)
                if future is None:
                    if clients[target].service_is_ready():
                        futures[target] = clients[target].call_async(GetState.Request())
                elif future.done():
                    del futures[target]
                    result = future.result()
                    if result is not None and result.current_state.id == State.PRIMARY_STATE_ACTIVE:
                        pending.discard(target)
            time.sleep(0.05)
    finally:
        for client in clients.values():
            node.destroy_client(client)
    return sorted(pending)
