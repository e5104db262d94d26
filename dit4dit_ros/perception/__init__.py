"""Camera-side helpers that turn ROS image messages into the frames the policy was trained on; plain Python."""
