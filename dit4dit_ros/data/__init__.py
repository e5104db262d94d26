"""The data loop without ROS: episode bags (rosbag2, MCAP) -> a LeRobotDataset v3.0 directory (docs/dataset.md).

``bags`` reads (and, for tests and tools, writes) episode bags, ``convert`` aligns them into dataset frames
and ``lerobot_format`` writes the dataset files. Nothing heavy is imported here: import the submodule you need.
"""
