"""How big a preset is, and what training it costs per GPU, before any memory is spent.

The model is built on the meta device (shapes, no storage: a 7B model in a second), its
parameters counted per part, and the per-GPU memory of a pretraining step estimated for DDP
and FSDP2 (care.training.parallel) at N GPUs:

    python -m care.training.sizing --preset prismatic-7b --gpus 8 --batch 8
    python -m care.training.sizing --write docs/DESIGN.md     # the table of docs/DESIGN.md §7

What the estimate counts (bytes per GPU; P = all parameters, T = trainable ones, N = GPUs):
    parameters   fp32 master weights: 4P (ddp) | 4P/N + the bf16 copies FSDP2 gathers: the
                 root's parameters for the whole step and two blocks at a time (the running
                 one and the prefetched one)
    gradients    fp32: 8T (ddp: the .grad and DDP's bucket copy) | 4T/N + one gathered block
    AdamW        two fp32 moments: 8T | 8T/N
    activations  per sample, bf16, for every transformer layer that needs a backward (frozen
                 towers store nothing): 2·(9h + 4I) bytes per token (the inputs of the two norms,
                 QKV, Q/K/V, attention output and its projection, the MLP's input, gate, up and
                 activation, memory-efficient attention keeping no score matrix; Korthikanti et al.
                 2022's count for a gated MLP) — with activation checkpointing, 2h per token per
                 layer (the block input) plus one layer recomputed in full.
Tokens per pretraining sample (CARE): each online tower sees o_t and o_{t+n}; the LLM reads the
inverse view (2 frames + instruction + K placeholders) and the policy view (1 frame + ...); the
frame decoder reads the patches. Not counted: the CUDA context and allocator slack (keep ~10%
free: `fits_batch` uses 90% of the GPU), the point decoder and the action head (small).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from pathlib import Path

import torch
import torch.nn as nn

from care.configs import ModelConfig

GiB = 1024 ** 3
MARK_BEGIN, MARK_END = "<!-- sizing:begin -->", "<!-- sizing:end -->"


def method_for(preset: str):
    """CARE's config for a model preset (its decoders sized for it); prismatic-7b takes the
    `pretrained` preset's decoders and frozen target (the same VLM recipe)."""
    from care.presets import method_preset

    return method_preset(preset, "care")


def build_on_meta(cfg: ModelConfig, method=None) -> nn.Module:
    """The method's pretraining model on the meta device (no parameter memory)."""
    from care.methods.registry import model_class
    from care.models.tokenizer import build_tokenizer

    method = method if method is not None else method_for("tiny")
    tok = build_tokenizer(dataclasses.replace(cfg, llm_path=None), ["pick up the block"])
    with torch.device("meta"):
        return model_class(method)(cfg, method, tok)


def count(module: nn.Module | None, trainable: bool = False) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def parts(model: nn.Module) -> dict[str, nn.Module]:
    """Named parts: each vision tower, the projector, the LLM, the rest of the VLM (latent
    queries, frame markers, latent projection) and each of the method's own modules."""
    vlm = model.vlm
    out: dict[str, nn.Module] = {f"vision.{k}": t for k, t in vlm.vision.towers.items()}
    out["projector"] = vlm.projector
    out["llm"] = vlm.llm
    inside = {id(p) for m in out.values() for p in m.parameters()}
    rest = nn.ParameterList([p for p in vlm.parameters() if id(p) not in inside])
    out["latent (queries, markers, z proj.)"] = rest
    for name, child in model.named_children():
        if name != "vlm":
            out[f"method.{name}"] = child
    return out


