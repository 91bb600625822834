"""The project's statistics, in one place: how sure is a success rate, or a difference of two?

    python -m care.evaluation.stats --results results/paper_mt10 --pair care+fp32 no_pretrain+fp32 \
        --pair care+fp32 como --half-width 3 --episodes 20 50 100 200 --design 10 100

A success rate here has two sources of noise, and an interval must carry both:

* the **pipeline seed** (pretraining seed k, then fine-tuning seed k): two trainings of the same
  recipe give different policies. This is the unit of replication.
* the **evaluation episodes**: one policy evaluated on 20 episodes per task is itself an estimate
  of that policy's success.

`two_level_bootstrap` gives an interval that carries both, each once: it draws S pipeline seeds
with replacement, then each drawn seed's episodes again, task by task. A seed's mean over its
episodes already varies with them, so before its episodes are drawn again each seed's mean is
moved toward the grand mean until the seeds spread by the between-seed component alone (below);
drawing both levels as they are would count the episodes' noise twice (Davison & Hinkley 1997,
§3.8). Seeds that happen to agree more closely than their episodes allow still get the episodes'
noise: three seeds at +3.0 / +2.5 / +2.0 are not a ±0.5-point result when each is a 200-episode
estimate. At few seeds the percentiles of the draw are too narrow (the seeds' spread is
sqrt((S-1)/S) of its standard error, and the quantiles are normal ones: at 5 seeds a zero effect
falls outside them about one time in seven), so the interval is widened about the estimate by
`expansion(S)` = t(0.975, S-1) / z(0.975) * sqrt(S/(S-1)) (Hesterberg's expanded percentile
interval, 2015): 1.58 at 5 seeds, 1.22 at 10, 1.10 at 20. It then agrees with the t quantiles
of the MDE and the plan, and a zero effect is "not separated" about 95% of the time (a little
more where the episodes' noise is a large part of the total: that part is known better than the
t quantile assumes; tests/evaluation/test_stats.py simulates both). One seed has no seed spread
to see: its interval is the episodes' alone, and its verdict is always "too few seeds". A
paired difference (run a minus run b on the same seeds) is taken episode by episode, which keeps
the pairing where both runs rolled out the same episodes (the same task and environment seed
list: `care report` and `care eval compare` check that). Because an episode difference is +1, 0
or -1 (a success is 1 or 0), drawing E episodes with replacement is a multinomial draw of (won,
lost, tied) counts. The percentiles are the 2.5 and 97.5 of 4000 resamples, RNG seed 0 by
default.

`variance_components` splits the spread of the per-seed means into the episode part (the
sampling variance of a seed's mean from its own episodes, known from the episodes) and the rest,
the between-seed training variance, which is what more episodes cannot remove. From them:

* `mde`: the smallest true difference a comparison of S seeds x E episodes per task detects with
  80% power at a two-sided alpha of 0.05: (t(0.975, S-1) + t(0.80, S-1)) * SE,
  SE = sqrt((var_seed + var_episode(E)) / S);
* `plan`: for each E, the fewest seeds whose expected 95% half-width t(0.975, S-1) * SE is at
  most W points.

`verdict` turns an interval into words: "holds" / "reversed" only when the interval is clear of
zero *and* there are at least `MIN_SEEDS` (5) pipeline seeds; with fewer the words are
"too few seeds (n=3), direction: +"; an interval that contains zero is "not separated (MDE x.x)".

t quantiles come from `scipy.stats.t.ppf`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as _st

RESAMPLES = 4000
RNG_SEED = 0
LEVEL = 0.95
POWER = 0.80
MIN_SEEDS = 5  # a verdict needs at least this many pipeline seeds


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (scipy)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(_st.t.ppf(p, df))


def t_interval(values, level: float = LEVEL) -> dict | None:
    """Student-t interval for the mean of `values` (one per pipeline seed); None for < 2 values."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return None
    t = t_quantile(0.5 + level / 2, len(x) - 1)
    half = t * float(x.std(ddof=1)) / math.sqrt(len(x))
    mean = float(x.mean())
    return {"level": level, "df": len(x) - 1, "t": t, "half_width": half, "low": mean - half, "high": mean + half}


