"""Pyramidal Lucas-Kanade point tracking (OpenCV), with a forward-backward check.

The CPU tracker behind `care track --tracker.type klt`: no weights, ~ms per frame at 128².
Points are tracked frame to frame on grayscale images, t-1 -> t, through the whole clip:

    p_t      = LK(gray[t-1] -> gray[t], p_{t-1})       forward
    p'_{t-1} = LK(gray[t] -> gray[t-1], p_t)           backward
    lost when |p'_{t-1} - p_{t-1}| > fb_threshold, when either LK call fails (status 0:
    the patch left the pyramid or its gradient matrix is degenerate), or when p_t leaves
    the image.

A lost point stays lost. Frame-to-frame KLT has nothing to re-acquire a point with (that
needs a template of the point's appearance, which drifts and re-attaches to look-alikes),
and a track that jumps back in after an occlusion is more often wrong than right. So once
lost a point keeps its last accepted position, marked invisible, for the rest of the clip;
consumers (the point decoder's loss, the benchmark) ignore invisible points. Trackers that
do re-acquire points (CoTracker) report visibility per frame instead.

What the visibility flag does and does not catch (tests/tracking/test_klt.py, and the
benchmark on Meta-World at 128²):
  * points on textureless regions (a flat wall) are lost on the first step: LK cannot see
    them move. On Meta-World's `corner` view about a third of a 16x16 grid is lost at once.
  * an occluder that covers the point's whole window is caught; a small one (smaller than
    the window) is not: LK follows the texture around it. KLT's occlusion accuracy is no
    better than calling every point visible; use CoTracker where occlusion matters.
  * within about half a window of the border the window sees border pixels that do not move,
    so accuracy drops (~1 px) while the point still reads visible.
Accuracy from ground-truth starts, 20 Meta-World episodes at 128²: median error 0.27 px over
n = 4 frames, 0.41 px over n = 8, 1.4 px over whole episodes (benchmarks/tracking_accuracy.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from care.configs import KLTConfig
from care.tracking.grid import check_frames, check_queries, inside_image


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB or (T, H, W) gray -> contiguous uint8 (T, H, W) gray."""
    frames = check_frames(frames)
    if frames.ndim == 3:
        return np.ascontiguousarray(frames)
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def track_klt(
    frames: np.ndarray, queries: np.ndarray, cfg: KLTConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Track query points from the first frame through every frame.

    Args:
        frames: uint8 (T, H, W, 3) RGB, or (T, H, W) grayscale.
        queries: (N, 2) pixel (x, y) positions on frames[0] (see care.tracking.grid for the
            pixel convention). Points outside the image start invisible.
        cfg: window, pyramid levels, forward-backward threshold, LK stopping criteria.

    Returns:
        tracks float32 (T, N, 2) pixel (x, y); tracks[0] == queries.
        visible bool (T, N); once False, False for the rest of the clip (module docstring).
    """
    cfg = cfg or KLTConfig()
    gray = to_gray(frames)  # (T, H, W)
    queries = check_queries(queries)
    T, H, W = gray.shape
    N = len(queries)

    lk = dict(
        winSize=(cfg.window, cfg.window),
        maxLevel=cfg.levels,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, cfg.max_iters, cfg.eps),
        minEigThreshold=cfg.min_eig_threshold,
    )
    tracks = np.empty((T, N, 2), dtype=np.float32)
    visible = np.zeros((T, N), dtype=bool)
    pos = queries.copy()  # (N, 2) last accepted position
    alive = inside_image(pos, H, W)  # (N,)
    tracks[0], visible[0] = pos, alive

    for t in range(1, T):
        idx = np.flatnonzero(alive)
        if idx.size:
            p0 = pos[idx].reshape(-1, 1, 2)  # (n, 1, 2) as OpenCV wants it
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], p0, None, **lk)
            p0r, st0, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], p1, None, **lk)
            p1, p0r = p1.reshape(-1, 2), p0r.reshape(-1, 2)
            fb_err = np.linalg.norm(p0r - p0.reshape(-1, 2), axis=-1)  # (n,)
            ok = (
                (st1.ravel() == 1)
                & (st0.ravel() == 1)
                & (fb_err <= cfg.fb_threshold)  # NaN compares False: lost
                & inside_image(p1, H, W)
            )
            pos[idx[ok]] = p1[ok]
            alive[idx[~ok]] = False
        tracks[t], visible[t] = pos, alive
    return tracks, visible
