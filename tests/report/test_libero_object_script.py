"""scripts/experiments/libero_object.sh, the maker of results/libero_object, run end to end with a
stand-in for the `care` command (the one of test_paper_mt10_script.py): a run <base>+fp32 trains
in fp32 at both stages and keeps its own pretraining, the plain runs ask for nothing, and a run
the script cannot make stops it before any job starts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_paper_mt10_script import stand_in_env

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts/experiments/libero_object.sh"


def _run(tmp_path: Path, *runs: str, seeds: str = "0") -> subprocess.CompletedProcess:
    env = {**stand_in_env(tmp_path), "R": str(tmp_path / "runs"), "OUT": str(tmp_path / "out"), "SEEDS": seeds}
    return subprocess.run(["bash", str(SCRIPT), *runs], env=env, capture_output=True, text=True, timeout=300)


def test_fp32_runs_train_in_fp32_with_their_own_pretraining(tmp_path):
    done = _run(tmp_path, "care+fp32", "no_pretrain", seeds="3")
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    pre = [c for c in calls if c.startswith("pretrain ")]
    ft = {c.split("--output-dir ")[1].split()[0]: c for c in calls if c.startswith("finetune ")}
    assert len(pre) == 1 and "--mixed-precision fp32" in pre[0] and "--seed 3" in pre[0]
    assert f"--output-dir {tmp_path / 'runs' / 'care+fp32_s3'}" in pre[0]  # not the bf16 care_s3
    care_ft, np_ft = ft[str(tmp_path / "runs" / "care+fp32_s3_ft")], ft[str(tmp_path / "runs" / "no_pretrain_s3_ft")]
    assert "--mixed-precision fp32" in care_ft and f"--pretrained {tmp_path / 'runs' / 'care+fp32_s3'}" in care_ft
    assert "--mixed-precision" not in np_ft  # a plain run keeps `auto`
    for run in ("care+fp32", "no_pretrain"):
        got = tmp_path / "out" / run / "s3"
        assert {"eval_info.json", "finetune_config.yaml", "policy_config.json", "job.json"} <= {p.name for p in got.iterdir()}
        job = json.loads((got / "job.json").read_text())
        assert job["threads"] == 1 and job["commit"]
    # the fake fine-tuning wrote mixed_precision: fp32 into its config: job.json resolves it
    assert json.loads((tmp_path / "out" / "care+fp32" / "s3" / "job.json").read_text())["training_precision"] == "fp32"


def test_a_run_it_cannot_make_stops_it_before_any_job(tmp_path):
    done = _run(tmp_path, "no_pretrain", "care+bf16")
    assert done.returncode == 2 and "unknown run care+bf16" in done.stdout
    assert not (tmp_path / "calls.log").exists() and not (tmp_path / "out").exists()
