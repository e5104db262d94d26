"""The ROS 2 layer: thin nodes over the plain-Python model, simulation and data code."""
