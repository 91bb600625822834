"""The control loop at batch 1: latency of one policy call (p50, p99) and actions/s, for open-loop
chunks, re-planning every step, and temporal ensembling; fp32 and bf16 inference, in one run
(and one batched call of 10 frames, what a lockstep evaluation step pays).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/control_loop.py --policy runs/no_pretrain_ft --steps 200

Each configuration runs `--steps` select_action calls on frames of the policy's recorded size
(a fixed set of random frames, cycled), the way a robot loop calls it: a call that only pops the
chunk queue costs microseconds, a call that re-plans costs a forward pass. "policy call" is
predict_chunk alone (the forward pass with its pre- and post-processing); "actions/s" of the
policy-call rows are calls/s (chunks/s), of the batch-10 row environment-calls/s. Rows are measured in
alternating rounds so a machine that slows down mid-run slows every row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)

    from care.policy import CarePolicy, read_policy_meta

    meta = read_policy_meta(args.policy)
    h, w = meta["frame_hw"]
    frames = np.random.default_rng(0).integers(0, 256, size=(8, h, w, 3), dtype=np.uint8)
    instr = "open the drawer"
    configs = {}
    for precision in ("fp32", "bf16"):
        configs[("policy call (predict_chunk)", precision)] = CarePolicy.from_pretrained(args.policy, precision=precision)
        configs[("policy call, batch 10", precision)] = CarePolicy.from_pretrained(args.policy, precision=precision)
        configs[("chunk, open loop", precision)] = CarePolicy.from_pretrained(args.policy, precision=precision)
        configs[("re-plan every step", precision)] = CarePolicy.from_pretrained(args.policy, n_action_steps=1,
                                                                                precision=precision)
        configs[("temporal ensembling", precision)] = CarePolicy.from_pretrained(args.policy, execution="ensemble",
                                                                                 precision=precision)
    lat: dict = {k: [] for k in configs}
    wall: dict = {k: 0.0 for k in configs}
    for policy in configs.values():  # warm-up
        for f in frames[:3]:
            policy.predict_chunk(f[None], [instr])
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for key, policy in configs.items():
            policy.reset()
            t_round = time.perf_counter()
            for i in range(per_round):
                f = frames[i % len(frames)]
                t = time.perf_counter()
                if key[0] == "policy call, batch 10":
                    policy.predict_chunk(frames[:8][np.arange(10) % 8], [instr] * 10)
                elif key[0].startswith("policy call"):
                    policy.predict_chunk(f[None], [instr])
                else:
                    policy.select_action(f, instr)
                lat[key].append(time.perf_counter() - t)
            wall[key] += time.perf_counter() - t_round
    chunk = next(iter(configs.values())).chunk_size
    print(f"{args.policy}: chunk size {chunk}, {h}x{w} frames, {per_round * args.rounds} calls per row")
    print("\n| loop | precision | actions/s | p50 (ms) | p99 (ms) | forward passes per action |")
    print("|---|---|---:|---:|---:|---:|")
    per_action = {"policy call (predict_chunk)": "1", "policy call, batch 10": "1/10 (per env)",
                  "chunk, open loop": f"1/{chunk}", "re-plan every step": "1", "temporal ensembling": "1"}
    for key in configs:
        ms = 1e3 * np.asarray(lat[key])
        rate = len(ms) / wall[key] * (10 if key[0] == "policy call, batch 10" else 1)
        print(f"| {key[0]} | {key[1]} | {rate:.0f} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | "
              f"{per_action[key[0]]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
