"""The measuring parts of benchmarks/gpu_check.sh (see there).

    python benchmarks/gpu_check.py throughput --device cuda --preset base --precision bf16 --steps 30 --json OUT
    python benchmarks/gpu_check.py summary OUT_DIR         (the Markdown table of every part's JSON)

throughput: CARE pretraining steps of a preset on fixed synthetic batches (compute only; the
data loader has its own benchmark): samples/s, model FLOPs of a step (torch's FlopCounterMode:
matmuls and attention, forward + backward), MFU against the device's measured bf16 (or fp32)
matmul peak in the same process, and the peak memory the step allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parallel_scaling import _model_and_batch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, seconds: float = 3.0) -> float:
    """FLOP/s of an n×n×n matmul (best of timed repeats)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        _sync(device)
        best = max(best, 10 * 2 * n ** 3 / (time.perf_counter() - t))
    return best


def throughput(a) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(a.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.precision]
    model, batch = _model_and_batch(a.preset, a.batch)
    model.to(device).train()
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()

    def step():
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):  # warm-up: kernels chosen, optimiser state allocated
        step()
    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
    opt.zero_grad(set_to_none=True)
    flops = int(counter.get_total_flops())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    _sync(device)
    dt = (time.perf_counter() - t) / a.steps
    peak = matmul_peak(device, dtype, a.matmul_size)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "preset": a.preset, "precision": a.precision, "batch": a.batch, "steps": a.steps,
           "step_s": dt, "samples_per_s": a.batch / dt, "step_tflop": flops / 1e12,
           "achieved_tflops": flops / dt / 1e12, "peak_matmul_tflops": peak / 1e12, "mfu": flops / dt / peak,
           "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 1024 ** 3) if device.type == "cuda" else None,
           "loss_finite": bool(torch.isfinite(loss.detach()).item())}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    if not out["loss_finite"]:
        raise SystemExit("the loss is not finite")
    return out


def summary(a) -> None:
    d = Path(a.dir)
    t = json.loads((d / "throughput.json").read_text())
    dry = " (dry run: every step on the CPU, micro sizes)" if t["device"] == "cpu" else ""
    lines = [f"GPU check on {t['device']}{dry} ({d}):", "",
             "| measure | value |", "|---|---:|",
             f"| `{t['preset']}` pretraining, {t['precision']}, batch {t['batch']}: samples/s | {t['samples_per_s']:.1f} |",
             f"| model TFLOP per step / achieved TFLOP/s | {t['step_tflop']:.2f} / {t['achieved_tflops']:.1f} |",
             f"| measured {t['precision']} matmul peak, TFLOP/s | {t['peak_matmul_tflops']:.1f} |",
             f"| MFU | {t['mfu']:.1%} |"]
    if t.get("peak_memory_gib") is not None:
        lines.append(f"| peak memory, GiB | {t['peak_memory_gib']:.2f} |")
    smoke = d / "fsdp2/train_log.jsonl"
    if smoke.is_file():
        rows = [json.loads(x) for x in smoke.read_text().splitlines() if x.strip()]
        train = [r for r in rows if r.get("split") == "train"]
        lines.append(f"| FSDP2 single-process smoke: steps, last loss, samples/s | {train[-1]['step']}, "
                     f"{train[-1]['loss']:.4f}, {train[-1]['samples_per_s']:.1f} |")
    rates = {}
    for dev in ("gpu", "cpu"):
        info = d / f"eval_{dev}/eval_info.json"
        if info.is_file():
            rates[dev] = json.loads(info.read_text())["overall"]["episodes_per_min"]
            lines.append(f"| batched evaluation on {dev}: episodes/min | {rates[dev]:.1f} |")
    if len(rates) == 2:
        lines.append(f"| evaluation, GPU vs CPU | {rates['gpu'] / rates['cpu']:.2f}x |")
    text = "\n".join(lines)
    (d / "summary.md").write_text(text + "\n")
    print(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--device", default="cuda")
    t.add_argument("--preset", default="base")
    t.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--matmul-size", type=int, default=8192)
    t.add_argument("--json")
    s = sub.add_parser("summary")
    s.add_argument("dir")
    a = ap.parse_args(argv)
    throughput(a) if a.cmd == "throughput" else summary(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
