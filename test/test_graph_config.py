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
    ({"robot": "real"}, "needs sim:=none"),
    ({"params_file": "/nonexistent.yaml"}, "does not exist"),
    ({"simulator": "mujoco"}, "unknown launch argument"),
    ({"policy": "expert", "sim": "none"}, "needs sim:=mujoco"),
    ({"policy": "teleop"}, "expected one of"),
    ({"record": "maybe"}, "expected true or false"),
])
def test_bad_launch_arguments_are_refused_with_a_reason(values, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        LaunchConfig.from_strings(values).resolved_params_file()


def test_real_robot_without_simulator_uses_wall_time():
    config = LaunchConfig.from_strings({"sim": "none", "robot": "real"})
    assert config.use_sim_time is False


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
                                     "checkpoint", "log_level", "policy", "record", "record_dir"}


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
