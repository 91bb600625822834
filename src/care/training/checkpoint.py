"""Training checkpoints: atomic, resumable, the last k kept.

    <run>/checkpoints/step_00000500/
        model.safetensors     the unwrapped model's state dict (EMA copies and buffers included)
        optimizer.pt          optimiser state
        scheduler.pt          LR scheduler state
        rng_<rank>.pt         python / numpy / torch RNG states of every process
        state.json            {"step": 500, ...}: the step is also the data position
                              (care.training.batching: the batch of step s is a function of s)

A checkpoint is written into a hidden temporary sibling and renamed when complete, so a
killed run never leaves a half-written `step_*` folder; `latest_checkpoint` only sees
complete ones. Shared by `care pretrain` and `care finetune`.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from care.folders import WEIGHTS_NAME

PREFIX = "step_"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under root, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    done = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(root: str | Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def _rng_state() -> dict:
    # Plain tuples, numbers and tensors only, so that loading needs no unpickling of arbitrary
    # objects (torch.load(weights_only=True)): numpy's key array travels as a tensor.
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    name, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(s["torch"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, optimizer, scheduler,
                    state: dict | None = None, accelerator=None, keep: int = 3) -> Path:
    """Save (every process calls this; the main process writes the shared files).

    model: the unwrapped model. state: extra JSON-able fields (e.g. samples seen).
    """
    from safetensors.torch import save_file

    root = Path(root)
    is_main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}"
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS_NAME))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{rank}.pt")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if is_main:
        (tmp / "state.json").write_text(json.dumps({"step": step, **(state or {})}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return final


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None,
                    accelerator=None, hint: str = "") -> dict:
    """Restore what save_checkpoint wrote; returns state.json (with "step"). The weights are
    checked name by name and shape by shape first (a ConfigError names what does not fit, with
    `hint`); checkpoints of older versions load as their folders do (care.models.pretrained:
    keys the model keeps elsewhere dropped, older parameter names renamed)."""
    from safetensors.torch import load_file

    from care.models.pretrained import check_state_fits, rename_legacy_keys

    path = Path(path)
    drop = tuple(getattr(model, "stored_elsewhere", ()))
    state = {k: v for k, v in load_file(str(path / WEIGHTS_NAME)).items() if not drop or not k.startswith(drop)}
    state = rename_legacy_keys(model, state)
    check_state_fits(model, state, str(path / WEIGHTS_NAME), hint)
    model.load_state_dict(state)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rank = 0 if accelerator is None else accelerator.process_index
    rng = path / f"rng_{rank}.pt"
    if rng.is_file():
        _set_rng_state(torch.load(rng, weights_only=True))
    return json.loads((path / "state.json").read_text())
