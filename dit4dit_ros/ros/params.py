"""Declaring node parameters with descriptions and ranges in one line each (what `ros2 param describe`
shows, and what a params file is validated against)."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


def declare(node: Node, name: str, default, description: str, *, low=None, high=None, read_only: bool = False):
    """Declare ``name`` on ``node`` and return its value (from the params file or overrides, else default).

    ``low``/``high`` set an inclusive range (float or int, after the default's type); values outside it
    are refused by rclpy at start-up and on ``set_parameters``.
    """
    if node.has_parameter(name):  # declared by an earlier configure of a lifecycle node
        return node.get_parameter(name).value
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if low is not None and high is not None:
        if isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high))]
        elif isinstance(default, int) and not isinstance(default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            raise TypeError(f"parameter {name}: a range needs a float or int default")
    return node.declare_parameter(name, default, descriptor).value
