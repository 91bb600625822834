"""scripts/experiments/paper_mt10.sh, the maker of the report's result files, run end to end with
a stand-in for the `care` command that writes the files each stage leaves: what each job asks
of `care`, where the pretrainings go (P, shared between experiments), and what lands in the
results folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts/experiments/paper_mt10.sh"

# `care <command> ... --output-dir D`: log the call, write what the real command leaves in D
FAKE_CARE = r"""#!/usr/bin/env bash
echo "$*" >> "$CARE_LOG"
cmd=$1; out=""; prev=""
for a in "$@"; do [ "$prev" = --output-dir ] && out=$a; prev=$a; done
mkdir -p "$out"
case $cmd in
  pretrain) touch "$out/model.safetensors"; echo '{"final": {}}' > "$out/val_metrics.json"
            echo "mixed_precision: fp32" > "$out/run_config.yaml";;
  finetune) echo '{"val_l1": 0.2, "train_episodes": [0, 1]}' > "$out/policy_config.json"
            echo "mixed_precision: fp32" > "$out/run_config.yaml";;
  eval) echo '{"overall": {"pc_success": 50.0}, "per_task": []}' > "$out/eval_info.json"
        echo "episodes_per_task: 20" > "$out/run_config.yaml";;
  probe) echo '{}' > "$out/probe.json";;
  lam) touch "$out/model.safetensors"; echo '{}' > "$out/val_metrics.json"; echo "seed: 0" > "$out/run_config.yaml";;
  label) mkdir -p "$out/meta"; echo '{}' > "$out/meta/info.json"; echo '{"error_held_out": {}}' > "$out/meta/pseudo_labels.json";;
  *) echo "fake care: unexpected command $cmd" >&2; exit 3;;
esac
"""


def stand_in_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an experiment script run with the stand-in `care` (calls logged to
    calls.log) on a dataset folder D that already exists, one lane, one thread."""
    fake = tmp_path / "care"
    fake.write_text(FAKE_CARE)
    fake.chmod(0o755)
    data = tmp_path / "data"
    (data / "meta").mkdir(parents=True, exist_ok=True)
    (data / "meta" / "info.json").write_text("{}")
    return {**os.environ, "CARE": str(fake), "CARE_LOG": str(tmp_path / "calls.log"), "D": str(data), "LANE": "1"}


