#!/usr/bin/env bash
# Issue 10's experiment on MT10 (tiny, equal clips seen): pretrain care / lapa / como, probe each
# (and the random-weights references inside care probe), and the semantic probe on the SHARED set.
# Resumable: a finished step is skipped, an interrupted one resumes from its last checkpoint.
# Small result files (probe.json, val_metrics.json, episodes.json, run configs) are copied to
# results/issue10/ as each step finishes; commit them — runs/ and data/ do not outlive a session.
#   bash scripts/experiments/issue10_mt10.sh            (two lanes: OMP_NUM_THREADS=1 each)
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
CARE=.venv/bin/care
D=${D:-data/mt10}; S=${S:-data/shared}; R=${R:-runs/issue10}; OUT=results/issue10
mkdir -p "$R" "$OUT"

keep() {  # copy a run's small files into results/
  local run=$1 name=$2
  mkdir -p "$OUT/$name"
  for f in run_config.yaml val_metrics.json episodes.json method.json config.json probe.json probe.md; do
    [ -f "$run/$f" ] && cp "$run/$f" "$OUT/$name/"
  done
  return 0
}
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
done_() { [ -f "$1/model.safetensors" ] || [ -f "$1/probe.json" ]; }

[ -f "$D/meta/info.json" ] || $CARE collect --env.tasks MT10 --env.size 128 --episodes-per-task 20 --workers 2 \
    --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$D"
[ -f "$S/meta/info.json" ] || $CARE collect --env.tasks SHARED --env.size 128 --episodes-per-task 10 --workers 2 \
    --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$S"

lane_care() {
  done_ "$R/care" || $CARE pretrain --config configs/pretrain/care_tiny.yaml --dataset "$D" --output-dir "$R/care" \
      --time-limit-minutes null $(resume "$R/care")
  keep "$R/care" care
}
lane_two_stage() {
  for m in lapa como; do
    done_ "$R/${m}_lam" || $CARE lam --config configs/lam/${m}_tiny.yaml --dataset "$D" --output-dir "$R/${m}_lam" \
        --time-limit-minutes null $(resume "$R/${m}_lam")
    keep "$R/${m}_lam" "${m}_lam"
    done_ "$R/$m" || $CARE pretrain --config configs/pretrain/${m}_tiny.yaml --method.lam "$R/${m}_lam" --dataset "$D" \
        --output-dir "$R/$m" --time-limit-minutes null $(resume "$R/$m")
    keep "$R/$m" "$m"
  done
}
lane_care & lane_two_stage & wait

for m in care lapa como; do
  done_ "$R/probe_$m" || $CARE probe --model "$R/$m" --dataset "$D" --output-dir "$R/probe_$m"
  keep "$R/probe_$m" "probe_$m"
  done_ "$R/probe_shared_$m" || $CARE probe --model "$R/$m" --dataset "$S" --output-dir "$R/probe_shared_$m"
  keep "$R/probe_shared_$m" "probe_shared_$m"
done
echo "issue 10 runs done: results in $OUT (commit them)"
