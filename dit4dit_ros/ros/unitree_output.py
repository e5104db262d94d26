"""The controller bridge's output for the real G1 (output:=unitree_hg): LowCmd on lowcmd or arm_sdk at the control
rate (500 Hz), hand commands, LowState in. Every safety rule is dit4dit_ros.robot.lowlevel.LowLevelCore's; this
class declares its parameters, converts messages and publishes.

Parameters (under g1., read-only):
  mode            arm_sdk (arms + waist while Unitree's locomotion balances) | low_level (every joint; the
                  motion service released, the robot on a gantry)
  variant         g1_29dof | g1_23dof: the joints, and the mode_machine LowState must report
  hands           dex3 | inspire | dex1 | none
  gains.<group>   [kp, kd] for legs, waist, arms, wrists
  damping_kd, ramp_time, max_joint_speed, stale_after, blend_time, shutdown_damping_time
"""

from __future__ import annotations

import time

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from unitree_hg.msg import LowCmd, LowState

from dit4dit_ros import g1
from dit4dit_ros.control.core import Command, Mode
from dit4dit_ros.robot.hands import HAND_KINDS, make_hands
from dit4dit_ros.robot.lowlevel import GAIN_GROUPS, MODES, LowLevelConfig, LowLevelCore, State
from dit4dit_ros.robot.variants import VARIANTS, get_variant
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import SENSOR_QOS
from dit4dit_ros.robot.cdr import CdrError
from dit4dit_ros.ros.unitree_msgs import HAND_MESSAGE_TYPES, decode_lowstate, hand_message, lowcmd_bytes

# Reliable, newest only: matches the robot's reader whatever its reliability, and never queues stale commands.
LOWCMD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)


def declare_unitree_parameters(node) -> LowLevelConfig:
    defaults = LowLevelConfig()
    config = LowLevelConfig(
        mode=declare(node, "g1.mode", defaults.mode, f"{MODES}", read_only=True),
        variant=declare(node, "g1.variant", defaults.variant, f"{sorted(VARIANTS)}", read_only=True),
        gains={group: tuple(declare(node, f"g1.gains.{group}", list(defaults.gains[group]),
                                    f"[kp, kd] of the {group} motors", read_only=True)) for group in GAIN_GROUPS},
        damping_kd=declare(node, "g1.damping_kd", defaults.damping_kd, "kd of damping (kp 0)", low=0.01, high=50.0,
                           read_only=True),
        ramp_time=declare(node, "g1.ramp_time", defaults.ramp_time, "s from the measured pose to the targets",
                          low=0.0, high=60.0, read_only=True),
        max_joint_speed=declare(node, "g1.max_joint_speed", defaults.max_joint_speed, "rad/s, last clip",
                                low=0.01, high=30.0, read_only=True),
        stale_after=declare(node, "g1.stale_after", defaults.stale_after, "LowState older than this (s) -> damping",
                            low=0.002, high=1.0, read_only=True),
        blend_time=declare(node, "g1.blend_time", defaults.blend_time, "s for the arm_sdk weight 0 -> 1", low=0.0,
                           high=60.0, read_only=True))
    return config


