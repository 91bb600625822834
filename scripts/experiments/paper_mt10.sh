#!/usr/bin/env bash
# Issue 13: every run the report needs (configs/report/paper_mt10.yaml), seed by seed, resumable.
#
#   bash scripts/experiments/paper_mt10.sh                 all runs, pipeline seeds 0 1 2, two lanes
#   SEEDS="0" bash scripts/experiments/paper_mt10.sh care no_pretrain    some runs, some seeds
#   LANES=1 bash scripts/experiments/paper_mt10.sh ...     one lane using both cores
#   P=runs/pretrain OUT=... R=... bash scripts/experiments/paper_mt10.sh ...   pretrainings kept in (and
#                                                          reused from) runs/pretrain, e.g. shared by the
#                                                          headline and the label-efficiency curve
#   LANE=1 JOBS="care:2" bash scripts/experiments/paper_mt10.sh   one lane on one core, beside another
#                                                          one-core script (e.g. LANE=1 libero_object.sh)
#   ORDER=run bash scripts/experiments/paper_mt10.sh no_pretrain label_supervised   every seed of a run first
#   CHECK=1 bash scripts/experiments/paper_mt10.sh care+shift4 ...   only check that the runs are ones it can make
#   JOBS="care_frame:0 care_point:0 no_pretrain+shift4:1" bash scripts/experiments/paper_mt10.sh   these jobs, in this order
#
# A pipeline seed k pretrains with --seed k and fine-tunes with --seed k (the pretraining's
# variance is inside the seed-to-seed spread). Jobs (run, seed) go seed-major by default (seed 0
# of every run first; ORDER=run: all seeds of the first run first). Two lanes (OMP_NUM_THREADS=1 each) take the next job not done and not taken.
# A finished job has its small files in results/paper_mt10/<run>/s<k>/ (eval_info.json,
# probe.json, probe_shared.json, val_metrics.json, policy_config.json, the run configs): commit them as they come;
# runs/ and data/ do not outlive a session. An interrupted job resumes from its checkpoints.
#
# The same for every method (docs/RESULTS.md, issue 13):
#   videos      data/mt10: MT10, 20 episodes per task, 128², corner camera (care collect, seed 0)
#               the pretraining-video rows (Tab. 1's data rows, CARE only): care_mt40 pretrains on
#               data/mt40 (the other 40 MT50 tasks, 20 episodes each: no video of a target task),
#               care_cam2 on data/mt10_corner2 (MT10 filmed by the corner2 camera, collection seeds
#               500+), care_all on all three (--extra-datasets); fine-tuning and evaluation as above
#   pretraining 32,000 clips seen (CARE 1000 x 32; LAPA and CoMo 500 x 32 in stage 1 + 500 x 32 in stage 2),
#               no time limit, --mixed-precision auto (bf16 on this CPU)
#   fine-tuning configs/finetune/no_pretrain.yaml for every run: every weight trained, 2000 steps x 32,
#               5 labelled episodes per task (label_supervised: all), chunk 4; --pretrained for the pretrained runs
#   evaluation  configs/eval/mt10.yaml: 20 episodes per task, env seeds 1000+, step limit 200, fp32 inference
#
# Beyond the paper (the report's `recipes:`): a run named <base>+<change>+<change>... is <base>
# (care, no_pretrain or label_supervised) with these changes, each a token:
#   shiftN   fine-tuning sees DrQ random shifts of up to N px (--augment.shift N)
#   chunkN   action chunks of N steps (--head.chunk-size N)
#   ftN      N fine-tuning steps (--steps N)
#   state    the proprioceptive state as an input (hand xyz and gripper opening)
#   univla   UniVLA's action decoder (--head.type univla): the action head attention-pools the
#            vision tokens' states and, queried by that, the latent placeholders' states
#   preN     N pretraining steps (--steps N: N x 32 clips)
#   video    pretraining on every video (data/mt10, data/mt40, data/mt10_corner2)
#   videoN   pretraining on N episodes per task of the target tasks' video (data/mt10_e<N>,
#            collected like data/mt10) for 1000 x N/20 steps (the same epochs; preN overrides):
#            the video-scaling curve; fine-tuning reads data/mt10's labelled episodes as always
#   actW     latent supervision: an action loss of weight W on z* for the clips of the seed's
#            5 labelled episodes per task (--method.action-loss-weight W; LAOM's lever)
#   pseudo   pseudo-labels (`care label`, configs/label/pixel_idm.yaml): an inverse-dynamics model
#            from pixels, trained on the 5 labelled episodes per task of the seed, labels the other
#            episodes; fine-tuning then reads every episode (configs/finetune/pseudo_labels.yaml)
#   pseudolatent  the same with the IDM on the pretraining's latent z(o_t, o_t+n)
#            (configs/label/latent_idm.yaml; care runs only)
#   idmshiftN  with pseudo: the pixel IDM trains with DrQ shifts of up to N px of both frames of a
#            pair (--idm.shift N), against its overfitting when few episodes are labelled
#   noval    no validation episodes: every episode trains (--val-episodes-per-task 0), as in the
#            pseudo-label runs; label_supervised+fp32+noval is the ceiling at the episode count the
#            pseudo-label policies read (the held-out action L1 is then not measured)
#   labelsK  K labelled episodes per task instead of 5 (fine-tuning, and the pseudo-labels' IDM):
#            the label-efficiency curve (the picks are nested: the 5 are among the 10)
#   fp32     training in fp32 (--mixed-precision fp32: fine-tuning, and the pretraining if any)
#            whatever `auto` picks on this CPU: the precision reference beside runs trained in
#            bf16 on other machines (no_pretrain+fp32 beside no_pretrain). The one change lapa and
#            como take (lapa+fp32, como+fp32: both stages and the fine-tuning; plain lapa and como
#            train in bf16 on a CPU with native bf16, fp32 on one without)
# Runs that differ only in fine-tuning share one pretraining per seed (care+shift4 fine-tunes
# runs/paper_mt10/care_s<k>); a lock keeps two lanes from making the same one twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_WAIT_POLICY=PASSIVE
CARE=${CARE:-.venv/bin/care}
D=${D:-data/mt10}; S=${S:-data/shared}; R=${R:-runs/paper_mt10}; OUT=${OUT:-results/paper_mt10}
P=${P:-$R}  # the pretrainings (and LAPA/CoMo stage 1): another folder lets two experiments share them
EVAL=${EVAL:-configs/eval/mt10.yaml}  # the evaluation protocol (configs/eval/mt10_e100.yaml: 100 episodes per task)
SEEDS=${SEEDS:-0 1 2}; LANES=${LANES:-2}; ORDER=${ORDER:-seed}
ALL_RUNS="no_pretrain care lapa como label_supervised care_frame care_point care_equal care_mt40 care_cam2 care_all"
D40=${D40:-data/mt40}; DC2=${DC2:-data/mt10_corner2}
RUNS=${*:-$ALL_RUNS}
JOBS=${JOBS:-}  # "run:seed run:seed ...": exactly these jobs, in this order (overrides runs, SEEDS and ORDER)
if [ -n "$JOBS" ]; then
  RUNS=""; for j in $JOBS; do
    case $j in *:[0-9]*) ;; *) echo "bad job '$j' in JOBS (run:seed, e.g. care_frame:0)"; exit 2;; esac
    case " $RUNS " in *" ${j%:*} "*) ;; *) RUNS+="${RUNS:+ }${j%:*}";; esac
  done
