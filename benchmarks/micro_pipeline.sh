#!/usr/bin/env bash
# A fixed-step micro pipeline (collect -> pretrain -> fine-tune -> eval), deterministic end to end:
# run it on two versions of care and diff the logs to show a refactor changed no behaviour.
#   bash benchmarks/micro_pipeline.sh .venv/bin /tmp/micro_after
# (issue 9 ran the pre-refactor spelling of the same commands on the old code; docs/RESULTS.md)
set -e
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=
B=$1; O=$2; rm -rf $O; mkdir -p $O
$B/care collect --env.tasks drawer-close-v3,reach-v3 --episodes-per-task 4 --env.size 64 --workers 1 --seed 0 --output-dir $O/data > $O/collect.log 2>&1
$B/care pretrain --config configs/pretrain/care_micro.yaml --dataset $O/data --output-dir $O/pre --steps 20 > $O/pre.log 2>&1
$B/care finetune --config configs/finetune/care_micro.yaml --pretrained $O/pre --dataset $O/data --output-dir $O/ft --steps 20 > $O/ft.log 2>&1
$B/care eval --policy $O/ft --env.tasks drawer-close-v3,reach-v3 --episodes-per-task 3 --seed 1000 --workers 1 --env.max-steps 60 --videos-per-task 0 --output-dir $O/eval > $O/eval.log 2>&1
