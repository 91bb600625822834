"""`care track DIR`: fill a dataset's track store, episode by episode.

Every episode gets grid x grid points on an even grid of its first frame (care.tracking.grid),
tracked through the whole episode by the chosen method, written to
`DIR/tracks/episode_XXXXXX.safetensors` (the format of collected ground truth, see
care.data.tracks). Each file is written atomically, so an interrupted run keeps the episodes
it finished and leaves no half-written one; re-running skips episodes that already have
tracks unless --overwrite.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from care.configs import TrackConfig
from care.data.lerobot import LeRobotDataset
from care.data.tracks import TrackStore
from care.errors import CareError, DatasetError
from care.tracking.grid import grid_points

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def make_tracker(cfg: TrackConfig) -> tuple[Tracker, dict]:
    """-> (tracker(frames (T,H,W,3) uint8, queries (N,2)) -> (tracks (T,N,2), visible (T,N)),
    the parameters to record in each episode's metadata). Loads CoTracker once, here."""
    t = cfg.tracker
    if t.type == "klt":
        from care.tracking.klt import track_klt

        return (lambda frames, queries: track_klt(frames, queries, t)), asdict(t)
    if t.type == "cotracker":
        from care.tracking.cotracker import load_cotracker, track_cotracker

        predictor = load_cotracker(t)
        params = {k: str(v) for k, v in asdict(t).items()}
        return (lambda frames, queries: track_cotracker(predictor, frames, queries, t.device)), params
    raise CareError(f"no tracker is implemented for --tracker.type={t.type!r}")


def _camera(ds: LeRobotDataset, camera: str | None) -> str:
    if not ds.cameras:
        raise DatasetError(
            f"{ds.root}/meta/info.json: the dataset has no videos (no observation.images.* feature), "
            "so there is nothing to track"
        )
    ds.camera_key(camera)  # an unknown camera: DatasetError listing the dataset's cameras
    return ds.cameras[0] if camera is None else camera


def _source(ds: LeRobotDataset, ep: int, camera: str) -> str:
    """How an error names an episode's video: its file where it has one."""
    try:
        return f"{ds.video_path(ep, camera)} (episode {ep})"
    except (DatasetError, KeyError):
        return f"{ds.root} episode {ep} camera {camera!r}"


def track(cfg: TrackConfig) -> dict:
    """Track every episode of `cfg.dataset` that has no tracks yet (all of them with overwrite).

    Returns {"written": [episode, ...], "skipped": [episode, ...]}.
    """
    if cfg.tracker.type == "cotracker":  # say what is missing before anything else, even with nothing to do
        from care.tracking.cotracker import check_paths

        check_paths(cfg.tracker)
    ds = LeRobotDataset(cfg.dataset)
    camera = _camera(ds, cfg.camera)
    episodes = list(ds.episode_indices)
    H, W = ds.frame_shape(camera)
    grid_points(cfg.grid, H, W, source=_source(ds, episodes[0], camera))  # a grid too large: fail before any work
    store = TrackStore(cfg.dataset)
    todo = [ep for ep in episodes if cfg.overwrite or not store.has(ep)]
    skipped = sorted(set(episodes) - set(todo))
    if skipped:
        print(f"care track: {len(skipped)} of {len(episodes)} episodes already have tracks, skipped "
              "(--overwrite to redo them)")
    if not todo:
        return {"written": [], "skipped": skipped}
    replaced = [ep for ep in todo if store.has(ep)]
    if replaced and store.meta(replaced[0]).get("method") == "groundtruth":
        print(f"care track: warning: --overwrite replaces the simulator's ground-truth tracks in {store.dir}")

    tracker, params = make_tracker(cfg)  # after the skip check: no model load when all is done
    meta = {
        "method": cfg.tracker.type,
        "grid": str(cfg.grid),
        "camera": camera,
        "params": json.dumps(params, sort_keys=True),
    }
    written = []
    bar = tqdm(todo, desc=f"track {cfg.tracker.type}", unit="ep", dynamic_ncols=True)
    for ep in bar:
        frames = ds.episode_frames(ep, camera)  # (T, H, W, 3) uint8; DatasetError names a bad file
        T, H, W = frames.shape[:3]
        queries = grid_points(cfg.grid, H, W, source=_source(ds, ep, camera))  # (N, 2), N = grid²
        tracks, visible = tracker(frames, queries)  # (T, N, 2), (T, N)
        store.write(ep, tracks.astype(np.float32), visible.astype(bool), meta)
        written.append(ep)
        bar.set_postfix(visible=f"{visible[-1].mean():.0%}", frames=T)
    bar.close()
    print(f"care track: wrote {len(written)} episodes of {cfg.tracker.type} tracks ({cfg.grid}x{cfg.grid} points) "
          f"to {cfg.dataset / 'tracks'}")
    return {"written": written, "skipped": skipped}
