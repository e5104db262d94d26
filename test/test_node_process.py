"""A node started as a plain process (no ros2 run, no launch) takes its parameters from a YAML file and
its names and remaps from --ros-args; the graph description produces exactly such command lines."""

import time

import rclpy
from rcl_interfaces.srv import GetParameters
from rclpy.executors import SingleThreadedExecutor

from conftest import installed_executable, wait_until
from dit4dit_ros.graph import LaunchConfig, NodeSpec, g1_graph
from dit4dit_ros.ros.commander import TaskCommander


def _get_parameters(node, service: str, names):
    """ParameterValue messages of ``names`` from another node's get_parameters service."""
    client = node.create_client(GetParameters, service)
    assert client.wait_for_service(timeout_sec=20), f"{service} not available"
    future = client.call_async(GetParameters.Request(names=list(names)))
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.spin_until_future_complete(future, timeout_sec=10)
    executor.remove_node(node)
    assert future.done(), f"no answer from {service}"
    return future.result().values


def test_params_file_and_remaps_from_ros_args(rclpy_context, spawn, tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text(
        "/**/my_tasks:\n"
        "  ros__parameters:\n"
        "    default_time_limit: 1.5\n"
        "    feedback_rate: 7.0\n"
        "    action_name: run_policy\n"
    )
    server = spawn([
        installed_executable("task_server"), "--ros-args",
        "--params-file", params,
        "-r", "__node:=my_tasks", "-r", "__ns:=/robot1",
        "-r", "task_success:=/sim/success",
        "-r", "instruction:=/policy/instruction",
    ])
    probe = rclpy.create_node("probe", context=rclpy_context)
    try:
        assert wait_until(lambda: ("my_tasks", "/robot1") in probe.get_node_names_and_namespaces(), 30), \
            server.output()
        # Parameters: the YAML's values, not the defaults (60.0, 2.0).
        values = _get_parameters(probe, "/robot1/my_tasks/get_parameters", ["default_time_limit", "feedback_rate"])
        assert [v.double_value for v in values] == [1.5, 7.0]
        # Remaps: the topics live under the new names, and nothing under the old ones.
        assert wait_until(lambda: probe.count_subscribers("/sim/success") == 1
                          and probe.count_publishers("/policy/instruction") == 1, 20)
        topics = {name for name, _ in probe.get_topic_names_and_types()}
        assert "/robot1/task_success" not in topics and "/robot1/instruction" not in topics
        assert "/robot1/action_chunk" in topics  # not remapped: namespaced
        assert "/robot1/run_policy/_action/feedback" in topics
    finally:
        probe.destroy_node()

    # The YAML's default_time_limit is what the node uses: a goal without a limit times out after 1.5 s.
    with TaskCommander("/robot1/run_policy", context=rclpy_context) as commander:
        assert commander.wait_for_server(20)
        started = time.monotonic()
        result = commander.execute("touch the red cube")
        assert result.reason == "timeout"
        assert 1.4 <= time.monotonic() - started < 4.0


def test_graph_description_gives_the_same_command_line(rclpy_context, spawn, tmp_path):
    params = tmp_path / "graph.yaml"
    params.write_text("/**/task_server:\n  ros__parameters:\n    default_time_limit: 2.5\n")
    config = LaunchConfig.from_strings({"sim": "none", "namespace": "g1", "params_file": str(params)})
    assert config.namespace == "/g1" and config.use_sim_time is False  # auto: no simulator, wall time
    (spec,) = [s for s in g1_graph(config) if s.name == "task_server"]
    spawn([installed_executable(spec.executable), *spec.ros_args(config)])
    probe = rclpy.create_node("probe", context=rclpy_context)
    try:
        assert wait_until(lambda: ("task_server", "/g1") in probe.get_node_names_and_namespaces(), 30)
        limit, sim_time = _get_parameters(probe, "/g1/task_server/get_parameters",
                                          ["default_time_limit", "use_sim_time"])
        assert (limit.double_value, sim_time.bool_value) == (2.5, False)
    finally:
        probe.destroy_node()


def test_ros_args_carry_overrides_and_remaps(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("{}\n")
    config = LaunchConfig.from_strings({"params_file": str(params), "log_level": "debug"})
    spec = NodeSpec(name="encoder", executable="video_encoder", remappings=(("image", "/cam/image"),),
                    overrides={"rate_hz": 2.0, "detach": True})
    assert spec.ros_args(config) == [
        "--ros-args", "-r", "__node:=encoder", "--params-file", str(params),
        "-p", "use_sim_time:=true", "-p", "rate_hz:=2.0", "-p", "detach:=true",
        "-r", "image:=/cam/image", "--log-level", "debug",
    ]
    assert spec.parameters(config) == [str(params), {"use_sim_time": True, "rate_hz": 2.0, "detach": True}]


def test_out_of_range_parameter_is_refused_at_start(spawn, ros_domain, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("/**/task_server:\n  ros__parameters:\n    feedback_rate: 1000.0\n")
    server = spawn([installed_executable("task_server"), "--ros-args", "--params-file", params])
    assert server.popen.wait(30) != 0
    assert "node failed to start" in server.output() and "feedback_rate out of range" in server.output()