fi

tokens() { local IFS=+; set -- $1; shift; echo "$@"; }  # care+shift4+pre3000 -> shift4 pre3000
pretrain_name() {  # the pretraining a run uses: its base and its pretraining tokens
  local name=${1%%+*} t
  for t in $(tokens "$1"); do case $t in pre[0-9]*|video|video[0-9]*|fp32|act[0-9]*) name+="+$t";; esac; done
  echo "$name"
}
add_ft_changes() {  # add_ft_changes <run>: append the fine-tuning flags of its changes to ft_args
  local t pseudo=""
  case "+$(tokens "$1" | tr ' ' '+')+" in *+pseudo+*|*+pseudolatent+*) pseudo=1;; esac
  for t in $(tokens "$1"); do case $t in
    shift[0-9]*) ft_args+=(--augment.shift "${t#shift}");;
    chunk[0-9]*) ft_args+=(--head.chunk-size "${t#chunk}");;
    ft[0-9]*) ft_args+=(--steps "${t#ft}");;
    state) ft_args+=(--state.enabled true --state.names "[hand_x,hand_y,hand_z,gripper_opening]");;
    univla) ft_args+=(--head.type univla);;
    noval) ft_args+=(--val-episodes-per-task 0);;
    fp32) ft_args+=(--mixed-precision fp32);;
    # with pseudo-labels, K is the IDM's labelled episodes (pseudo_data); the policy reads them all
    labels[0-9]*) [ -n "$pseudo" ] || ft_args+=(--episodes-per-task "${t#labels}");;
    pseudo|pseudolatent) ft_args[1]=configs/finetune/pseudo_labels.yaml;;
  esac; done
}
pseudo_data() {  # pseudo_data <run> <seed> <pretraining dir or ""> -> the dataset its fine-tuning reads
  local t kind="" k=5
  local shift=0
  for t in $(tokens "$1"); do case $t in pseudo) kind=pixel;; pseudolatent) kind=latent;; labels[0-9]*) k=${t#labels};;
    idmshift[0-9]*) shift=${t#idmshift};; esac; done
  [ -n "$kind" ] || { echo "$D"; return; }
  local out="$R/pseudo_${kind}"  # pixel labels depend on the seed, K and the IDM's shift alone, latent ones on the pretraining too
  [ "$kind" = latent ] && out+="_$(basename "$3")"
  [ "$shift" = 0 ] || out+="_idmshift$shift"
  [ "$k" = 5 ] || out+="_labels$k"
  out+="_s$2"
  if [ ! -f "$out/meta/info.json" ]; then
    if [ "$kind" = latent ]; then
      $CARE label --config configs/label/latent_idm.yaml --idm.pretrained "$3" --dataset "$D" --seed "$2" \
          --episodes-per-task "$k" --output-dir "$out" >&2
    else
      $CARE label --config configs/label/pixel_idm.yaml --dataset "$D" --seed "$2" --episodes-per-task "$k" \
          --idm.shift "$shift" --output-dir "$out" >&2
    fi
  fi
  echo "$out"
}
for run in $RUNS; do  # an unknown run or change stops here, not an hour in
  base=${run%%+*}
  case " $ALL_RUNS " in *" $base "*) ;; *) echo "unknown run: $run (runs: $ALL_RUNS, or <base>+<changes>)"; exit 2;; esac
  [ "$run" = "$base" ] && continue
  case $base in care|no_pretrain|label_supervised) ;;
    lapa|como) [ "$run" = "$base+fp32" ] || { echo "$run: $base takes one change, fp32 ($base+fp32)"; exit 2; };;
    *) echo "$run: changes apply to care, no_pretrain or label_supervised (and fp32 to lapa, como)"; exit 2;; esac
  for t in $(tokens "$run"); do case $t in shift[0-9]*|chunk[0-9]*|ft[0-9]*|state|univla|fp32|labels[0-9]*) ;;
    noval) case "+$run+" in *+pseudo+*|*+pseudolatent+*) echo "$run: pseudo-label runs keep no validation episodes already"; exit 2;; esac;;
    pseudo) [ "$base" != label_supervised ] || { echo "$run: label_supervised has every label; pseudo-labels apply to the others"; exit 2; };;
    pseudolatent) [ "$base" = care ] || { echo "$run: pseudolatent reads a pretraining's latent, and $base has none"; exit 2; };;
    idmshift[0-9]*) case "+$run+" in *+pseudo+*) ;; *) echo "$run: $t shifts the pixel IDM's frames: it needs pseudo"; exit 2;; esac;;
    pre[0-9]*|video|video[0-9]*|act[0-9]*) [ "$base" = care ] || { echo "$run: $t changes a pretraining, and $base has none"; exit 2; };;
    *) echo "unknown change '$t' in $run (shiftN chunkN ftN state univla noval preN video videoN actW labelsK fp32 pseudo pseudolatent idmshiftN)"; exit 2;; esac; done
