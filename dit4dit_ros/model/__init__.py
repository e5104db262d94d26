"""The DiT4DiT policy as a plain PyTorch library (no ROS imports).

    from dit4dit_ros.model import DiT4DiTPolicy, preset
    policy = DiT4DiTPolicy(preset("tiny"), joint_names=[...])
    features = policy.encode_video(frames, policy.embed_instructions(["touch the red cube"]))
    actions = policy.predict_action(features, state, generator=torch.Generator().manual_seed(0))
    policy.save_pretrained("ckpt/"); policy = DiT4DiTPolicy.from_pretrained("ckpt/")
"""

from dit4dit_ros.model.configuration_dit4dit import (  # noqa: F401
    ActionConfig,
    DiT4DiTConfig,
    FlowMatchingConfig,
    VideoConfig,
    preset,
)
