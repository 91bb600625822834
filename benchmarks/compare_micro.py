"""Compare two benchmarks/micro_pipeline.sh output folders: every logged training number
(train_log.jsonl, val_metrics.json) and every per-episode evaluation result, wall-clock times
and paths aside. Prints one line per file and exits 1 on any difference.

    python benchmarks/compare_micro.py /tmp/micro_before /tmp/micro_after
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMES = {"samples_per_s", "wall_s", "eval_s", "eval_ep_s", "episodes_per_min"}  # wall-clock
PATHS = {"output_dir", "policy", "pretrained", "dataset", "config", "lam"}


def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if k not in TIMES | PATHS}
    if isinstance(x, list):
        return [clean(v) for v in x]
    return x


def jsonl(f: Path) -> list[dict]:
    return [clean(json.loads(line)) for line in f.read_text().splitlines() if line.strip()]


def main(a: Path, b: Path) -> int:
    differ = 0
    for run in ("", "lapa", "como"):
        for stage in ("lam", "pre", "ft"):
            for name in ("train_log.jsonl", "val_metrics.json"):
                fa, fb = a / run / stage / name, b / run / stage / name
                if not fa.is_file():
                    continue
                ra = jsonl(fa) if name.endswith(".jsonl") else clean(json.loads(fa.read_text()))
                rb = jsonl(fb) if name.endswith(".jsonl") else clean(json.loads(fb.read_text()))
                same = ra == rb
                differ += not same
                print(f"{run or 'care'}/{stage}/{name}: {'identical' if same else 'DIFFERENT'}")
        fa, fb = a / run / "eval" / "eval_info.json", b / run / "eval" / "eval_info.json"
        if fa.is_file():
            ja, jb = json.loads(fa.read_text()), json.loads(fb.read_text())
            same = all(clean(ja[k]) == clean(jb[k]) for k in ("per_episode", "per_task", "overall"))
            differ += not same
            print(f"{run or 'care'}/eval/eval_info.json ({len(ja['per_episode'])} episodes): "
                  f"{'identical' if same else 'DIFFERENT'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
