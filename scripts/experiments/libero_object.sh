#!/usr/bin/env bash
# Issue 12: LIBERO-Object runs, resumable, one job at a time (both cores).
#
#   bash scripts/experiments/libero_object.sh label_supervised          seed 0
#   SEEDS="0 1 2" bash scripts/experiments/libero_object.sh no_pretrain care
#   LANE=1 SEEDS="1 2" bash scripts/experiments/libero_object.sh no_pretrain &   two lanes, one core each:
#   LANE=1 SEEDS="0 1" bash scripts/experiments/libero_object.sh care            give them disjoint jobs
#   SEEDS="3 4" bash scripts/experiments/libero_object.sh care+fp32 no_pretrain+fp32   trained in fp32
#                                                          whatever the CPU (`auto` takes bf16 where it is native)
#
# A seed k is the whole pipeline (pretraining seed k, then fine-tuning seed k), as in paper_mt10.sh.
# A finished job's small files go to results/libero_object/<run>/s<k>/ (eval_info.json, configs,
# val_metrics.json, job.json): commit them; runs/ and data/ do not outlive a session.
#
#   videos      data/libero_object: care collect, LIBERO-Object, 20 random placements per task
#               (never the fixed initial states), 128², agent view, expert + noise 0.1 + detours
#   pretraining CARE tiny, 1000 x 32 clips, --mixed-precision auto (bf16 on a CPU with native bf16;
#               a run <base>+fp32 pretrains and fine-tunes in fp32) (care only)
#   fine-tuning configs/finetune/no_pretrain.yaml (every weight, 2000 steps x 32, chunk 4, 5
#               labelled episodes per task; label_supervised: configs/finetune/label_supervised.yaml,
#               every episode); --pretrained for care
#   evaluation  configs/eval/libero_object.yaml: the protocol, initial states 0-19 of each task
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_WAIT_POLICY=PASSIVE
CARE=${CARE:-.venv/bin/care}
D=${D:-data/libero_object}; R=${R:-runs/libero_object}; OUT=${OUT:-results/libero_object}
SEEDS=${SEEDS:-0}
RUNS=${*:-label_supervised}
for run in $RUNS; do  # every run one this script can make, before any job starts
  case $run in no_pretrain|care|label_supervised|no_pretrain+fp32|care+fp32|label_supervised+fp32) ;;
    *) echo "unknown run $run: no_pretrain, care or label_supervised, each optionally +fp32"; exit 2;; esac
done
mkdir -p "$R" "$OUT"
if [ -n "${LANE:-}" ]; then export OMP_NUM_THREADS=1; WORKERS=1; else WORKERS=2; fi

. scripts/experiments/lib.sh  # resume, keep

[ -f "$D/meta/info.json" ] || $CARE collect --env.type libero --env.suite libero_object --episodes-per-task 20 \
    --action-noise 0.1 --detour-prob 0.02 --workers 2 --seed 0 --output-dir "$D"

for run in $RUNS; do for k in $SEEDS; do
  [ -f "$OUT/$run/s$k/eval_info.json" ] && continue
  t0=$SECONDS; ft="$R/${run}_s${k}_ft"; ev="$R/${run}_s${k}_eval"
  prec=(); [ "$run" = "${run%+fp32}" ] || prec=(--mixed-precision fp32)
  case ${run%+fp32} in
    no_pretrain) ft_args=(--config configs/finetune/no_pretrain.yaml);;
    label_supervised) ft_args=(--config configs/finetune/label_supervised.yaml);;
    care) pre="$R/${run}_s$k"  # care_s<k>, or care+fp32_s<k>
          [ -f "$pre/model.safetensors" ] || $CARE pretrain --config configs/pretrain/care_tiny.yaml --dataset "$D" \
              --seed "$k" --output-dir "$pre" --time-limit-minutes null ${prec[@]+"${prec[@]}"} $(resume "$pre")
          keep "$run" "$k" "$pre" val_metrics.json:val_metrics.json run_config.yaml:pretrain_config.yaml
          ft_args=(--config configs/finetune/no_pretrain.yaml --pretrained "$pre");;
    *) echo "unknown run $run"; exit 2;;
  esac
  [ -f "$ft/policy_config.json" ] || $CARE finetune "${ft_args[@]}" ${prec[@]+"${prec[@]}"} --dataset "$D" --seed "$k" \
      --output-dir "$ft" $(resume "$ft")
  keep "$run" "$k" "$ft" run_config.yaml:finetune_config.yaml policy_config.json:policy_config.json
  [ -f "$ev/eval_info.json" ] || $CARE eval --config configs/eval/libero_object.yaml --policy "$ft" \
      --workers "$WORKERS" --output-dir "$ev" --overwrite
  keep "$run" "$k" "$ev" eval_info.json:eval_info.json run_config.yaml:eval_config.yaml
  job_record "$OUT/$run/s$k" $(( (SECONDS - t0) / 60 )) "$([ -n "${LANE:-}" ] && echo 2 || echo 1)"
  echo "$(date +%H:%M) done: $run seed $k"
done; done
