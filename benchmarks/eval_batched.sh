#!/usr/bin/env bash
# Evaluation speed, one at a time vs lockstep batches, same policy and seeds, in one run; then
# checks that every episode's success, length and reward are identical.
#   bash benchmarks/eval_batched.sh runs/no_pretrain_ft runs/eval_speed [TASKS] [EPISODES] [PRECISION]
set -euo pipefail
POLICY=$1; OUT=$2; TASKS=${3:-MT10}; EPS=${4:-20}; PREC=${5:-fp32}
export MUJOCO_GL=egl OMP_WAIT_POLICY=PASSIVE
for b in 1 10; do
  .venv/bin/care eval --policy "$POLICY" --env.tasks "$TASKS" --episodes-per-task "$EPS" --seed 1000 --workers 2 \
      --batch-size $b --precision "$PREC" --videos-per-task 0 --output-dir "$OUT/b$b" --overwrite > "$OUT.b$b.log" 2>&1
done
.venv/bin/python - "$OUT" <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/b{k}/eval_info.json")) for k in (1, 10))
keys = ("task", "seed", "success", "length", "sum_reward")
same = [{k: r[k] for k in keys} for r in a["per_episode"]] == [{k: r[k] for k in keys} for r in b["per_episode"]]
ea, eb = a["overall"]["episodes_per_min"], b["overall"]["episodes_per_min"]
print(f"| batch 1 | {a['overall']['pc_success']:.1f}% | {ea:.1f} episodes/min | 1.00x |")
print(f"| batch 10 | {b['overall']['pc_success']:.1f}% | {eb:.1f} episodes/min | {eb / ea:.2f}x |")
print(f"per-episode success, length and summed reward identical: {same} ({len(a['per_episode'])} episodes)")
PY