def _run(tmp_path: Path, jobs: str, **env) -> subprocess.CompletedProcess:
    full = {**stand_in_env(tmp_path), "JOBS": jobs, **{k: str(v) for k, v in env.items()}}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=300)


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_pretrainings_are_shared_through_P_and_each_job_asks_for_its_changes(tmp_path):
    pre, r1, o1 = tmp_path / "pre", tmp_path / "r1", tmp_path / "o1"
    # another checkout's package on the path (a worktree whose .venv is main's): this checkout's runs
    decoy = tmp_path / "decoy" / "care"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy care package was imported')\n")
    done = _run(tmp_path, "care+fp32+labels1:0 care+fp32+labels5:0", P=pre, R=r1, OUT=o1,
                PYTHONPATH=decoy.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = _calls(tmp_path)
    pretrains = [c for c in calls if c.startswith("pretrain")]
    # one pretraining for both label counts, in P, in fp32, with the seed
    assert len(pretrains) == 1 and f"--output-dir {pre}/care+fp32_s0" in pretrains[0]
    assert "--mixed-precision fp32" in pretrains[0] and "--seed 0" in pretrains[0]
    assert not (r1 / "care+fp32_s0").exists()
    finetunes = [c for c in calls if c.startswith("finetune")]
    assert [("--episodes-per-task 1" in c, "--episodes-per-task 5" in c) for c in finetunes] == [(True, False),
                                                                                                 (False, True)]
    assert all(f"--pretrained {pre}/care+fp32_s0" in c for c in finetunes)
    for run in ("care+fp32+labels1", "care+fp32+labels5"):
        files = {p.name for p in (o1 / run / "s0").iterdir()}
        assert {"eval_info.json", "policy_config.json", "finetune_config.yaml", "pretrain_config.yaml",
                "val_metrics.json", "job.json"} <= files
        job = json.loads((o1 / run / "s0" / "job.json").read_text())
        assert job["training_precision"] == "fp32" and job["threads"] == 1 and job["commit"]
        assert job["code"] == str((ROOT / "src" / "care").resolve())

    # another experiment (its own runs, results and evaluation protocol) reads the same pretraining
    r2, o2 = tmp_path / "r2", tmp_path / "o2"
    done = _run(tmp_path, "care+fp32:0 no_pretrain+univla+fp32:0", P=pre, R=r2, OUT=o2,
                EVAL=ROOT / "configs/eval/mt10_e100.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    new = _calls(tmp_path)[len(calls):]
    assert not [c for c in new if c.startswith("pretrain")]
    ft = [c for c in new if c.startswith("finetune")]
    assert f"--pretrained {pre}/care+fp32_s0" in ft[0] and "--head.type univla" in ft[1] and "--pretrained" not in ft[1]
    assert all("mt10_e100.yaml" in c for c in new if c.startswith("eval"))
    assert (o2 / "care+fp32" / "s0" / "eval_info.json").is_file()
    # pseudo-labels with K labelled episodes: the IDM learns from K per task (its dataset named for
    # K), and the policy reads every episode of the pseudo-labelled copy, not K per task
    before = len(_calls(tmp_path))
    done = _run(tmp_path, "no_pretrain+pseudo+fp32+labels1:0", P=pre, R=r2, OUT=o2)
    assert done.returncode == 0, done.stdout + done.stderr
    label, ft = [c for c in _calls(tmp_path)[before:] if c.startswith(("label", "finetune"))]
    assert "--episodes-per-task 1" in label and f"--output-dir {r2}/pseudo_pixel_labels1_s0" in label
    assert "configs/finetune/pseudo_labels.yaml" in ft and "--episodes-per-task" not in ft
    assert f"--dataset {r2}/pseudo_pixel_labels1_s0" in ft
    # the shifted IDM: its own pseudo-labelled copy, the shift passed to `care label`; without pseudo refused
    before = len(_calls(tmp_path))
    done = _run(tmp_path, "no_pretrain+pseudo+idmshift4+fp32+labels1:0", P=pre, R=r2, OUT=o2)
    assert done.returncode == 0, done.stdout + done.stderr
    label, ft = [c for c in _calls(tmp_path)[before:] if c.startswith(("label", "finetune"))]
    assert "--idm.shift 4" in label and f"--output-dir {r2}/pseudo_pixel_idmshift4_labels1_s0" in label
    assert f"--dataset {r2}/pseudo_pixel_idmshift4_labels1_s0" in ft
    refused = _run(tmp_path, "no_pretrain+idmshift4+fp32:0", P=pre, R=r2, OUT=o2)
    assert refused.returncode == 2 and "needs pseudo" in refused.stdout
    # noval: label supervision on every episode, none held out for validation (the pseudo-label
    # runs' episode count); refused beside pseudo-labels, which hold none out already
    before = len(_calls(tmp_path))
    done = _run(tmp_path, "label_supervised+fp32+noval:0", P=pre, R=r2, OUT=o2)
    assert done.returncode == 0, done.stdout + done.stderr
    (ft,) = [c for c in _calls(tmp_path)[before:] if c.startswith("finetune")]
    assert "configs/finetune/label_supervised.yaml" in ft and "--val-episodes-per-task 0" in ft
    refused = _run(tmp_path, "no_pretrain+pseudo+noval+fp32:0", P=pre, R=r2, OUT=o2)
    assert refused.returncode == 2 and "keep no validation episodes" in refused.stdout
    new = _calls(tmp_path)[len(calls):]
    # finished jobs are not run again
    again = _run(tmp_path, "care+fp32:0", P=pre, R=r2, OUT=o2)
    assert again.returncode == 0 and len(_calls(tmp_path)) == len(calls) + len(new)
    # a job run again after an interruption (its log is in R) says that its wall time counts
    # only the last attempt
    job = o2 / "care+fp32" / "s0" / "job.json"
    record = json.loads(job.read_text())
    assert record["wall_minutes_partial"] is False
    # the CPU's kernels, which one model name does not tell apart, are recorded from /proc/cpuinfo
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert record["cpu_avx512"] is ("avx512f" in flags)
    assert record["cpu_bf16"] is bool({"avx512_bf16", "amx_bf16"} & set(flags))
    (o2 / "care+fp32" / "s0" / "eval_info.json").unlink()
    again = _run(tmp_path, "care+fp32:0", P=pre, R=r2, OUT=o2)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(job.read_text())["wall_minutes_partial"] is True


def test_como_and_lapa_take_fp32_in_both_stages_and_no_other_change(tmp_path):
    """On a CPU with native bf16, plain `como` trains in bf16 (`auto`); `como+fp32` is the row to
    set beside care+fp32 on any machine: its stage 1, stage 2 and fine-tuning all in fp32."""
    pre, r, o = tmp_path / "pre", tmp_path / "r", tmp_path / "o"
    done = _run(tmp_path, "como+fp32:1", P=pre, R=r, OUT=o)
    assert done.returncode == 0, done.stdout + done.stderr
    lam, pretrain, ft = [c for c in _calls(tmp_path) if c.startswith(("lam", "pretrain", "finetune"))]
    assert "configs/lam/como_tiny.yaml" in lam and f"--output-dir {pre}/como+fp32_lam_s1" in lam
    assert "configs/pretrain/como_tiny.yaml" in pretrain and f"--method.lam {pre}/como+fp32_lam_s1" in pretrain
    assert f"--output-dir {pre}/como+fp32_s1" in pretrain and f"--pretrained {pre}/como+fp32_s1" in ft
    assert all("--mixed-precision fp32" in c and "--seed 1" in c for c in (lam, pretrain, ft))
    kept = {p.name for p in (o / "como+fp32" / "s1").iterdir()}
    assert {"lam_val_metrics.json", "lam_config.yaml", "eval_info.json"} <= kept
    # plain como leaves the precision to `auto`; any other change on it is refused before a run starts
    before = len(_calls(tmp_path))
    done = _run(tmp_path, "como:1", P=pre, R=r, OUT=o, S=tmp_path / "data")  # with its probes' shared data
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any("--mixed-precision" in c for c in _calls(tmp_path)[before:] if not c.startswith("finetune"))
    for bad in ("como+shift4:0", "lapa+fp32+labels1:0"):
        refused = _run(tmp_path, bad, P=pre, R=r, OUT=o)
        assert refused.returncode == 2 and "takes one change, fp32" in refused.stdout, refused.stdout