# --- the data: per seed, per task, the episodes' outcomes ------------------------------------


def outcomes(info: dict) -> dict[str, dict[int, bool]]:
    """task -> env seed -> success, from one `care eval` eval_info.json."""
    return {r["task"]: {int(s): bool(ok) for s, ok in zip(r["seeds"], r["successes"])} for r in info["per_task"]}


def episode_array(infos: list[dict]) -> np.ndarray:
    """(seeds, tasks, episodes) of 0/1 from eval_info.json dicts evaluated on one task and seed
    list (an error otherwise)."""
    first = [(r["task"], list(r["seeds"])) for r in infos[0]["per_task"]]
    E = {len(s) for _, s in first}
    if len(E) != 1:
        raise ValueError("every task must have the same number of evaluation episodes")
    out = []
    for info in infos:
        if [(r["task"], list(r["seeds"])) for r in info["per_task"]] != first:
            raise ValueError("the evaluations were not run on the same tasks and episode seeds")
        out.append([[bool(x) for x in r["successes"]] for r in info["per_task"]])
    return np.asarray(out, dtype=np.float64)


def paired_array(a: list[dict], b: list[dict]) -> np.ndarray:
    """(seeds, tasks, episodes) of a's success minus b's, episode by episode (-1, 0, +1): seed k
    of `a` with seed k of `b`, on the same tasks and env seeds (an error otherwise)."""
    if len(a) != len(b):
        raise ValueError(f"paired: {len(a)} against {len(b)} seeds")
    if not a:
        raise ValueError("paired: no seeds")
    both = episode_array([*a, *b])  # one task and env-seed list for all of them, or an error
    return both[: len(a)] - both[len(a):]


# --- the two-level bootstrap -------------------------------------------------------------------


def expansion(n_seeds: int, level: float = LEVEL) -> float:
    """How much wider the interval is than the bootstrap's percentiles at `n_seeds` seeds:
    t(., S-1) / z(.) * sqrt(S / (S-1)) (1 for one seed, -> 1 as S grows; 1.58 at 5 seeds, 1.22 at
    10). Resampling S seeds with replacement spreads the mean by sqrt((S-1)/S) of its standard
    error and the percentiles are normal quantiles, so at few seeds the plain percentile interval
    is too narrow: at 5 seeds a zero effect falls outside it about one time in seven, not one in
    twenty (the simulation in tests/evaluation/test_stats.py). The widening is Hesterberg's
    expanded percentile interval (The American Statistician 69(4), 2015), applied as a scale about
    the estimate rather than as more extreme percentiles (the same under normality, and steady
    with a few thousand resamples); it makes the interval agree with the t quantiles the MDE and
    the plan use. One seed has no between-seed spread to correct: its interval is the episodes'
    alone (and its verdict is always "too few seeds")."""
    if n_seeds < 2:
        return 1.0
    q = 0.5 + level / 2
    return t_quantile(q, n_seeds - 1) / float(_st.norm.ppf(q)) * math.sqrt(n_seeds / (n_seeds - 1))


def _expand(est: float, lo: float, hi: float, f: float) -> tuple[float, float]:
    return est - f * (est - lo), est + f * (hi - est)


def two_level_bootstrap(x: np.ndarray, resamples: int = RESAMPLES, seed: int = RNG_SEED,
                        level: float = LEVEL, expand: bool = True, shrink: bool = True) -> dict:
    """Mean (points) of `x` (seeds, tasks, episodes) with values in {-1, 0, 1} (a paired
    difference) or {0, 1} (one run's successes), and its interval (`bootstrap_means`: seeds, then
    the episodes of each drawn seed; module docstring): the bootstrap's percentiles
    ("percentile"), widened about the mean by `expansion(S)` ("low", "high"; expand=False: the
    plain percentiles), kept within [0, 100] for a success rate and [-100, 100] for a difference.
    shrink=False draws both levels as they are (the episodes' noise counted twice; for comparison)."""
    x = np.asarray(x, dtype=np.float64)
    means = bootstrap_means(x, resamples, np.random.default_rng(seed), shrink)
    S, T, E = x.shape
    lo, hi = (float(v) for v in np.percentile(means, [50 * (1 - level), 50 * (1 + level)]))
    mean = float(100.0 * x.mean())
    f = expansion(S, level) if expand else 1.0
    low, high = _expand(mean, lo, hi, f)
    floor = 0.0 if x.min() >= 0 else -100.0  # a success rate, or a difference of two
    low, high = max(low, floor), min(high, 100.0)
    return {"mean": mean, "low": low, "high": high, "level": level, "percentile": [lo, hi], "expansion": f,
            "resamples": int(resamples), "rng_seed": int(seed), "n_seeds": S, "tasks": T, "episodes_per_task": E}


