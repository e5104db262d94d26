"""ros2 launch dit4dit_ros g1.launch.py [sim:=auto|mujoco|gazebo|none] [robot:=sim|real|fake] [use_sim_time:=auto]
                                        [namespace:=] [params_file:=] [checkpoint:=] [log_level:=info]
                                        [policy:=dit4dit|expert|none] [record:=false] [record_dir:=episodes]
                                        [dry_run:=auto] [network_interface:=] [ros_domain_id:=0]
                                        [camera_topic:=camera/camera/color/image_raw]

The real G1:  ros2 launch dit4dit_ros g1.launch.py robot:=real network_interface:=enp3s0 [dry_run:=false]

Deliberately thin: the graph (which nodes, names, parameters, remaps) is described once in
dit4dit_ros.graph, which the project's own launcher also reads, and which the tests cover.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dit4dit_ros.graph import LAUNCH_ARGUMENTS, LaunchConfig, g1_graph


def _nodes(context):
    config = LaunchConfig.from_strings(
        {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS})
    # robot:=real only: the robot's domain and SUBNET discovery on network_interface, for every node.
    environment = [SetEnvironmentVariable(name, value) for name, value in config.network_environment().items()]
    return environment + [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=config.namespace,
            parameters=spec.parameters(config),
            remappings=list(spec.remappings),
            arguments=["--ros-args", "--log-level", config.log_level],
            output="screen",
        )
        for spec in g1_graph(config)
    ]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
