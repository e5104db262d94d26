"""The node graph of dit4dit_ros, described ONCE, as data.

Both ways of starting the graph read this module:
  * ``launch/g1.launch.py`` (``ros2 launch dit4dit_ros g1.launch.py`` on a ROS install) turns each
    NodeSpec into a ``launch_ros.actions.Node``;
  * the project's own launcher (machines without ``ros2``) turns each NodeSpec into a process command
    line with ``NodeSpec.ros_args``.
So the two start exactly the same nodes with the same parameters and remaps. Plain Python, no ROS import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

PACKAGE = "dit4dit_ros"

# Launch arguments: name -> (default, description). Deployment values only; everything else is a
# parameter in the params file (config/g1.yaml), which is the source of truth.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "sim": ("auto", "Simulator to run against: mujoco | gazebo (bring your own, see README) | none | auto "
                    "(mujoco for robot:=sim, else none)"),
    "robot": ("sim", "Robot to command: sim (the simulation's joint commands) | real (the G1 over unitree_hg "
                     "LowCmd/LowState) | fake (the real-robot path against fake_g1, a MuJoCo G1 speaking LowCmd)"),
    "use_sim_time": ("auto", "Follow /clock: true | false | auto (true when a simulator runs)"),
    "namespace": ("", "ROS namespace for every node of the graph"),
    "params_file": ("", "Parameter YAML for the nodes (default: share/dit4dit_ros/config/g1.yaml)"),
    "checkpoint": ("", "Policy checkpoint directory or hub id (default: the model's own default)"),
    "log_level": ("info", "Log level of every node: debug | info | warn | error"),
    "policy": ("dit4dit", "Who acts: dit4dit (the policy nodes) | expert (the simulation's scripted expert "
                          "drives the controller bridge: demonstrations) | none (bring your own action_chunk, "
                          "e.g. teleop)"),
    "record": ("false", "Also start the recorder node (one rosbag2 per episode, see docs/dataset.md)"),
    "record_dir": ("episodes", "Folder the recorder writes episode bags into"),
    "dry_run": ("auto", "The controller bridge computes and reports every command but publishes none: true | "
                        "false | auto (true for robot:=real: arm the robot on purpose, with dry_run:=false)"),
    "network_interface": ("", "robot:=real: the network interface on the robot's network (e.g. enp3s0). DDS "
                              "discovery then spans that SUBNET; everywhere else the graph keeps to what the "
                              "environment says (LOCALHOST in tests)"),
    "ros_domain_id": ("0", "robot:=real: ROS_DOMAIN_ID of the robot's network (the G1 ships with 0)"),
    "camera_topic": ("camera/camera/color/image_raw", "robot:=real|fake: the head camera's image topic (the "
                     "RealSense driver's), remapped onto camera_ingest's camera/image_raw"),
}

_CHOICES = {"sim": ("auto", "mujoco", "gazebo", "none"), "robot": ("sim", "real", "fake"), "policy": ("dit4dit", "expert", "none"),
            "log_level": ("debug", "info", "warn", "error", "fatal")}


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """["sim:=none", "record:=true"] -> {"sim": "none", "record": "true"} (what ros2 launch takes on its command
    line); ValueError for an item that is not name:=value."""
    values = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"launch arguments are name:=value, got {item!r}")
        values[name] = value
    return values


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")


@dataclass(frozen=True)
class LaunchConfig:
    """The launch arguments, validated."""

    sim: str = "mujoco"
    robot: str = "sim"
    use_sim_time: bool = True
    namespace: str = ""
    params_file: str = ""
    checkpoint: str = ""
    log_level: str = "info"
    policy: str = "dit4dit"
    record: bool = False
    record_dir: str = "episodes"
    dry_run: bool = False
    network_interface: str = ""
    ros_domain_id: int = 0
    camera_topic: str = "camera/camera/color/image_raw"

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> LaunchConfig:
        """Build from launch-argument strings (as ``ros2 launch ... name:=value`` gives them)."""
        unknown = set(values) - set(LAUNCH_ARGUMENTS)
        if unknown:
            raise ValueError(f"unknown launch argument(s) {sorted(unknown)}; known: {sorted(LAUNCH_ARGUMENTS)}")
        merged = {name: values.get(name, default) for name, (default, _) in LAUNCH_ARGUMENTS.items()}
        for name, allowed in _CHOICES.items():
            if merged[name] not in allowed:
                raise ValueError(f"launch argument {name}:={merged[name]!r}; expected one of {list(allowed)}")
        if merged["sim"] == "auto":
            merged["sim"] = "mujoco" if merged["robot"] == "sim" else "none"
        if merged["sim"] != "none" and merged["robot"] != "sim":
            raise ValueError(f"robot:={merged['robot']} needs sim:=none (a simulator would fight the robot for "
                             "/joint_states)")
        if merged["robot"] == "real" and not merged["network_interface"].strip():
            raise ValueError("robot:=real needs network_interface:=<the interface on the robot's network, e.g. "
                             "enp3s0>")
        if merged["network_interface"].strip() and merged["robot"] != "real":
            raise ValueError("network_interface:= is for robot:=real only (tests and simulations stay on the "
                             "discovery range of their environment)")
        try:
            domain = int(merged["ros_domain_id"])
        except ValueError:
            domain = -1
        if not 0 <= domain <= 232:
            raise ValueError(f"ros_domain_id:={merged['ros_domain_id']!r}; expected an integer 0..232")
        dry_run = merged["robot"] == "real" if merged["dry_run"] == "auto" else _parse_bool("dry_run",
                                                                                             merged["dry_run"])
        if merged["policy"] == "expert" and merged["sim"] != "mujoco" and merged["robot"] != "fake":
            raise ValueError("policy:=expert needs sim:=mujoco or robot:=fake (the scripted experts live in the "
                             "MuJoCo simulation)")
        sim_time = merged["sim"] != "none" if merged["use_sim_time"] == "auto" else _parse_bool(
            "use_sim_time", merged["use_sim_time"])
        namespace = merged["namespace"].strip()
        if namespace and not namespace.startswith("/"):
            namespace = "/" + namespace
        return cls(sim=merged["sim"], robot=merged["robot"], use_sim_time=sim_time, namespace=namespace,
                   params_file=merged["params_file"], checkpoint=merged["checkpoint"],
                   log_level=merged["log_level"], policy=merged["policy"],
                   record=_parse_bool("record", merged["record"]), record_dir=merged["record_dir"],
                   dry_run=dry_run, network_interface=merged["network_interface"].strip(), ros_domain_id=domain,
                   camera_topic=merged["camera_topic"])

    def resolved_params_file(self) -> str:
        if self.params_file:
            if not os.path.isfile(self.params_file):
                raise FileNotFoundError(f"params_file {self.params_file!r} does not exist")
            return self.params_file
        return default_params_file()


    def network_environment(self) -> dict[str, str]:
        """The DDS environment of every node for robot:=real: the robot's domain, discovery over the SUBNET of
        `network_interface` only (CycloneDDS by interface name, Fast DDS by that interface's address). The only
        place the graph widens discovery beyond what its environment says; empty for every other robot."""
        if self.robot != "real":
            return {}
        address = interface_address(self.network_interface)
        cyclone = (f'<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="{self.network_interface}"/>'
                   '</Interfaces></General></Domain></CycloneDDS>')
        profile = fastdds_profile(address)
        return {"ROS_DOMAIN_ID": str(self.ros_domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
                "CYCLONEDDS_URI": cyclone, "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
                "FASTDDS_DEFAULT_PROFILES_FILE": profile}


def interface_address(name: str) -> str:
    """The IPv4 address of network interface `name` (Linux); ValueError naming the interfaces that exist."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            known = [n for _, n in socket.if_nameindex()]
            raise ValueError(f"network interface {name!r} has no IPv4 address (interfaces: {known})") from None
    return socket.inet_ntoa(packed[20:24])


def fastdds_profile(address: str) -> str:
    """Write (once per address) a Fast DDS profile that keeps every participant on the interface with `address`;
    returns its path."""
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"dit4dit_ros_fastdds_{address}.xml")
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>robot_network</transport_id>
      <type>UDPv4</type>
      <interfaceWhiteList><address>{address}</address></interfaceWhiteList>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="robot_network" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>robot_network</transport_id></userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(xml)
    return path


