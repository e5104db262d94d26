"""The real Unitree G1: plain Python, no ROS."""
