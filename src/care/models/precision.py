"""Numeric precision of training and inference: `--mixed-precision auto|fp32|bf16`.

"auto" (the default) is bf16 autocast where the hardware runs bf16 natively — a CUDA GPU that
supports it, or a CPU with AVX512-BF16 or AMX — and fp32 elsewhere. On this project's CPU a bf16
matmul runs ~2.5-3.6x the fp32 rate; a tiny pretraining step ran 1.37x faster and a 300-step
run showed the same diagnostics as fp32 within the seed-to-seed spread (docs/RESULTS.md, issue 11).
Weights, optimiser state and losses stay fp32 (autocast): only matmuls, convolutions and
attention run in bf16 (care.models.attention keeps CPU attention fast in bf16).

    precision = resolve_precision("auto", device)     # -> "fp32" | "bf16"
    with autocast(precision, device): ...
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16")  # fp16 would need loss scaling, which no loop here does


def bf16_native(device: str | torch.device = "cpu") -> bool:
    """Whether `device` runs bf16 matmuls natively (not emulated at fp32 speed or slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:  # private but stable helpers (torch >= 2.1); an unknown CPU counts as "no"
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:
            return False
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """"auto" -> "bf16" where `bf16_native(device)`, else "fp32"; "no" (Accelerate's name, in
    configs written before "auto") -> "fp32"; the others as given."""
    if precision in ("no", None, False):
        return "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def accelerate_name(precision: str) -> str:
    """Our name -> Accelerate's `mixed_precision` ("fp32" is "no")."""
    return {"fp32": "no", "bf16": "bf16"}[precision]


def autocast(precision: str, device: str | torch.device = "cpu"):
    """An autocast context for a resolved precision (nullcontext for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
