"""The QoS profiles every node of the graph uses, in one place so that publishers and subscribers match."""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Camera images and other high-rate sensor streams: best effort, keep the last 5 (rclpy's sensor-data
# profile). A RELIABLE subscriber never matches a best-effort publisher, so subscribers use this too.
SENSOR_QOS: QoSProfile = qos_profile_sensor_data

# Commands, action chunks, features: every message counts, keep a short queue.
COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# Latched state (current instruction, e-stop, task status): late joiners get the last value.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