def bootstrap_means(x: np.ndarray, resamples: int, rng: np.random.Generator, shrink: bool = True) -> np.ndarray:
    """The two-level bootstrap's draws of the mean (points), shape (resamples,): S seeds drawn
    with replacement, then each drawn (seed, task)'s episodes drawn again (a multinomial of its
    +1 / -1 / 0 fractions). A seed's mean over its episodes already varies with them, so before
    its episodes are drawn again each seed's mean is moved toward the grand mean, by the factor
    sqrt(var_seed / var(seed means)) that leaves the seeds spread by the between-seed component
    alone (`variance_components`); otherwise the episodes' noise would count twice (Davison &
    Hinkley, Bootstrap Methods and their Application, 1997, §3.8, the two-stage bootstrap with
    shrunken cluster means). Seeds that agree more closely than their episodes allow (var_seed
    floored at 0) thus still get the episodes' noise. One seed: its episodes alone."""
    if x.ndim != 3 or x.size == 0:
        raise ValueError(f"expected a (seeds, tasks, episodes) array, got shape {x.shape}")
    S, T, E = x.shape
    # per (seed, task): the fractions of +1, -1 and 0 outcomes
    p = np.stack([(x == 1).mean(-1), (x == -1).mean(-1), (x == 0).mean(-1)], axis=-1)  # (S, T, 3)
    pick = rng.integers(0, S, size=(resamples, S))  # the seeds of each resample
    counts = rng.multinomial(E, p[pick])  # (R, S, T, 3): each drawn (seed, task)'s episodes again
    draws = 100.0 * (counts[..., 0] - counts[..., 1]).mean(axis=2) / E  # (R, S): each drawn seed's mean
    if S > 1 and shrink:
        seed_means = 100.0 * x.mean(axis=(1, 2))
        total = float(seed_means.var(ddof=1))
        c = math.sqrt(variance_components(x).seed / total) if total > 0 else 0.0
        draws -= (1.0 - c) * (seed_means - seed_means.mean())[pick]
    return draws.mean(axis=1)


def ratio_interval(num: np.ndarray, den: np.ndarray, resamples: int = RESAMPLES, seed: int = RNG_SEED,
                   level: float = LEVEL) -> dict:
    """One run's success as a fraction of another's (e.g. of the label-supervised ceiling), with
    a percentile interval: each run's (seeds, tasks, episodes) successes resampled on their own
    two levels (the runs are different pipelines, so not paired), the ratio of each draw's means."""
    rng = np.random.default_rng(seed)
    a = bootstrap_means(np.asarray(num, dtype=np.float64), resamples, rng)
    b = bootstrap_means(np.asarray(den, dtype=np.float64), resamples, rng)
    ok = b > 0
    r = a[ok] / b[ok]
    lo, hi = np.percentile(r, [50 * (1 - level), 50 * (1 + level)]) if ok.any() else (math.nan, math.nan)
    mean_den = float(np.mean(den))
    ratio = float(np.mean(num)) / mean_den if mean_den > 0 else math.nan
    n_num, n_den = int(np.shape(num)[0]), int(np.shape(den)[0])
    f = expansion(min(n_num, n_den), level)  # the run with fewer seeds sets the degrees of freedom
    low, high = _expand(ratio, float(lo), float(hi), f)
    return {"ratio": ratio, "low": low, "high": high, "level": level, "percentile": [float(lo), float(hi)],
            "expansion": f, "n_num": n_num, "n_den": n_den}


