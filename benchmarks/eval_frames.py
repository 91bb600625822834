"""Evaluation speed with and without rendering the frames no plan reads, one process, same episodes.

    MUJOCO_GL=egl python benchmarks/eval_frames.py --policy runs/libero_object/no_pretrain_s0_ft \
        --env libero --suite libero_object --episodes 4
    MUJOCO_GL=egl python benchmarks/eval_frames.py --policy runs/paper_mt10/no_pretrain_s0_ft --env metaworld

Episodes alternate between the two modes (every step rendered / only the frames before a plan),
so a noisy machine slows both alike; one worker, one thread. Prints env steps per second (the
policy in the loop) per mode, the ratio, and whether every episode's actions, length, success
and reward were identical in both modes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--env", choices=["metaworld", "libero"], default="metaworld")
    ap.add_argument("--suite", default="libero_object", help="LIBERO suite")
    ap.add_argument("--tasks", default=None, help="tasks (Meta-World: MT10 by default; LIBERO: indices)")
    ap.add_argument("--episodes", type=int, default=4, help="episodes per mode (one per task, round robin)")
    ap.add_argument("--max-steps", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from care.envs.configs import LiberoEnvConfig, MetaWorldEnvConfig
    from care.envs.factory import make_env, resolve_env_tasks, task_instruction
    from care.evaluation.rollout import RenderEveryStep, run_episode
    from care.policy import CarePolicy

    policy = CarePolicy.from_pretrained(args.policy)
    size = int(policy.meta["frame_hw"][0])
    if args.env == "libero":
        cfg = LiberoEnvConfig(suite=args.suite, init_states="fixed", **({"tasks": args.tasks} if args.tasks else {}))
        cfg = cfg.with_rendering(size=size, camera=policy.meta["camera"])
        seed0 = 0
    else:
        cfg = MetaWorldEnvConfig(**({"tasks": args.tasks} if args.tasks else {}))
        cfg = cfg.with_rendering(size=size, camera=policy.meta["camera"])
        seed0 = 1000
    if policy.wrist_camera:
        cfg = dataclasses.replace(cfg, wrist=True)
    tasks = resolve_env_tasks(cfg)
    max_steps = args.max_steps or cfg.max_steps
    stats = {"every step": [0, 0.0], "before plans": [0, 0.0]}
    same = True
    for ep in range(args.episodes):
        task = tasks[ep % len(tasks)]
        seed = seed0 + ep // len(tasks)
        instruction = task_instruction(cfg, task, seed)
        with make_env(cfg, task) as env:
            results = {}
            for mode in (("every step", "before plans") if ep % 2 == 0 else ("before plans", "every step")):
                t0 = time.perf_counter()
                r = run_episode(RenderEveryStep(env) if mode == "every step" else env, policy, instruction, seed, max_steps)
                stats[mode][0] += r.length
                stats[mode][1] += time.perf_counter() - t0
                results[mode] = (r.success, r.length, r.sum_reward)
            same &= results["every step"] == results["before plans"]
            print(f"{task} seed {seed}: {results}")
    rate = {m: n / s for m, (n, s) in stats.items()}
    print("| frames rendered | env steps | s | steps/s (1 worker, 1 thread) |\n|---|---:|---:|---:|")
    for m, (n, s) in stats.items():
        print(f"| {m} | {n} | {s:.1f} | {rate[m]:.2f} |")
    print(f"speed-up: {rate['before plans'] / rate['every step']:.2f}x; episodes identical in both modes: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
