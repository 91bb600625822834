#!/usr/bin/env bash
# `make demo`: the whole CARE pipeline on the embedded default (Meta-World MT10, tiny model),
# on a laptop-class CPU: collect videos -> pretrain without actions -> fine-tune on a few
# labelled episodes -> roll out in the simulator -> print the success table.
# Every knob below is an ordinary `care` flag; override with environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."
CARE=".venv/bin/care"
export MUJOCO_GL="${MUJOCO_GL:-egl}"

DATA="${DATA:-data/demo}"
RUNS="${RUNS:-runs/demo}"
TASKS="${TASKS:-MT10}"
EPISODES="${EPISODES:-10}"
PRETRAIN_STEPS="${PRETRAIN_STEPS:-600}"
PRETRAIN_MINUTES="${PRETRAIN_MINUTES:-9}"   # wall-clock budget: the demo fits in ~20 min on 2 cores
FINETUNE_STEPS="${FINETUNE_STEPS:-600}"
LABELLED="${LABELLED:-5}"
EVAL_EPISODES="${EVAL_EPISODES:-5}"

start=$(date +%s)
rm -rf "$RUNS"  # the demo's own runs: a re-run starts them afresh (the dataset is kept)
stamp() { echo "[demo +$(( $(date +%s) - start ))s] $*"; }

if [ ! -f "$DATA/meta/info.json" ]; then
  stamp "1/4 collecting $EPISODES expert episodes per task of $TASKS (videos, states, actions, point tracks)"
  $CARE collect --env.type metaworld --env.tasks "$TASKS" --env.size 128 --episodes-per-task "$EPISODES" \
    --workers 2 --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$DATA"
else
  stamp "1/4 dataset $DATA already collected"
fi
$CARE dataset info "$DATA"

stamp "2/4 CARE pretraining (no action labels read)"
$CARE pretrain --config configs/pretrain/care_tiny.yaml --dataset "$DATA" \
  --output-dir "$RUNS/pretrain" --steps "$PRETRAIN_STEPS" --time-limit-minutes "$PRETRAIN_MINUTES"

stamp "3/4 fine-tuning on $LABELLED labelled episodes per task"
$CARE finetune --config configs/finetune/care_tiny.yaml --pretrained "$RUNS/pretrain" \
  --dataset "$DATA" --episodes-per-task "$LABELLED" --output-dir "$RUNS/finetune" --steps "$FINETUNE_STEPS"

stamp "4/4 evaluating in Meta-World on held-out seeds"
$CARE eval --policy "$RUNS/finetune" --env.tasks "$TASKS" --episodes-per-task "$EVAL_EPISODES" \
  --seed 1000 --output-dir "$RUNS/eval" --overwrite

stamp "done: the success table is above; eval_info.json, eval.md and success.png are in $RUNS/eval"
echo "rollout videos: $RUNS/eval/videos/   TensorBoard: .venv/bin/tensorboard --logdir $RUNS"
