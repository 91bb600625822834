"""One LIBERO step: LIBERO's own OffScreenRenderEnv (robosuite's renderer, agent view + wrist view
at 128²) against care's LiberoEnv (care's renderer, one camera; and without a render, what
evaluation's steps between plans cost), same task, same actions.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/libero_step.py [--steps 100] [--rounds 3]

Rounds alternate between the envs so a noisy machine slows all alike; prints ms per step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="libero_object")
    ap.add_argument("--task", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from libero.libero import benchmark
    from libero.libero.envs import OffScreenRenderEnv

    from care.envs.libero import LiberoEnv

    suite = benchmark.get_benchmark_dict()[args.suite]()
    theirs = OffScreenRenderEnv(bddl_file_name=suite.get_task_bddl_file_path(args.task),
                                camera_heights=128, camera_widths=128)
    from care.envs.libero import resolve_tasks

    ours = LiberoEnv(args.suite, resolve_tasks(args.suite, str(args.task))[0], size=128)
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (args.steps, 7))
    actions[:, 6] = -1.0
    def ours_reset(render: bool):
        def reset(e):
            e.reset(seed=0)
            e.render_on_step = render
        return reset

    envs = {"LIBERO OffScreenRenderEnv, 2 cameras": (theirs, lambda e: e.reset()),
            "care LiberoEnv, 1 camera": (ours, ours_reset(True)),
            "care LiberoEnv, no render (physics and control only)": (ours, ours_reset(False))}
    ms = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, (env, reset) in envs.items():
            reset(env)
            t = time.perf_counter()
            for a in actions:
                env.step(a)
            ms[name].append(1e3 * (time.perf_counter() - t) / args.steps)
    base = np.median(ms["LIBERO OffScreenRenderEnv, 2 cameras"])
    print("| env | ms per step (median of rounds) | vs LIBERO's |\n|---|---:|---:|")
    for name, v in ms.items():
        print(f"| {name} | {np.median(v):.1f} | {base / np.median(v):.2f}x |")
    theirs.close()
    ours.close()


if __name__ == "__main__":
    main()
