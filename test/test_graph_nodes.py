"""The graph's managed nodes, each started alone as its installed executable and driven by a probe node in the
test process: camera_ingest (conversion, crop/resize, frame-rate limit, bad frames), controller_bridge
(enable, limits, rejection of bad chunks, e-stop, dry run) and the lifecycle of video_encoder."""

import os
import threading
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from conftest import call_service, installed_executable, wait_until
from dit4dit_ros import g1
from dit4dit_ros.control.safety import JointLimits
from dit4dit_ros.msg import VideoFeatures
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS


class Probe:
    """A node in the test process, spun on a thread of its own; keeps the latest /diagnostics per node."""

    def __init__(self, context):
        self.node = rclpy.create_node("probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.diagnostics: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = (status.level, status.message, {kv.key: kv.value for kv in status.values})

    def diag(self, name: str) -> dict[str, str]:
        return self.diagnostics.get(name, (None, "", {}))[2]

    def fresh_diag(self, name: str, timeout: float = 10.0) -> tuple[bytes, str, dict[str, str]]:
        """The next /diagnostics status of ``name`` (not one published before this call)."""
        self.diagnostics.pop(name, None)
        assert wait_until(lambda: name in self.diagnostics, timeout), f"no /diagnostics from {name}"
        return self.diagnostics[name]

    def now(self) -> Time:
        return self.node.get_clock().now().to_msg()

    def call(self, service_type, name: str, request, timeout: float = 30.0):
        return call_service(self.node, service_type, name, request, timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(5)
        self.node.destroy_node()


@pytest.fixture
def probe(rclpy_context):
    probe = Probe(rclpy_context)
    yield probe
    probe.close()


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _wait_active(probe: Probe, name: str, process, timeout: float = 30.0) -> None:
    assert wait_until(lambda: probe.diag(name).get("lifecycle_state") == "active" or process.popen.poll() is not None,
                      timeout), process.output()
    assert process.popen.poll() is None, process.output()


# -- camera_ingest --------------------------------------------------------------------------------------------
_BPP = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "mono8": 1}


def _image(rgb_or_gray: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "head_camera") -> Image:
    """A sensor_msgs/Image of an (H, W, 3) RGB array (or (H, W) gray for mono8) in ``encoding``."""
    if encoding == "bgr8":
        pixels = rgb_or_gray[..., ::-1]
    elif encoding == "rgba8":
        pixels = np.concatenate([rgb_or_gray, np.full(rgb_or_gray.shape[:2] + (1,), 77, np.uint8)], axis=2)
    else:
        pixels = rgb_or_gray
    height, width = pixels.shape[:2]
    msg = Image(header=Header(frame_id=frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
                step=width * _BPP[encoding])
    msg.header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def _two_colour_frame(left, right, margin) -> np.ndarray:
    """64x48: 8-px margins (cropped away by the centre crop to 48x48), then a left and a right half."""
    frame = np.empty((48, 64) + np.shape(margin), np.uint8)
    frame[:] = margin
    frame[:, 8:32] = left
    frame[:, 32:56] = right
    return frame


# Its burst of 60 best-effort frames lost 25 of them once in a full run (2026-11-21, 35 of 60 received; 60/60
# alone). One rerun; a repeated failure is a real one.
@pytest.mark.flaky(reruns=1)
def test_camera_ingest_converts_crops_and_limits_the_rate(probe, spawn):
    ingest = spawn([installed_executable("camera_ingest"), "--ros-args", "-p", "diagnostics_period:=0.2"])
    outputs: list[Image] = []
    probe.node.create_subscription(Image, "camera/image", outputs.append, SENSOR_QOS)
    raw = probe.node.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
    _wait_active(probe, "/camera_ingest", ingest)
    assert wait_until(lambda: raw.get_subscription_count() == 1, 10)
    next_stamp = [100 * 1_000_000_000]

    def convert(frame: np.ndarray, encoding: str) -> Image:
        """Publish until one comes out (best effort may drop one); stamps 0.25 s apart pass the 30 Hz limit."""
        deadline = time.monotonic() + 15
        sent = set()
        while time.monotonic() < deadline:
            next_stamp[0] += 250_000_000
            sent.add(next_stamp[0])
            raw.publish(_image(frame, encoding, next_stamp[0]))
            if wait_until(lambda: any(_stamp_ns(m.header) in sent for m in outputs), 0.3):
                return next(m for m in outputs if _stamp_ns(m.header) in sent)
        raise AssertionError(f"no output for {encoding}:\n{ingest.output()}")

    blue, brown, red = (0, 0, 255), (200, 100, 50), (255, 0, 0)
    cases = [("bgr8", _two_colour_frame(blue, brown, red), blue, brown),
             ("rgb8", _two_colour_frame(brown, blue, red), brown, blue),
             ("rgba8", _two_colour_frame((10, 200, 30), (250, 250, 5), red), (10, 200, 30), (250, 250, 5)),
             ("mono8", _two_colour_frame(30, 220, 255), (30, 30, 30), (220, 220, 220))]
    for encoding, frame, left, right in cases:
        out = convert(frame, encoding)
        assert (out.encoding, out.width, out.height, out.step, len(out.data)) == ("rgb8", 32, 32, 96, 32 * 32 * 3)
        assert out.header.frame_id == "head_camera"
        pixels = np.frombuffer(bytes(out.data), np.uint8).reshape(32, 32, 3)
        # 48 -> 32 columns: output columns 0..14 see the left half only, 17..31 the right half only; no red
        # margin survives the centre crop, and the channels are in RGB order whatever came in.
        assert (pixels[:, :15] == left).all(), (encoding, pixels[0])
        assert (pixels[:, 17:] == right).all(), (encoding, pixels[0])
        assert not (pixels == red).all(axis=2).any()

    # Unreadable frames are dropped and counted; the node lives on and converts the next good frame.
    # The node's own count: best effort may have dropped a frame on the way to this probe.
    before = int(probe.fresh_diag("/camera_ingest")[2]["stream0_published"])
    bad_stamps = set()
    weird = _image(np.zeros((48, 64, 3), np.uint8), "rgb8", 0)
    weird.encoding = "yuv422_weird"
    truncated = _image(np.zeros((48, 64, 3), np.uint8), "rgb8", 0)
    truncated.data = bytes(100)
    for bad in (weird, truncated, weird, truncated):
        next_stamp[0] += 250_000_000
        bad.header.stamp = Time(sec=next_stamp[0] // 1_000_000_000, nanosec=next_stamp[0] % 1_000_000_000)
        bad_stamps.add(next_stamp[0])
        raw.publish(bad)
        time.sleep(0.05)
    assert wait_until(lambda: int(probe.diag("/camera_ingest").get("stream0_bad_frames", 0)) >= 2, 10), \
        (probe.diagnostics.get("/camera_ingest"), ingest.output())
    level, message, values = probe.fresh_diag("/camera_ingest")
    assert level == DiagnosticStatus.WARN, (level, message)
    assert "dropped as unreadable" in message and ("yuv422_weird" in message or "truncated" in message), message
    assert int(values["stream0_published"]) == before
    assert "unsupported image encoding 'yuv422_weird'" in ingest.output()
    assert not any(_stamp_ns(m.header) in bad_stamps for m in outputs)
    assert ingest.popen.poll() is None
    convert(np.zeros((48, 64), np.uint8), "mono8")

    # The frame-rate limit, on stamps: 60 frames stamped at 60 Hz come out at 30 Hz (tiny preset: fps 30).
    outputs.clear()
    start = next_stamp[0] + 1_000_000_000
    stamps = [start + round(k * 1e9 / 60) for k in range(60)]
    frame = np.full((48, 64, 3), 128, np.uint8)
    before = probe.fresh_diag("/camera_ingest")[2]
    for stamp in stamps:
        raw.publish(_image(frame, "rgb8", stamp))
        time.sleep(0.008)
    time.sleep(0.5)
    after = probe.fresh_diag("/camera_ingest")[2]
    received, published, rate_dropped = (int(after[f"stream0_{k}"]) - int(before[f"stream0_{k}"])
                                         for k in ("received", "published", "rate_dropped"))
    assert received >= 50, (received, after)  # the input got through (best effort may lose a few)
    # One frame per 1/30 s slot of the 59/60 s the stamps span, whichever frames the transport lost.
    assert 28 <= published <= 31 and published + rate_dropped == received, (published, rate_dropped, received)
    out = [stamps.index(_stamp_ns(m.header)) for m in outputs if _stamp_ns(m.header) in stamps]
    assert len(out) >= 25 and out == sorted(out), out
    assert np.mean(np.diff(out) == 2) >= 0.8, out  # every other frame
    period = (stamps[out[-1]] - stamps[out[0]]) / (len(out) - 1) / 1e9
    assert period == pytest.approx(1 / 30, rel=0.12), period


# cv_bridge's Python API as far as camera_ingest uses it: CvBridgeError is a TypeError (vision_opencv's
# cv_bridge/core.py); an unknown encoding raises it, and a short buffer makes numpy raise TypeError.
FAKE_CV_BRIDGE = """
import numpy as np


class CvBridgeError(TypeError):
    pass


class CvBridge:
    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        if msg.encoding != "rgb8":
            raise CvBridgeError(f"Unrecognized image encoding [{msg.encoding}]")
        return np.ndarray(shape=(msg.height, msg.width, 3), dtype=np.uint8, buffer=bytes(msg.data))
"""


def test_camera_ingest_survives_bad_frames_with_cv_bridge(probe, spawn, tmp_path):
    (tmp_path / "cv_bridge").mkdir()
    (tmp_path / "cv_bridge" / "__init__.py").write_text(FAKE_CV_BRIDGE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    # use_cv_bridge auto (the default) takes cv_bridge when it can be imported, as on a ROS install.
    ingest = spawn([installed_executable("camera_ingest"), "--ros-args", "-p", "diagnostics_period:=0.2"], env=env)
    outputs: list[Image] = []
    probe.node.create_subscription(Image, "camera/image", outputs.append, SENSOR_QOS)
    raw = probe.node.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
    _wait_active(probe, "/camera_ingest", ingest)
    assert "(cv_bridge)" in ingest.output()
    assert wait_until(lambda: raw.get_subscription_count() == 1, 10)
    weird = _image(np.zeros((48, 64, 3), np.uint8), "rgb8", 10**9)
    weird.encoding = "yuv422_weird"
    for k in range(3):
        weird.header.stamp.sec = 1 + k
        raw.publish(weird)
        time.sleep(0.1)
    for k in range(20):  # the node still converts good frames
        raw.publish(_image(np.full((48, 64, 3), 7, np.uint8), "rgb8", (10 + k) * 10**9))
        if wait_until(lambda: outputs or ingest.popen.poll() is not None, 0.3):
            break
    assert ingest.popen.poll() is None, ingest.output()
    assert outputs and int(probe.fresh_diag("/camera_ingest")[2]["stream0_bad_frames"]) >= 1


def test_camera_ingest_takes_use_cv_bridge_false(spawn, ros_domain):
    ingest = spawn([installed_executable("camera_ingest"), "--ros-args", "-p", "use_cv_bridge:=false"])
    assert ingest.wait_for_output("rgb8 at 30 Hz (dit4dit_ros.perception.images)", 20), ingest.output()
    assert ingest.popen.poll() is None


# -- controller_bridge ----------------------------------------------------------------------------------------
READY = np.array([g1.READY_POSE.get(name, 0.0) for name in g1.ACTION_NAMES])  # grips 0: fingers straight


def _joint_state(probe: Probe) -> JointState:
    positions = {name: g1.READY_POSE.get(name, 0.0) for name in g1.ALL_JOINTS}  # fingers 0: grip 0 (open)
    return JointState(header=Header(stamp=probe.now()), name=list(positions), position=list(positions.values()))


def _chunk(probe: Probe, target, points: int = 300) -> JointTrajectory:
    """``points`` steps every 1/30 s of one constant target (16 values, ACTION_NAMES order), stamped now."""
    msg = JointTrajectory(header=Header(stamp=probe.now()), joint_names=list(g1.ACTION_NAMES))
    for k in range(points):
        sec, frac = divmod(k / 30, 1.0)
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in target],
                                               time_from_start=Duration(sec=int(sec), nanosec=int(frac * 1e9))))
    return msg


def _bridge(spawn, *params):
    return spawn([installed_executable("controller_bridge"), "--ros-args", "-p", "output:=sim",
                  "-p", "control_rate:=50.0", "-p", "max_step:=0.03", "-p", "max_velocity:=2.0",
                  "-p", "watchdog_timeout:=10.0", "-p", "damp_after:=30.0", "-p", "diagnostics_period:=0.2",
                  *[arg for p in params for arg in ("-p", p)]])


# Its command-rate floor is load-sensitive: 4.8 commands/s once in a full CI run late on 2026-11-21 (with the
# heavier data-loop tests before it), 50/s alone. One rerun; a repeated failure is a real one.
@pytest.mark.flaky(reruns=1)
def test_controller_bridge_enable_limits_rejection_and_estop(probe, spawn):
    bridge = _bridge(spawn, "require_enable:=true", "dry_run:=false")
    commands: list[JointState] = []
    estops: list[bool] = []
    probe.node.create_subscription(JointState, "joint_commands", commands.append, COMMAND_QOS)
    probe.node.create_subscription(Bool, "estop", lambda m: estops.append(m.data), LATCHED_QOS)
    chunks = probe.node.create_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
    joints = probe.node.create_publisher(JointState, "joint_states", SENSOR_QOS)
    probe.node.create_timer(0.02, lambda: joints.publish(_joint_state(probe)))
    _wait_active(probe, "/controller_bridge", bridge)
    assert wait_until(lambda: chunks.get_subscription_count() == 1
                      and probe.node.count_publishers("/joint_commands") == 1, 10)
    limits = JointLimits.for_g1_action()
    target = READY.copy()
    target[g1.ACTION_NAMES.index("left_elbow_joint")] += 0.2
    target[g1.ACTION_NAMES.index("right_shoulder_pitch_joint")] -= 0.15
    target[g1.ACTION_NAMES.index("right_grip")] = 0.5
    assert not limits.outside(target)

    # Not enabled: a valid chunk and joint states, but nothing is commanded.
    chunks.publish(_chunk(probe, target))
    assert wait_until(lambda: int(probe.diag("/controller_bridge").get("chunks_received", 0)) >= 1, 10)
    time.sleep(1.0)
    assert commands == []
    values = probe.fresh_diag("/controller_bridge")[2]
    assert values["mode"] == "disabled" and values["commands"] == "0"
    assert "disabled" in values["rejected_reasons"]

    # Enabled: commands hold the measured pose, then follow a chunk, rate-limited, at the control rate.
    answer = probe.call(SetBool, "/controller_bridge/enable", SetBool.Request(data=True))
    assert answer.success, answer.message
    assert wait_until(lambda: len(commands) >= 5, 10), bridge.output()
    np.testing.assert_allclose(commands[0].position, READY, atol=1e-9)  # held where the arm is
    chunks.publish(_chunk(probe, target))
    assert wait_until(lambda: np.allclose(commands[-1].position, target, atol=1e-9), 10), \
        (commands[-1].position, bridge.output())
    time.sleep(0.5)
    received = list(commands)
    assert all(list(c.name) == list(g1.ACTION_NAMES) for c in received)
    positions = np.array([c.position for c in received])
    assert np.isfinite(positions).all()
    assert [limits.outside(p) for p in positions if limits.outside(p)] == []
    steps = np.abs(np.diff(positions, axis=0)).max(axis=1)
    assert steps.max() <= 0.03 + 1e-9  # min(max_velocity / control_rate, max_step) = min(0.04, 0.03)
    assert steps.max() == pytest.approx(0.03)  # the grip (0 -> 0.5) moved at the limit
    assert (steps > 0.02).sum() >= 10  # 0.5 in steps of 0.03: 17 ticks
    times = np.array([_stamp_ns(c.header) for c in received]) / 1e9
    rate = (len(times) - 1) / (times[-1] - times[0])
    # control_rate 50 Hz; on 2 loaded cores (a previous test's processes still exiting) the wall-clock timer was seen
    # starved to 14.5/s once in CI: the floor only says commands flow; bench/bench_graph.py measures the rate.
    assert 10 <= rate <= 60, rate

    # A chunk with NaN (malformed) and one far outside the joint ranges: both rejected, the command holds.
    before = probe.fresh_diag("/controller_bridge")[2]
    nan_target = target.copy()
    nan_target[3] = float("nan")
    far_target = target.copy()
    far_target[g1.ACTION_NAMES.index("left_elbow_joint")] = 5.0
    held_from = len(commands)
    chunks.publish(_chunk(probe, nan_target))
    chunks.publish(_chunk(probe, far_target))
    assert wait_until(lambda: int(probe.diag("/controller_bridge").get("chunks_rejected", 0))
                      == int(before["chunks_rejected"]) + 1
                      and int(probe.diag("/controller_bridge").get("malformed_chunks", 0))
                      == int(before["malformed_chunks"]) + 1, 10), probe.diagnostics.get("/controller_bridge")
    level, message, values = probe.fresh_diag("/controller_bridge")
    assert "out_of_range" in values["rejected_reasons"] and level == DiagnosticStatus.WARN, (level, values)
    assert wait_until(lambda: len(commands) >= held_from + 25, 5)
    np.testing.assert_allclose([c.position for c in commands[held_from:]], [target] * (len(commands) - held_from),
                               atol=1e-9)
    assert "malformed chunk rejected: non-finite position nan for left_elbow_joint" in bridge.output()

    # E-stop: latched on the estop topic (a late joiner reads it too); commands stop moving; chunks are ignored.
    answer = probe.call(SetBool, "/controller_bridge/estop", SetBool.Request(data=True))
    assert answer.success, answer.message
    assert wait_until(lambda: estops[-1:] == [True], 5)
    late: list[bool] = []
    probe.node.create_subscription(Bool, "estop", lambda m: late.append(m.data), LATCHED_QOS)
    assert wait_until(lambda: late == [True], 5)
    assert wait_until(lambda: probe.diag("/controller_bridge").get("mode") == "estop", 5)
    stopped_from = len(commands)
    chunks.publish(_chunk(probe, READY + 0.05 * (np.arange(16) % 2)))
    assert wait_until(lambda: len(commands) >= stopped_from + 25, 5)
    after = np.array([c.position for c in commands[stopped_from + 3:]])  # + 3: any still in flight
    assert (after == after[0]).all(), "commands moved during the e-stop"
    np.testing.assert_allclose(after[0], READY, atol=1e-9)  # damped: the measured pose
    level, message, values = probe.fresh_diag("/controller_bridge")
    assert (level, message, values["mode"]) == (DiagnosticStatus.ERROR, "E-STOP engaged", "estop")
    assert values["estops"] == "1" and "estop" in values["rejected_reasons"]
    refused = probe.call(SetBool, "/controller_bridge/enable", SetBool.Request(data=True))
    assert not refused.success and "e-stop" in refused.message
    assert bridge.stop() == 0, bridge.output()


def test_controller_bridge_dry_run_never_publishes(probe, spawn):
    bridge = _bridge(spawn, "require_enable:=false", "dry_run:=true")
    commands: list[JointState] = []
    probe.node.create_subscription(JointState, "joint_commands", commands.append, COMMAND_QOS)
    chunks = probe.node.create_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
    joints = probe.node.create_publisher(JointState, "joint_states", SENSOR_QOS)
    probe.node.create_timer(0.02, lambda: joints.publish(_joint_state(probe)))
    _wait_active(probe, "/controller_bridge", bridge)
    assert wait_until(lambda: chunks.get_subscription_count() == 1
                      and probe.node.count_publishers("/joint_commands") == 1, 10)  # it could publish
    target = READY + 0.1 * (np.arange(16) % 2)
    chunks.publish(_chunk(probe, target))
    # "commands" counts the ticks that would have published. Its rate is load-sensitive (a CI run counted fewer than
    # 50 in 10 s once), so the floor only says the control loop ran while nothing reached the topic.
    assert wait_until(lambda: int(probe.diag("/controller_bridge").get("commands", 0)) >= 20, 30), \
        probe.diagnostics.get("/controller_bridge")
    values = probe.diag("/controller_bridge")
    assert values["dry_run"] == "True" and values["chunks_rejected"] == "0" and values["mode"] == "running"
    assert commands == []
    assert "DRY RUN" in bridge.output()


# -- lifecycle -------------------------------------------------------------------------------------------------
def _state(probe: Probe, node: str) -> int:
    return probe.call(GetState, f"/{node}/get_state", GetState.Request()).current_state.id


def _transition(probe: Probe, node: str, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return probe.call(ChangeState, f"/{node}/change_state", request, timeout=90).success


def test_video_encoder_lifecycle(probe, spawn):
    encoder = spawn([installed_executable("video_encoder"), "--ros-args", "-p", "autostart:=false",
                     "-p", "rate:=20.0", "-p", "default_instruction:=touch the red cube"])
    broken = spawn([installed_executable("video_encoder"), "--ros-args", "-r", "__node:=broken_encoder",
                    "-p", "autostart:=false", "-p", "checkpoint:=/nonexistent/policy"])
    features: list[VideoFeatures] = []
    probe.node.create_subscription(VideoFeatures, "video_features", features.append, COMMAND_QOS)
    images = probe.node.create_publisher(Image, "camera/image", SENSOR_QOS)

    assert _state(probe, "video_encoder") == State.PRIMARY_STATE_UNCONFIGURED, encoder.output()
    assert "autostart is false" in encoder.output()
    assert _transition(probe, "video_encoder", Transition.TRANSITION_CONFIGURE), encoder.output()
    assert _state(probe, "video_encoder") == State.PRIMARY_STATE_INACTIVE
    assert "model untrained:tiny:seed0 loaded" in encoder.output()

    # Inactive: frames are taken in, but no features go out.
    assert wait_until(lambda: images.get_subscription_count() >= 1, 10)
    stamp_ns = 1_234_567_890_123
    frame = _image(np.full((32, 32, 3), 90, np.uint8), "rgb8", stamp_ns)
    for _ in range(5):
        images.publish(frame)
        time.sleep(0.1)
    time.sleep(1.0)
    assert features == []

    assert _transition(probe, "video_encoder", Transition.TRANSITION_ACTIVATE), encoder.output()
    assert _state(probe, "video_encoder") == State.PRIMARY_STATE_ACTIVE
    assert wait_until(lambda: features, 20), encoder.output()
    msg = features[0]
    assert _stamp_ns(msg.header) == stamp_ns and [s.sec * 10**9 + s.nanosec for s in msg.frame_stamps] == [stamp_ns]
    assert msg.model_id == "untrained:tiny:seed0" and list(msg.shape) == [1, 2, 4, 4, 32] and msg.dtype == "float32"
    time.sleep(0.5)
    assert len(features) == 1  # one frame, encoded once

    # A checkpoint that does not exist: configure fails, the node stays unconfigured and says why.
    assert _state(probe, "broken_encoder") == State.PRIMARY_STATE_UNCONFIGURED
    assert not _transition(probe, "broken_encoder", Transition.TRANSITION_CONFIGURE)
    assert _state(probe, "broken_encoder") == State.PRIMARY_STATE_UNCONFIGURED
    assert "cannot load the policy" in broken.output() and "/nonexistent/policy" in broken.output()
    assert broken.popen.poll() is None  # a failed transition is not a crash
