"""fake_g1: a MuJoCo G1 that speaks the robot's low-level protocol, so the real-robot path runs closed loop here.

Subscribes  lowcmd                 unitree_hg/LowCmd   full low-level commands (the robot's rt/lowcmd)
            arm_sdk                unitree_hg/LowCmd   arms + waist, slot 29 q = blend weight (rt/arm_sdk)
            dex3/<side>/cmd        unitree_hg/HandCmd  Dex3 finger commands (rt/dex3/<side>/cmd)
Publishes   lowstate               unitree_hg/LowState every physics tick, 500 Hz wall clock (rt/lowstate)
            dex3/<side>/state      unitree_hg/HandState 100 Hz
            camera/camera/color/image_raw, camera/camera/color/camera_info   the RealSense driver's topics, 30 Hz
            task_success, task_status   as the simulation node (the task server ends goals on them)
            /diagnostics           crc_errors, mode_machine_mismatches, command and state rates
Services    ~/reset                dit4dit_ros/srv/ResetEpisode

Like the robot it silently drops a LowCmd whose CRC does not match (counted in /diagnostics), ignores one whose
mode_machine is not its own, gives a motor with mode 0 no torque, and keeps the last command in force when
commands stop (the G1 has no command watchdog). Joints never commanded keep the model's servos: Unitree's
locomotion holding the stance, which arm_sdk blends with. The pelvis is pinned (a gantry); gravity acts on the
arms (gravity_compensation false, unlike the simulation node), so the bridge's feed-forward torque carries them
as on the robot; time is the wall clock (no /clock): the graph runs as on the robot.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool, Header
from trajectory_msgs.msg import JointTrajectory
from unitree_hg.msg import HandCmd, HandState, LowCmd, LowState

from dit4dit_ros import g1
from dit4dit_ros.control.periodic import PeriodicThread
from dit4dit_ros.interfaces import camera_info, hold_chunk
from dit4dit_ros.robot.variants import ARM_SDK_WEIGHT_SLOT, get_variant
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node
from dit4dit_ros.robot.cdr import CdrError
from dit4dit_ros.ros.unitree_msgs import decode_lowcmd, hand_state_message, lowstate_bytes
from dit4dit_ros.srv import ResetEpisode

PERIOD_NS = 2_000_000  # 500 Hz, the robot's low-level rate and the model's 2 ms physics step


class FakeG1(Node):
    def __init__(self, **kwargs):
        super().__init__("fake_g1", **kwargs)
        import mujoco

        from dit4dit_ros.sim.env import G1TabletopEnv
        from dit4dit_ros.sim.motor_law import MotorLaw
        from dit4dit_ros.sim.tasks import TASKS

        self._mujoco, self._tasks = mujoco, TASKS
        variant = declare(self, "variant", "g1_29dof", "The robot this fake is: its joints and mode_machine",
                          read_only=True)
        self._variant = get_variant(variant)
        self._mode_machine = declare(self, "mode_machine", self._variant.mode_machine,
                                     "mode_machine reported in LowState (set another to test the bridge's refusal)",
                                     low=0, high=255, read_only=True)
        model = declare(self, "model", "auto", "G1 model: auto | menagerie | simplified", read_only=True)
        max_faces = declare(self, "max_mesh_faces", 2000, "Decimate menagerie meshes (0: original)", low=0,
                            high=1_000_000, read_only=True)
        task = declare(self, "task", "touch_cube", f"Task of the first episode: {sorted(TASKS)}", read_only=True)
        seed = declare(self, "seed", 0, "Seed of the first episode", low=0, high=2**31 - 1)
        size = declare(self, "image_size", 224, "Head camera width = height (px)", low=16, high=1080, read_only=True)
        self._camera_period = 1.0 / declare(self, "camera_rate", 30.0, "Head camera rate (Hz)", low=0.1, high=90.0)
        gravity = declare(self, "gravity_compensation", False, "Compensate gravity in the physics (the simulation "
                          "node does; the robot does not: false makes the bridge's feed-forward carry the arms)",
                          read_only=True)
        expert = declare(self, "expert", False, "Publish the scripted expert's actions on expert/action_chunk "
                         "(policy:=expert: demonstrations through the real-robot path)", read_only=True)
        if task not in TASKS:
            raise ValueError(f"parameter task={task!r}; known tasks: {sorted(TASKS)}")

        self.env = G1TabletopEnv(model=model, max_faces=max_faces or None, image_size=(size, size), render=False,
                                 gravity_compensation=gravity)
        if abs(self.env.model.opt.timestep - PERIOD_NS / 1e9) > 1e-9:
            raise ValueError(f"the fake G1 steps 2 ms per LowState; the model's timestep is {self.env.model.opt.timestep}")
        self.env.reset(seed=seed, task=task)
        self._expert = None
        if expert:
            from dit4dit_ros.sim.experts import ScriptedExpert

            self._expert = ScriptedExpert(self.env)
            self._expert.reset()
        self._expert_every = round(self.env.control_dt / (PERIOD_NS / 1e9))
        m = self.env.model
        self._slot_joints = [(slot, name) for slot, name in enumerate(self._variant.slots) if name]
        body = [name for _, name in self._slot_joints]
        self._body_law = MotorLaw(m, self.env.data, body)
        self._hand_law = {side: MotorLaw(m, self.env.data, g1.HAND_JOINTS[side]) for side in g1.SIDES}
        self._body_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in body])
        self._body_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in body])
        self._hand_qpos = {s: np.array([m.jnt_qposadr[m.joint(n).id] for n in g1.HAND_JOINTS[s]]) for s in g1.SIDES}
        self._hand_dof = {s: np.array([m.jnt_dofadr[m.joint(n).id] for n in g1.HAND_JOINTS[s]]) for s in g1.SIDES}
        self._slots = np.array([slot for slot, _ in self._slot_joints])
        # Which of those arm_sdk drives (arms, wrists, waist): the joints its blend weight applies to.
        self._arm_sdk_mask = np.array([self._variant.group(name) in ("arms", "wrists", "waist")
                                       for _, name in self._slot_joints])
        self._q, self._dq, self._tau = np.zeros(35), np.zeros(35), np.zeros(35)  # the LowState being built
        self._render_data = mujoco.MjData(m)

        self._lock = threading.Lock()
        self._pending: dict[str, object] = {}  # topic -> the newest accepted command, applied at the next tick
        self._counts = {"lowcmd": 0, "arm_sdk": 0, "crc_errors": 0, "mode_machine_mismatches": 0, "hand_cmds": 0,
                        "lowstate": 0, "bad_hand_cmds": 0}
        self._tick = 0

        self._state_pub = self.create_publisher(LowState, "lowstate", SENSOR_QOS)
        self._hand_pubs = {s: self.create_publisher(HandState, f"dex3/{s}/state", SENSOR_QOS) for s in g1.SIDES}
        self._image_pub = self.create_publisher(Image, "camera/camera/color/image_raw", SENSOR_QOS)
        self._info_pub = self.create_publisher(CameraInfo, "camera/camera/color/camera_info", SENSOR_QOS)
        self._success_pub = self.create_publisher(Bool, "task_success", COMMAND_QOS)
        self._status_pub = self.create_publisher(DiagnosticStatus, "task_status", LATCHED_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._expert_pub = (self.create_publisher(JointTrajectory, "expert/action_chunk", COMMAND_QOS)
                            if self._expert is not None else None)
        # Raw bytes in and out at 500 Hz (robot/cdr.py): no message objects on the fast path.
        self.create_subscription(LowCmd, "lowcmd", lambda data: self._on_lowcmd(data, "lowcmd"), SENSOR_QOS, raw=True)
        self.create_subscription(LowCmd, "arm_sdk", lambda data: self._on_lowcmd(data, "arm_sdk"), SENSOR_QOS,
                                 raw=True)
        for side in g1.SIDES:
            self.create_subscription(HandCmd, f"dex3/{side}/cmd", lambda msg, s=side: self._on_hand(msg, s),
                                     SENSOR_QOS)
        self.create_service(ResetEpisode, "~/reset", self._on_reset)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"fake {self._variant.name} (mode_machine {self._mode_machine}), model "
                               f"{self.env.model_source}; LowState at 500 Hz on {self.resolve_topic_name('lowstate')}")
        self._running = True
        self._physics = PeriodicThread(PERIOD_NS / 1e9, self._physics_tick, "physics", on_error=self._thread_died)
        self._physics.start()
        self._camera_thread = threading.Thread(target=self._guard, args=(self._camera,), name="camera", daemon=True)
        self._camera_thread.start()

    # --- commands (executor thread): checked like the robot checks them, applied at the next physics tick
    def _on_lowcmd(self, data: bytes, topic: str) -> None:
        try:
            command = decode_lowcmd(data)
        except CdrError:
            with self._lock:
                self._counts["crc_errors"] += 1  # not even a LowCmd: dropped like a bad CRC
            return
        with self._lock:
            if not command.crc_ok:
                self._counts["crc_errors"] += 1  # the robot drops it without a word
                return
            if command.mode_machine != self._mode_machine:
                self._counts["mode_machine_mismatches"] += 1
                return
            self._counts[topic] += 1
            self._pending[topic] = command

    def _on_hand(self, msg: HandCmd, side: str) -> None:
        motors = msg.motor_cmd
        if len(motors) != len(g1.HAND_JOINTS[side]):
            with self._lock:
                self._counts["bad_hand_cmds"] += 1
            return
        values = np.array([(m.q, m.kp, m.kd) for m in motors], dtype=np.float64)
        with self._lock:
            self._counts["hand_cmds"] += 1
            self._pending[f"dex3/{side}"] = values

    def _on_reset(self, request, response):
        by_instruction = {t.instruction: name for name, t in self._tasks.items()}
        task = by_instruction.get(request.task.strip(), request.task) or self.env.task.name
        if task not in self._tasks:
            response.success, response.message = False, f"unknown task {task!r}; known: {sorted(self._tasks)}"
            return response
        with self._lock:
            seed = self.env.seed + 1 if request.seed < 0 else request.seed
            self.env.reset(seed=seed, task=task)  # the servos hold the new pose until commands arrive again
            self._body_law.servo()
            for law in self._hand_law.values():
                law.servo()
            self._pending.clear()
            if self._expert is not None:
                self._expert.reset()
        response.success, response.message = True, "episode started"
        response.task, response.instruction, response.seed = task, self.env.task.instruction, seed
        return response

    # --- the physics thread: 500 Hz of wall-clock time
    def _guard(self, loop) -> None:
        try:
            loop()
        except Exception as exc:  # noqa: BLE001 - reported below
            if self._thread_died(exc):
                raise

    def _thread_died(self, error: BaseException) -> bool:
        """True for a crash; a publish after Ctrl-C fails too, and that is shutdown."""
        if not (self.context.ok() and self._running):
            return False
        self.get_logger().fatal(f"a fake robot thread died: {error!r}")
        self.context.try_shutdown()  # no physics, no node: let the launcher see the process end
        return True

    def _apply(self, pending: dict) -> None:
        slots = self._slots
        for topic in ("arm_sdk", "lowcmd"):  # lowcmd last: full low-level control wins
            command = pending.get(topic)
            if command is None:
                continue
            on = command.mode[slots] != 0
            weight = None
            if topic == "arm_sdk":
                w = float(np.clip(command.q[ARM_SDK_WEIGHT_SLOT], 0.0, 1.0))
                weight = np.where(self._arm_sdk_mask, w, 0.0)
            self._body_law.apply(command.kp[slots], command.kd[slots], command.q[slots], command.dq[slots],
                                 command.tau[slots], enabled=on, weight=weight)
        for side in g1.SIDES:
            values = pending.get(f"dex3/{side}")
            if values is not None:
                self._hand_law[side].apply(values[:, 1], values[:, 2], values[:, 0])

    def _physics_tick(self) -> None:
        """One 2 ms physics step (on a PeriodicThread, 500 Hz of wall-clock time) and its LowState."""
        mujoco, env, slots = self._mujoco, self.env, self._slots
        q, dq, tau = self._q, self._dq, self._tau
        with self._lock:
            if self._pending:
                self._apply(self._pending)
                self._pending = {}
            mujoco.mj_step(env.model, env.data)
            q[slots] = env.data.qpos[self._body_qpos]
            dq[slots] = env.data.qvel[self._body_dof]
            tau[slots] = self._body_law.torques()
            self._tick += 1
            tick = self._tick
            hands = ({s: (env.data.qpos[self._hand_qpos[s]].copy(), env.data.qvel[self._hand_dof[s]].copy())
                      for s in g1.SIDES} if tick % 5 == 0 else None)
            status = env.evaluate(render=False) if tick % 50 == 0 else None
            expert = self._expert.act() if self._expert is not None and tick % self._expert_every == 0 else None
            self._counts["lowstate"] += 1
        self._state_pub.publish(lowstate_bytes(q, dq, tau, self._mode_machine, tick * 2))
        if hands is not None:
            for side, (hq, hdq) in hands.items():
                self._hand_pubs[side].publish(hand_state_message(hq, hdq))
        if status is not None:
            self._publish_status(status)
        if expert is not None:
            self._expert_pub.publish(hold_chunk(g1.ACTION_NAMES, expert, self.get_clock().now().to_msg(),
                                                self.env.control_dt))

    def _camera(self) -> None:
        """Rendering in its own thread (MuJoCo releases the GIL while it renders) from a copy of the state, so the
        500 Hz LowState never waits for a frame."""
        mujoco, env = self._mujoco, self.env
        renderer = mujoco.Renderer(env.model, env.image_size[0], env.image_size[1])
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        info = camera_info(env.model, "head_camera", env.image_size[1], env.image_size[0])
        next_time = time.monotonic()
        try:
            while self._running:
                with self._lock:
                    mujoco.mj_copyData(self._render_data, env.model, env.data)
                renderer.update_scene(self._render_data, "head_camera")
                pixels = renderer.render()
                header = Header(stamp=self.get_clock().now().to_msg(), frame_id="camera_color_optical_frame")
                height, width, _ = pixels.shape
                image = Image(header=header, height=height, width=width, encoding="rgb8", step=width * 3)
                image.data = pixels.tobytes()
                self._image_pub.publish(image)
                info.header = header
                self._info_pub.publish(info)
                next_time += self._camera_period
                delay = next_time - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_time = time.monotonic()
        finally:
            renderer.close()

    def _publish_status(self, result) -> None:
        self._success_pub.publish(Bool(data=bool(result.success)))
        task = self.env.task
        values = {"task": task.name, "seed": self.env.seed, "episode_time": f"{result.observation.time:.3f}",
                  "success": result.success, "done": result.done, "reason": result.info["reason"]}
        self._status_pub.publish(DiagnosticStatus(
            level=DiagnosticStatus.OK, name="fake_g1/task", message=task.instruction, hardware_id="fake_g1",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()]))

    def _publish_diagnostics(self) -> None:
        with self._lock:
            counts = dict(self._counts)
        dropped = counts["crc_errors"] + counts["mode_machine_mismatches"]
        status = DiagnosticStatus(level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK,
                                  name=self.get_fully_qualified_name(), hardware_id="fake_g1",
                                  message=f"{dropped} commands dropped" if dropped else "ok",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in counts.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self):
        self._running = False
        self._physics.stop(timeout=5.0)
        if self._camera_thread.is_alive() and threading.current_thread() is not self._camera_thread:
            self._camera_thread.join(timeout=5.0)
        self.env.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(FakeG1, args)


if __name__ == "__main__":
    raise SystemExit(main())
