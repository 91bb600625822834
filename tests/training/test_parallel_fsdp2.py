"""`--parallel.strategy fsdp2` over 2 CPU processes (torchrun, gloo), end to end on the micro preset.

One module fixture makes the runs (each a real `care pretrain` / `care finetune` process):

    one       1 process,  batch 8, ddp (the reference)
    two       2 processes x batch 4, fsdp2: uninterrupted
    cut       2 processes x batch 4, fsdp2: stopped after its first step (--time-limit-minutes 0,
              a checkpoint written on the way out), then resumed from its DCP checkpoint
    ft        1 process fine-tunes the consolidated model.safetensors of `two`
    ft_fsdp   2 processes fine-tune it with fsdp2 + LoRA + activation checkpointing
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import REPO_ROOT, free_port, launched_output, make_dataset

pytestmark = pytest.mark.slow

STEPS = 4


def _pretrain_args(root: Path, out: Path, batch: int) -> list[str]:
    return ["pretrain", "--config", str(REPO_ROOT / "configs/pretrain/care_micro.yaml"), "--dataset", str(root),
            "--output-dir", str(out), "--steps", str(STEPS), "--batch-size", str(batch), "--val-every", "0",
            "--save-every", "2", "--log-every", "1", "--num-workers", "0",
            "--mixed-precision", "fp32"]  # the equivalence is an fp32 property


def _finetune_args(pretrained: Path, root: Path, out: Path, batch: int) -> list[str]:
    return ["finetune", "--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml"), "--pretrained", str(pretrained),
            "--dataset", str(root), "--output-dir", str(out), "--steps", str(STEPS), "--batch-size", str(batch),
            "--val-every", "2", "--save-every", "0", "--log-every", "1", "--num-workers", "0"]


def _run(args: list[str], cwd: Path, procs: int = 1) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src")}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
                 "--master-addr", "127.0.0.1", "--master-port", str(free_port())] if procs > 1 else [sys.executable])
    proc = subprocess.run([*launcher, "-m", "care", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"care {args[0]} ({procs} process(es)) failed:\n" + launched_output(out)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU (gloo) path")
    tmp = tmp_path_factory.mktemp("fsdp2")
    root = make_dataset(tmp, episodes=6, T=20, size=32)
    logs = {"one": _run(_pretrain_args(root, tmp / "one", 8), tmp),
            "two": _run(_pretrain_args(root, tmp / "two", 4) + ["--parallel.strategy", "fsdp2"], tmp, procs=2)}
    cut = _pretrain_args(root, tmp / "cut", 4) + ["--parallel.strategy", "fsdp2"]
    logs["cut_first"] = _run(cut + ["--time-limit-minutes", "0"], tmp, procs=2)
    logs["cut"] = _run(cut + ["--resume"], tmp, procs=2)
    logs["ft"] = _run(_finetune_args(tmp / "two", root, tmp / "ft", 8), tmp)
    logs["ft_fsdp"] = _run(_finetune_args(tmp / "two", root, tmp / "ft_fsdp", 4)
                           + ["--parallel.strategy", "fsdp2", "--parallel.activation-checkpointing", "true"], tmp, procs=2)
    return tmp, logs


def _losses(out: Path, key: str = "loss") -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r[key] for r in rows if r["split"] == "train"}


def test_each_process_holds_half_of_every_sharded_parameter(runs):
    from torch.distributed.checkpoint import FileSystemReader

    from care.methods.registry import load_pretrained

    tmp, logs = runs
    assert "2 process(es), global batch 8" in logs["two"]
    params = {n: p.shape for n, p in load_pretrained(tmp / "two").named_parameters()}
    meta = FileSystemReader(str(tmp / "two/checkpoints/step_00000004/dcp")).read_metadata().state_dict_metadata
    sharded = 0
    for name, shape in params.items():
        chunks = meta[f"model.{name}"].chunks  # one chunk per process that holds a part
        if len(shape) == 0:  # 0-d (CARE's log σ²): replicated, one copy
            assert len(chunks) == 1, name
            continue
        assert len(chunks) == 2, (name, chunks)
        rows = sorted(int(c.sizes[0]) for c in chunks)
        assert sum(rows) == shape[0] and rows[1] - rows[0] <= 1, (name, rows)  # dim 0 split in halves
        assert all(tuple(c.sizes[1:]) == tuple(shape[1:]) for c in chunks), name
        sharded += 1
    assert sharded >= 0.9 * len(params)  # the LLM, towers, projector, decoders: all but the scalars


def test_two_sharded_processes_follow_one_process_at_twice_the_batch(runs):
    tmp, _ = runs
    la, lb = _losses(tmp / "one"), _losses(tmp / "two")
    assert sorted(la) == sorted(lb) == list(range(1, STEPS + 1))
    for step in la:
        assert abs(la[step] - lb[step]) < 1e-5, (step, la[step], lb[step])
    assert la[STEPS] < la[1]
    a, b = load_file(str(tmp / "one/model.safetensors")), load_file(str(tmp / "two/model.safetensors"))
    assert a.keys() == b.keys()  # the consolidated file has the unsharded model's names and shapes
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)


def test_stopped_and_resumed_sharded_run_ends_where_the_uninterrupted_one_does(runs):
    tmp, logs = runs
    assert "min reached at step 1/4" in logs["cut_first"]
    assert "resumed at step 1" in logs["cut"]
    assert (tmp / "cut/checkpoints/step_00000004/dcp").is_dir()
    a, b = load_file(str(tmp / "two/model.safetensors")), load_file(str(tmp / "cut/model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    la, lb = _losses(tmp / "two"), _losses(tmp / "cut")
    assert all(abs(la[s] - lb[s]) < 1e-6 for s in la), (la, lb)


def test_consolidated_model_fine_tunes_in_one_process_and_with_fsdp2_lora(runs):
    from care.policy.controller import CarePolicy

    tmp, logs = runs
    assert "care finetune: policy saved" in logs["ft"] and "care finetune: policy saved" in logs["ft_fsdp"]
    l1, l2 = _losses(tmp / "ft", "l1"), _losses(tmp / "ft_fsdp", "l1")
    # 2 processes average per-process L1s over their own non-padded actions: close to, not equal to, 1 process
    assert all(abs(l1[s] - l2[s]) < 5e-3 for s in l1), (l1, l2)
    a, b = load_file(str(tmp / "ft/model.safetensors")), load_file(str(tmp / "ft_fsdp/model.safetensors"))
    assert a.keys() == b.keys() and not any("lora" in k for k in b)  # LoRA merged on export, as with ddp
    policy = CarePolicy.from_pretrained(tmp / "ft_fsdp")
    assert policy is not None
