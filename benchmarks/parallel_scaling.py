"""CPU scaling of a pretraining step: 1 vs 2 processes, DDP vs FSDP2 (gloo), as ratios of one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/parallel_scaling.py --preset tiny --batch 8 --steps 12

Four set-ups train CARE's pretraining model on fixed synthetic batches (the step's compute and
communication only; the data loader has its own benchmark), one thread per process:

    one        1 process, batch 2b                          the reference
    separate   2 processes, batch b each, no communication  the same compute and core sharing
    ddp        2 processes, batch b each, DistributedDataParallel (what Accelerate does)
    fsdp2      2 processes, batch b each, care.training.parallel's fully_shard

samples/s counts the global batch (2b per step in each set-up). The communication share of a
parallel set-up is 1 − t(separate) / t(set-up): the fraction of its step spent in (or waiting
for) all-reduce / all-gather / reduce-scatter, against the same two processes that never talk.
The set-ups run in turn, twice (one, separate, ddp, fsdp2, one, ...), and each keeps its
faster pass, so a machine that slows down mid-run slows every set-up. Prints a Markdown table;
--json writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_and_batch(preset: str, batch: int, seed: int = 0):
    from care.methods.care.configuration_care import CareConfig
    from care.methods.registry import model_class
    from care.models.tokenizer import build_tokenizer
    from care.presets import get_preset

    cfg, method = get_preset(preset), CareConfig().preset(preset)
    torch.manual_seed(seed)
    model = model_class(method)(cfg, method, build_tokenizer(cfg, ["close the drawer", "press the button"]))
    g = torch.Generator().manual_seed(seed + 1)
    S, N = cfg.image_size, 16
    tracks = torch.rand(batch, N, 2, generator=g) * (S - 1)
    b = {"obs": torch.randint(0, 256, (batch, 3, S, S), dtype=torch.uint8, generator=g),
         "future_obs": torch.randint(0, 256, (batch, 3, S, S), dtype=torch.uint8, generator=g),
         "instruction": ["close the drawer"] * batch, "tracks": tracks,
         "future_tracks": tracks + torch.randn(batch, N, 2, generator=g), "visible": torch.ones(batch, N, dtype=torch.bool)}
    model.prepare_training(b)
    return model, b


def _time_steps(model, step_model, batch, steps: int, warmup: int = 2) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    for i in range(warmup + steps):
        if i == warmup:
            if dist.is_initialized():
                dist.barrier()
            t0 = time.perf_counter()
        loss = step_model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps


def _worker(rank: int, world: int, mode: str, preset: str, batch: int, steps: int, port: int, out: str):
    torch.set_num_threads(1)
    if mode != "separate":
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model, b = _model_and_batch(preset, batch)
    step_model = model
    if mode == "ddp":
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    elif mode == "fsdp2":
        from care.configs import ParallelConfig
        from care.training.parallel import build_strategy

        acc = SimpleNamespace(mixed_precision="no", device=torch.device("cpu"))
        step_model = model = build_strategy(ParallelConfig(strategy="fsdp2"), acc).apply(model)
    t = _time_steps(model, step_model, b, steps)
    Path(out, f"{mode}_{rank}.json").write_text(json.dumps({"step_s": t}))
    if dist.is_initialized():
        dist.destroy_process_group()


def measure(mode: str, preset: str, batch: int, steps: int) -> float:
    """Seconds per step of a set-up (the slowest process's)."""
    with tempfile.TemporaryDirectory() as out:
        world = 1 if mode == "one" else 2
        per_rank = 2 * batch if mode == "one" else batch
        mp.spawn(_worker, args=(world, mode, preset, per_rank, steps, _free_port(), out), nprocs=world)
        return max(json.loads(p.read_text())["step_s"] for p in Path(out).glob("*.json"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8, help="per-process batch b of the 2-process set-ups")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    modes = ("one", "separate", "ddp", "fsdp2")
    best = {m: float("inf") for m in modes}
    for _ in range(a.repeats):
        for m in modes:
            best[m] = min(best[m], measure(m, a.preset, a.batch, a.steps))
    rate = {m: 2 * a.batch / best[m] for m in modes}
    rows = []
    for m in modes:
        comm = 1 - best["separate"] / best[m] if m in ("ddp", "fsdp2") else None
        rows.append({"setup": m, "step_s": best[m], "samples_per_s": rate[m], "vs_one": rate[m] / rate["one"],
                     "comm_share": comm})
    print(f"preset {a.preset}, global batch {2 * a.batch}, {a.steps} timed steps, best of {a.repeats}, "
          f"1 thread per process, {os.cpu_count()} CPUs")
    print("| set-up | step (s) | samples/s | vs 1 process | communication share |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        comm = "" if r["comm_share"] is None else f"{r['comm_share']:.0%}"
        print(f"| {r['setup']} | {r['step_s']:.3f} | {r['samples_per_s']:.1f} | {r['vs_one']:.2f}x | {comm} |")
    if a.json:
        a.json.write_text(json.dumps({"preset": a.preset, "batch_per_process": a.batch, "steps": a.steps,
                                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
