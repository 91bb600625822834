"""Point tracks for any video: the point decoder's targets (paper §2.2, docs/DESIGN.md §3).

Every tracker has one shape: frames uint8 (T, H, W, 3) and query points (N, 2) pixel (x, y)
on the first frame -> tracks float32 (T, N, 2) and visible bool (T, N), in the track store's
pixel convention (care.tracking.grid). `care track` queries an even grid; the accuracy
benchmark (benchmarks/tracking_accuracy.py) queries the simulator's ground-truth points.

    grid.py       grid_points(grid, H, W): the even grid of queries, shared checks
    klt.py        track_klt(frames, queries, KLTConfig): OpenCV pyramidal Lucas-Kanade
    cotracker.py  load_cotracker(CoTrackerConfig) + track_cotracker(predictor, frames, queries)
    run.py        `care track DIR`: fills the dataset's track store; make_tracker(TrackConfig)
    viz.py        `care viz tracks DIR`: tracks drawn over the frames, mp4 + PNG strip
"""

from care.tracking.cotracker import load_cotracker, track_cotracker
from care.tracking.grid import grid_points, inside_image
from care.tracking.klt import track_klt

__all__ = ["grid_points", "inside_image", "track_klt", "load_cotracker", "track_cotracker"]
