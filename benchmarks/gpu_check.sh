#!/usr/bin/env bash
# The GPU check: one GPU, under 8 minutes, from a fresh checkout with its .venv.
#   bash benchmarks/gpu_check.sh [OUT]          (default OUT=runs/gpu_check; needs CUDA)
#   bash benchmarks/gpu_check.sh --cpu [OUT]    a dry run of every step on the CPU at micro sizes
#                                               (tests/benchmarks/test_gpu_check.py runs it)
# Steps, each writing under OUT:
#   1. throughput.json   the `base` preset's CARE pretraining step in bf16 on synthetic batches:
#                        samples/s, MFU against this GPU's bf16 matmul peak measured in the same
#                        process, peak memory (benchmarks/gpu_check.py throughput)
#   2. data/             a small Meta-World dataset (`care collect`, 2 tasks, point tracks)
#   3. fsdp2/            `care pretrain --parallel.strategy fsdp2` under torchrun with one process
#                        (the `base` preset in bf16): the sharded path, DCP checkpoints and the
#                        consolidated model.safetensors on a GPU
#   4. ft/               `care finetune` of that model (LoRA), a few steps
#   5. eval_gpu/, eval_cpu/   the same batched evaluation (`care eval --batch-size 10`) with the
#                        policy on the GPU and on the CPU: episodes/min
#   6. summary.md        the table to copy into docs/RESULTS.md (with the date, commit and GPU)
# Environment: PYTHON (default .venv/bin/python), CARE (default .venv/bin/care; may be a command
# with arguments, e.g. "python -m care").
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
if [[ "${1:-}" == "--cpu" ]]; then MODE=cpu; shift; fi
OUT=${1:-runs/gpu_check}
PY=${PYTHON:-.venv/bin/python}
CARE=${CARE:-.venv/bin/care}
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl} OMP_WAIT_POLICY=PASSIVE
if [[ $MODE == gpu ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --cpu for the dry run')"
  DEV=cuda; PRESET=base; PREC=bf16; TP="--batch 32 --steps 20 --matmul-size 8192"
  EPS=4; SIZE=128; PRE_STEPS=30; PRE_BATCH=16; FT_STEPS=30; EVAL_EPS=10; MAX_STEPS=100; EVAL_WORKERS=2
else
  export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1
  DEV=cpu; PRESET=micro; PREC=fp32; TP="--batch 4 --steps 2 --matmul-size 256"
  EPS=2; SIZE=32; PRE_STEPS=3; PRE_BATCH=4; FT_STEPS=3; EVAL_EPS=1; MAX_STEPS=10; EVAL_WORKERS=1
fi
rm -rf "$OUT"; mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[gpu_check $(( $(date +%s) - t0 ))s] $*"; }

stamp "1/5 throughput: $PRESET, $PREC, $DEV"
"$PY" benchmarks/gpu_check.py throughput --device $DEV --preset $PRESET --precision $PREC $TP \
    --json "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1

stamp "2/5 collect a small dataset"
$CARE collect --env.tasks drawer-close-v3,reach-v3 --episodes-per-task $EPS --env.size $SIZE --workers 2 \
    --seed 0 --output-dir "$OUT/data" > "$OUT/collect.log" 2>&1

stamp "3/5 FSDP2 pretraining, one process (torchrun)"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m care pretrain \
    --config configs/pretrain/care_micro.yaml --preset $PRESET --dataset "$OUT/data" --output-dir "$OUT/fsdp2" \
    --steps $PRE_STEPS --batch-size $PRE_BATCH --log-every 1 --val-every $PRE_STEPS --save-every $PRE_STEPS \
    --mixed-precision $PREC --parallel.strategy fsdp2 --parallel.activation-checkpointing true > "$OUT/fsdp2.log" 2>&1

stamp "4/5 fine-tune the consolidated model"
$CARE finetune --config configs/finetune/care_micro.yaml --pretrained "$OUT/fsdp2" --dataset "$OUT/data" \
    --output-dir "$OUT/ft" --steps $FT_STEPS --batch-size $PRE_BATCH --val-every 0 --save-every 0 \
    --mixed-precision $PREC > "$OUT/ft.log" 2>&1

stamp "5/5 batched evaluation, policy on $DEV and on cpu"
for where in gpu cpu; do
  d=$DEV; [[ $where == cpu ]] && d=cpu
  $CARE eval --policy "$OUT/ft" --env.tasks drawer-close-v3,reach-v3 --episodes-per-task $EVAL_EPS --seed 1000 \
      --workers $EVAL_WORKERS --batch-size 10 --device $d --env.max-steps $MAX_STEPS --videos-per-task 0 \
      --output-dir "$OUT/eval_$where" --overwrite > "$OUT/eval_$where.log" 2>&1
done

"$PY" benchmarks/gpu_check.py summary "$OUT"
stamp "done ($MODE): $OUT/summary.md"