def simulate_pair(rng: np.random.Generator, S: int, T: int, E: int, delta: float, sd: float) -> np.ndarray:
    """A simulated paired comparison, (S, T, E) of -1 / 0 / +1: task base rates uniform in
    [0.2, 0.7], each run's success rate per seed shifted by a training effect per (seed, task)
    and one per seed (each N(0, sd²), as fractions), `delta` added to run a; each episode a
    Bernoulli draw. For checking an interval's coverage (tests, benchmarks/interval_coverage.py)."""
    base = rng.uniform(0.2, 0.7, size=T)
    pa = np.clip(base + delta + rng.normal(0, sd, (S, T)) + rng.normal(0, sd, (S, 1)), 0, 1)
    pb = np.clip(base + rng.normal(0, sd, (S, T)) + rng.normal(0, sd, (S, 1)), 0, 1)
    return (rng.random((S, T, E)) < pa[..., None]).astype(float) - (rng.random((S, T, E)) < pb[..., None])


# --- variance components, power and the plan ---------------------------------------------------


@dataclass
class Components:
    """The spread of a per-seed mean (points²) split in two, for E episodes per task and T tasks.

    seed: between-seed (training) variance of the per-seed mean, which more episodes do not remove;
    episode_unit: the within-seed variance of *one episode per task*: a seed's mean over E
    episodes per task has episode variance episode_unit / E."""

    seed: float
    episode_unit: float
    n_seeds: int
    episodes_per_task: int
    tasks: int

    def episode(self, E: int | None = None) -> float:
        return self.episode_unit / (E or self.episodes_per_task)

    def se(self, S: int | None = None, E: int | None = None) -> float:
        """Standard error of the mean over S seeds (default: the observed) with E episodes per task."""
        return math.sqrt((self.seed + self.episode(E)) / (S or self.n_seeds))


def variance_components(x: np.ndarray) -> Components:
    """Method of moments on (seeds, tasks, episodes): a seed's episode variance is
    sum_t var_t / (T² E) (var_t the sample variance of task t's episode values, ddof 1, in
    points²); the between-seed variance is the sample variance of the per-seed means minus the
    average episode variance, floored at 0."""
    x = 100.0 * np.asarray(x, dtype=np.float64)
    S, T, E = x.shape
    var_t = x.var(axis=-1, ddof=1) if E > 1 else np.zeros((S, T))  # (S, T)
    episode_unit = float(var_t.sum(axis=1).mean() / T**2)  # at one episode per task
    seed_means = x.mean(axis=(1, 2))
    total = float(seed_means.var(ddof=1)) if S > 1 else 0.0
    return Components(seed=max(0.0, total - episode_unit / E), episode_unit=episode_unit, n_seeds=S,
                      episodes_per_task=E, tasks=T)


def mde(c: Components, S: int | None = None, E: int | None = None, alpha: float = 1 - LEVEL,
        power: float = POWER) -> float:
    """Smallest true difference (points) detected with `power` at two-sided `alpha`, by S seeds x
    E episodes per task (default: the observed): (t(1 - alpha/2, S-1) + t(power, S-1)) * SE. With
    one seed the normal quantiles stand in (a single seed has no between-seed estimate)."""
    S = S or c.n_seeds
    if S < 2:
        q = float(_st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power))
    else:
        q = t_quantile(1 - alpha / 2, S - 1) + t_quantile(power, S - 1)
    return q * c.se(S, E)


def seeds_for_half_width(c: Components, width: float, E: int, level: float = LEVEL, max_seeds: int = 1000) -> int | None:
    """The fewest seeds (>= 2) at E episodes per task whose expected `level` half-width
    t(., S-1) * SE is at most `width` points; None if more than `max_seeds` would be needed."""
    for S in range(2, max_seeds + 1):
        if t_quantile(0.5 + level / 2, S - 1) * c.se(S, E) <= width:
            return S
    return None


# --- words ---------------------------------------------------------------------------------------


