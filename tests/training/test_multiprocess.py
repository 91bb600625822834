"""The same `care pretrain` under `accelerate launch --multi_gpu --num_processes 2` on a machine
without a GPU (DDP over gloo, see care.training.loop_utils.make_accelerator): after k steps,
2 processes with batch b each reach the parameters of 1 process with batch 2b."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import launched_output


REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(root, out, batch):
    return ["pretrain", "--config", str(REPO / "configs/pretrain/care_micro.yaml"), "--dataset", str(root),
            "--output-dir", str(out), "--steps", "4", "--batch-size", str(batch), "--val-every", "0",
            "--save-every", "0", "--log-every", "1", "--num-workers", "0",
            "--mixed-precision", "fp32"]  # exact DDP equivalence is an fp32 property (bf16 rounds differently)


def test_two_processes_match_one_process_with_twice_the_batch(tmp_path, make_dataset):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU (gloo) path")
    root = make_dataset(episodes=6, T=20, size=32)
    one, two = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "care", *_args(root, one, 8)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "care", *_args(root, two, 4)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, launched_output(proc.stdout + proc.stderr)
    assert "2 process(es), global batch 8" in proc.stdout + proc.stderr

    a = load_file(str(one / "model.safetensors"))
    b = load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)
    assert int(a["num_updates"]) == int(b["num_updates"]) == 4
    # and the logged losses (averaged over processes) agree step by step
    la, lb = _losses(one), _losses(two)
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]
    for step in la:
        assert abs(la[step] - lb[step]) < 1e-5, (step, la[step], lb[step])
    assert la[4] != la[1]


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}
