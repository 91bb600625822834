"""Rollout videos: uint8 frames -> H.264 mp4 with PyAV (which bundles ffmpeg + libx264)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def write_mp4(path: Path, frames: np.ndarray | list[np.ndarray], fps: float = 20.0, crf: int = 20) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames to `path` (atomically: temporary file, then rename).

    H.264 with yuv420p needs even sides: odd frames are padded by one edge pixel.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("no frames to write")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def read_mp4(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an mp4 (tests and inspection)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
