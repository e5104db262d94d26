"""camera_ingest: camera images -> the model's input stream (size, crop and frame rate the model was trained on).

Subscribes  <input_topics[i]>   sensor_msgs/Image  rgb8 | bgr8 | mono8 | rgba8 | bgra8 | mono16 (sensor-data QoS)
Publishes   <output_topics[i]>  sensor_msgs/Image  rgb8 at the model's resolution, stamps and frame ids kept

Size and rate default to the model's (``checkpoint``/``preset``, read from the config only: no weights are
loaded here). A frame that cannot be converted (unknown encoding, truncated data, bad step) is dropped with a
throttled warning and counted in /diagnostics; it never crashes the node. cv_bridge is used where a ROS install
has it (``use_cv_bridge: auto``), else the package's own tested converter (dit4dit_ros.perception.images).
"""

from __future__ import annotations

import time

from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import Image

from dit4dit_ros.inference.loading import model_config
from dit4dit_ros.metrics import LatencyStats, RateMeter
from dit4dit_ros.perception.images import FrameProcessor, FrameRateLimiter, ImageFormatError, image_to_rgb
from dit4dit_ros.ros.managed import FAILURE, OK, SUCCESS, WARN, ManagedNode
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node


def _cv_bridge_converter():
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    bridge = CvBridge()
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")


class _Stream:
    """One input -> output pair and its counters."""

    def __init__(self, node: CameraIngest, index: int, source: str, target: str, rate_hz: float):
        self.node, self.index, self.source = node, index, source
        self.limiter = FrameRateLimiter(rate_hz) if rate_hz > 0 else None
        self.publisher = node.create_lifecycle_publisher(Image, target, SENSOR_QOS)
        self.subscription = node.create_subscription(Image, source, self.on_image, SENSOR_QOS,
                                                     callback_group=node.input_group)
        self.received = self.published = self.rate_dropped = self.bad = 0
        self.last_error = ""
        self.output_rate = RateMeter()
        self.processing = LatencyStats()

    def on_image(self, msg: Image) -> None:
        self.received += 1
        if not self.node.is_active:
            return
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self.limiter is not None and not self.limiter.accept(stamp_ns):
            self.rate_dropped += 1
            return
        start = time.perf_counter()
        try:
            rgb = self.node.to_rgb(msg)
            processed = self.node.processor(rgb)
        except (ImageFormatError, ValueError, TypeError) as error:  # CvBridgeError is a TypeError
            self.bad += 1
            self.last_error = f"{self.source}: {error}"
            self.node.get_logger().warning(f"dropped a frame: {self.last_error}", throttle_duration_sec=2.0)
            return
        height, width, _ = processed.shape
        out = Image(header=msg.header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
        out.data = processed.tobytes()
        self.publisher.publish(out)
        self.published += 1
        self.output_rate.tick()
        self.processing.add(time.perf_counter() - start)


class CameraIngest(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("camera_ingest", **kwargs)
        self._inputs = declare(self, "input_topics", ["camera/image_raw"], "Image topics to ingest", read_only=True)
        self._outputs = declare(self, "output_topics", ["camera/image"],
                                "Processed image topic per input (same order)", read_only=True)
        self._checkpoint = declare(self, "checkpoint", "", "Policy checkpoint whose image size/fps to use "
                                   "(directory or hub id; empty = the preset)", read_only=True)
        self._preset = declare(self, "preset", "tiny", "Model preset when no checkpoint is given", read_only=True)
        self._width = declare(self, "width", 0, "Output width (px; 0 = the model's)", low=0, high=4096)
        self._height = declare(self, "height", 0, "Output height (px; 0 = the model's)", low=0, high=4096)
        self._fps = declare(self, "fps", -1.0, "Output frame rate (Hz of image stamps; -1 = the model's "
                            "training fps, 0 = every frame)", low=-1.0, high=1000.0)
        self._crop = declare(self, "crop", "center", "center: crop to the output aspect ratio, then resize | "
                             "none: resize only (distorts)")
        self._roi = declare(self, "roi", [0, 0, 0, 0], "Region of interest applied first: top, left, height, "
                            "width (all 0 = the whole image)")
        # true/false arrive as booleans, auto as a string: the parameter takes either.
        self._use_cv_bridge = str(self.declare_parameter(
            "use_cv_bridge", "auto", ParameterDescriptor(description="auto | true | false", read_only=True,
                                                         dynamic_typing=True)).value).lower()
        self._streams: list[_Stream] = []

    def on_configure(self, state):
        if len(self._inputs) != len(self._outputs) or not self._inputs:
            self.get_logger().error(f"input_topics {self._inputs} and output_topics {self._outputs} must pair up")
            return FAILURE
        try:
            video = model_config(self._checkpoint, self._preset).video
        except (OSError, ValueError, RuntimeError) as error:
            self.get_logger().error(f"cannot read the model configuration: {error}")
            return FAILURE
        size = (self._height or video.image_size[0], self._width or video.image_size[1])
        fps = float(video.fps) if self._fps < 0 else self._fps
        try:
            roi = tuple(int(v) for v in self._roi)
            self.processor = FrameProcessor(size, crop=self._crop, crop_box=roi if any(roi) else None)
        except (ImageFormatError, ValueError) as error:
            self.get_logger().error(f"bad crop/roi parameters: {error}")
            return FAILURE
        converter = None if self._use_cv_bridge == "false" else _cv_bridge_converter()
        if self._use_cv_bridge == "true" and converter is None:
            self.get_logger().error("use_cv_bridge is true but cv_bridge is not installed")
            return FAILURE
        self._converter_name = "cv_bridge" if converter else "dit4dit_ros.perception.images"
        self.to_rgb = converter or (lambda msg: image_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                                                             msg.data, msg.is_bigendian))
        self._streams = [_Stream(self, i, src, dst, fps) for i, (src, dst) in enumerate(zip(self._inputs, self._outputs))]
        self.get_logger().info(f"{self._inputs} -> {self._outputs}: {size[1]}x{size[0]} rgb8 at "
                               f"{fps:g} Hz ({self._converter_name})")
        return SUCCESS

    def on_cleanup(self, state):
        for stream in self._streams:
            self.destroy_subscription(stream.subscription)
            self.destroy_lifecycle_publisher(stream.publisher)
        self._streams = []
        return SUCCESS

    def diagnostics(self):
        values: dict[str, object] = {}
        bad = 0
        for s in self._streams:
            prefix = f"stream{s.index}_"
            values.update({prefix + "input": s.source, prefix + "received": s.received,
                           prefix + "published": s.published, prefix + "rate_dropped": s.rate_dropped,
                           prefix + "bad_frames": s.bad, prefix + "output_rate_hz": f"{s.output_rate.rate():.2f}",
                           **s.processing.summary(prefix + "processing")})
            bad += s.bad
        if bad:
            last = next(s.last_error for s in reversed(self._streams) if s.last_error)
            return WARN, f"{bad} frame(s) dropped as unreadable; last: {last}", values
        return OK, "ok", values


def main(args=None) -> int:
    return run_node(CameraIngest, args)


if __name__ == "__main__":
    raise SystemExit(main())
