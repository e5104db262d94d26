"""Teleoperation without ROS: key -> action-target logic (the ROS node is dit4dit_ros/ros/keyboard_teleop.py)."""
