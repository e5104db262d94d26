"""controller_bridge: action chunks -> rate-limited, safety-checked joint commands at the control rate.

Subscribes  action_chunk    trajectory_msgs/JointTrajectory  from action_planner (times = stamp + time_from_start)
            joint_states    sensor_msgs/JointState           measured joints (start pose, hold, damping)
            estop           std_msgs/Bool (latched)          true latches the e-stop
Publishes   joint_commands  sensor_msgs/JointState           output:=sim - position targets by name (MuJoCo node,
                                                             the Gazebo contract)
            <output_topic>  trajectory_msgs/JointTrajectory  output:=joint_trajectory_controller (ros2_control)
            lowcmd|arm_sdk  unitree_hg/LowCmd                output:=unitree_hg - the real G1 (and hand commands;
                                                             see ros/unitree_output.py, robot/lowlevel.py)
            estop           std_msgs/Bool (latched)          when the ~/estop service is called
Services    ~/enable        std_srvs/SetBool                 the explicit enable step (when require_enable)
            ~/estop         std_srvs/SetBool                 true: e-stop (latched, also published on estop)

Every decision (merging, limits, watchdog, e-stop, enable, dry-run) is dit4dit_ros.control.ControllerCore's;
this node converts messages and keeps the clock. Nothing non-finite or outside the joint limits is published:
malformed and out-of-range chunks are rejected whole and counted in /diagnostics.
"""

from __future__ import annotations

import threading

from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dit4dit_ros import g1
from dit4dit_ros.control.chunks import MERGE_MODES, ActionChunk, ChunkError
from dit4dit_ros.control.core import ControllerCore, Mode
from dit4dit_ros.control.safety import JointLimits
from dit4dit_ros.interfaces import time_to_ns
from dit4dit_ros.metrics import LatencyStats, RateMeter
from dit4dit_ros.ros.managed import ERROR, FAILURE, OK, SUCCESS, WARN, ManagedNode
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node

OUTPUTS = ("sim", "joint_trajectory_controller", "unitree_hg", "none")