def verdict(low: float, high: float, n_seeds: int, mde_value: float | None = None, digits: int = 1,
            mean: float | None = None) -> str:
    """"holds" / "reversed" (clear of zero, >= MIN_SEEDS seeds), "too few seeds (n=3), direction:
    +" (clear of zero, fewer seeds), or "not separated (MDE x.x)". One seed is "too few seeds"
    whatever its interval: that interval carries the episodes' noise only (one seed gives no
    between-seed variance), so neither a clear interval nor one across zero says much. Its
    direction is the sign of `mean` (the estimate; default: the interval's midpoint), "none" at 0."""
    if n_seeds < 2:
        mid = (low + high) / 2 if mean is None else round(mean, digits)
        return f"too few seeds (n={n_seeds}), direction: {'+' if mid > 0 else '−' if mid < 0 else 'none'}"
    if low > 0 or high < 0:
        if n_seeds >= MIN_SEEDS:
            return "holds" if low > 0 else "reversed"
        return f"too few seeds (n={n_seeds}), direction: {'+' if low > 0 else '−'}"
    return "not separated" + (f" (MDE {mde_value:.{digits}f})" if mde_value is not None and math.isfinite(mde_value) else "")


def compare_pair(a: list[dict], b: list[dict], resamples: int = RESAMPLES, seed: int = RNG_SEED) -> dict:
    """Everything a claim "a > b" on success needs, from the two runs' eval_info.json dicts
    (seed k with seed k): the two-level interval, the variance components, the MDE and the verdict."""
    d = paired_array(a, b)
    bs = two_level_bootstrap(d, resamples, seed)
    c = variance_components(d)
    m = mde(c) if c.n_seeds > 1 else math.nan  # one seed: no between-seed variance to size it with
    per_seed = (100.0 * d.mean(axis=(1, 2))).tolist()
    return {**bs, "diffs": per_seed, "var_seed": c.seed, "var_episode": c.episode(), "mde": m,
            "verdict": verdict(bs["low"], bs["high"], bs["n_seeds"], m, mean=bs["mean"]), "components": c}


# --- the command: what the committed results say about the seeds x episodes to run ------------


def _load_run(root: Path, run: str) -> dict[int, dict]:
    import json

    out = {}
    for d in sorted((root / run).glob("s*")):
        f = d / "eval_info.json"
        if d.name[1:].isdigit() and f.is_file():
            out[int(d.name[1:])] = json.loads(f.read_text())
    if not out:
        raise SystemExit(f"{root / run}: no s<k>/eval_info.json")
    return out


def plan_lines(root: Path, pairs: list[tuple[str, str]], width: float, episodes: list[int],
               design: tuple[int, int] | None = None) -> list[str]:
    """For each pair of runs: the variance components of its paired difference and, per episodes
    per task E, the fewest pipeline seeds whose expected 95% half-width is at most `width`
    (and, with `design` = (S, E), that design's expected half-width and MDE)."""
    lines = [f"Plan for a 95% half-width <= {width:g} points, from the variance components of "
             f"{root} (two-level: pipeline seeds, then episodes within task):", ""]
    extra = f" | {design[0]} × {design[1]}/task: half-width, MDE" if design else ""
    head = "| a - b | seeds x episodes/task now | Δ [95% two-level] | var seed | var episode (now) | MDE now | " \
           + " | ".join(f"seeds at {E}/task" for E in episodes) + extra + " |"
    lines += [head, "|---|---|---|---:|---:|---:|" + "---:|" * (len(episodes) + bool(design))]
    for a, b in pairs:
        ra, rb = _load_run(root, a), _load_run(root, b)
        seeds = sorted(set(ra) & set(rb))
        r = compare_pair([ra[s] for s in seeds], [rb[s] for s in seeds])
        c = r["components"]
        need = []
        for E in episodes:
            S = seeds_for_half_width(c, width, E)
            need.append(f"{S} ({S * E * c.tasks:,} episodes a run)" if S else "> 1000")
        if design:
            S, E = design
            need.append(f"±{t_quantile(0.975, S - 1) * c.se(S, E):.1f}, {mde(c, S, E):.1f}")
        mde_now = f"{r['mde']:.1f}" if math.isfinite(r["mde"]) else "— (1 seed)"
        lines.append(f"| {a} − {b} | {c.n_seeds} × {c.episodes_per_task} | {r['mean']:+.1f} [{r['low']:+.1f}, "
                     f"{r['high']:+.1f}] | {c.seed:.1f} | {c.episode():.1f} | {mde_now} | " + " | ".join(need) + " |")
    lines += ["", "var seed: between-seed variance of the paired difference (points²) after removing the "
              "episode part; var episode: a seed's episode variance at the observed episodes per task. "
              "Seeds needed: fewest S with t(0.975, S−1)·sqrt((var seed + var episode(E))/S) <= the width. "
              "The between-seed variance comes from the few seeds there are and is itself uncertain: a plan, "
              "not a promise; the finished runs' own interval is what counts."]
    return lines


