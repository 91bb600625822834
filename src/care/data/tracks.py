"""The track store: care's extension of the LeRobot layout.

    <root>/tracks/episode_000042.safetensors
        tracks   float32 (T, N, 2)  pixel coordinates (x right, y down) in the stored video
                                    frame; (0, 0) is the centre of the top-left pixel
        visible  uint8   (T, N)     1 where the point is visible
        metadata {"method": "groundtruth"|"klt"|"cotracker", "grid": "16", ...}

One file per episode, each written atomically (temporary file, then rename), so an
interrupted `care track` leaves finished episodes intact and no half-written one.
LeRobot's own tools ignore the folder; the rest of the dataset stays a plain v3 dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save

from care.io import atomic_write_bytes
from care.errors import DatasetError

TRACKS_DIR = "tracks"
_NAME = re.compile(r"^episode_(\d+)\.safetensors$")


class TrackStore:
    """Per-episode point tracks under `<root>/tracks/` (the folder may not exist yet)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / TRACKS_DIR

    def path(self, ep: int) -> Path:
        return self.dir / f"episode_{int(ep):06d}.safetensors"

    def has(self, ep: int) -> bool:
        return self.path(ep).is_file()

    def episodes(self) -> list[int]:
        """Episode indices that have a track file, sorted."""
        if not self.dir.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def write(self, ep: int, tracks: np.ndarray, visible: np.ndarray, meta: dict | None = None) -> None:
        """Store float32 (T, N, 2) tracks and bool (T, N) visibility; metadata values become strings."""
        tracks = np.ascontiguousarray(tracks, dtype=np.float32)
        visible = np.ascontiguousarray(visible).astype(np.uint8)
        if tracks.ndim != 3 or tracks.shape[-1] != 2:
            raise ValueError(f"tracks must be (T, N, 2), got {tracks.shape}")
        if visible.shape != tracks.shape[:2]:
            raise ValueError(f"visible must be (T, N) = {tracks.shape[:2]}, got {visible.shape}")
        metadata = {str(k): str(v) for k, v in (meta or {}).items()}
        data = save({"tracks": tracks, "visible": visible}, metadata=metadata)
        atomic_write_bytes(self.path(ep), data)

    def read(self, ep: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """-> tracks (T, N, 2) float32, visible (T, N) bool, metadata dict."""
        path = self.path(ep)
        if not path.is_file():
            raise DatasetError(f"{path}: no tracks for episode {ep}; run `care track {self.root}`")
        try:
            arrays = load_file(str(path))
            with safe_open(str(path), framework="numpy") as f:
                meta = dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as e:
            raise DatasetError(
                f"{path}: unreadable track file ({e}); rerun `care track {self.root} --overwrite`"
            ) from e
        if "tracks" not in arrays or "visible" not in arrays:
            raise DatasetError(f"{path}: expected tensors 'tracks' and 'visible', found {sorted(arrays)}")
        tracks, visible = arrays["tracks"].astype(np.float32), arrays["visible"].astype(bool)
        if tracks.ndim != 3 or tracks.shape[-1] != 2 or visible.shape != tracks.shape[:2]:
            raise DatasetError(
                f"{path}: tracks {tracks.shape} / visible {visible.shape} are not (T, N, 2) / (T, N)"
            )
        return tracks, visible, meta

    def meta(self, ep: int) -> dict:
        """The metadata of one episode's file, without loading its arrays."""
        path = self.path(ep)
        try:
            with safe_open(str(path), framework="numpy") as f:
                return dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as e:
            raise DatasetError(f"{path}: unreadable track file ({e})") from e