done
[ -z "${CHECK:-}" ] || { echo "paper_mt10: runs ok: $RUNS"; exit 0; }
mkdir -p "$R" "$P" "$OUT"
if [ -n "${LANE:-}" ]; then LANES=1; export OMP_NUM_THREADS=1; WORKERS=1; SHARED=2  # the other core is busy
elif [ "$LANES" -gt 1 ]; then export OMP_NUM_THREADS=1; WORKERS=1; else WORKERS=2; fi

. scripts/experiments/lib.sh  # resume, keep
is_probe_run() { case $1 in care|lapa|como) return 0;; *) return 1;; esac; }
done_job() {  # every file of the job is in results/
  local run=$1 k=$2
  [ -f "$OUT/$run/s$k/eval_info.json" ] || return 1
  if is_probe_run "$run"; then [ -f "$OUT/$run/s$k/probe.json" ] && [ -f "$OUT/$run/s$k/probe_shared.json" ] || return 1; fi
  return 0
}

pretrain() {  # pretrain <run> <seed> -> $P/<run>_s<k>
  local run=$1 k=$2 dir="$P/${1}_s$2"
  case $run in
    care) args=(--config configs/pretrain/care_tiny.yaml);;
    care_frame) args=(--config configs/pretrain/care_tiny.yaml --method.objective frame);;
    care_point) args=(--config configs/pretrain/care_tiny.yaml --method.objective point);;
    care_equal) args=(--config configs/pretrain/care_tiny.yaml --method.task-weighting equal);;
    care_mt40) args=(--config configs/pretrain/care_tiny.yaml --dataset "$D40");;
    care_cam2) args=(--config configs/pretrain/care_tiny.yaml --dataset "$DC2");;
    care_all) args=(--config configs/pretrain/care_tiny.yaml --extra-datasets "[$D40,$DC2]");;
    care+*) args=(--config configs/pretrain/care_tiny.yaml)
      local steps=""
      for t in $(tokens "$run"); do case $t in video[0-9]*) steps=$((1000 * ${t#video} / 20))
          args+=(--dataset "data/mt10_e${t#video}");; esac; done
      for t in $(tokens "$run"); do case $t in
        pre[0-9]*) steps=${t#pre};;
        video) args+=(--extra-datasets "[$D40,$DC2]");;
        act[0-9]*) args+=(--method.action-loss-weight "${t#act}");;
        fp32) args+=(--mixed-precision fp32);;
      esac; done
      [ -z "$steps" ] || args+=(--steps "$steps");;
    lapa|como|lapa+fp32|como+fp32)  # both stages in the run's precision (auto: bf16 where native)
      local lam="$P/${run}_lam_s$k" prec=()
      [ "$run" = "${run%+fp32}" ] || prec=(--mixed-precision fp32)
      [ -f "$lam/model.safetensors" ] || $CARE lam --config "configs/lam/${run%+fp32}_tiny.yaml" --dataset "$D" \
          --seed "$k" "${prec[@]}" --output-dir "$lam" --time-limit-minutes null $(resume "$lam")
      keep "$run" "$k" "$lam" val_metrics.json:lam_val_metrics.json run_config.yaml:lam_config.yaml
      args=(--config "configs/pretrain/${run%+fp32}_tiny.yaml" --method.lam "$lam" "${prec[@]}");;
  esac
  [ -f "$dir/model.safetensors" ] || $CARE pretrain --dataset "$D" "${args[@]}" --seed "$k" --output-dir "$dir" \
      --time-limit-minutes null $(resume "$dir")
}

