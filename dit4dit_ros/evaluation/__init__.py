"""Evaluation helpers without ROS: success statistics, episode videos, plots. The command that runs episodes
through the ROS graph is dit4dit_ros/ros/evaluate.py (dit4dit-eval)."""
