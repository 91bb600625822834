"""Fine-tuning with 2 CPU processes (DDP over gloo) is the same run as 1 process with the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _log(out):
    return {r["step"]: r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    from helpers import REPO_ROOT, free_port, launched_output, make_dataset

    root = make_dataset(tmp_path, episodes=4, T=16, size=32, with_tracks=False)
    common = ["finetune", "--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml"), "--dataset", str(root),
              "--steps", "4", "--log-every", "1", "--save-every", "0"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "care", *common, "--output-dir", str(one), "--batch-size", "8"],
                   check=True, env=env, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port())]
    res = subprocess.run([*torchrun, "-m", "care", *common, "--output-dir", str(two), "--batch-size", "4"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, launched_output(res.stdout + res.stderr)
    assert "2 process(es)" in res.stderr + res.stdout
    a, b = _log(one), _log(two)
    assert set(a) == set(b) == {1, 2, 3, 4}
    for s in a:  # per-process masked means differ from the global one only through padding
        assert abs(a[s]["l1"] - b[s]["l1"]) < 5e-3, (s, a[s]["l1"], b[s]["l1"])
    assert (two / "model.safetensors").is_file()
