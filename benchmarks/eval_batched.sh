#!/usr/bin/env bash
# Evaluation speed: one episode at a time vs lockstep batches, same policy and seeds, one run;
# then checks that every episode's success, length and summed reward are identical.
#   bash benchmarks/eval_batched.sh runs/no_pretrain_ft runs/eval_speed [TASKS] [EPISODES] [PRECISION]
#   BATCHES="1 5 10" bash benchmarks/eval_batched.sh ...
set -euo pipefail
POLICY=$1; OUT=$2; TASKS=${3:-MT10}; EPS=${4:-20}; PREC=${5:-fp32}; BATCHES=${BATCHES:-1 10}
export MUJOCO_GL=egl OMP_WAIT_POLICY=PASSIVE
for b in $BATCHES; do
  .venv/bin/care eval --policy "$POLICY" --env.tasks "$TASKS" --episodes-per-task "$EPS" --seed 1000 --workers 2 \
      --batch-size "$b" --precision "$PREC" --videos-per-task 0 --output-dir "$OUT/b$b" --overwrite > "$OUT.b$b.log" 2>&1
done
.venv/bin/python - "$OUT" $BATCHES <<'PY'
import json, sys
out, batches = sys.argv[1], sys.argv[2:]
infos = {b: json.load(open(f"{out}/b{b}/eval_info.json")) for b in batches}
keys = ("task", "seed", "success", "length", "sum_reward")
rows = {b: [{k: r[k] for k in keys} for r in i["per_episode"]] for b, i in infos.items()}
base = infos[batches[0]]["overall"]["episodes_per_min"]
print("| batch | success | episodes/min | vs batch " + batches[0] + " |\n|---:|---:|---:|---:|")
for b, i in infos.items():
    e = i["overall"]["episodes_per_min"]
    print(f"| {b} | {i['overall']['pc_success']:.1f}% | {e:.1f} | {e / base:.2f}x |")
same = all(r == rows[batches[0]] for r in rows.values())
print(f"per-episode success, length and summed reward identical across batch sizes: {same} "
      f"({len(rows[batches[0]])} episodes each)")
PY
