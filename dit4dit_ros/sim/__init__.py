"""The MuJoCo G1 tabletop simulation: plain Python, no ROS (dit4dit_ros.ros.sim_node wraps it)."""

import os

# Headless rendering (EGL) unless the user chose a backend; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")
