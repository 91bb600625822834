"""`care` run directly against `care` launched by the Makefile, beside a busy torch process.

The Makefile exports OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep); `care` sets the same
default itself before torch loads (care.cli.ENV_DEFAULTS), so a user who types `care eval ...`
in a shell gets it too. This runs, in one go, the same 110-step LIBERO-Object episode (task 0,
initial state 0, a tiny policy that does not succeed, so every episode is 110 steps) while a
2-thread torch process multiplies matrices without pause:

    makefile   the environment `make` gives: OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
    direct     none of them set: `care eval ...` typed in a fresh shell
    no-policy  (reference) torch imported before care.cli sets anything, so the OpenMP runtime
               runs with its default wait policy: what `care` run directly did before the CLI
               set it

and prints the wall time of each `care eval` (process start to exit), each round's ratio to the
makefile launch, and the median of those ratios (direct / makefile: the number to keep near 1).

    MUJOCO_GL=egl python benchmarks/omp_wait_policy.py [--policy DIR] [--rounds 2] [--no-reference] [--work DIR]

Without --policy it first builds one (not timed): `care collect` records one LIBERO-Object episode
at 128², `care finetune --preset tiny` trains 2 steps on it. Needs LIBERO (`make setup`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARE = [sys.executable, "-m", "care"]
# the pre-fix launch: torch (and its OpenMP runtime) loaded before care.cli.main sets anything
CARE_TORCH_FIRST = [sys.executable, "-c", "import sys, torch; from care.cli import main; sys.exit(main())"]
SET_BY_MAKE = ("OMP_WAIT_POLICY", "MUJOCO_GL", "PYOPENGL_PLATFORM")
BUSY = """
import torch
torch.set_num_threads(2)
a = torch.randn(384, 384)
while True:
    b = a @ a
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_MAKE and k != "OMP_NUM_THREADS"}
    env.update(extra)
    return env


def build_policy(work: Path) -> Path:
    env = clean_env(OMP_WAIT_POLICY="PASSIVE", MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl", OMP_NUM_THREADS="1")
    data, policy = work / "data", work / "policy"
    if (policy / "config.json").is_file() or (policy / "policy.json").is_file():
        return policy
    subprocess.run([*CARE, "collect", "--env.type", "libero", "--env.suite", "libero_object", "--env.tasks", "0",
                    "--episodes-per-task", "1", "--workers", "1", "--env.size", "128", "--output-dir", str(data),
                    "--overwrite"], check=True, env=env, cwd=ROOT)
    subprocess.run([*CARE, "finetune", "--config", "configs/finetune/care_micro.yaml", "--preset", "tiny",
                    "--dataset", str(data), "--episodes-per-task", "1", "--steps", "2", "--output-dir", str(policy)],
                   check=True, env=env, cwd=ROOT)
    return policy


def episode(cmd: list[str], env: dict[str, str], policy: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([*cmd, "eval", "--policy", str(policy), "--env.type", "libero", "--env.suite", "libero_object",
                    "--env.tasks", "0", "--env.max-steps", "110", "--episodes-per-task", "1", "--seed", "0",
                    "--workers", "1", "--batch-size", "1", "--videos-per-task", "0", "--output-dir", str(out),
                    "--overwrite"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, help="a LIBERO policy folder (default: build a tiny one first)")
    ap.add_argument("--rounds", type=int, default=2, help="episodes per launch; odd rounds run the launches "
                    "in reverse order, so load that drifts over time does not favour one")
    ap.add_argument("--work", type=Path, help="folder for the built policy and the evaluations (default: a temp dir)")
    ap.add_argument("--no-reference", action="store_true", help="skip the torch-first reference launch")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="omp_wait_policy_"))
    work.mkdir(parents=True, exist_ok=True)
    policy = args.policy or build_policy(work)
    launches = {
        "makefile": (CARE, clean_env(OMP_WAIT_POLICY="PASSIVE", MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl")),
        "direct": (CARE, clean_env()),
    }
    if not args.no_reference:
        launches["no-policy"] = (CARE_TORCH_FIRST, clean_env(MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl"))
    busy = subprocess.Popen([sys.executable, "-c", BUSY], env=clean_env())
    seconds: dict[str, list[float]] = {name: [] for name in launches}
    try:
        time.sleep(3)  # the busy process is multiplying before the first episode starts
        for r in range(args.rounds):
            order = list(launches) if r % 2 == 0 else list(reversed(launches))  # no leg always goes first
            for name in order:
                cmd, env = launches[name]
                seconds[name].append(episode(cmd, env, policy, work / f"eval_{name}_{r}"))
                print(f"round {r} {name}: {seconds[name][-1]:.1f} s", flush=True)
    finally:
        busy.kill()
        busy.wait()
    print(f"\n110-step LIBERO-Object episode (`care eval`, wall s) beside a busy 2-thread torch process, "
          f"{os.cpu_count()} CPUs; each round's launches run back to back, so a round's ratios share its load:")
    ratios = {name: [s / m for s, m in zip(v, seconds["makefile"])] for name, v in seconds.items()}
    for name, v in seconds.items():
        per_round = ", ".join(f"{s:.1f} s ({r:.2f}x)" for s, r in zip(v, ratios[name]))
        print(f"  {name:10s} {per_round}")
    for name in seconds:
        if name != "makefile":
            print(f"{name} / makefile = {statistics.median(ratios[name]):.2f} (median over rounds of the round's ratio)")

if __name__ == "__main__":
    main()
