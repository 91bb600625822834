"""Training throughput, fp32 vs bf16, with model FLOPs utilisation (MFU) — all measured in one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train_throughput.py --dataset data/mt10 --steps 12
    ... --stage pretrain --profile          (+ the top ops by self CPU time for each precision)

For each stage (pretraining with a method of the registry, fine-tuning of the same latent VLM):
  - a few fixed batches are collated once and cycled, so the numbers are the step's compute
    (the data loader has its own benchmark, benchmarks/data_loader.py);
  - one model and optimiser per precision, from the same initial weights, measured in
    alternating blocks (fp32, bf16, fp32, bf16, ...) so a machine that slows down mid-run
    slows both;
  - FLOPs of one step (forward + backward) from torch's FlopCounterMode (matmuls, convolutions,
    attention; elementwise work is not counted, as usual for MFU);
  - the peaks: a large fp32 and a large bf16 matmul timed in the same process.

Prints a Markdown table (samples/s, step ms, achieved GFLOP/s, MFU vs each precision's peak) and
writes it as JSON with --json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of an n×n×n matmul in `dtype` (best of a few timed repeats)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def step_flops(step_fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step_fn()
    return int(counter.get_total_flops())


# --- the stages: (model, optimiser, step function) per precision -------------------------


def pretrain_stage(dataset: Path, config: Path, method_args: list[str], n_batches: int):
    from care.cli import parse_config
    from care.configs import PretrainConfig
    from care.methods.registry import model_class
    from care.models.tokenizer import build_tokenizer
    from care.training.loop_utils import build_optimizer
    from care.training.pretrain import build_datasets, collate_pretrain

    cfg = parse_config(PretrainConfig, ["--config", str(config), "--dataset", str(dataset), *method_args])
    cls = model_class(cfg.method)
    train, _ = build_datasets(cfg, needs_tracks=cls.requires_tracks(cfg.method))
    tok = build_tokenizer(cfg.model, train.instructions())
    g = torch.Generator().manual_seed(0)
    picks = torch.randperm(len(train), generator=g)[: n_batches * cfg.batch_size].tolist()
    batches = [collate_pretrain([train[i] for i in picks[k::n_batches]]) for k in range(n_batches)]
    torch.manual_seed(0)
    model = cls(cfg.model, cfg.method, tok)
    model.prepare_training(batches[0])
    model.train()

    def make(dtype):
        m = copy.deepcopy(model)
        opt = build_optimizer(m, cfg.optim, m.param_groups(cfg.optim))

        def step(batch):
            with torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext():
                loss = m(batch)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            m.after_optimizer_step()
        return m, step

    return f"pretrain ({cfg.method.type}, {cfg.preset})", cfg.batch_size, batches, make


def finetune_stage(dataset: Path, config: Path, n_batches: int, lora: bool = True):
    from care.cli import parse_config
    from care.configs import FinetuneConfig
    from care.data.clips import ClipDataset
    from care.data.lerobot import LeRobotDataset
    from care.models.action_head import l1_action_loss
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import build_tokenizer
    from care.policy.normalize import fit_action_normalizer
    from care.training.finetune import build_policy_model, collate_finetune, labelled_episodes
    from care.training.loop_utils import build_optimizer

    cfg = parse_config(FinetuneConfig, ["--config", str(config), "--dataset", str(dataset), "--pretrained", "null",
                                        "--lora.enabled", str(lora).lower()])
    ds = LeRobotDataset(dataset)
    eps, _ = labelled_episodes(ds, cfg.episodes_per_task, cfg.seed)
    clip = dataclasses.replace(cfg.clip, image_size=cfg.model.image_size)
    train = ClipDataset(ds, frame_interval=0, action_horizon=cfg.head.chunk_size, clip=clip, episodes=eps,
                        require_actions=True)
    norm = fit_action_normalizer([ds.episode_actions(e) for e in eps], *cfg.action_quantiles)
    tok = build_tokenizer(cfg.model, [ds.episode_task(e) for e in eps])
    g = torch.Generator().manual_seed(0)
    picks = torch.randperm(len(train), generator=g)[: n_batches * cfg.batch_size].tolist()
    batches = [collate_finetune([train[i] for i in picks[k::n_batches]]) for k in range(n_batches)]
    torch.manual_seed(0)
    model = build_policy_model(cfg, LatentVLM(cfg.model, tok), norm.action_dim)
    model.train()

    def make(dtype):
        m = copy.deepcopy(model)
        opt = build_optimizer(m, cfg.optim)

        def step(batch):
            target = norm.normalize(batch["actions"])
            with torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext():
                pred = m(batch["obs"], batch["instruction"])
            loss = l1_action_loss(pred.float(), target, batch["action_is_pad"])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return m, step

    return f"finetune ({'LoRA' if lora else 'every weight'})", cfg.batch_size, batches, make


def measure(name, batch_size, batches, make, steps: int, blocks: int, profile: bool, peaks: dict) -> list[dict]:
    runs = {d: make(d) for d in ("fp32", "bf16")}
    flops = step_flops(lambda: runs["fp32"][1](batches[0]))  # counted once: autocast does not change it
    times: dict[str, list[float]] = {d: [] for d in runs}
    for d, (_, step) in runs.items():  # warm-up (allocator, oneDNN primitive caches)
        for b in batches[:2]:
            step(b)
    per_block = max(1, steps // blocks)
    for _ in range(blocks):
        for d, (_, step) in runs.items():
            for i in range(per_block):
                t = time.perf_counter()
                step(batches[i % len(batches)])
                times[d].append(time.perf_counter() - t)
    rows = []
    for d, ts in times.items():
        ts = sorted(ts)
        med = ts[len(ts) // 2]
        achieved = flops / med / 1e9
        rows.append({"stage": name, "precision": d, "batch": batch_size, "steps": len(ts),
                     "step_ms_median": 1e3 * med, "samples_per_s": batch_size / med,
                     "gflop_per_step": flops / 1e9, "gflop_per_s": achieved,
                     "mfu_vs_fp32_peak": achieved / peaks["fp32"], "mfu_vs_bf16_peak": achieved / peaks["bf16"]})
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof

        for d, (_, step) in runs.items():
            with prof(activities=[ProfilerActivity.CPU]) as p:
                for b in batches[:3]:
                    step(b)
            print(f"\n### {name}, {d}: top ops by self CPU time (3 steps)\n")
            print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="a LeRobot dataset with point tracks (care track)")
    ap.add_argument("--stage", choices=["pretrain", "finetune", "both"], default="both")
    ap.add_argument("--pretrain-config", type=Path, default=REPO / "configs/pretrain/care_tiny.yaml")
    ap.add_argument("--finetune-config", type=Path, default=REPO / "configs/finetune/care_tiny.yaml")
    ap.add_argument("--method-arg", action="append", default=[], help="extra `care pretrain` flags, e.g. --method.type=lapa")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per precision")
    ap.add_argument("--blocks", type=int, default=3, help="alternating fp32/bf16 blocks the steps are split into")
    ap.add_argument("--batches", type=int, default=4, help="distinct batches, collated once and cycled")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peaks (1024³): "
          f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s ({peaks['bf16'] / peaks['fp32']:.2f}×)")
    rows = []
    if args.stage in ("pretrain", "both"):
        rows += measure(*pretrain_stage(args.dataset, args.pretrain_config, args.method_arg, args.batches),
                        args.steps, args.blocks, args.profile, peaks)
    if args.stage in ("finetune", "both"):
        rows += measure(*finetune_stage(args.dataset, args.finetune_config, args.batches),
                        args.steps, args.blocks, args.profile, peaks)

    print("\n| stage | precision | samples/s | step (ms) | GFLOP/step | GFLOP/s | MFU vs fp32 peak | MFU vs bf16 peak | bf16 speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fp32 = next(x for x in rows if x["stage"] == r["stage"] and x["precision"] == "fp32")
        print(f"| {r['stage']} | {r['precision']} | {r['samples_per_s']:.1f} | {r['step_ms_median']:.0f} | "
              f"{r['gflop_per_step']:.1f} | {r['gflop_per_s']:.1f} | {100 * r['mfu_vs_fp32_peak']:.1f}% | "
              f"{100 * r['mfu_vs_bf16_peak']:.1f}% | {r['samples_per_s'] / fp32['samples_per_s']:.2f}× |")
    if args.json:
        args.json.write_text(json.dumps({"peaks_gflop_per_s": peaks, "threads": torch.get_num_threads(),
                                         "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