job() {  # job <run> <seed>: pretraining (if any), probes, fine-tuning, evaluation
  local run=$1 k=$2 pre="" ft="$R/${1}_s$2_ft" ev="$R/${1}_s$2_eval"
  case ${run%%+*} in
    no_pretrain) ft_args=(--config configs/finetune/no_pretrain.yaml);;
    label_supervised) ft_args=(--config configs/finetune/label_supervised.yaml);;
    *) local name; name=$(pretrain_name "$run"); pre="$P/${name}_s$k"
       ( flock 9; pretrain "$name" "$k" ) 9> "$P/.lock_${name}_s$k"  # one lane makes it, another waits
       keep "$run" "$k" "$pre" val_metrics.json:val_metrics.json run_config.yaml:pretrain_config.yaml
       ft_args=(--config configs/finetune/no_pretrain.yaml --pretrained "$pre");;
  esac
  add_ft_changes "$run"
  if is_probe_run "$run"; then
    [ -f "$R/${run}_s${k}_probe/probe.json" ] || $CARE probe --model "$pre" --dataset "$D" --output-dir "$R/${run}_s${k}_probe"
    keep "$run" "$k" "$R/${run}_s${k}_probe" probe.json:probe.json
    [ -f "$R/${run}_s${k}_probe_shared/probe.json" ] || \
        $CARE probe --model "$pre" --dataset "$S" --output-dir "$R/${run}_s${k}_probe_shared"
    keep "$run" "$k" "$R/${run}_s${k}_probe_shared" probe.json:probe_shared.json
  fi
  local data; data=$(pseudo_data "$run" "$k" "$pre")
  [ "$data" = "$D" ] || keep "$run" "$k" "$data/meta" pseudo_labels.json:pseudo_labels.json
  [ -f "$ft/policy_config.json" ] || $CARE finetune "${ft_args[@]}" --dataset "$data" --seed "$k" --output-dir "$ft" $(resume "$ft")
  keep "$run" "$k" "$ft" run_config.yaml:finetune_config.yaml policy_config.json:policy_config.json
  [ -f "$ev/eval_info.json" ] || $CARE eval --config "$EVAL" --policy "$ft" --workers "$WORKERS" \
      --videos-per-task 0 --output-dir "$ev" --overwrite
  keep "$run" "$k" "$ev" eval_info.json:eval_info.json run_config.yaml:eval_config.yaml
}