def parameter_counts(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{part: (parameters, trainable)} and "total"."""
    rows = {name: (count(m), count(m, trainable=True)) for name, m in parts(model).items()}
    rows["total"] = (count(model), count(model, trainable=True))
    return rows


def _layer_bytes(h: int, inter: int) -> int:
    """bf16 activations per token of one transformer layer kept for backward."""
    return 2 * (9 * h + 4 * inter)


def activation_bytes(model: nn.Module, batch: int, checkpointing: bool) -> int:
    """Activations of one pretraining step's forward kept for backward, on one GPU."""
    cfg, vlm = model.cfg, model.vlm
    P = (cfg.image_size // cfg.patch_size) ** 2
    m2 = cfg.vision_token_merge ** 2
    K, L = cfg.num_latents, cfg.max_text_tokens
    stacks = []  # (tokens per sample, layers, width, mlp width)
    for tower in vlm.vision.towers.values():
        if any(p.requires_grad for p in tower.parameters()):
            hf = tower.model.config
            stacks.append((2 * (P + tower.num_prefix_tokens), len(tower.blocks()), hf.hidden_size,
                           hf.intermediate_size if hasattr(hf, "intermediate_size") else hf.mlp_ratio * hf.hidden_size))
    llm = vlm.llm.config
    tokens = (2 * P // m2 + L + K) + (P // m2 + L + K)  # inverse view + policy view
    stacks.append((tokens, llm.num_hidden_layers, llm.hidden_size, llm.intermediate_size))
    dec = getattr(model, "frame_decoder", None)
    if dec is not None and hasattr(model.method, "decoder_width"):
        w = model.method.decoder_width
        stacks.append((P, model.method.decoder_layers, w, 4 * w))
    total = 0
    for tok, layers, h, inter in stacks:
        if checkpointing:
            total += tok * layers * 2 * h  # each block's input
        else:
            total += tok * layers * _layer_bytes(h, inter)
    if checkpointing:  # the largest layer recomputed in full during its backward
        total += max(tok * _layer_bytes(h, inter) for tok, _, h, inter in stacks)
    return total * batch


def _largest_block(model: nn.Module) -> int:
    from care.training.parallel import transformer_blocks

    return max((count(parent[i]) for parent, i in transformer_blocks(model)), default=0)


def memory_per_gpu(model: nn.Module, strategy: str, gpus: int, batch: int, checkpointing: bool) -> dict[str, int]:
    """Bytes per GPU: params, grads, adamw, activations, total (see the module docstring)."""
    from care.training.parallel import transformer_blocks

    P, T = count(model), count(model, trainable=True)
    if strategy == "ddp":
        mem = {"params": 4 * P, "grads": 8 * T, "adamw": 8 * T}
    elif strategy == "fsdp2":
        in_blocks = sum(count(parent[i]) for parent, i in transformer_blocks(model))
        root = P - in_blocks
        block = _largest_block(model)
        mem = {"params": 4 * P // gpus + 2 * (root + 2 * block), "grads": 4 * T // gpus + 4 * block,
               "adamw": 8 * T // gpus}
    else:
        raise ValueError(f"strategy must be ddp or fsdp2, got {strategy!r}")
    mem["activations"] = activation_bytes(model, batch, checkpointing)
    mem["total"] = sum(mem.values())
    return mem


def fits_batch(model: nn.Module, strategy: str, gpus: int, checkpointing: bool, gpu_gib: float = 80.0) -> int:
    """The largest per-GPU batch whose estimate stays within 90% of `gpu_gib` (0: none fits)."""
    static = memory_per_gpu(model, strategy, gpus, 0, checkpointing)["total"]
    per_sample = activation_bytes(model, 1, checkpointing)
    room = 0.9 * gpu_gib * GiB - static
    return max(0, int(room // per_sample))


# ----------------------------------------------------------------------------------------
# The tables
# ----------------------------------------------------------------------------------------


def _gib(b: int) -> str:
    return f"{b / GiB:.1f}"


def _m(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def preset_tables(preset: str, gpus: int, batch: int, gpu_gib: float = 80.0) -> str:
    from care.presets import get_preset

    model = build_on_meta(get_preset(preset), method_for(preset))
    lines = [f"**`{preset}`** (CARE pretraining model; parameters per part, counted on the meta device)", "",
             "| part | parameters | trainable |", "|---|---:|---:|"]
    for name, (n, t) in parameter_counts(model).items():
        if n:
            lines.append(f"| {name} | {_m(n)} | {_m(t)} |")
    lines += ["", f"Per-GPU memory, GiB, of a pretraining step at {gpus} GPUs and batch {batch} per GPU "
              f"(bf16 compute, fp32 weights and AdamW); the last column is the largest per-GPU batch "
              f"within 90% of {gpu_gib:g} GiB:", "",
              "| strategy | act. ckpt | params | grads | AdamW | activations | total | batch that fits |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for strategy in ("ddp", "fsdp2"):
        for ac in (False, True):
            mem = memory_per_gpu(model, strategy, gpus, batch, ac)
            fit = fits_batch(model, strategy, gpus, ac, gpu_gib)
            lines.append(f"| {strategy} | {'on' if ac else 'off'} | {_gib(mem['params'])} | {_gib(mem['grads'])} | "
                         f"{_gib(mem['adamw'])} | {_gib(mem['activations'])} | {_gib(mem['total'])} | "
                         f"{fit if fit else 'none'} |")
    return "\n".join(lines)


def tables(presets=("base", "prismatic-7b"), gpus: int = 8, batch: int = 8, gpu_gib: float = 80.0) -> str:
    cmd = f"python -m care.training.sizing --write docs/DESIGN.md  (--gpus {gpus} --batch {batch} --gpu-gib {gpu_gib:g})"
    body = "\n\n".join(preset_tables(p, gpus, batch, gpu_gib) for p in presets)
    return f"{MARK_BEGIN}\n<!-- written by `{cmd}`; estimates, see care/training/sizing.py -->\n\n{body}\n\n{MARK_END}"


def write_into(path: Path, text: str) -> None:
    """Replace the block between the sizing markers of a Markdown file (atomically)."""
    from care.io import atomic_write_bytes

    doc = Path(path).read_text()
    if MARK_BEGIN not in doc or MARK_END not in doc:
        raise SystemExit(f"{path}: no {MARK_BEGIN} ... {MARK_END} block to replace; add the two markers "
                         "where the table belongs")
    pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
    atomic_write_bytes(Path(path), pattern.sub(lambda _: text, doc, count=1).encode())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", help="preset(s) to size (default: base and prismatic-7b)")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="samples per GPU for the activation column")
    ap.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory for the 'batch that fits' column")
    ap.add_argument("--write", type=Path, help="a Markdown file whose sizing block is replaced (docs/DESIGN.md)")
    a = ap.parse_args(argv)
    text = tables(tuple(a.preset or ("base", "prismatic-7b")), a.gpus, a.batch, a.gpu_gib)
    if a.write:
        write_into(a.write, text)
        print(f"wrote the sizing tables into {a.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
