#!/usr/bin/env bash
# A fixed-step micro pipeline (collect -> pretrain -> fine-tune -> eval), deterministic end to end:
# run it on two versions of care and compare the logs to show a refactor changed no behaviour.
#   bash benchmarks/micro_pipeline.sh .venv/bin /tmp/micro_after
#   TWO_STAGE=1 bash benchmarks/micro_pipeline.sh .venv/bin /tmp/micro_after   (+ LAPA and CoMo: care lam,
#                                                   then stage 2, fine-tune and eval, on the same data)
#   python benchmarks/compare_micro.py /tmp/micro_before /tmp/micro_after      (logged numbers, per-episode results)
# (issue 9 ran the pre-refactor spelling of the same commands on the old code; docs/RESULTS.md)
set -e
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=
B=$1; O=$2; rm -rf $O; mkdir -p $O
EVAL="--env.tasks drawer-close-v3,reach-v3 --episodes-per-task 3 --seed 1000 --workers 1 --env.max-steps 60 --videos-per-task 0"
$B/care collect --env.tasks drawer-close-v3,reach-v3 --episodes-per-task 4 --env.size 64 --workers 1 --seed 0 --output-dir $O/data > $O/collect.log 2>&1
$B/care pretrain --config configs/pretrain/care_micro.yaml --dataset $O/data --output-dir $O/pre --steps 20 > $O/pre.log 2>&1
$B/care finetune --config configs/finetune/care_micro.yaml --pretrained $O/pre --dataset $O/data --output-dir $O/ft --steps 20 > $O/ft.log 2>&1
$B/care eval --policy $O/ft $EVAL --output-dir $O/eval > $O/eval.log 2>&1
if [ -n "$TWO_STAGE" ]; then
  for m in lapa como; do
    M=$O/$m; mkdir -p $M
    $B/care lam --config configs/lam/${m}_micro.yaml --dataset $O/data --output-dir $M/lam --steps 20 > $M/lam.log 2>&1
    $B/care pretrain --config configs/pretrain/${m}_micro.yaml --method.lam $M/lam --dataset $O/data --output-dir $M/pre --steps 20 > $M/pre.log 2>&1
    $B/care finetune --config configs/finetune/care_micro.yaml --pretrained $M/pre --dataset $O/data --output-dir $M/ft --steps 20 > $M/ft.log 2>&1
    $B/care eval --policy $M/ft $EVAL --output-dir $M/eval > $M/eval.log 2>&1
  done
fi
