"""How often does an interval of `care.evaluation.stats` leave a zero effect "not separated"?

Simulated paired comparisons (`care.evaluation.stats.simulate_pair`: 10 tasks, task base rates
in [0.2, 0.7], a training effect per seed and per (seed, task) of standard deviation `sd` for
each run, Bernoulli episodes, no true difference) at several seed counts and two mixes of the
noises, and for each the share of comparisons whose 95% interval holds 0 — the share a verdict
reads "not separated" — for four intervals:

    both levels     seeds, then episodes, drawn as they are; plain percentiles (the episodes'
                    noise counted twice)
    percentile      the two-level bootstrap with the seed means shrunk to the between-seed
                    spread (each noise once); plain percentiles
    widened         the same, widened by expansion(S) = t(0.975, S-1)/z(0.975)*sqrt(S/(S-1)):
                    what `care report` and `care eval compare` use
    t over seeds    Student-t on the per-seed differences (each carries its episodes' noise)

A 95% interval should hold 0 about 95% of the time; below that, a verdict claims an effect that
is not there more often than one time in twenty.

    python benchmarks/interval_coverage.py [--comparisons 1000] [--resamples 1000] [--seeds 3 5 10]

Pure numpy, one core, about a minute per 1000 comparisons of a setting.
"""

from __future__ import annotations

import argparse

import numpy as np

from care.evaluation.stats import simulate_pair, t_interval, two_level_bootstrap

# (episodes per task, sd): the noises' mix. At 100 episodes per task and sd 0.05 the seeds' variance
# is about 12x one seed's episode variance (the headline's is about 5x); at 20 and 0.05 about 2x.
MIXES = [(20, 0.05), (100, 0.05), (100, 0.0)]


def coverage(S: int, E: int, sd: float, n: int, resamples: int, seed: int = 123) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    held = {"both levels": 0, "percentile": 0, "widened": 0, "t over seeds": 0}
    for i in range(n):
        x = simulate_pair(rng, S, 10, E, 0.0, sd)
        both = two_level_bootstrap(x, resamples, seed=i, expand=False, shrink=False)
        r = two_level_bootstrap(x, resamples, seed=i)
        t = t_interval(100.0 * x.mean(axis=(1, 2)))
        held["both levels"] += both["low"] <= 0.0 <= both["high"]
        held["percentile"] += r["percentile"][0] <= 0.0 <= r["percentile"][1]
        held["widened"] += r["low"] <= 0.0 <= r["high"]
        held["t over seeds"] += t["low"] <= 0.0 <= t["high"]
    return {k: v / n for k, v in held.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comparisons", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    a = ap.parse_args(argv)
    names = ["both levels", "percentile", "widened", "t over seeds"]
    print(f"Share of {a.comparisons} zero-effect comparisons whose 95% interval holds 0 "
          f"({a.resamples} resamples each, 10 tasks):\n")
    print("| seeds | episodes/task | sd | " + " | ".join(names) + " |")
    print("|---:|---:|---:|" + "---:|" * len(names))
    for S in a.seeds:
        for E, sd in MIXES:
            c = coverage(S, E, sd, a.comparisons, a.resamples)
            print(f"| {S} | {E} | {sd} | " + " | ".join(f"{100 * c[k]:.1f}%" for k in names) + " |", flush=True)


if __name__ == "__main__":
    main()
