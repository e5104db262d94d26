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
    "sim": ("mujoco", "Simulator to run against: mujoco | gazebo (bring your own, see README) | none"),
    "robot": ("sim", "Robot to command: sim | real"),
    "use_sim_time": ("auto", "Follow /clock: true | false | auto (true when a simulator runs)"),
    "namespace": ("", "ROS namespace for every node of the graph"),
    "params_file": ("", "Parameter YAML for the nodes (default: share/dit4dit_ros/config/g1.yaml)"),
    "checkpoint": ("", "Policy checkpoint directory or hub id (default: the model's own default)"),
    "log_level": ("info", "Log level of every node: debug | info | warn | error"),
}

_CHOICES = {"sim": ("mujoco", "gazebo", "none"), "robot": ("sim", "real"),
            "log_level": ("debug", "info", "warn", "error", "fatal")}


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
        if merged["sim"] != "none" and merged["robot"] == "real":
            raise ValueError("robot:=real needs sim:=none (a simulator would fight the real robot for /joint_states)")
        sim_time = merged["sim"] != "none" if merged["use_sim_time"] == "auto" else _parse_bool(
            "use_sim_time", merged["use_sim_time"])
        namespace = merged["namespace"].strip()
        if namespace and not namespace.startswith("/"):
            namespace = "/" + namespace
        return cls(sim=merged["sim"], robot=merged["robot"], use_sim_time=sim_time, namespace=namespace,
                   params_file=merged["params_file"], checkpoint=merged["checkpoint"],
                   log_level=merged["log_level"])

    def resolved_params_file(self) -> str:
        if self.params_file:
            if not os.path.isfile(self.params_file):
                raise FileNotFoundError(f"params_file {self.params_file!r} does not exist")
            return self.params_file
        return default_params_file()


def default_params_file() -> str:
    """share/dit4dit_ros/config/g1.yaml of the installed package."""
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory(PACKAGE), "config", "g1.yaml")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: which executable, under which name, with which remaps and overrides."""

    name: str
    executable: str
    remappings: tuple[tuple[str, str], ...] = ()
    overrides: dict[str, object] = field(default_factory=dict)  # parameters beyond the params file
    package: str = PACKAGE

    def parameters(self, config: LaunchConfig) -> list:
        """launch_ros style: the params file, then a dict of overrides (later entries win)."""
        return [config.resolved_params_file(), {"use_sim_time": config.use_sim_time, **self.overrides}]

    def ros_args(self, config: LaunchConfig) -> list[str]:
        """The same node as ``--ros-args`` for a plain process (what launch_ros passes under the hood)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if config.namespace:
            args += ["-r", f"__ns:={config.namespace}"]
        args += ["--params-file", config.resolved_params_file()]
        for key, value in {"use_sim_time": config.use_sim_time, **self.overrides}.items():
            args += ["-p", f"{key}:={_yaml_scalar(value)}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        args += ["--log-level", config.log_level]
        return args


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def g1_graph(config: LaunchConfig) -> list[NodeSpec]:
    """The nodes ``g1.launch.py`` starts for this configuration.

    Today: the MuJoCo simulation (sim:=mujoco) and the task server. The camera ingestion, video encoder,
    action planner and controller bridge join this list with the node-graph issue (see the README).
    """
    nodes = []
    if config.sim == "mujoco":
        # The simulation is the clock: it never follows /clock itself.
        nodes.append(NodeSpec(name="sim", executable="sim", overrides={"use_sim_time": False}))
    nodes.append(NodeSpec(name="task_server", executable="task_server"))
    return nodes
