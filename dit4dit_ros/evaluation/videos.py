"""Episode videos: RGB frames -> an H.264 mp4 (PyAV), for looking at what a policy did."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float = 30.0, crf: int = 23) -> Path:
    """Write (H, W, 3) uint8 frames as one mp4; H and W are cropped to even sizes (yuv420p needs them)."""
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            if frame.shape[:2] != frames[0].shape[:2]:
                raise ValueError(f"{path}: frame size changed from {frames[0].shape} to {frame.shape}")
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
