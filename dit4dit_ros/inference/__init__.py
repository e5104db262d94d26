"""Running the policy on live streams, without ROS: which policy to load, the frame window and joint-state
history the two inference rates read from, and the two halves of inference (System 2: video features,
System 1: action chunks) with their timing. The ROS nodes (dit4dit_ros/ros/) are thin wrappers over this."""
