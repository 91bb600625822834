"""torch.compile (CPU inductor) against eager for a training step: the step time, the compile
time, and whether the losses agree — the "cheaper seeds" question of a CPU pipeline.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compile_speedup.py --dataset data/mt10 --steps 30
    ... --stage finetune --finetune-config configs/finetune/no_pretrain.yaml --json benchmarks/results/compile.json

For each stage (the fine-tuning of configs/finetune/no_pretrain.yaml, every weight trained, and
CARE's pretraining, configs/pretrain/care_tiny.yaml), two copies of one model from the same
weights, one eager and one whose forward is `torch.compile`d, step through the same fixed batches
in fp32 (benchmarks/train_throughput.py builds them): the first steps' losses are compared
(they should agree to float rounding), then the steps are timed in alternating blocks (eager,
compiled, eager, ...) so a machine that slows down mid-run slows both. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import REPO, finetune_stage, pretrain_stage  # noqa: E402


def measure(name: str, batch_size: int, batches: list, make, steps: int, blocks: int) -> dict:
    eager_m, eager_step = make("fp32")
    comp_m, comp_step = make("fp32")
    comp_m.forward = torch.compile(comp_m.forward)  # the module's own forward: the step code is unchanged
    t = time.perf_counter()
    comp_step(batches[0])  # the first call compiles (forward and backward graphs)
    compile_s = time.perf_counter() - t
    eager_step(batches[0])
    # the same weights and batches: after the same steps both models should hold the same weights
    for b in batches[1:3]:
        eager_step(b), comp_step(b)
    drift = max(float((a - b).detach().abs().max()) for a, b in zip(eager_m.parameters(), comp_m.parameters()))
    times = {"eager": [], "compiled": []}
    per_block = max(1, steps // blocks)
    for _ in range(blocks):
        for kind, step in (("eager", eager_step), ("compiled", comp_step)):
            for i in range(per_block):
                t = time.perf_counter()
                step(batches[i % len(batches)])
                times[kind].append(time.perf_counter() - t)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"stage": name, "batch": batch_size, "steps": len(times["eager"]), "compile_s": compile_s,
            "eager_ms": 1e3 * med["eager"], "compiled_ms": 1e3 * med["compiled"],
            "speedup": med["eager"] / med["compiled"], "max_weight_diff_after_3_steps": drift,
            "break_even_steps": compile_s / max(1e-9, med["eager"] - med["compiled"])
            if med["eager"] > med["compiled"] else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="a LeRobot dataset with point tracks (care track)")
    ap.add_argument("--stage", choices=["pretrain", "finetune", "both"], default="both")
    ap.add_argument("--pretrain-config", type=Path, default=REPO / "configs/pretrain/care_tiny.yaml")
    ap.add_argument("--finetune-config", type=Path, default=REPO / "configs/finetune/no_pretrain.yaml")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), fp32")
    rows = []
    if args.stage in ("finetune", "both"):
        rows.append(measure(*finetune_stage(args.dataset, args.finetune_config, args.batches, lora=False),
                            args.steps, args.blocks))
    if args.stage in ("pretrain", "both"):
        rows.append(measure(*pretrain_stage(args.dataset, args.pretrain_config, [], args.batches),
                            args.steps, args.blocks))
    print("\n| stage | batch | eager step (ms) | compiled step (ms) | speed-up | compile (s) | break-even steps | "
          "max weight diff after 3 steps |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        be = f"{r['break_even_steps']:.0f}" if r["break_even_steps"] is not None else "never"
        print(f"| {r['stage']} | {r['batch']} | {r['eager_ms']:.0f} | {r['compiled_ms']:.0f} | {r['speedup']:.2f}× | "
              f"{r['compile_s']:.0f} | {be} | {r['max_weight_diff_after_3_steps']:.1e} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                         "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                                      if line.startswith("model name")), "unknown"),
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
