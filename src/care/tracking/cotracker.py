"""CoTracker (Karaev et al.) as a care tracker, loaded from local files only.

care never downloads anything. The user provides
  * `repo_dir`: a local clone of https://github.com/facebookresearch/co-tracker (the folder
    holding `hubconf.py` and the `cotracker` package), and
  * `checkpoint`: a local weights file matching `model_name` (e.g. `scaled_offline.pth` for
    `cotracker3_offline`).

Loading follows the repository's own hubconf: `torch.hub.load(repo_dir, model_name,
source="local", pretrained=False)` builds the predictor without fetching weights (its
`pretrained=True` path downloads them), then the checkpoint is loaded into the predictor's
inner network `predictor.model`, the way CoTracker's `build_cotracker(checkpoint)` does
(a `{"model": state_dict}` wrapper is unwrapped).

The offline predictor is called as
    tracks, visibility = predictor(video, queries=queries)
    video       float (B, T, 3, H, W), RGB in 0..255
    queries     float (B, N, 3), rows (t, x, y): frame index and pixel position
    tracks      float (B, T, N, 2) pixel (x, y) in the input video's frame
    visibility  bool  (B, T, N)   (the predictor thresholds its logits at 0.9)
and we map it to care's (T, N, 2) / (T, N) with B = 1, every query on frame 0 (the same
grid as KLT). Online predictors (`*_online`) take the video in chunks with another call
signature and are not supported: use an offline model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from care.configs import CoTrackerConfig
from care.errors import ConfigError
from care.tracking.grid import check_frames, check_queries, inside_image

COTRACKER_URL = "https://github.com/facebookresearch/co-tracker"


def check_paths(cfg: CoTrackerConfig) -> tuple[Path, Path]:
    """The local source folder and checkpoint, or a ConfigError saying what to provide."""
    if cfg.repo_dir is None:
        raise ConfigError(
            "CoTracker needs a local source folder: pass --tracker.repo_dir DIR, a clone of "
            f"{COTRACKER_URL} (the folder holding hubconf.py); care never downloads it"
        )
    repo_dir = Path(cfg.repo_dir).expanduser()
    if not (repo_dir / "hubconf.py").is_file():
        raise ConfigError(
            f"--tracker.repo_dir {repo_dir}: no hubconf.py there; point it at a clone of {COTRACKER_URL}"
        )
    if cfg.checkpoint is None:
        raise ConfigError(
            "CoTracker needs local weights: pass --tracker.checkpoint FILE, the checkpoint of "
            f"{cfg.model_name!r} (e.g. scaled_offline.pth for cotracker3_offline, from the links "
            f"in {COTRACKER_URL}'s README); care never downloads it"
        )
    checkpoint = Path(cfg.checkpoint).expanduser()
    if not checkpoint.is_file():
        raise ConfigError(f"--tracker.checkpoint {checkpoint}: file not found")
    if "online" in cfg.model_name:
        raise ConfigError(
            f"--tracker.model_name {cfg.model_name!r}: online predictors are not supported; "
            "use an offline one (e.g. cotracker3_offline)"
        )
    return repo_dir, checkpoint


def load_cotracker(cfg: CoTrackerConfig) -> torch.nn.Module:
    """Build the predictor from `cfg.repo_dir`'s hubconf and load `cfg.checkpoint` into it."""
    repo_dir, checkpoint = check_paths(cfg)
    try:
        predictor = torch.hub.load(str(repo_dir), cfg.model_name, source="local", pretrained=False)
    except (AttributeError, RuntimeError) as e:  # hub raises these for an unknown entry point
        raise ConfigError(f"{repo_dir}/hubconf.py: cannot build {cfg.model_name!r}: {e}") from e
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    net = getattr(predictor, "model", predictor)  # CoTrackerPredictor keeps its network in .model
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(
            f"--tracker.checkpoint {checkpoint} does not fit model {cfg.model_name!r}: {e}"
        ) from e
    return predictor.to(cfg.device).eval()


@torch.no_grad()
def track_cotracker(
    predictor: torch.nn.Module, frames: np.ndarray, queries: np.ndarray, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Track query points from the first frame with a loaded CoTracker predictor.

    Args and returns as care.tracking.klt.track_klt: frames uint8 (T, H, W, 3), queries
    (N, 2) pixel (x, y) on frames[0] -> tracks float32 (T, N, 2), visible bool (T, N).
    Points CoTracker places outside the image are marked invisible (as KLT does).
    """
    frames = check_frames(frames)
    if frames.ndim != 4:
        raise ConfigError("CoTracker needs RGB frames (T, H, W, 3)")
    queries = check_queries(queries)
    T, H, W, _ = frames.shape
    N = len(queries)
    video = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)[None].float()  # (1, T, 3, H, W), 0..255
    q = torch.zeros(1, N, 3, device=device)  # (1, N, 3) rows (t, x, y), all on frame 0
    q[0, :, 1:] = torch.from_numpy(queries).to(device)
    tracks, vis = predictor(video, queries=q)  # (1, T, N, 2), (1, T, N)
    if tuple(tracks.shape) != (1, T, N, 2) or tuple(vis.shape) != (1, T, N):
        raise ConfigError(
            f"CoTracker returned tracks {tuple(tracks.shape)} and visibility {tuple(vis.shape)}; "
            f"expected (1, {T}, {N}, 2) and (1, {T}, {N})"
        )
    tracks = tracks[0].float().cpu().numpy().astype(np.float32)  # (T, N, 2)
    vis = vis[0].cpu()
    visible = (vis > 0.5 if vis.is_floating_point() else vis.bool()).numpy()  # (T, N)
    visible &= inside_image(tracks, H, W)
    return tracks, visible
