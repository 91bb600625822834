"""`care viz tracks DIR --episode 0 --output-dir outputs/viz`: draw an episode's tracks over its frames.

Each point keeps one colour for the whole video, picked from its position on the first frame
(hue left to right, brightness top to bottom, over the points' extent), so neighbours that move together look alike
and a point that jumps across the image stands out. A visible point is a filled dot with a
trail of its last `tail` positions; an invisible one is a hollow ring at its last known
position. Writes the mp4 (H.264, PyAV) and a PNG strip of a few evenly spaced frames next to
it (`tracks.mp4` -> `tracks.png`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from care.configs import VizTracksConfig
from care.data.video import write_mp4
from care.data.lerobot import LeRobotDataset
from care.data.tracks import TrackStore
from care.errors import CareError, DatasetError


def point_colors(start: np.ndarray) -> np.ndarray:
    """(N, 2) first positions -> uint8 (N, 3) RGB: hue from x, brightness from y.

    Spread over the points' own extent, not the image's, so that points on one object (the
    simulator's ground truth sits on the gripper and the object) still get distinct colours.
    """
    if len(start) == 0:
        return np.zeros((0, 3), np.uint8)
    lo, span = start.min(0), np.maximum(np.ptp(start, 0), 1e-6)  # (2,), (2,)
    u = np.clip((start - lo) / span, 0, 1)  # (N, 2) in [0, 1]
    hue = u[:, 0] * 150  # OpenCV hue is 0..179; stop short of wrapping back to red
    val = 255 - u[:, 1] * 110
    hsv = np.stack([hue, np.full_like(hue, 230), val], axis=-1).astype(np.uint8)[None]  # (1, N, 3)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def draw_tracks(
    frames: np.ndarray, tracks: np.ndarray, visible: np.ndarray, tail: int = 8, scale: int = 4
) -> np.ndarray:
    """uint8 (T, H, W, 3), tracks (T, N, 2), visible (T, N) -> uint8 (T, H*scale, W*scale, 3)."""
    T, H, W = frames.shape[:3]
    # pixel centres sit at integer coordinates (care.tracking.grid); map them to the upscaled image
    pts = (tracks.astype(np.float64) + 0.5) * scale - 0.5  # (T, N, 2)
    first = np.where(visible.any(0), visible.argmax(0), 0)  # (N,) first frame each point is seen
    colors = point_colors(tracks[first, np.arange(tracks.shape[1])])  # (N, 3)
    radius = max(2, scale)
    shift = 4  # sub-pixel drawing: OpenCV takes coordinates * 2**shift as integers
    ipts = np.round(np.nan_to_num(pts) * (1 << shift)).astype(np.int64).tolist()  # python ints for OpenCV
    out = np.empty((T, H * scale, W * scale, 3), dtype=np.uint8)
    for t in range(T):
        img = cv2.resize(frames[t], (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
        for n in range(tracks.shape[1]):
            color = tuple(int(c) for c in colors[n])
            for s in range(max(1, t - tail + 1), t + 1):  # trail: segments between visible positions
                if visible[s - 1, n] and visible[s, n]:
                    cv2.line(img, ipts[s - 1][n], ipts[s][n], color, 1, cv2.LINE_AA, shift)
            if visible[t, n]:
                cv2.circle(img, ipts[t][n], radius << shift, color, -1, cv2.LINE_AA, shift)
            else:
                cv2.circle(img, ipts[t][n], radius << shift, color, 1, cv2.LINE_AA, shift)
        out[t] = img
    return out


def write_strip(path: Path, frames: np.ndarray, count: int = 6) -> list[int]:
    """A PNG of `count` evenly spaced frames side by side, each labelled with its index."""
    T = len(frames)
    idx = sorted(set(np.linspace(0, T - 1, min(count, T)).round().astype(int).tolist()))
    gap = np.full((frames.shape[1], 4, 3), 255, dtype=np.uint8)
    tiles = []
    for i in idx:
        tile = frames[i].copy()
        cv2.putText(tile, f"t={i}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [tile, gap]
    strip = np.concatenate(tiles[:-1], axis=1)
    if not cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise CareError(f"could not write {path}")
    return idx


def viz_tracks(cfg: VizTracksConfig) -> dict:
    """Draw episode `cfg.episode`'s tracks; write `<output_dir>/tracks_episode_<i>.mp4` and its `.png` strip."""
    ds = LeRobotDataset(cfg.dataset)
    if cfg.episode not in ds.episode_indices:
        raise CareError(
            f"{cfg.dataset}: no episode {cfg.episode}; the dataset has episodes "
            f"{min(ds.episode_indices)}..{max(ds.episode_indices)}"
        )
    if not ds.cameras:
        raise DatasetError(f"{cfg.dataset}/meta/info.json: the dataset has no videos to draw on")
    ds.camera_key(cfg.camera)  # an unknown camera: DatasetError listing the dataset's cameras
    camera = cfg.camera or ds.cameras[0]
    store = TrackStore(cfg.dataset)
    if not store.has(cfg.episode):
        raise DatasetError(
            f"{cfg.dataset}/tracks: no tracks for episode {cfg.episode}; run `care track --dataset {cfg.dataset}` first"
        )
    tracks, visible, meta = store.read(cfg.episode)
    frames = ds.episode_frames(cfg.episode, camera)
    if len(frames) != len(tracks):
        raise DatasetError(
            f"{cfg.dataset}/tracks: episode {cfg.episode} has {len(tracks)} frames of tracks but "
            f"{len(frames)} video frames; re-run `care track --dataset {cfg.dataset} --overwrite`"
        )
    drawn = draw_tracks(frames, tracks, visible.astype(bool), tail=cfg.tail, scale=cfg.scale)
    out = Path(cfg.output_dir) / f"tracks_episode_{cfg.episode:06d}.mp4"
    write_mp4(out, drawn, cfg.fps or min(ds.fps, 20.0))
    strip = out.with_suffix(".png")
    write_strip(strip, drawn, cfg.strip_frames)
    print(f"care viz tracks: episode {cfg.episode} ({meta.get('method', '?')} tracks, {tracks.shape[1]} points, "
          f"{len(frames)} frames) -> {out} and {strip}")
    return {"video": out, "strip": strip, "frames": len(drawn)}