class UnitreeOutput:
    def __init__(self, node, lock, dry_run: bool):
        self.node, self._lock, self.dry_run = node, lock, dry_run
        config = declare_unitree_parameters(node)
        hands = declare(node, "g1.hands", "dex3", f"{HAND_KINDS}", read_only=True)
        self._hand_every = max(1, round(node.get_parameter("control_rate").value
                                        / declare(node, "g1.hand_rate", 100.0, "Hand commands per second (the Dex3 "
                                                  "runs ~100 Hz)", low=1.0, high=500.0, read_only=True)))
        self._ticks = 0
        self.shutdown_damping_time = declare(node, "g1.shutdown_damping_time", 0.2,
                                             "s of damping sent when the node stops", low=0.0, high=5.0,
                                             read_only=True)
        feedforward = None
        if declare(node, "g1.gravity_feedforward", True, "Add the model's gravity torques as MotorCmd.tau",
                   read_only=True):
            from dit4dit_ros.robot.gravity import GravityModel

            gravity = GravityModel(get_variant(config.variant), declare(
                node, "g1.model", "auto", "G1 model of the feed-forward: auto | menagerie | simplified",
                read_only=True))
            feedforward = gravity.torques
            node.get_logger().info(f"gravity feed-forward from the {gravity.source} G1 model")
        self.core = LowLevelCore(config, make_hands(hands), feedforward)  # LowLevelError: a clear failure
        # Plain publishers, not lifecycle ones: deactivating the node must still be able to send damping (the
        # robot keeps the last command it got). The bridge only ticks while active.
        self._lowcmd_pub = node.create_publisher(LowCmd, self.core.topic, LOWCMD_QOS)
        frames = self.core.hands.frames({side: 0.0 for side in g1.SIDES}, damping=False)
        self._hand_pubs = {f.topic: node.create_publisher(HAND_MESSAGE_TYPES[f.message], f.topic, LOWCMD_QOS)
                           for f in frames}
        # Raw: the bytes are read with numpy (robot/cdr.py), no LowState objects at 500 Hz.
        self._state_sub = node.create_subscription(LowState, "lowstate", self._on_lowstate, SENSOR_QOS,
                                                   callback_group=node.input_group, raw=True)
        self.bad_states = 0
        self.sent = self.computed = 0
        self._refusal_logged = False
        node.get_logger().info(
            f"G1 {config.variant} {config.mode} on {node.resolve_topic_name(self.core.topic)}, hands {hands}"
            + (" (DRY RUN: nothing is published)" if dry_run else ""))

    def _on_lowstate(self, data: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        try:
            q, _, _, mode_machine, _ = decode_lowstate(data)
        except CdrError as error:
            self.bad_states += 1
            self.node.get_logger().warning(f"lowstate: {error}", throttle_duration_sec=2.0)
            return
        with self._lock:
            self.core.update_state(q, mode_machine, now)
        if self.core.state is State.REFUSED and not self._refusal_logged:
            self._refusal_logged = True
            self.node.get_logger().error(self.core.refusal)

    def tick(self, command: Command, now_ns: int) -> bool:
        """One control tick, called under the lock: the ControllerCore's command -> LowCmd."""
        targets = None
        if command.positions is not None and command.mode is not Mode.DISABLED:
            targets = dict(zip(g1.ACTION_NAMES, command.positions.tolist()))
        frame = self.core.frame(targets, now_ns, damping=command.damping, reason=command.mode.value)
        return self._publish(frame)

    def _publish(self, frame) -> bool:
        if frame is None:
            return False
        self.computed += 1
        if self.dry_run:
            return False
        self._lowcmd_pub.publish(lowcmd_bytes(frame))
        self._ticks += 1
        if self._ticks % self._hand_every == 0:
            for hand in frame.hands:
                self._hand_pubs[hand.topic].publish(hand_message(hand))
        self.sent += 1
        return True

    def shutdown(self) -> None:
        """Damping for shutdown_damping_time (the robot keeps the last command it got: make that damping).
        Called without the lock held."""
        end = time.monotonic() + self.shutdown_damping_time
        while True:
            with self._lock:
                frame = self.core.shutdown_frame(self.node.get_clock().now().nanoseconds)
            if frame is None:
                return
            self._publish(frame)
            if time.monotonic() >= end:
                return
            time.sleep(0.002)

    def destroy(self) -> None:
        """Undo what the constructor created (lifecycle cleanup)."""
        self.node.destroy_subscription(self._state_sub)
        for publisher in (self._lowcmd_pub, *self._hand_pubs.values()):
            self.node.destroy_publisher(publisher)

    def diagnostics(self) -> dict:
        stats = self.core.stats()
        now = self.node.get_clock().now().nanoseconds
        return {**stats, "lowcmd_sent": self.sent, "lowcmd_computed": self.computed,
                "bad_lowstates": self.bad_states, "state_age_ms": f"{self.core.state_age(now) * 1e3:.1f}"}
