# Shared by the experiment scripts (sourced): resumable stages and the results folder.
# The caller sets OUT (the committed results folder, e.g. results/paper_mt10).

# The code of this checkout, whatever .venv holds: a git worktree of a fixed commit, run beside
# main with .venv linked to main's, would otherwise import main's src/ (the editable install),
# and job.json would name a commit whose code did not run.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

resume() {  # resume <run dir>: "--resume" when the run has checkpoints to continue from
  [ -d "$1/checkpoints" ] && echo --resume || true
}

keep() {  # keep <run> <seed> <dir> <name-in-dir>:<name-in-results> ...: copy small files to $OUT/<run>/s<seed>/
  local dest="$OUT/$1/s$2" dir=$3; shift 3
  mkdir -p "$dest"
  for pair in "$@"; do [ -f "$dir/${pair%%:*}" ] && cp "$dir/${pair%%:*}" "$dest/${pair##*:}"; done
  return 0
}

job_record() {  # job_record <results dir> <wall minutes> <lanes> [<1: an earlier attempt ran>]: <dir>/job.json,
                # the time and the machine
  "${PY:-.venv/bin/python}" - "$@" <<'PY'
import datetime, json, os, subprocess, sys
from pathlib import Path

import torch
import yaml

import care
from care.io import atomic_write_json
from care.models.precision import resolve_precision

out, minutes, lanes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
earlier = len(sys.argv) > 4 and sys.argv[4] == "1"
cfg = out / "finetune_config.yaml"
asked = (yaml.safe_load(cfg.read_text()) or {}).get("mixed_precision", "auto") if cfg.is_file() else "auto"
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                            capture_output=True, text=True).stdout.strip())
cpuinfo = open("/proc/cpuinfo").read().splitlines()
cpu = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), "unknown")
flags = set(next((l.split(":", 1)[1].split() for l in cpuinfo if l.startswith("flags")), []))
atomic_write_json(out / "job.json", {
    "wall_minutes": minutes, "lanes": lanes, "date": datetime.date.today().isoformat(),
    # an interrupted job resumes from its checkpoints: wall_minutes then counts only the last attempt
    "wall_minutes_partial": earlier,
    "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
    # two CPUs with one model name can take different kernels (AVX-512, native bf16): fp32 numbers too
    "cpu_avx512": "avx512f" in flags, "cpu_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
    # what the fine-tuning's --mixed-precision (default auto) resolved to on this machine
    "training_precision": resolve_precision(asked, "cuda" if torch.cuda.is_available() else "cpu"),
    # the code and the thread count that made it: both change a seed's numbers (docs/RESULTS.md)
    "commit": commit + ("+dirty" if dirty else ""),
    "code": str(Path(care.__file__).resolve().parent),  # the package that ran: this checkout's src/care
    "threads": int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()),
})
PY
}
