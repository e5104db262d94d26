"""Test helper (a separate process): publish N VideoFeatures messages whose content the receiver can
regenerate from the seed, once a subscriber has matched."""

import argparse
import sys
import time

import numpy as np
import rclpy

from dit4dit_ros.interfaces import features_to_msg
from dit4dit_ros.msg import VideoFeatures
from dit4dit_ros.ros.qos import COMMAND_QOS

SHAPE = (588, 2048)


def tensor_for(seed: int, index: int) -> np.ndarray:
    return np.random.default_rng([seed, index]).standard_normal(SHAPE, dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--topic", default="video_features")
    options = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("feature_publisher")
    publisher = node.create_publisher(VideoFeatures, options.topic, COMMAND_QOS)
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print("no subscriber matched", flush=True)
            return 1
        time.sleep(0.02)
    for index in range(options.count):
        stamp = 1_000_000_000 * (index + 1)
        msg = features_to_msg(tensor_for(options.seed, index), stamp_ns=stamp,
                              frame_stamps_ns=[stamp - 33_333_333 * k for k in range(8, -1, -1)],
                              frame_id="head_camera", model_id="test", instruction_id=f"i{index}",
                              layer=17, flow_timestep=0.995)
        publisher.publish(msg)
        print(f"published {index}", flush=True)
        time.sleep(0.1)
    # Stay until the reliable writer has delivered everything (or the test stops us).
    publisher.wait_for_all_acked(rclpy.duration.Duration(seconds=20))
    print("all acked", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
