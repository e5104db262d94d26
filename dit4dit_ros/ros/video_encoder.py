"""video_encoder: System 2 of the policy. Keeps the window of recent camera frames and, at its own rate, runs
the video DiT's partial forward pass (blocks 0..k at the fixed flow time) and publishes the block-k features.

Subscribes  camera/image    sensor_msgs/Image          the processed stream of camera_ingest (rgb8, model size)
            instruction     std_msgs/String (latched)  the task server's current instruction ("" = no task)
Publishes   video_features  dit4dit_ros/VideoFeatures  stamp = the newest frame's stamp (the observation time)

The instruction's embedding is computed once per instruction (cached). Without an instruction nothing is
published (the policy is always language-conditioned). The model runs on a worker thread (InferenceWorker).
"""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String

from dit4dit_ros.inference.buffers import FrameWindow
from dit4dit_ros.interfaces import features_to_msg, time_to_ns
from dit4dit_ros.metrics import LatencyStats, RateMeter
from dit4dit_ros.msg import VideoFeatures
from dit4dit_ros.ros.managed import ERROR, FAILURE, OK, SUCCESS, WARN
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.policy_node import PolicyNode
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node


class VideoEncoder(PolicyNode):
    job_description = "feature extraction"

    def __init__(self, **kwargs):
        super().__init__("video_encoder", noise="feature", rate=5.0, rate_description="Feature extractions",
                         max_rate=100.0, **kwargs)
        self._observed = declare(self, "observed_frames", 1, "Frames in the window fed to the video DiT (the "
                                 "model was trained with 1)", low=1, high=64, read_only=True)
        self._default_instruction = declare(self, "default_instruction", "",
                                            "Instruction to use until the task server sends one (empty = wait)")
        self._window = FrameWindow(self._observed)
        self._pending_instruction: str | None = self._default_instruction or None
        self._last_encoded_stamp = -1
        self.frames_received = self.frames_bad = self.published = self.no_new_frame = self.no_instruction = 0
        self._rate_meter = RateMeter()
        self._inference = LatencyStats()
        self._age = LatencyStats()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def on_configure(self, state):
        from dit4dit_ros.inference.runtime import VideoEncoderRuntime

        start = time.perf_counter()
        policy = self.load_policy()
        if policy is None:
            return FAILURE
        self._runtime = VideoEncoderRuntime(policy, seed=self._seed)
        self._features_pub = self.lifecycle_publisher(VideoFeatures, "video_features", COMMAND_QOS)
        self.subscribe(Image, "camera/image", self._on_image, SENSOR_QOS)
        self.subscribe(String, "instruction", self._on_instruction, LATCHED_QOS)
        self.start_worker(self._encode_once)
        self.get_logger().info(f"model {self._model_id} loaded in {time.perf_counter() - start:.1f}s; "
                               f"{self._rate:g} Hz, window {self._observed} frame(s) of "
                               f"{self._runtime.image_size[1]}x{self._runtime.image_size[0]}")
        return SUCCESS

    # -- inputs -------------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        height, width = self._runtime.image_size
        if msg.encoding != "rgb8" or msg.height != height or msg.width != width or len(msg.data) != height * width * 3:
            self.frames_bad += 1
            self._last_error = (f"frame {msg.width}x{msg.height} {msg.encoding}; the model takes {width}x{height} "
                                "rgb8 (run camera_ingest with the same checkpoint)")
            self.get_logger().warning(self._last_error, throttle_duration_sec=5.0)
            return
        frame = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, width, 3)
        self._window.add(time_to_ns(msg.header.stamp), frame)
        self.frames_received += 1

    def _on_instruction(self, msg: String) -> None:
        self._pending_instruction = msg.data.strip() or self._default_instruction
        self.get_logger().info(f"instruction: {self._pending_instruction!r}")

    # -- the worker ---------------------------------------------------------------------------------------
    def _encode_once(self) -> None:
        if not self.is_active:
            return
        if self._pending_instruction is not None:  # embed on the worker: a large text encoder takes a while
            self._instruction_id = self._runtime.set_instruction(self._pending_instruction)
            self._pending_instruction = None
        if not self._runtime.instruction:
            self.no_instruction += 1
            return
        snapshot = self._window.snapshot()
        if snapshot is None or snapshot[0][-1] == self._last_encoded_stamp:
            self.no_new_frame += 1
            return
        stamps, frames = snapshot
        features, seconds = self._runtime.encode(frames)
        msg = features_to_msg(features, stamp_ns=stamps[-1], frame_stamps_ns=stamps, frame_id="",
                              model_id=self._model_id, instruction_id=self._instruction_id,
                              layer=self._runtime.config.feature_layer,
                              flow_timestep=self._runtime.config.feature_timestep)
        self._features_pub.publish(msg)
        self._last_encoded_stamp = stamps[-1]
        self.published += 1
        self._rate_meter.tick()
        self._inference.add(seconds)
        self._age.add((self.get_clock().now().nanoseconds - stamps[-1]) / 1e9)

    def diagnostics(self):
        values = {"model_id": self._model_id, "rate_hz": f"{self._rate_meter.rate():.2f}",
                  "published": self.published, "frames_received": self.frames_received,
                  "frames_bad": self.frames_bad, "window_fill": f"{len(self._window)}/{self._observed}",
                  "skipped_busy": self.worker_skipped(), "no_new_frame": self.no_new_frame,
                  "waiting_for_instruction": self.no_instruction, "errors": self._errors,
                  "instruction": self._runtime.instruction if self._runtime else "",
                  **self._inference.summary("inference"), **self._age.summary("feature_age")}
        if self._errors:
            return ERROR, self._last_error, values
        if self.frames_bad:
            return WARN, self._last_error, values
        return OK, "ok", values


def main(args=None) -> int:
    return run_node(VideoEncoder, args)


if __name__ == "__main__":
    raise SystemExit(main())
