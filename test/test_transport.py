"""A full-size VideoFeatures message (588 tokens x 2048 floats, 4.8 MB) crosses between two processes
over real DDS (loopback discovery only) with every byte intact."""

import sys
import threading

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from conftest import HELPERS, wait_until
from dit4dit_ros.interfaces import msg_to_features
from dit4dit_ros.msg import VideoFeatures
from dit4dit_ros.ros.qos import COMMAND_QOS

sys.path.insert(0, str(HELPERS))
from publish_features import SHAPE, tensor_for  # noqa: E402


def test_full_size_features_cross_processes_intact(rclpy_context, spawn):
    seed, count = 1234, 3
    node = rclpy.create_node("feature_receiver", context=rclpy_context)
    received = []
    lock = threading.Lock()

    def on_features(msg):
        with lock:
            received.append(msg_to_features(msg))

    node.create_subscription(VideoFeatures, "video_features", on_features, COMMAND_QOS)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    publisher = spawn([sys.executable, HELPERS / "publish_features.py", "--seed", seed, "--count", count])
    try:
        assert wait_until(lambda: len(received) >= count, timeout=60), publisher.output()
    finally:
        executor.shutdown()
        node.destroy_node()
    assert publisher.popen.wait(30) == 0, publisher.output()

    for index, features in enumerate(received):
        expected = tensor_for(seed, index)
        assert features.tensor.shape == SHAPE
        assert np.array_equal(features.tensor, expected), f"message {index} differs"
        assert features.stamp_ns == 1_000_000_000 * (index + 1)
        assert len(features.frame_stamps_ns) == 9 and features.frame_stamps_ns[-1] == features.stamp_ns
        assert (features.layer, features.instruction_id) == (17, f"i{index}")
    # A different seed would not pass: the comparison really looks at the payload.
    assert not np.array_equal(received[0].tensor, tensor_for(seed + 1, 0))
