"""Training the DiT4DiT policy on LeRobotDataset v3.0 directories: ``config`` (TrainConfig, YAML + key=value
overrides), ``train`` (the dit4dit-train command), ``checkpoints`` (atomic LeRobot-style checkpoints and
resume) and ``metrics`` (CSV/JSONL/TensorBoard logs). Nothing heavy is imported here."""