def default_params_file() -> str:
    """share/dit4dit_ros/config/g1.yaml of the installed package."""
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory(PACKAGE), "config", "g1.yaml")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: which executable, under which name, with which remaps and overrides."""

    name: str
    executable: str
    # "module:Class" of the node, for the single-process graph (what a composable node's plugin name is in C++).
    plugin: str = ""
    remappings: tuple[tuple[str, str], ...] = ()
    overrides: dict[str, object] = field(default_factory=dict)  # parameters beyond the params file
    package: str = PACKAGE
    managed: bool = False  # a lifecycle node: ready when its ~/get_state says active

    def parameters(self, config: LaunchConfig) -> list:
        """launch_ros style: the params file, then a dict of overrides (later entries win)."""
        return [config.resolved_params_file(), {"use_sim_time": config.use_sim_time, **self.overrides}]

    def ros_args(self, config: LaunchConfig, *, log_level: bool = True) -> list[str]:
        """The same node as ``--ros-args`` for a plain process (what launch_ros passes under the hood).
        ``log_level`` False leaves out the process-wide ``--log-level`` (for nodes sharing one process)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if config.namespace:
            args += ["-r", f"__ns:={config.namespace}"]
        args += ["--params-file", config.resolved_params_file()]
        for key, value in {"use_sim_time": config.use_sim_time, **self.overrides}.items():
            args += ["-p", f"{key}:={_yaml_scalar(value)}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        if log_level:
            args += ["--log-level", config.log_level]
        return args


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _spec(name: str, module: str, cls: str, **kwargs) -> NodeSpec:
    return NodeSpec(name=name, executable=name, plugin=f"dit4dit_ros.ros.{module}:{cls}", **kwargs)


def g1_graph(config: LaunchConfig) -> list[NodeSpec]:
    """The nodes ``g1.launch.py`` starts for this configuration, in start order.

    camera/image_raw -> camera_ingest -> camera/image -> video_encoder -> video_features -> action_planner
    -> action_chunk -> controller_bridge -> joint_commands -> the robot (sim node or Gazebo bridge), or, for
    robot:=real|fake, -> lowcmd/arm_sdk (unitree_hg LowCmd) -> the G1 or fake_g1 -> lowstate ->
    g1_state_publisher -> joint_states; joint_states flow back to the planner and the bridge; task_server
    latches the instruction and ends goals on task_success. Every name is relative, so ``namespace`` and
    remaps apply; the topic names match by default and need no remaps.
    """
    nodes = []
    if config.robot == "fake":
        fake = {"use_sim_time": False, **({"expert": True} if config.policy == "expert" else {})}
        nodes.append(_spec("fake_g1", "fake_g1", "FakeG1", overrides=fake))
    if config.sim == "mujoco":
        # The simulation is the clock: it never follows /clock itself.
        sim = {"use_sim_time": False, **({"expert": True} if config.policy == "expert" else {})}
        nodes.append(_spec("sim", "sim_node", "SimNode", overrides=sim))
    model = {"checkpoint": config.checkpoint} if config.checkpoint else {}
    bridge = {"dry_run": True} if config.dry_run else {}
    task_server = {}
    camera = ()
    if config.robot in ("real", "fake"):
        # LowCmd at the robot's 500 Hz, from LowState; g1_state_publisher turns LowState into joint_states.
        bridge.update({"output": "unitree_hg", "control_rate": 500.0,
                       "require_enable": config.robot == "real"})  # on the robot: an explicit ~/enable
        nodes.append(_spec("g1_state_publisher", "g1_state_publisher", "G1StatePublisher"))
        task_server["reset_service"] = "fake_g1/reset" if config.robot == "fake" else ""
        camera = (("camera/image_raw", config.camera_topic),)
    if config.policy == "dit4dit":
        nodes += [
            _spec("camera_ingest", "camera_ingest", "CameraIngest", overrides=dict(model), managed=True,
                  remappings=camera),
            _spec("video_encoder", "video_encoder", "VideoEncoder", overrides=dict(model), managed=True),
            _spec("action_planner", "action_planner", "ActionPlanner", overrides=dict(model), managed=True),
        ]
    # The expert's chunks take the planner's place at the bridge (and at the task server, which counts them).
    chunks = (("action_chunk", "expert/action_chunk"),) if config.policy == "expert" else ()
    nodes += [
        _spec("controller_bridge", "controller_bridge", "ControllerBridge", overrides=bridge, managed=True,
              remappings=chunks),
        _spec("task_server", "task_server", "TaskServer", remappings=chunks, overrides=task_server),
    ]
    if config.record:
        nodes.append(_spec("recorder", "recorder", "Recorder", overrides={"output_dir": config.record_dir}))
    return nodes
