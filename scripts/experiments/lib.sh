# Shared by the experiment scripts (sourced): resumable stages and the results folder.
# The caller sets OUT (the committed results folder, e.g. results/paper_mt10).

resume() {  # resume <run dir>: "--resume" when the run has checkpoints to continue from
  [ -d "$1/checkpoints" ] && echo --resume || true
}

keep() {  # keep <run> <seed> <dir> <name-in-dir>:<name-in-results> ...: copy small files to $OUT/<run>/s<seed>/
  local dest="$OUT/$1/s$2" dir=$3; shift 3
  mkdir -p "$dest"
  for pair in "$@"; do [ -f "$dir/${pair%%:*}" ] && cp "$dir/${pair%%:*}" "$dest/${pair##*:}"; done
  return 0
}
