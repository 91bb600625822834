"""Pieces of the training loop (care.training.loop).

    make_accelerator     Accelerate on CPU / GPU / many processes (gloo on CPU)
    build_optimizer      AdamW; decay on matrices only; named parameters with their own LR
    warmup_cosine        linear warm-up, then cosine to min_lr_ratio · lr
    grad_norm_and_clip   global grad norm (before clipping) and clipping (sharded gradients too)
    ensure_finite        the NaN guard: a non-finite loss or gradient stops every process
    RunLogger            TensorBoard scalars + a JSONL log + a tqdm bar with loss and ETA
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from care.configs import OptimConfig
from care.errors import CareError
from care.training.parallel import clip_grad_norm_, is_sharded


class TrainingDiverged(CareError):
    """The loss (or the gradient) became NaN/inf; the run stopped before corrupting its checkpoints."""


def make_accelerator(mixed_precision: str = "auto", seed: int = 0):
    """An Accelerator; seeds every process identically (the model init must match across ranks).

    mixed_precision: auto | fp32 | bf16 (care.models.precision; "auto" is bf16 where the
    hardware runs it natively). The resolved choice is `acc.mixed_precision` ("no" for fp32).

    Several processes on a machine without a GPU run as DDP over gloo. Launch them with
    `accelerate launch --multi_gpu --num_processes 2 -m care ...` or `torchrun --nproc-per-node 2
    -m care ...`: Accelerate only treats them as CPU workers when told `cpu=True`, which we do here
    when there is no CUDA device. (`accelerate launch --cpu --num_processes 2` starts a single
    process in Accelerate 1.x unless it is given an MPI hostfile.)
    """
    import os

    from accelerate import Accelerator
    from accelerate.utils import set_seed

    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    if multi_cpu and "OMP_NUM_THREADS" not in os.environ:
        # Several CPU processes each spinning cpu_count() threads oversubscribe the cores; on
        # 2 cores that made a step ~30x slower (0.1 vs 3 it/s). Share the cores out instead.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    from care.models.precision import accelerate_name, resolve_precision

    precision = resolve_precision(mixed_precision, "cuda" if torch.cuda.is_available() else "cpu")
    acc = Accelerator(mixed_precision=accelerate_name(precision), cpu=multi_cpu)
    set_seed(seed)
    return acc


def build_optimizer(model: torch.nn.Module, optim: OptimConfig,
                    special_lr: dict[str, float | dict] | None = None) -> torch.optim.AdamW:
    """AdamW over trainable parameters. Weight decay on tensors with >= 2 dims only.

    special_lr: {substring of a parameter name: lr, or a dict of AdamW group options}; matching
    parameters get their own group without weight decay (e.g. {"uwl.log_vars": {"lr": 5e-3, "eps": 1e-4}}).
    """
    special_lr = special_lr or {}
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = next((s for s in special_lr if s in name), None)
        if key is not None:
            opts = special_lr[key] if isinstance(special_lr[key], dict) else {"lr": special_lr[key]}
            g = groups.setdefault(f"special:{key}", {"params": [], "weight_decay": 0.0, **opts, "name": key})
        elif p.ndim >= 2:
            g = groups.setdefault("decay", {"params": [], "lr": optim.lr, "weight_decay": optim.weight_decay,
                                            "name": "decay"})
        else:
            g = groups.setdefault("no_decay", {"params": [], "lr": optim.lr, "weight_decay": 0.0,
                                               "name": "no_decay"})
        g["params"].append(p)
    # the fused kernel: one pass over every tensor instead of ~10 small ops each (3.3x faster on
    # a CPU for the tiny model's 14M parameters, ~10% of a pretraining step; docs/RESULTS.md, issue 11)
    devices = {p.device.type for g in groups.values() for p in g["params"]}
    fused = True if devices and devices <= {"cpu", "cuda"} else None
    return torch.optim.AdamW(list(groups.values()), lr=optim.lr, betas=tuple(optim.betas), fused=fused)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.1) -> LambdaLR:
    """Multiplier on each group's LR: (s+1)/warmup during warm-up, then cosine to min_ratio."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    return LambdaLR(optimizer, factor)


def grad_norm_and_clip(accelerator, params: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Global gradient norm before clipping; clips when max_norm > 0."""
    params = [p for p in params if p.grad is not None]
    if is_sharded(params):  # fsdp2 (care.training.parallel): one all-reduce over the gradients' shards
        return clip_grad_norm_(params, max_norm)
    if max_norm > 0:
        return accelerator.clip_grad_norm_(params, max_norm).detach()
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))


def ensure_finite(accelerator, value: torch.Tensor, step: int, what: str, hint: str) -> None:
    """Raise TrainingDiverged in every process if `value` is not finite in any of them."""
    bad = torch.tensor(0.0 if torch.isfinite(value.detach()).all() else 1.0, device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if bad.item() > 0:
        raise TrainingDiverged(f"the {what} became {float(value.detach()):.4g} at step {step + 1}; the run stopped. {hint}")


def optimizer_step(accelerator, model: torch.nn.Module, loss: torch.Tensor, optimizer, scheduler, step: int,
                   grad_clip: float, hint: str) -> torch.Tensor:
    """One training update: check the loss, backward, clip, check the gradient norm, step the
    optimiser and the schedule, clear the gradients. Returns the gradient norm before clipping."""
    ensure_finite(accelerator, loss, step, "loss", hint)
    accelerator.backward(loss)
    gnorm = grad_norm_and_clip(accelerator, model.parameters(), grad_clip)
    ensure_finite(accelerator, gnorm, step, "gradient norm", hint)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return gnorm


def precision_name(accelerator) -> str:
    """"fp32" | "bf16": what the run's autocast computes in (for its logs)."""
    return {"no": "fp32"}.get(str(accelerator.mixed_precision), str(accelerator.mixed_precision))


class RunLogger:
    """Main-process logging: TensorBoard (<out>/tensorboard), <out>/train_log.jsonl, tqdm."""

    def __init__(self, out_dir: Path, total_steps: int, start_step: int = 0, enabled: bool = True,
                 desc: str = "train"):
        self.enabled = enabled
        self.writer = self.bar = None
        self.jsonl = Path(out_dir) / "train_log.jsonl"
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step or None)
        self.bar = tqdm(total=total_steps, initial=start_step, desc=desc, dynamic_ncols=True)
        if start_step and self.jsonl.is_file():  # a resumed run rewrites what came after its checkpoint
            keep = [line for line in self.jsonl.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= start_step]
            self.jsonl.write_text("".join(line + "\n" for line in keep))
        elif not start_step:
            self.jsonl.write_text("")

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps({"step": step, "split": prefix, **values}) + "\n")

    def progress(self, n: int = 1, **postfix) -> None:
        if self.enabled:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def write(self, msg: str) -> None:
        if self.enabled:
            self.bar.write(msg)

    def close(self) -> None:
        if self.enabled:
            self.writer.flush()
            self.writer.close()
            self.bar.close()


class Throughput:
    """Samples/s over the steps since the last call (validation and saving excluded by `pause`)."""

    def __init__(self):
        self.t0, self.samples, self.paused = time.perf_counter(), 0, 0.0

    def add(self, samples: int) -> None:
        self.samples += samples

    def pause(self, fn: Callable):
        t = time.perf_counter()
        out = fn()
        self.paused += time.perf_counter() - t
        return out

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0 - self.paused
        r = self.samples / dt if dt > 0 else 0.0
        self.t0, self.samples, self.paused = time.perf_counter(), 0, 0.0
        return r
