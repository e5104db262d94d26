"""The recorder node as its installed executable: episodes start, stop and discard through its services; what
it writes is read back with an INDEPENDENT reader (mcap + mcap_ros2, not rosbags) and byte-compared with
what was published."""

import json
import threading
import time

import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String
from std_srvs.srv import Trigger

from conftest import installed_executable, wait_until
from dit4dit_ros.data.episode_writer import EPISODE_KEY, METADATA_TOPIC, OUTCOME_KEY, EpisodeWriter, RecordingError
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.srv import StartRecording, StopRecording


def _read_mcap(bag_dir):
    """{topic: [decoded ROS message, ...]} via the mcap library's own ROS 2 decoder."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (path,) = list(bag_dir.glob("*.mcap"))
    out = {}
    with open(path, "rb") as stream:
        for _schema, channel, _message, decoded in make_reader(
                stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            out.setdefault(channel.topic, []).append(decoded)
    return out


@pytest.fixture
def recorder_system(rclpy_context, spawn, tmp_path):
    out = tmp_path / "bags"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**/recorder": {"ros__parameters": {
        "output_dir": str(out), "topics": ["camera/image_raw", "joint_states", "instruction"]}}}))
    process = spawn([installed_executable("recorder"), "--ros-args", "--params-file", params])
    peer = rclpy.create_node("publisher_peer", context=rclpy_context)
    peer.image_pub = peer.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
    peer.joint_pub = peer.create_publisher(JointState, "joint_states", COMMAND_QOS)
    peer.instruction_pub = peer.create_publisher(String, "instruction", LATCHED_QOS)
    peer.start = peer.create_client(StartRecording, "recorder/start")
    peer.stop = peer.create_client(StopRecording, "recorder/stop")
    peer.discard = peer.create_client(Trigger, "recorder/discard")
    peer.counts = {}  # the recorder's /diagnostics: messages written per topic in the current episode
    peer.create_subscription(DiagnosticArray, "/diagnostics", lambda m: peer.counts.update(
        {kv.key: kv.value for status in m.status if status.name == "/recorder" for kv in status.values}), 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(peer)
    threading.Thread(target=executor.spin, daemon=True).start()
    assert peer.start.wait_for_service(timeout_sec=30), process.output()
    peer.instruction_pub.publish(String(data="touch the red cube with the right hand"))
    # The recorder subscribes once each topic shows up in the graph; wait until all three matched.
    assert wait_until(lambda: peer.image_pub.get_subscription_count() > 0 and peer.joint_pub.get_subscription_count() > 0
                      and peer.instruction_pub.get_subscription_count() > 0, 30), process.output()
    yield peer, out, process
    executor.shutdown()
    peer.destroy_node()


def _call(client, request):
    future = client.call_async(request)
    assert wait_until(future.done, 10)
    return future.result()


def _joint_state(i):
    msg = JointState(name=["left_elbow_joint", "right_elbow_joint"], position=[0.01 * i, -0.01 * i])
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i // 100, (i % 100) * 10_000_000
    return msg


def test_an_episode_is_recorded_byte_for_byte_with_its_metadata(recorder_system):
    peer, out, _ = recorder_system
    started = _call(peer.start, StartRecording.Request(name="ep1", task="touch_cube", instruction="touch it",
                                                       seed=7, source="expert", metadata='{"operator": "ci"}'))
    assert started.success, started.message
    assert _call(peer.start, StartRecording.Request(name="ep2")).success is False  # one episode at a time
    image = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    for i in range(20):
        peer.joint_pub.publish(_joint_state(i))
        peer.image_pub.publish(image)
        time.sleep(0.01)
    # Stop means now: messages still queued in the recorder are not part of the episode. Under load (a full CI
    # run once wrote 8 of 20 after a fixed 0.5 s) the recorder needs longer, so wait until it has written them.
    assert wait_until(lambda: peer.counts.get("count /joint_states") == "20", 15), peer.counts
    stopped = _call(peer.stop, StopRecording.Request(task_success=True, outcome='{"reason": "success"}'))
    assert stopped.success, stopped.message
    assert stopped.path == str(out / "ep1")

    metadata = yaml.safe_load((out / "ep1" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    episode = json.loads(metadata["custom_data"][EPISODE_KEY])
    assert (episode["task"], episode["instruction"], episode["seed"], episode["source"], episode["operator"]) == \
        ("touch_cube", "touch it", 7, "expert", "ci")
    assert json.loads(metadata["custom_data"][OUTCOME_KEY])["success"] is True
    assert metadata["storage_identifier"] == "mcap"

    messages = _read_mcap(out / "ep1")
    assert json.loads(messages[METADATA_TOPIC][0].data)["task"] == "touch_cube"
    joints = messages["/joint_states"]
    # Reliable publisher -> reliable subscription: nothing lost, order kept, values exact.
    assert [round(m.position[0] / 0.01) for m in joints] == list(range(20))
    assert joints[5].header.stamp.sec == 100 and joints[5].header.stamp.nanosec == 50_000_000
    assert len(messages["/camera/image_raw"]) >= 15  # best effort on one machine: allow a few losses
    assert bytes(messages["/camera/image_raw"][0].data) == bytes(range(18))
    # The latched instruction published before the episode is in the bag (transient-local subscription).
    assert [m.data for m in messages["/instruction"]] == ["touch the red cube with the right hand"]


def test_discard_deletes_the_episode_and_stop_without_episode_fails(recorder_system):
    peer, out, _ = recorder_system
    assert _call(peer.start, StartRecording.Request(name="bad_demo", task="touch_cube")).success
    for i in range(5):
        peer.joint_pub.publish(_joint_state(i))
    assert _call(peer.discard, Trigger.Request()).success
    assert not (out / "bad_demo").exists()
    answer = _call(peer.stop, StopRecording.Request())
    assert answer.success is False and "no episode" in answer.message
    bad = _call(peer.start, StartRecording.Request(name="../escape"))
    assert bad.success is False and "plain folder name" in bad.message
    bad = _call(peer.start, StartRecording.Request(name="x", metadata="[1, 2]"))
    assert bad.success is False and "JSON object" in bad.message


def test_stopping_the_recorder_mid_episode_keeps_the_bag(recorder_system):
    peer, out, process = recorder_system
    assert _call(peer.start, StartRecording.Request(name="interrupted", task="touch_cube")).success
    for i in range(10):
        peer.joint_pub.publish(_joint_state(i))
    time.sleep(0.5)
    assert process.stop() == 0
    metadata = yaml.safe_load((out / "interrupted" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert json.loads(metadata["custom_data"][OUTCOME_KEY]) == {"success": False, "reason": "recorder stopped"}
    assert len(_read_mcap(out / "interrupted")["/joint_states"]) == 10


def test_episode_writer_refuses_existing_dirs_and_unknown_types(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RecordingError, match="exists already"):
        EpisodeWriter(tmp_path / "taken", {}, log_time_ns=0)
    writer = EpisodeWriter(tmp_path / "ep", {"task": "t"}, log_time_ns=0)
    with pytest.raises(RecordingError, match="unknown to the typestore"):
        writer.write("/x", "nope_msgs/msg/Nothing", b"\x00\x01\x00\x00", 1)
    writer.close()
    with pytest.raises(RecordingError, match="already closed"):
        writer.close()
