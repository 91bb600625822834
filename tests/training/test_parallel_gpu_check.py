"""benchmarks/gpu_check.sh --cpu: the GPU check's dry run, every step at micro sizes on the CPU
(throughput and MFU, collection, FSDP2 pretraining under torchrun, fine-tuning the consolidated
model, batched evaluation), so the script is known to run when a GPU is at hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run(tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "gpu_check"
    env = {**os.environ, "PYTHON": sys.executable, "CARE": f"{sys.executable} -m care",
           "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run(["bash", str(REPO_ROOT / "benchmarks/gpu_check.sh"), "--cpu", str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in out.glob("*.log")) if out.is_dir() else ""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    t = json.loads((out / "throughput.json").read_text())
    assert t["loss_finite"] and t["samples_per_s"] > 0 and 0 < t["mfu"] < 1 and t["peak_matmul_tflops"] > 0
    assert (out / "fsdp2/model.safetensors").is_file()
    assert any((out / "fsdp2/checkpoints").glob("step_*/dcp"))  # the sharded checkpoint format
    assert (out / "ft/policy_config.json").is_file()
    for where in ("gpu", "cpu"):
        assert json.loads((out / f"eval_{where}/eval_info.json").read_text())["overall"]["episodes_per_min"] > 0
    summary = (out / "summary.md").read_text()
    for row in ("samples/s", "MFU", "FSDP2 single-process smoke", "episodes/min", "GPU vs CPU"):
        assert row in summary, row
