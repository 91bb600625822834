"""How far do ground-truth track points move over n env steps? (docs/DESIGN.md §3: choose the frame
interval n and the image size from this.)

    MUJOCO_GL=egl .venv/bin/python benchmarks/track_displacement.py --size 128 --episodes 3

For every task, expert episodes are rolled out exactly as `care collect` records them, and for
each n the displacement |p(t+n) - p(t)| in pixels is taken over the points visible at both t
and t+n. A point "moves" when it moved more than --min-move px; the table gives the mean over
moving points (what the point decoder must predict), the share of points that move, and the
mean over all visible points (what a "no motion" baseline gets wrong on average).
Displacements scale with the image side: at 64² they are half the 128² figures.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

DEFAULT_TASKS = "reach-v3,push-v3,pick-place-v3,door-open-v3,drawer-close-v3,button-press-topdown-v3,window-open-v3"


def displacements(tracks: np.ndarray, visible: np.ndarray, n: int) -> np.ndarray:
    """(T, N, 2), (T, N) -> displacements (M,) of points visible at t and t+n, all t."""
    if len(tracks) <= n:
        return np.zeros(0)
    both = visible[:-n] & visible[n:]
    d = np.linalg.norm(tracks[n:] - tracks[:-n], axis=-1)
    return d[both]


def main() -> None:
    from care.configs import CollectConfig
    from care.data.collect import EpisodeRunner, episode_specs
    from care.envs.configs import MetaWorldEnvConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=DEFAULT_TASKS)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--episodes", type=int, default=3, help="per task")
    p.add_argument("--ns", default="2,4,8,12,16")
    p.add_argument("--min-move", type=float, default=0.5, help="px; below this a point counts as still")
    p.add_argument("--action-noise", type=float, default=0.0)
    p.add_argument("--detour-prob", type=float, default=0.0)
    a = p.parse_args()
    ns = [int(x) for x in a.ns.split(",")]
    cfg = CollectConfig(
        env=MetaWorldEnvConfig(tasks=a.tasks, size=a.size), episodes_per_task=a.episodes, workers=1, output_dir=Path("unused"),
        action_noise=a.action_noise, detour_prob=a.detour_prob,
    )  # fmt: skip
    runner = EpisodeRunner(cfg, max_envs=1)
    per_task: dict[str, dict[int, list[np.ndarray]]] = {}
    lengths: dict[str, list[int]] = {}
    try:
        for spec in episode_specs(cfg):
            _, ep = runner(spec)
            lengths.setdefault(spec.env_name, []).append(ep.length)
            for n in ns:
                per_task.setdefault(spec.env_name, {}).setdefault(n, []).append(displacements(ep.tracks, ep.visible, n))
    finally:
        runner.close()

    def row(chunks: list[np.ndarray]) -> str:
        d = np.concatenate(chunks)
        moving = d[d > a.min_move]
        return f"{moving.mean() if moving.size else 0:5.1f} {100 * moving.size / max(d.size, 1):4.0f}% {d.mean():5.1f}"

    head = "  ".join(f"{'n=' + str(n):^17}" for n in ns)
    sub = "  ".join(f"{'move':>5} {'%mv':>5} {'all':>5}" for _ in ns)
    width = max(len(t) for t in per_task) + 8
    print(f"\ndisplacement in px at {a.size}x{a.size} over n env steps (expert, noise {a.action_noise}, "
          f"detours {a.detour_prob}; {a.episodes} episodes per task)")
    print(f"{'':<{width}}{head}\n{'task (mean length)':<{width}}{sub}")
    for task, by_n in per_task.items():
        name = f"{task} ({np.mean(lengths[task]):.0f})"
        print(f"{name:<{width}}" + "  ".join(row(by_n[n]) for n in ns))
    print(f"{'all':<{width}}" + "  ".join(row([c for t in per_task.values() for c in t[n]]) for n in ns))
    print("move: mean over points that moved > %.1f px; %%mv: share of visible points that moved; "
          "all: mean over all visible points" % a.min_move)


if __name__ == "__main__":
    main()
