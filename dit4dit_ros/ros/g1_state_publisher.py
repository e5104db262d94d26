"""g1_state_publisher: the real G1's LowState (and hand states) -> sensor_msgs/JointState by MJCF joint name.

Subscribes  lowstate            unitree_hg/LowState  500 Hz from the robot (rt/lowstate)
            dex3/<side>/state   unitree_hg/HandState (hands:=dex3)
            inspire/state, dex1/<side>/state   unitree_go/MotorStates (hands:=inspire | dex1)
Publishes   joint_states        sensor_msgs/JointState  at `rate` Hz: the variant's body joints, the Dex3 finger
                                joints, or left_grip/right_grip for hands that report no finger joints
            imu                 sensor_msgs/Imu   the pelvis IMU (orientation w,x,y,z -> x,y,z,w)

What the simulation node's joint_states are to the graph (the planner's proprioception, the bridge's measured
pose, the recorder), for the robot. Samples with a NaN or the wrong number of motors are dropped and counted.
"""

from __future__ import annotations

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Header
from unitree_go.msg import MotorStates
from unitree_hg.msg import HandState, LowState

from dit4dit_ros import g1
from dit4dit_ros.robot.hands import HAND_KINDS, make_hands
from dit4dit_ros.robot.cdr import CdrError
from dit4dit_ros.robot.variants import get_variant
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node
from dit4dit_ros.ros.unitree_msgs import decode_lowstate


class G1StatePublisher(Node):
    def __init__(self, **kwargs):
        super().__init__("g1_state_publisher", **kwargs)
        self._variant = get_variant(declare(self, "variant", "g1_29dof", "g1_29dof | g1_23dof", read_only=True))
        self._hands = declare(self, "hands", "dex3", f"{HAND_KINDS}", read_only=True)
        if self._hands not in HAND_KINDS:
            raise ValueError(f"hands={self._hands!r}; expected one of {HAND_KINDS}")
        rate = declare(self, "rate", 100.0, "joint_states per second", low=1.0, high=500.0, read_only=True)
        self._frame_id = declare(self, "imu_frame_id", "imu_link", "frame_id of the imu messages", read_only=True)
        self._slots = [(slot, name) for slot, name in enumerate(self._variant.slots) if name]
        self._slot_index = np.array([slot for slot, _ in self._slots])
        self._lock = threading.Lock()
        self._body: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._imu: np.ndarray | None = None  # quaternion (w, x, y, z), gyroscope, accelerometer
        self._fingers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._dropped = self._received = 0
        self._joint_pub = self.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self._imu_pub = self.create_publisher(Imu, "imu", SENSOR_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(LowState, "lowstate", self._on_lowstate, SENSOR_QOS, raw=True)  # numpy, no objects
        self._grips: dict[str, float] = {}
        self._hand_model = make_hands(self._hands)
        if self._hands == "dex3":
            for side in g1.SIDES:
                self.create_subscription(HandState, f"dex3/{side}/state", lambda m, s=side: self._on_hand(m, s),
                                         SENSOR_QOS)
        elif self._hands == "inspire":
            self.create_subscription(MotorStates, "inspire/state", lambda m: self._on_grips(m, g1.SIDES), SENSOR_QOS)
        elif self._hands == "dex1":
            for side in g1.SIDES:
                self.create_subscription(MotorStates, f"dex1/{side}/state", lambda m, s=side: self._on_grips(m, (s,)),
                                         SENSOR_QOS)
        self.create_timer(1.0 / rate, self._publish)
        self.create_timer(1.0, self._publish_diagnostics)

    def _on_lowstate(self, data: bytes) -> None:
        try:
            q, dq, tau, _, imu = decode_lowstate(data)
        except CdrError:
            self._dropped += 1
            return
        slots = self._slot_index
        body = (q[slots], dq[slots], tau[slots])
        if not all(np.all(np.isfinite(v)) for v in body) or not np.all(np.isfinite(imu)):
            self._dropped += 1
            return
        with self._lock:
            self._received += 1
            self._body = body
            self._imu = imu

    def _on_hand(self, msg: HandState, side: str) -> None:
        joints = g1.HAND_JOINTS[side]
        if len(msg.motor_state) != len(joints):
            self._dropped += 1
            return
        values = np.array([(m.q, m.dq) for m in msg.motor_state])
        if not np.all(np.isfinite(values)):
            self._dropped += 1
            return
        with self._lock:
            self._fingers[side] = (values[:, 0], values[:, 1])

    def _on_grips(self, msg: MotorStates, sides) -> None:
        """Inspire / Dex1: no finger joints of the model, so their grip scalar is published as a joint."""
        q = np.array([m.q for m in msg.states], dtype=np.float64)
        try:
            grips = {side: self._hand_model.grip_from_state(side, q) for side in sides}
        except (IndexError, ValueError):
            self._dropped += 1
            return
        if not all(np.isfinite(list(grips.values()))):
            self._dropped += 1
            return
        with self._lock:
            self._grips.update(grips)

    def _publish(self) -> None:
        with self._lock:
            body, imu, fingers, grips = self._body, self._imu, dict(self._fingers), dict(self._grips)
            self._body = None  # each LowState is published at most once: no LowState, no joint_states
        if body is None:
            return
        names = [name for _, name in self._slots]
        position, velocity, effort = (v.tolist() for v in body)
        for side in g1.SIDES:
            if side in fingers:
                names += list(g1.HAND_JOINTS[side])
                position += fingers[side][0].tolist()
                velocity += fingers[side][1].tolist()
                effort += [0.0] * len(g1.HAND_JOINTS[side])
            elif side in grips:
                names.append(g1.GRIP_NAMES[side])
                position.append(grips[side])
                velocity.append(0.0)
                effort.append(0.0)
        self._joint_pub.publish(JointState(header=Header(stamp=self.get_clock().now().to_msg()), name=names,
                                           position=position, velocity=velocity, effort=effort))
        if imu is not None:  # unitree: w, x, y, z; ROS: x, y, z, w
            message = Imu(header=Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id))
            o, g, a = message.orientation, message.angular_velocity, message.linear_acceleration
            o.w, o.x, o.y, o.z = (float(v) for v in imu[0:4])
            g.x, g.y, g.z = (float(v) for v in imu[4:7])
            a.x, a.y, a.z = (float(v) for v in imu[7:10])
            self._imu_pub.publish(message)

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.WARN if self._dropped else DiagnosticStatus.OK
        status = DiagnosticStatus(level=level, name=self.get_fully_qualified_name(), hardware_id="unitree_g1",
                                  message=f"{self._dropped} malformed states dropped" if self._dropped else "ok",
                                  values=[KeyValue(key="lowstate_received", value=str(self._received)),
                                          KeyValue(key="dropped", value=str(self._dropped)),
                                          KeyValue(key="hands_reporting", value=",".join(sorted(self._fingers)))])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args=None) -> int:
    return run_node(G1StatePublisher, args)


if __name__ == "__main__":
    raise SystemExit(main())