# the datasets every run shares
[ -f "$D/meta/info.json" ] || $CARE collect --env.tasks MT10 --env.size 128 --episodes-per-task 20 --workers 2 \
    --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$D"
needs_probe_data() { local r; for r in $RUNS; do is_probe_run "$r" && return 0; done; return 1; }
needs_probe_data && { [ -f "$S/meta/info.json" ] || $CARE collect --env.tasks SHARED --env.size 128 --episodes-per-task 10 --workers 2 \
    --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$S"; }
case " $RUNS " in *" care_mt40 "*|*" care_all "*|*"+video "*|*"+video+"*)
  [ -f "$D40/meta/info.json" ] || $CARE collect --env.tasks MT40 --env.size 128 --episodes-per-task 20 --workers 2 \
      --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "$D40";; esac
for n in $(for r in $RUNS; do for t in $(tokens "$r"); do case $t in video[0-9]*) echo "${t#video}";; esac; done; done | sort -u); do
  [ -f "data/mt10_e$n/meta/info.json" ] || $CARE collect --env.tasks MT10 --env.size 128 --episodes-per-task "$n" \
      --workers 2 --action-noise 0.1 --detour-prob 0.02 --seed 0 --output-dir "data/mt10_e$n"
done
case " $RUNS " in *" care_cam2 "*|*" care_all "*|*"+video "*|*"+video+"*)
  [ -f "$DC2/meta/info.json" ] || $CARE collect --env.tasks MT10 --env.camera corner2 --env.size 128 --episodes-per-task 20 \
      --workers 2 --action-noise 0.1 --detour-prob 0.02 --seed 500 --output-dir "$DC2";; esac

rm -rf "$R/.claims"; mkdir -p "$R/.claims"
jobs_in_order() {
  if [ -n "$JOBS" ]; then for j in $JOBS; do echo "${j%:*} ${j##*:}"; done
  elif [ "$ORDER" = run ]; then for run in $RUNS; do for k in $SEEDS; do echo "$run $k"; done; done
  else for k in $SEEDS; do for run in $RUNS; do echo "$run $k"; done; done; fi
}
lane() {
  jobs_in_order | while read -r run k; do
    done_job "$run" "$k" && continue
    mkdir "$R/.claims/${run}_s$k" 2>/dev/null || continue  # another lane has it
    local t0=$SECONDS earlier=0
    [ -e "$R/${run}_s$k.log" ] && earlier=1  # an earlier attempt ran: this one resumes it
    # in the background and waited for: `set -e` holds inside (it is off in an `||` list)
    ( set -e; job "$run" "$k" ) < /dev/null > "$R/${run}_s$k.log" 2>&1 &
    wait $! || { echo "FAILED: $run seed $k (see $R/${run}_s$k.log)"; continue; }
    local minutes=$(( (SECONDS - t0) / 60 ))
    job_record "$OUT/$run/s$k" "$minutes" "${SHARED:-$LANES}" "$earlier"
    echo "$(date +%H:%M) done: $run seed $k in $minutes min"
  done
}
for _ in $(seq "$LANES"); do lane & done
wait
echo "paper_mt10: runs done; results in $OUT (commit them), then: care report --config configs/report/paper_mt10.yaml"