def spread_lines(root: Path, runs: list[str], shuffles: int = 200, seed: int = RNG_SEED) -> list[str]:
    """What drives the spread of runs' success over pipeline seeds: per run, the between-seed
    variance against the episode variance, and the task x seed interaction (how much a task's
    success moves from seed to seed) against what its episodes alone would give; over all the
    runs together, the share of the outcome variance that the task, and the task with the initial
    state (env seed), explain, against that share with each policy's episodes shuffled within
    task (what chance gives)."""
    lines = [f"Spread over pipeline seeds in {root}:", "",
             "| run | seeds | success per seed | var seed | var episode | task × seed var | its episode part |",
             "|---|---:|---|---:|---:|---:|---:|"]
    xs = []
    for run in runs:
        r = _load_run(root, run)
        x = episode_array([r[k] for k in sorted(r)])
        xs.append(x)
        c = variance_components(x)
        pt = 100.0 * x.mean(-1)  # (S, T)
        inter = float(pt.var(axis=0, ddof=1).mean()) if len(pt) > 1 else float("nan")
        binom = float((100.0**2 * x.mean(-1) * (1 - x.mean(-1)) / max(1, x.shape[2] - 1)).mean())
        lines.append(f"| {run} | {len(x)} | {' / '.join(f'{v:.1f}' for v in 100 * x.mean(axis=(1, 2)))} | "
                     f"{c.seed:.1f} | {c.episode():.1f} | {inter:.0f} | {binom:.0f} |")
    allx = np.concatenate(xs)  # (policies, T, E)
    tot = allx.var()

    def share(x: np.ndarray, by_state: bool) -> float:
        cell = x.mean(0) if by_state else x.mean(axis=(0, 2))[:, None]
        return 1.0 - float(((x - cell) ** 2).mean()) / float(x.var())

    rng = np.random.default_rng(seed)
    chance = []
    for _ in range(shuffles):
        perm = np.argsort(rng.random(allx.shape), axis=-1)  # each policy's episodes shuffled within task
        chance.append(share(np.take_along_axis(allx, perm, axis=-1), True))
    lo, hi = np.percentile(chance, [2.5, 97.5])
    lines += ["", f"Outcome variance over all {len(allx)} policies: {tot:.3f}; explained by the task "
              f"{share(allx, False):.2f}, by the task and initial state {share(allx, True):.2f} (with episodes "
              f"shuffled within task: {np.mean(chance):.2f} [{lo:.2f}, {hi:.2f}]).",
              "", "var seed / var episode: as in the plan (points²); task × seed var: the variance over seeds of "
              "a task's success, mean over tasks; its episode part: what the task's episodes alone would give "
              "(p(1−p)/(E−1), points²)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m care.evaluation.stats", description=plan_lines.__doc__)
    ap.add_argument("--results", type=Path, default=Path("results/paper_mt10"))
    ap.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), default=[],
                    help="runs a and b (folders under --results with s<k>/eval_info.json); repeat")
    ap.add_argument("--spread", nargs="+", metavar="RUN", default=[],
                    help="what drives these runs' spread over seeds (task, initial state, seed)")
    ap.add_argument("--half-width", type=float, default=3.0)
    ap.add_argument("--episodes", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--design", type=int, nargs=2, metavar=("SEEDS", "EPISODES"),
                    help="also the expected half-width and MDE of this many seeds x episodes per task")
    args = ap.parse_args(argv)
    if not args.pair and not args.spread:
        ap.error("give --pair A B (a plan) and/or --spread RUN ... (what drives the spread)")
    if args.pair:
        print("\n".join(plan_lines(args.results, [tuple(p) for p in args.pair], args.half_width, args.episodes,
                                   tuple(args.design) if args.design else None)))
    if args.spread:
        print("\n".join(([""] if args.pair else []) + spread_lines(args.results, args.spread)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
