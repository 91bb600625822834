"""Collection speed per worker (one process), at a given image size.

    MUJOCO_GL=egl .venv/bin/python benchmarks/collect_speed.py --size 128 --steps 300

Rows:
  render only          one RGB render of the current state, no physics
  step, tracks off     expert action + physics + RGB render (what `--tracks false` costs)
  step, tracks on      the same + depth from the same render pass + projection and depth test
  collect, 1 worker    `care collect` end to end in-process (+ video encoding, parquet, tracks)

Two figures per row: frames per wall-clock second, and frames per CPU-second of this process
(all its threads) -- what one worker achieves when it has a core to itself. On a shared
machine the first depends on the other jobs; the load average is printed with the numbers.
Like `care collect`'s workers, the benchmark runs llvmpipe on one thread (LP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")


def bench_env(task: str, size: int, steps: int, tracks: bool, render_only: bool = False) -> tuple[float, float]:
    from care.envs.metaworld import MetaWorldEnv

    env = MetaWorldEnv(task, size=size, tracks=tracks, max_steps=10**6)
    env.reset(seed=0)
    for _ in range(10):  # warm up
        env.step(env.expert_action())
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        if render_only:
            env.view.render(env.data, depth=False)
            continue
        if i % 150 == 0:
            env.reset(seed=i)
        env.step(env.expert_action())
        if tracks:
            env.project_points()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return steps / dt, steps / cpu


def bench_collect(tasks: str, size: int, episodes: int) -> tuple[float, float]:
    from care.configs import CollectConfig
    from care.data.collect import collect_dataset
    from care.envs.configs import MetaWorldEnvConfig

    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = CollectConfig(
            env=MetaWorldEnvConfig(tasks=tasks, size=size), episodes_per_task=episodes, workers=1, output_dir=tmp / "ds"
        )
        c0 = time.process_time()
        s = collect_dataset(cfg)
        return s.fps, s.frames / (time.process_time() - c0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="drawer-close-v3,pick-place-v3")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--collect-episodes", type=int, default=2, help="per task; 0 skips the end-to-end row")
    a = p.parse_args()
    tasks = a.tasks.split(",")
    load0 = os.getloadavg()[0]
    rows = []
    for task in tasks:
        rows.append((task, "render only", bench_env(task, a.size, a.steps, tracks=False, render_only=True)))
        rows.append((task, "step, tracks off", bench_env(task, a.size, a.steps, tracks=False)))
        rows.append((task, "step, tracks on", bench_env(task, a.size, a.steps, tracks=True)))
    if a.collect_episodes:
        rows.append((a.tasks, "collect, 1 worker", bench_collect(a.tasks, a.size, a.collect_episodes)))
    print(f"\nframes/s per worker at {a.size}x{a.size} ({os.cpu_count()} cores; "
          f"load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after)")
    print(f"  {'task':<34} {'':<20} {'wall':>7} {'per CPU-s':>10}")
    for task, what, (fps, cpu_fps) in rows:
        print(f"  {task:<34} {what:<20} {fps:7.1f} {cpu_fps:10.1f}")


if __name__ == "__main__":
    main()
