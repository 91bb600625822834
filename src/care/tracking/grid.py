"""Query points on an even grid, and the checks every tracker shares.

Pixel convention (the track store's, see care.data.tracks): x right, y down, in pixels of
the stored video frame, with the *centre* of pixel (i, j) at (x=j, y=i) — OpenCV's
convention. The image spans [-0.5, W-0.5] x [-0.5, H-0.5]; a point is inside when its
centre-relative coordinates lie in [0, W-1] x [0, H-1] (where an image value can be
interpolated without extrapolation).
"""

from __future__ import annotations

import numpy as np

from care.errors import CareError


def grid_points(grid: int, height: int, width: int, source: str = "the frames") -> np.ndarray:
    """grid x grid points at the centres of an even grid of cells -> float32 (grid*grid, 2).

    Row-major: point k is at row k // grid, column k % grid, so `(N, 2) -> (grid, grid, 2)`
    is a plain reshape. For grid 16 on a 128 px side the points sit at 3.5, 11.5, ..., 123.5.
    `source` names the video in the error raised when the grid does not fit.
    """
    if grid < 1:
        raise CareError(f"grid must be >= 1, got {grid}")
    if grid > min(height, width):
        raise CareError(
            f"grid {grid}x{grid} is larger than the image of {source} ({width}x{height} px): "
            f"one point per cell needs cells of at least one pixel; use --grid <= {min(height, width)}"
        )
    xs = (np.arange(grid, dtype=np.float64) + 0.5) * width / grid - 0.5
    ys = (np.arange(grid, dtype=np.float64) + 0.5) * height / grid - 0.5
    gx, gy = np.meshgrid(xs, ys)  # (grid, grid) each, rows = y
    return np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)  # (N, 2)


def inside_image(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (...,) : the point's (x, y) lies within [0, W-1] x [0, H-1] (and is finite)."""
    x, y = points[..., 0], points[..., 1]
    return np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Accept uint8 (T, H, W, 3) RGB or (T, H, W) grayscale with T >= 1; return it unchanged."""
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] != 3) or len(frames) < 1:
        raise CareError(
            f"expected frames as (T, H, W, 3) RGB or (T, H, W) grayscale with T >= 1, got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise CareError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def check_queries(queries: np.ndarray) -> np.ndarray:
    """float32 (N, 2) pixel (x, y) query points on the first frame."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != 2:
        raise CareError(f"expected query points as (N, 2) pixel (x, y), got shape {queries.shape}")
    return queries
