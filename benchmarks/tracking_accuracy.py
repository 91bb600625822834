"""How accurate are care's trackers? Compare them with the simulator's ground-truth tracks.

    .venv/bin/python benchmarks/tracking_accuracy.py /tmp/care_track_bench --intervals 4 8

On a dataset collected with `care collect` (ground-truth tracks: points fixed on bodies,
projected through the camera, visibility by depth test), every tracker starts from the
ground-truth positions and is scored against the ground truth:

  * interval n (the pretraining frame interval, docs/DESIGN.md §3): windows o_t .. o_{t+n}, t every
    `--stride` frames (default n); queries are the points visible at t, the score is taken
    at t+n only (the pair the point decoder learns from).
  * whole episode: TAP-Vid's "query first" protocol: each point is queried on the first
    frame it is visible and scored on every later frame of the episode.

Scores (pixels of the stored frames):
  * median / mean end-point error over (point, frame) pairs visible in the ground truth;
  * δ_avg: share of those pairs within 1, 2, 4, 8, 16 px, averaged (TAP-Vid's <δ^x_avg;
    TAP-Vid measures at 256², so at 128² our thresholds are twice as loose in image terms);
  * occlusion accuracy: share of all scored pairs whose visibility the tracker got right;
  * median error where the tracker *says* visible (the pairs pretraining keeps: it masks
    out points its tracks call invisible) and the share of pairs it keeps;
  * throughput: point-frames tracked per second (tracker call only, decoding excluded).

`static` (every point stays where it was, always visible) is the no-motion baseline: its
error is the ground-truth motion itself.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from care.configs import CoTrackerConfig, KLTConfig, TrackConfig
from care.data.lerobot import LeRobotDataset
from care.data.tracks import TrackStore
from care.tracking.run import make_tracker

THRESHOLDS = (1, 2, 4, 8, 16)


@dataclass
class Score:
    """Accumulates scored (point, frame) pairs of one method on one protocol."""

    err: list = field(default_factory=list)  # EPE of ground-truth-visible pairs
    kept: list = field(default_factory=list)  # tracker said visible, for those same pairs
    occ_right: int = 0
    occ_total: int = 0
    point_frames: int = 0
    seconds: float = 0.0

    def add(self, pred, pred_vis, gt, gt_vis):
        """pred/gt (..., 2), pred_vis/gt_vis (...) for the scored pairs."""
        e = np.linalg.norm(pred - gt, axis=-1)
        self.err.append(e[gt_vis])
        self.kept.append(pred_vis[gt_vis])
        self.occ_right += int((pred_vis == gt_vis).sum())
        self.occ_total += int(gt_vis.size)

    def row(self) -> dict:
        err = np.concatenate(self.err) if self.err else np.zeros(0)
        kept = np.concatenate(self.kept).astype(bool) if self.kept else np.zeros(0, bool)
        nan = float("nan")
        return {
            "pairs": len(err),
            "median": float(np.median(err)) if len(err) else nan,
            "mean": float(err.mean()) if len(err) else nan,
            "delta_avg": float(np.mean([(err < t).mean() for t in THRESHOLDS])) if len(err) else nan,
            "occ_acc": self.occ_right / max(self.occ_total, 1),
            "kept": float(kept.mean()) if len(kept) else nan,
            "median_kept": float(np.median(err[kept])) if kept.any() else nan,
            "throughput": self.point_frames / self.seconds if self.seconds > 0 else nan,
        }


def static_tracker(frames, queries):
    T = len(frames)
    return np.broadcast_to(queries, (T, *queries.shape)).copy(), np.ones((T, len(queries)), bool)


def timed(tracker, score: Score, frames, queries):
    t0 = time.perf_counter()
    pred, vis = tracker(frames, queries)
    score.seconds += time.perf_counter() - t0
    score.point_frames += len(queries) * (len(frames) - 1)
    return pred, vis


def score_intervals(tracker, score: Score, frames, gt, gvis, n: int, stride: int):
    T = len(frames)
    for t in range(0, T - n, stride):
        q = gvis[t]  # (N,) points visible at the window's start
        if not q.any():
            continue
        pred, vis = timed(tracker, score, frames[t : t + n + 1], gt[t, q])
        score.add(pred[-1], vis[-1], gt[t + n, q], gvis[t + n, q])


def score_episode(tracker, score: Score, frames, gt, gvis):
    seen = gvis.any(0)  # (N,)
    first = gvis.argmax(0)  # (N,) first visible frame
    for f in np.unique(first[seen]):
        q = seen & (first == f)
        if f + 1 >= len(frames):
            continue
        pred, vis = timed(tracker, score, frames[f:], gt[f, q])
        score.add(pred[1:], vis[1:], gt[f + 1 :, q], gvis[f + 1 :, q])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="a dataset collected with `care collect` (ground-truth tracks)")
    p.add_argument("--methods", default="klt,static", help="comma-separated: klt, cotracker, static")
    p.add_argument("--intervals", type=int, nargs="+", default=[4, 8], help="frame intervals n to score")
    p.add_argument("--stride", type=int, default=None, help="window start every STRIDE frames (default: n)")
    p.add_argument("--episodes", type=int, default=None, help="score only the first EPISODES episodes")
    p.add_argument("--no-whole", action="store_true", help="skip the whole-episode protocol")
    p.add_argument("--camera", default=None)
    for f, default in vars(KLTConfig()).items():
        p.add_argument(f"--klt.{f}", dest=f"klt_{f}", type=type(default), default=default)
    p.add_argument("--cotracker.repo_dir", dest="cotracker_repo_dir", type=Path, default=None)
    p.add_argument("--cotracker.checkpoint", dest="cotracker_checkpoint", type=Path, default=None)
    p.add_argument("--cotracker.model_name", dest="cotracker_model_name", default="cotracker3_offline")
    p.add_argument("--cotracker.device", dest="cotracker_device", default="cpu")
    return p.parse_args(argv)


def fmt(x, spec):
    return "–" if x != x else format(x, spec)  # NaN -> dash


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ds = LeRobotDataset(args.dataset)
    store = TrackStore(args.dataset)
    camera = args.camera or ds.cameras[0]
    episodes = [ep for ep in ds.episode_indices if store.has(ep)][: args.episodes]
    if not episodes:
        print(f"{args.dataset}: no track files; collect with `care collect` (tracks=true)", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    klt = KLTConfig(**{f: getattr(args, f"klt_{f}") for f in vars(KLTConfig())})
    cot = CoTrackerConfig(
        repo_dir=args.cotracker_repo_dir, checkpoint=args.cotracker_checkpoint,
        model_name=args.cotracker_model_name, device=args.cotracker_device,
    )
    trackers = {}
    for m in methods:
        if m == "static":
            trackers[m] = static_tracker
        else:
            trackers[m] = make_tracker(TrackConfig(dataset=args.dataset, tracker={"klt": klt, "cotracker": cot}[m]))[0]

    protocols = [f"n={n}" for n in args.intervals] + ([] if args.no_whole else ["episode"])
    scores = {(m, p): Score() for m in methods for p in protocols}
    H = W = None
    for ep in episodes:
        gt, gvis, meta = store.read(ep)
        if meta.get("method") != "groundtruth":
            print(f"warning: episode {ep}'s tracks are {meta.get('method')!r}, not ground truth", file=sys.stderr)
        frames = ds.episode_frames(ep, camera)  # (T, H, W, 3)
        H, W = frames.shape[1:3]
        for m, tracker in trackers.items():
            for n in args.intervals:
                score_intervals(tracker, scores[m, f"n={n}"], frames, gt, gvis, n, args.stride or n)
            if not args.no_whole:
                score_episode(tracker, scores[m, "episode"], frames, gt, gvis)

    print(f"\nTracking accuracy on {args.dataset} ({len(episodes)} episodes, {W}x{H}, camera {camera!r}; "
          f"KLT window {klt.window}, levels {klt.levels}, fb threshold {klt.fb_threshold} px)\n")
    print("| method | protocol | scored pairs | median EPE (px) | mean EPE (px) | δ_avg | occlusion acc. "
          "| kept by tracker | median EPE kept (px) | point-frames/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in protocols:
        for m in methods:
            r = scores[m, p].row()
            print(f"| {m} | {p} | {r['pairs']} | {fmt(r['median'], '.2f')} | {fmt(r['mean'], '.2f')} "
                  f"| {fmt(r['delta_avg'], '.3f')} | {fmt(r['occ_acc'], '.3f')} | {fmt(r['kept'], '.1%')} "
                  f"| {fmt(r['median_kept'], '.2f')} | {fmt(r['throughput'], ',.0f') if m != 'static' else '–'} |")
    print(f"\ncommand: .venv/bin/python benchmarks/tracking_accuracy.py {shlex.join(argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
