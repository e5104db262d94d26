"""sim: the MuJoCo G1 tabletop simulation as a ROS 2 node (a thin layer over dit4dit_ros.sim.G1TabletopEnv).

Publishes (names relative, so namespaces and remaps apply; /clock is absolute)
  /clock                 rosgraph_msgs/Clock     simulated time, every physics tick (the graph runs on it)
  camera/image_raw       sensor_msgs/Image       head camera (D435 pose), rgb8, sensor-data QoS, `camera_rate` Hz of sim time
  camera/camera_info     sensor_msgs/CameraInfo  pinhole intrinsics of that camera
  joint_states           sensor_msgs/JointState  every actuated joint, `joint_state_rate` Hz of sim time
  task_success           std_msgs/Bool           the task's success predicate (what task_server ends goals on)
  task_status            diagnostic_msgs/DiagnosticStatus  task, instruction, seed, episode time, done, reason
  /diagnostics           diagnostic_msgs/DiagnosticArray   rates, real-time factor, rejected commands
  expert/action_chunk    trajectory_msgs/JointTrajectory   only with `expert:=true`: the scripted expert's next
                                                 action (G1 tabletop action names) at the control rate, as a
                                                 two-point chunk; remap it onto the controller bridge's
                                                 action_chunk to run demonstrations through the graph
Subscribes
  joint_commands         sensor_msgs/JointState  position targets BY NAME: any arm/hand joint, and the grip
                                                 scalars left_grip / right_grip (0 open .. 1 closed)
  estop                  std_msgs/Bool           true freezes every joint where it is (latched QoS)
Services
  ~/reset                dit4dit_ros/srv/ResetEpisode   new episode (task, seed)
  ~/select_task          dit4dit_ros/srv/SelectTask     choose the task and start an episode of it

A command with an unknown name, a NaN, mismatched name/position sizes or a target outside the joint range is
rejected as a whole (logged, counted in /diagnostics) and the previous targets stay in force: the arms hold.
Physics runs in its own thread (the GL context of the renderer lives there); with real_time_factor 0 it runs
as fast as it can and the graph follows /clock.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Header
from trajectory_msgs.msg import JointTrajectory

from dit4dit_ros import g1
from dit4dit_ros.interfaces import camera_info, hold_chunk, ns_to_time
from dit4dit_ros.ros.params import declare
from dit4dit_ros.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from dit4dit_ros.ros.runtime import run_node
from dit4dit_ros.srv import ResetEpisode, SelectTask

_NS = 1_000_000_000


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        from dit4dit_ros.sim.env import CommandError, G1TabletopEnv
        from dit4dit_ros.sim.tasks import TASKS

        self._command_error = CommandError
        self._tasks = TASKS
        model = declare(self, "model", "auto", "G1 model: auto (menagerie, else simplified) | menagerie | simplified",
                        read_only=True)
        max_faces = declare(self, "max_mesh_faces", 2000,
                            "Decimate each menagerie mesh to this many faces for rendering speed (0: original meshes)",
                            low=0, high=1_000_000, read_only=True)
        task = declare(self, "task", "touch_cube", f"Task of the first episode: {sorted(TASKS)}", read_only=True)
        seed = declare(self, "seed", 0, "Seed of the first episode", low=0, high=2**31 - 1)
        width = declare(self, "image_width", 224, "Head camera width (px)", low=16, high=1920, read_only=True)
        height = declare(self, "image_height", 224, "Head camera height (px)", low=16, high=1080, read_only=True)
        self._camera_period = 1.0 / declare(self, "camera_rate", 30.0, "Head camera rate (Hz of sim time)",
                                            low=0.1, high=240.0)
        self._joint_state_period = 1.0 / declare(self, "joint_state_rate", 100.0, "joint_states rate (Hz of sim time)",
                                                 low=1.0, high=1000.0)
        clock_rate = declare(self, "clock_rate", 250.0, "Physics ticks per simulated second, /clock published "
                             "every tick (rounded to whole physics steps of 2 ms)", low=10.0, high=500.0)
        self._real_time_factor = declare(self, "real_time_factor", 1.0,
                                         "Sim seconds per wall second (0: as fast as possible)", low=0.0, high=100.0)
        self._status_period = 1.0 / declare(self, "status_rate", 10.0, "task_success/task_status rate (Hz of sim time)",
                                            low=0.1, high=100.0)
        self._frame_id = declare(self, "camera_frame_id", "head_camera_optical_frame", "frame_id of the images")
        expert = declare(self, "expert", False, "Publish the scripted expert's actions on expert/action_chunk "
                         "(demonstrations through the graph)", read_only=True)
        if task not in TASKS:
            raise ValueError(f"parameter task={task!r}; known tasks: {sorted(TASKS)}")

        self.env = G1TabletopEnv(model=model, max_faces=max_faces or None, image_size=(height, width), render=False)
        physics_dt = self.env.model.opt.timestep
        self._tick_steps = max(1, round(1.0 / (clock_rate * physics_dt)))
        self._tick = self._tick_steps * physics_dt
        self._expert = None
        if expert:
            from dit4dit_ros.sim.experts import ScriptedExpert

            self._expert = ScriptedExpert(self.env)
        self.get_logger().info(f"G1 model: {self.env.model_source} ({self.env.model_detail})")
        self.env.reset(seed=seed, task=task)
        if self._expert is not None:
            self._expert.reset()

        self._lock = threading.Lock()  # env state: sim thread vs. command/service callbacks
        self._rejected = 0
        self._last_rejection = ""
        self._sim_ns = 0  # monotonic across episodes: /clock never jumps back on reset
        self._frames = 0

        self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        self._image_pub = self.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
        self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
        self._joint_pub = self.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self._success_pub = self.create_publisher(Bool, "task_success", COMMAND_QOS)
        self._status_pub = self.create_publisher(DiagnosticStatus, "task_status", LATCHED_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._expert_pub = (self.create_publisher(JointTrajectory, "expert/action_chunk", COMMAND_QOS)
                            if self._expert is not None else None)
        self.create_subscription(JointState, "joint_commands", self._on_command, COMMAND_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED_QOS)
        self.create_service(ResetEpisode, "~/reset", self._on_reset)
        self.create_service(SelectTask, "~/select_task", self._on_select_task)
        self._camera_info = camera_info(self.env.model, "head_camera", width, height)

        self._running = True
        self._thread = threading.Thread(target=self._run, name="physics", daemon=True)
        self._thread.start()

    # --- inputs
    def _on_command(self, msg: JointState) -> None:
        try:
            if len(msg.name) != len(msg.position):
                raise self._command_error(f"{len(msg.name)} names but {len(msg.position)} positions")
            if len(set(msg.name)) != len(msg.name):
                raise self._command_error(f"duplicate joint names in {list(msg.name)}")
            with self._lock:
                self.env.set_action(dict(zip(msg.name, msg.position)))
        except self._command_error as exc:
            self._rejected += 1
            self._last_rejection = str(exc)
            self.get_logger().warning(f"joint command rejected, arms hold: {exc}", throttle_duration_sec=1.0)

    def _on_estop(self, msg: Bool) -> None:
        with self._lock:
            self.env.freeze(bool(msg.data))
        self.get_logger().warning("E-STOP engaged: joints frozen" if msg.data else "e-stop released")

    def _on_reset(self, request, response):
        return self._reset(request.task, request.seed, response)

    def _on_select_task(self, request, response):
        response.available_tasks = sorted(self._tasks)
        result = self._reset(request.task, -1, ResetEpisode.Response())
        response.success, response.message = result.success, result.message
        response.instruction, response.seed = result.instruction, result.seed
        return response

    def _reset(self, task: str, seed: int, response):
        # A task name, or a task's instruction (what the task server has from its goal).
        by_instruction = {t.instruction: name for name, t in self._tasks.items()}
        task = by_instruction.get(task.strip(), task) or self.env.task.name
        if task not in self._tasks:
            response.success = False
            response.message = f"unknown task {task!r}; known tasks: {sorted(self._tasks)}"
            return response
        with self._lock:
            seed = self.env.seed + 1 if seed < 0 else seed
            self.env.reset(seed=seed, task=task)
            if self._expert is not None:
                self._expert.reset()
            self._next_status = 0.0
        response.success, response.message = True, "episode started"
        response.task, response.instruction, response.seed = task, self.env.task.instruction, seed
        self.get_logger().info(f"episode: task={task} seed={seed} ({self.env.task.instruction!r})")
        return response

    # --- the physics thread
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - a publish after Ctrl-C fails: that is shutdown, not a crash
            if self.context.ok() and self._running:
                self.get_logger().fatal(f"simulation thread died: {exc!r}")
                self.context.try_shutdown()  # no physics, no node: let the launcher see the process end
                raise
        finally:
            self.env.close()

    def _loop(self) -> None:
        tick_ns = round(self._tick * _NS)  # exactly the physics advanced per tick
        next_camera = next_joints = next_expert = self._next_status = 0.0
        wall_start, sim_start = time.monotonic(), self._sim_ns
        rate_window = (time.monotonic(), self._sim_ns, 0)
        while self._running:
            with self._lock:
                self.env.advance(self._tick)
                self._sim_ns += tick_ns
                now = self._sim_ns / _NS
                image = self.env.render() if now >= next_camera else None
                joints = self.env.observe(render=False) if now >= next_joints else None
                status = self.env.evaluate(render=False) if now >= self._next_status else None
                expert_action = None
                if self._expert is not None and now >= next_expert and not self.env.frozen:
                    expert_action = self._expert.act()
                    next_expert = max(next_expert + self.env.control_dt, now - self.env.control_dt)
            stamp = ns_to_time(self._sim_ns)
            self._clock_pub.publish(Clock(clock=stamp))
            if image is not None:
                next_camera = max(next_camera + self._camera_period, now - self._camera_period)
                self._publish_image(image, stamp)
            if joints is not None:
                next_joints = max(next_joints + self._joint_state_period, now - self._joint_state_period)
                self._joint_pub.publish(JointState(header=Header(stamp=stamp), name=list(joints.joint_names),
                                                   position=joints.joint_positions.tolist(),
                                                   velocity=joints.joint_velocities.tolist()))
            if expert_action is not None:
                self._publish_expert(expert_action, stamp)
            if status is not None:
                self._next_status = now + self._status_period
                self._publish_status(status, stamp)
                wall_now = time.monotonic()
                if wall_now - rate_window[0] >= 1.0:
                    self._publish_diagnostics(stamp, wall_now, rate_window)
                    rate_window = (wall_now, self._sim_ns, self._frames)
            if self._real_time_factor > 0:  # pace: sim time / rtf = wall time since start
                ahead = (self._sim_ns - sim_start) / _NS / self._real_time_factor - (time.monotonic() - wall_start)
                if ahead > 0:
                    time.sleep(ahead)
                elif ahead < -0.5:  # fell behind (rendering is slow): do not try to catch up in a burst
                    wall_start, sim_start = time.monotonic(), self._sim_ns

    def _publish_image(self, pixels, stamp) -> None:
        height, width, _ = pixels.shape
        msg = Image(header=Header(stamp=stamp, frame_id=self._frame_id), height=height, width=width, encoding="rgb8",
                    is_bigendian=0, step=width * 3)
        msg.data = pixels.tobytes()
        self._image_pub.publish(msg)
        self._camera_info.header = msg.header
        self._info_pub.publish(self._camera_info)
        self._frames += 1

    def _publish_expert(self, action, stamp) -> None:
        self._expert_pub.publish(hold_chunk(g1.ACTION_NAMES, action, stamp, self.env.control_dt))

    def _publish_status(self, result, stamp) -> None:
        self._success_pub.publish(Bool(data=bool(result.success)))
        task = self.env.task
        values = {"task": task.name, "seed": self.env.seed, "episode_time": f"{result.observation.time:.3f}",
                  "time_limit": task.time_limit, "success": result.success, "done": result.done,
                  "reason": result.info["reason"], "estop": self.env.frozen}
        self._status_pub.publish(DiagnosticStatus(
            level=DiagnosticStatus.OK if not self.env.frozen else DiagnosticStatus.WARN, name="sim/task",
            message=task.instruction, hardware_id="mujoco_g1",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()]))

    def _publish_diagnostics(self, stamp, wall_now, window) -> None:
        wall = wall_now - window[0]
        rtf = (self._sim_ns - window[1]) / _NS / wall
        image_rate = (self._frames - window[2]) / wall
        level = DiagnosticStatus.WARN if self._rejected else DiagnosticStatus.OK
        message = f"last rejected command: {self._last_rejection}" if self._rejected else "ok"
        status = DiagnosticStatus(level=level, name="sim", message=message, hardware_id="mujoco_g1", values=[
            KeyValue(key="real_time_factor", value=f"{rtf:.3f}"),
            KeyValue(key="image_rate_wall_hz", value=f"{image_rate:.2f}"),
            KeyValue(key="rejected_commands", value=str(self._rejected)),
            KeyValue(key="model", value=self.env.model_source)])
        array = DiagnosticArray(status=[status])
        array.header.stamp = stamp
        self._diag_pub.publish(array)

    def destroy_node(self):
        self._running = False
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
