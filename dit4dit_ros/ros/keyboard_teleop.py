"""keyboard_teleop: jog the G1's arms from a terminal and record the demonstrations.

    dit4dit-launch policy:=none record:=true          # terminal 1: sim, bridge, task server, recorder
    .venv/lib/dit4dit_ros/keyboard_teleop             # terminal 2 (ros2 run dit4dit_ros keyboard_teleop)

Publishes the targets as two-point ``action_chunk``s (trajectory_msgs/JointTrajectory, G1 tabletop action
names, like the scripted expert) at ``rate`` Hz, starting from the measured ``joint_states``: the controller
bridge rate-limits and checks them as it does the policy's. ``R`` starts an episode on the recorder
(``recorder/start``, task and instruction from the ``task`` parameter, source "teleop") and stops it again
keeping the bag; ``X`` discards it. Keys are read from the terminal this runs in (raw mode, restored at exit).
"""

from __future__ import annotations

import json
import select
import sys
import termios
import threading
import tty

from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from dit4dit_ros import g1
from dit4dit_ros.interfaces import hold_chunk
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import COMMAND_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node
from dit4dit_ros.srv import StartRecording, StopRecording
from dit4dit_ros.teleop.jogger import HELP, JointJogger


class KeyboardTeleop(Node):
    def __init__(self, keys=None, **kwargs):
        super().__init__("keyboard_teleop", **kwargs)
        self._rate = declare(self, "rate", 20.0, "Target chunks per second", low=1.0, high=100.0)
        self._task = declare(self, "task", "touch_cube", "Task name stored with recorded episodes")
        self._jogger = JointJogger(declare(self, "step", 0.05, "Radians per key press", low=0.001, high=0.5))
        self._lock = threading.Lock()
        self._recording = False
        self._chunks = self.create_publisher(JointTrajectory, "action_chunk", COMMAND_QOS)
        self.create_subscription(JointState, "joint_states", self._on_joint_state, SENSOR_QOS)
        self._start = self.create_client(StartRecording, "recorder/start")
        self._stop = self.create_client(StopRecording, "recorder/stop")
        self.create_timer(1.0 / self._rate, self._publish)
        self._keys = keys  # an iterable of keys (tests); None = the terminal
        threading.Thread(target=self._read_keys, daemon=True).start()
        print(HELP, flush=True)

    def _on_joint_state(self, msg: JointState) -> None:
        with self._lock:
            if self._jogger.targets is None:
                try:
                    self._jogger.start_from(g1.action_state(dict(zip(msg.name, msg.position))))
                except (KeyError, ValueError) as error:
                    self.get_logger().warning(f"joint state unusable: {error}", throttle_duration_sec=5.0)

    def _publish(self) -> None:
        with self._lock:
            targets = None if self._jogger.targets is None else self._jogger.targets.tolist()
        if targets is None:
            return
        self._chunks.publish(hold_chunk(g1.ACTION_NAMES, targets, self.get_clock().now().to_msg(), 1.0 / self._rate))

    def handle_key(self, key: str) -> bool:
        """Apply one key; False when it asks to quit."""
        with self._lock:
            result = self._jogger.press(key)
        if result.command == "quit":
            return False
        if result.command == "record":
            self._toggle_recording()
        elif result.command == "discard":
            self._finish(discard=True)
        elif result.message:
            print(result.message, flush=True)
        return True

    def _toggle_recording(self) -> None:
        if self._recording:
            self._finish(discard=False)
            return
        from dit4dit_ros.sim.tasks import TASKS

        task = TASKS.get(self._task)
        request = StartRecording.Request(task=self._task, instruction=task.instruction if task else self._task,
                                         source="teleop", metadata=json.dumps({"step": self._jogger.step}))
        self._call(self._start, request, lambda r: (setattr(self, "_recording", r.success), print(
            f"recording: {r.message}" if r.success else f"recorder refused: {r.message}", flush=True)))

    def _finish(self, discard: bool) -> None:
        if not self._recording:
            print("not recording", flush=True)
            return
        self._recording = False
        self._call(self._stop, StopRecording.Request(discard=discard, task_success=not discard),
                   lambda r: print(r.message, flush=True))

    def _call(self, client, request, done) -> None:
        if not client.service_is_ready():
            print(f"{client.srv_name} is not available (start the graph with record:=true)", flush=True)
            return
        client.call_async(request).add_done_callback(lambda future: done(future.result()))

    def _read_keys(self) -> None:
        if self._keys is not None:
            for key in self._keys:
                if not self.handle_key(key):
                    break
            return
        if not sys.stdin.isatty():
            self.get_logger().error("keyboard_teleop needs a terminal (stdin is not a tty)")
            return
        saved = termios.tcgetattr(sys.stdin)
        try:
            tty.setcbreak(sys.stdin.fileno())
            while self.context.ok():
                if select.select([sys.stdin], [], [], 0.1)[0] and not self.handle_key(sys.stdin.read(1)):
                    break
        finally:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
        self.context.try_shutdown()


def main(args=None) -> int:
    return run_node(KeyboardTeleop, args)


if __name__ == "__main__":
    raise SystemExit(main())
