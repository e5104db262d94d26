"""Launch-argument validation of the graph description (what g1.launch.py delegates to)."""

import ast
from pathlib import Path

import pytest

from dit4dit_ros.graph import LAUNCH_ARGUMENTS, LaunchConfig, default_params_file, g1_graph

REPO = Path(__file__).resolve().parents[1]


def test_defaults_run_the_simulation_on_sim_time():
    config = LaunchConfig.from_strings({})
    assert (config.sim, config.robot, config.use_sim_time, config.namespace) == ("mujoco", "sim", True, "")
    assert config.resolved_params_file() == default_params_file()
    assert Path(default_params_file()).is_file()


@pytest.mark.parametrize("values, message", [
    ({"sim": "isaac"}, "expected one of"),
    ({"robot": "g1"}, "expected one of"),
    ({"use_sim_time": "maybe"}, "expected true or false"),
    ({"robot": "real", "sim": "mujoco", "network_interface": "lo"}, "needs sim:=none"),
    ({"robot": "real"}, "needs network_interface"),
    ({"robot": "fake", "network_interface": "lo"}, "robot:=real only"),
    ({"robot": "fake", "ros_domain_id": "300"}, "0..232"),
    ({"dry_run": "perhaps"}, "expected true or false"),
    ({"params_file": "/nonexistent.yaml"}, "does not exist"),
    ({"simulator": "mujoco"}, "unknown launch argument"),
    ({"policy": "expert", "sim": "none"}, "needs sim:=mujoco or robot:=fake"),
    ({"policy": "teleop"}, "expected one of"),
    ({"record": "maybe"}, "expected true or false"),
])
def test_bad_launch_arguments_are_refused_with_a_reason(values, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        LaunchConfig.from_strings(values).resolved_params_file()


def test_real_robot_without_simulator_uses_wall_time():
    config = LaunchConfig.from_strings({"robot": "real", "network_interface": "lo"})
    assert (config.sim, config.use_sim_time, config.dry_run) == ("none", False, True)  # dry run unless armed


def test_real_and_fake_robot_graphs():
    real = {spec.name: spec for spec in g1_graph(LaunchConfig.from_strings(
        {"robot": "real", "network_interface": "lo", "dry_run": "false"}))}
    assert set(real) == {"g1_state_publisher", "camera_ingest", "video_encoder", "action_planner",
                         "controller_bridge", "task_server"}
    bridge = real["controller_bridge"].overrides
    assert (bridge["output"], bridge["control_rate"], bridge["require_enable"]) == ("unitree_hg", 500.0, True)
    assert "dry_run" not in bridge
    assert real["task_server"].overrides["reset_service"] == ""  # nothing resets a real robot
    assert real["camera_ingest"].remappings == (("camera/image_raw", "camera/camera/color/image_raw"),)
    fake = {spec.name: spec for spec in g1_graph(LaunchConfig.from_strings({"robot": "fake", "policy": "expert"}))}
    assert set(fake) == {"fake_g1", "g1_state_publisher", "controller_bridge", "task_server"}
    assert fake["fake_g1"].overrides == {"use_sim_time": False, "expert": True}
    assert fake["controller_bridge"].overrides["require_enable"] is False
    assert fake["controller_bridge"].remappings == (("action_chunk", "expert/action_chunk"),)
    assert fake["task_server"].overrides["reset_service"] == "fake_g1/reset"
    sim = {spec.name: spec for spec in g1_graph(LaunchConfig.from_strings({}))}
    assert "dry_run" not in sim["controller_bridge"].overrides and "output" not in sim["controller_bridge"].overrides


def test_network_environment_only_for_the_real_robot():
    assert LaunchConfig.from_strings({"robot": "fake"}).network_environment() == {}
    assert LaunchConfig.from_strings({}).network_environment() == {}
    env = LaunchConfig.from_strings({"robot": "real", "network_interface": "lo", "ros_domain_id": "7"}
                                    ).network_environment()
    assert env["ROS_DOMAIN_ID"] == "7" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert '<NetworkInterface name="lo"/>' in env["CYCLONEDDS_URI"]
    profile = Path(env["FASTRTPS_DEFAULT_PROFILES_FILE"]).read_text()
    assert "<address>127.0.0.1</address>" in profile and "<useBuiltinTransports>false" in profile
    with pytest.raises(ValueError, match="no IPv4 address"):
        LaunchConfig.from_strings({"robot": "real", "network_interface": "nonexistent0"}).network_environment()


def test_every_graph_node_is_an_installed_executable():
    declared = {line.split()[1] for line in (REPO / "resource" / "executables.txt").read_text().splitlines()
                if line.startswith("node ")}
    specs = g1_graph(LaunchConfig.from_strings({}))
    assert specs, "the graph is empty"
    assert {spec.executable for spec in specs} <= declared
    assert len({spec.name for spec in specs}) == len(specs), "two nodes share a name"


def test_launch_file_declares_every_argument_and_delegates_to_the_graph():
    source = (REPO / "launch" / "g1.launch.py").read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "dit4dit_ros.graph" for alias in node.names}
    assert {"LAUNCH_ARGUMENTS", "LaunchConfig", "g1_graph"} <= imported
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert set(LAUNCH_ARGUMENTS) == {"sim", "robot", "use_sim_time", "namespace", "params_file",
                                     "checkpoint", "log_level", "policy", "record", "record_dir", "dry_run",
                                     "network_interface", "ros_domain_id", "camera_topic"}
    assert "SetEnvironmentVariable" in source and "network_environment()" in source


def test_expert_demonstrations_replace_the_policy_nodes_and_feed_the_bridge():
    specs = {spec.name: spec for spec in g1_graph(LaunchConfig.from_strings({"policy": "expert", "record": "true",
                                                                              "record_dir": "/data/bags"}))}
    assert set(specs) == {"sim", "controller_bridge", "task_server", "recorder"}
    assert specs["sim"].overrides["expert"] is True
    assert ("action_chunk", "expert/action_chunk") in specs["controller_bridge"].remappings
    assert ("action_chunk", "expert/action_chunk") in specs["task_server"].remappings
    assert specs["recorder"].overrides == {"output_dir": "/data/bags"}


def test_the_default_graph_runs_the_policy_and_records_nothing():
    specs = {spec.name: spec for spec in g1_graph(LaunchConfig.from_strings({}))}
    assert {"camera_ingest", "video_encoder", "action_planner"} <= set(specs) and "recorder" not in specs
    assert "expert" not in specs["sim"].overrides
    assert specs["controller_bridge"].remappings == ()
    none = {spec.name for spec in g1_graph(LaunchConfig.from_strings({"policy": "none"}))}
    assert none == {"sim", "controller_bridge", "task_server"}  # teleop or another policy publishes action_chunk


def test_launch_arguments_and_task_lists_parse_with_reasons():
    from dit4dit_ros.graph import parse_launch_arguments
    from dit4dit_ros.sim.tasks import parse_task_names

    assert parse_launch_arguments(["sim:=none", "namespace:="]) == {"sim": "none", "namespace": ""}
    with pytest.raises(ValueError, match="name:=value"):
        parse_launch_arguments(["sim=none"])
    assert parse_task_names(" touch_cube, push_cube ,") == ["touch_cube", "push_cube"]
    with pytest.raises(ValueError, match="unknown task"):
        parse_task_names("touch_cube,fly")
    with pytest.raises(ValueError, match="unknown task"):
        parse_task_names(" , ")