class ControllerBridge(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("controller_bridge", **kwargs)
        p = {}
        p["control_rate"] = declare(self, "control_rate", 100.0, "Commands per second (node clock)",
                                    low=50.0, high=500.0, read_only=True)
        p["merge_mode"] = declare(self, "merge_mode", "splice", f"How overlapping chunks merge: {MERGE_MODES}",
                                  read_only=True)
        p["ensemble_decay"] = declare(self, "ensemble_decay", 0.01, "Temporal-ensembling weight decay m "
                                      "(w_i = exp(-m i), i = 0 the oldest chunk)", low=0.0, high=10.0, read_only=True)
        p["max_velocity"] = declare(self, "max_velocity", 2.0, "Largest joint speed (rad/s; grips 1/s)",
                                    low=0.01, high=30.0, read_only=True)
        p["max_step"] = declare(self, "max_step", 0.05, "Largest change of one joint between two commands",
                                low=0.0001, high=1.0, read_only=True)
        p["range_tolerance"] = declare(self, "range_tolerance", 0.05, "A chunk further than this outside the joint "
                                       "ranges is rejected whole (closer: clipped)", low=0.0, high=1.0, read_only=True)
        p["watchdog_timeout"] = declare(self, "watchdog_timeout", 0.5, "No fresh chunk for this long (s) -> hold",
                                        low=0.01, high=60.0, read_only=True)
        p["damp_after"] = declare(self, "damp_after", 2.0, "Holding for this long (s) -> damp", low=0.0, high=600.0,
                                  read_only=True)
        p["require_enable"] = declare(self, "require_enable", True, "Commands flow only after ~/enable",
                                      read_only=True)
        p["dry_run"] = declare(self, "dry_run", False, "Compute and report every command, publish none",
                               read_only=True)
        p["output"] = declare(self, "output", "sim", f"Where commands go: {OUTPUTS}", read_only=True)
        p["output_topic"] = declare(self, "output_topic", "joint_commands", "Topic of the commands", read_only=True)
        self._p = p
        self._lock = threading.Lock()  # ControllerCore is single-threaded; callbacks come from several threads
        self._core: ControllerCore | None = None
        self.malformed_chunks = self.bad_states = 0
        self._last_error = ""
        self._pending_latency_stamp: int | None = None
        self._frame_to_command = LatencyStats()
        self._jitter = LatencyStats()
        self._rate_meter = RateMeter()
        self._last_tick_ns: int | None = None
        self._unitree = None
        self._timer = self._loop = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def on_configure(self, state):
        p = self._p
        if p["output"] not in OUTPUTS or p["merge_mode"] not in MERGE_MODES:
            self.get_logger().error(f"output={p['output']!r} (one of {OUTPUTS}), merge_mode={p['merge_mode']!r} "
                                    f"(one of {MERGE_MODES})")
            return FAILURE
        self._period = 1.0 / p["control_rate"]
        limits = JointLimits.for_g1_action(max_velocity=p["max_velocity"], max_step=p["max_step"])
        self._core = ControllerCore(
            g1.ACTION_NAMES, self._period, limits, merge_mode=p["merge_mode"],
            watchdog_timeout_s=p["watchdog_timeout"], damp_after_s=p["damp_after"], dry_run=p["dry_run"],
            require_enable=p["require_enable"], range_tolerance=p["range_tolerance"],
            ensemble_decay=p["ensemble_decay"])
        if p["output"] == "unitree_hg":
            from dit4dit_ros.robot.lowlevel import LowLevelError
            from dit4dit_ros.ros.unitree_output import UnitreeOutput

            try:
                self._unitree = UnitreeOutput(self, self._lock, dry_run=p["dry_run"])
            except (LowLevelError, ValueError) as error:
                self.get_logger().error(f"output unitree_hg: {error}")
                return FAILURE
            self._output = None
        elif p["output"] == "sim":
            self._output = self.create_lifecycle_publisher(JointState, p["output_topic"], COMMAND_QOS)
        elif p["output"] == "joint_trajectory_controller":
            self._output = self.create_lifecycle_publisher(JointTrajectory, p["output_topic"], COMMAND_QOS)
        else:
            self._output = None
        self._estop_pub = self.create_publisher(Bool, "estop", LATCHED_QOS)
        group = self.input_group
        self._bridge_subscriptions = [
            self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, COMMAND_QOS, callback_group=group),
            self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR_QOS, callback_group=group),
            self.create_subscription(Bool, "estop", self._on_estop_topic, LATCHED_QOS, callback_group=group)]
        self._bridge_services = [self.create_service(SetBool, "~/enable", self._on_enable),
                          self.create_service(SetBool, "~/estop", self._on_estop_service)]
        if self._unitree is not None:  # 500 Hz: a thread of its own, not an executor timer (control/periodic.py)
            from dit4dit_ros.control.periodic import PeriodicThread

            self._timer = None
            self._loop = PeriodicThread(self._period, self._tick, "control", on_error=self._loop_failed)
            self._loop.start()
        else:
            self._timer = self.create_timer(self._period, self._tick, callback_group=self.timer_group)
        mode = "DRY RUN, " if p["dry_run"] else ""
        topic = self._unitree.core.topic if self._unitree is not None else p["output_topic"]
        self.get_logger().info(f"{mode}{p['control_rate']:g} Hz, {p['merge_mode']} merging, output {p['output']} "
                               f"on {self.resolve_topic_name(topic)}"
                               + (", waiting for ~/enable" if p["require_enable"] else ""))
        return SUCCESS

    def on_activate(self, state):
        if not self._p["require_enable"]:
            with self._lock:
                self._core.enable(True)
        return super().on_activate(state)

    def on_deactivate(self, state):
        with self._lock:
            self._core.enable(False)
        if self._unitree is not None:
            self._unitree.shutdown()  # the robot keeps the last command: leave it damping, not stiff
        return super().on_deactivate(state)

    def before_shutdown(self) -> None:
        """Called by run_node on SIGINT/SIGTERM while the node can still publish: damping is the last word."""
        if self._unitree is not None and self.is_active:
            with self._lock:
                self._core.enable(False)
            self._unitree.shutdown()
        if self._loop is not None:
            self._loop.stop()

    def _loop_failed(self, error: BaseException) -> None:
        if not self.context.ok():
            return  # the process is going down; its publishers went with the context
        self.get_logger().fatal(f"control loop failed: {error!r}")
        if self._unitree is not None and self.context.ok():
            self._unitree.shutdown()

    def destroy_node(self):
        if self._loop is not None:  # no tick may publish through a destroyed publisher
            self._loop.stop()
        return super().destroy_node()

    def on_cleanup(self, state):
        if self._timer is not None:
            self.destroy_timer(self._timer)
        else:
            self._loop.stop()
            self._loop = None
        if self._unitree is not None:
            self._unitree.destroy()
            self._unitree = None
        for sub in self._bridge_subscriptions:
            self.destroy_subscription(sub)
        for service in self._bridge_services:
            self.destroy_service(service)
        self._core = None
        return SUCCESS

    # -- inputs -------------------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_chunk(self, msg: JointTrajectory) -> None:
        try:
            offsets = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
            if any(len(p.positions) != len(msg.joint_names) for p in msg.points):
                raise ChunkError(f"points carry {[len(p.positions) for p in msg.points]} positions for "
                                 f"{len(msg.joint_names)} joint names")
            chunk = ActionChunk.create(msg.joint_names, time_to_ns(msg.header.stamp), offsets,
                                       [list(p.positions) for p in msg.points])
        except ChunkError as error:
            self.malformed_chunks += 1
            self._warn(f"malformed chunk rejected: {error}")
            return
        with self._lock:
            if self._core is None:
                return
            reason = self._core.add_chunk(chunk, self._now_ns())
            if reason is None:
                self._pending_latency_stamp = chunk.stamp_ns
        if reason is not None:
            self._warn(f"chunk rejected: {reason}")

    def _on_joints(self, msg: JointState) -> None:
        try:
            if len(msg.name) != len(msg.position):
                raise KeyError(f"{len(msg.name)} names but {len(msg.position)} positions")
            state = g1.action_state(dict(zip(msg.name, msg.position)))
        except KeyError as error:
            self.bad_states += 1
            self._warn(f"joint_states: {error}")
            return
        with self._lock:
            if self._core is not None:
                self._core.update_measured(state, time_to_ns(msg.header.stamp))

    def _on_estop_topic(self, msg: Bool) -> None:
        with self._lock:
            if self._core is None:
                return
            _, message = self._core.estop(bool(msg.data), self._now_ns())
        self.get_logger().warning(f"e-stop {'ENGAGED' if msg.data else 'released'}: {message}")

    def _on_estop_service(self, request, response):
        with self._lock:
            response.success, response.message = self._core.estop(bool(request.data), self._now_ns())
        if response.success:  # latched on the topic too, so the robot side (the sim node) stops as well
            self._estop_pub.publish(Bool(data=bool(request.data)))
        return response

    def _on_enable(self, request, response):
        with self._lock:
            response.success, response.message = self._core.enable(bool(request.data))
        self.get_logger().info(f"enable({request.data}): {response.message}")
        return response

    def _warn(self, text: str) -> None:
        self._last_error = text
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    # -- the control tick ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self._now_ns()
        # Jitter on the node clock (sim time under use_sim_time), the clock the period is defined on.
        if self._last_tick_ns is not None and now > self._last_tick_ns:
            self._jitter.add(abs((now - self._last_tick_ns) / 1e9 - self._period))
        self._last_tick_ns = now
        with self._lock:
            if self._core is None or not self.is_active:
                return
            command = self._core.step(now)
            latency_stamp = self._pending_latency_stamp if command.mode is Mode.RUNNING else None
            if latency_stamp is not None:
                self._pending_latency_stamp = None
            sent = self._unitree.tick(command, now) if self._unitree is not None else False
        if self._unitree is not None:
            if sent:
                self._rate_meter.tick()
                if latency_stamp is not None:
                    self._frame_to_command.add((now - latency_stamp) / 1e9)
            return
        if not command.publish or command.positions is None or self._output is None:
            return
        if latency_stamp is not None:  # the first command computed from a new chunk: frame -> command latency
            self._frame_to_command.add((now - latency_stamp) / 1e9)
        stamp = self.get_clock().now().to_msg()
        positions = command.positions.tolist()
        if self._p["output"] == "sim":
            self._output.publish(JointState(header=Header(stamp=stamp), name=list(g1.ACTION_NAMES),
                                            position=positions))
        else:
            self._output.publish(self._trajectory(stamp, dict(zip(g1.ACTION_NAMES, positions))))
        self._rate_meter.tick()

    def _trajectory(self, stamp, targets: dict[str, float]) -> JointTrajectory:
        """One point, one control period ahead; the grips spread over the Dex3 finger joints (real joints)."""
        joints = {name: targets[name] for name in g1.ARM_JOINTS["left"] + g1.ARM_JOINTS["right"]}
        for side in g1.SIDES:
            joints.update(g1.grip_targets(side, targets[g1.GRIP_NAMES[side]]))
        period = Duration(sec=0, nanosec=int(self._period * 1e9))
        return JointTrajectory(header=Header(stamp=stamp), joint_names=list(joints),
                               points=[JointTrajectoryPoint(positions=list(joints.values()), time_from_start=period)])

    def diagnostics(self):
        if self._core is None:
            return OK, "not configured", {}
        with self._lock:
            stats = self._core.stats()
            mode = self._core.mode.value
        stats.pop("mode")
        values = {"mode": mode, "dry_run": self._p["dry_run"], "output": self._p["output"],
                  "command_rate_hz": f"{self._rate_meter.rate():.2f}", "malformed_chunks": self.malformed_chunks,
                  "bad_joint_states": self.bad_states, **{k: v for k, v in stats.items()},
                  **self._frame_to_command.summary("frame_to_command"), **self._jitter.summary("tick_jitter")}
        if self._unitree is not None:
            values.update(self._unitree.diagnostics())
            if self._unitree.core.refusal:
                return ERROR, self._unitree.core.refusal, values
        if mode == Mode.ESTOP.value:
            return ERROR, "E-STOP engaged", values
        if mode in (Mode.HOLD.value, Mode.DAMP.value) or stats.get("chunks_rejected") or self.malformed_chunks:
            return WARN, self._last_error or f"mode {mode}", values
        return OK, f"mode {mode}", values


def main(args=None) -> int:
    return run_node(ControllerBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())
