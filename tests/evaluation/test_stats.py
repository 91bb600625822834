"""care.evaluation.stats: the two-level bootstrap against hand-computed cases and a simulation,
the variance components, the minimal detectable effect, the seed plan and the verdict words."""

import math

import numpy as np
import pytest
from scipy import stats as st

from care.evaluation.stats import (
    MIN_SEEDS, Components, compare_pair, episode_array, mde, paired_array, seeds_for_half_width, t_interval,
    two_level_bootstrap, variance_components, verdict,
)


def _const(cells):
    """(seeds, tasks, episodes=10) with every episode of a (seed, task) the same value."""
    return np.repeat(np.asarray(cells, dtype=np.float64)[..., None], 10, axis=-1)


def test_no_episode_variance_reduces_to_the_seed_bootstrap():
    # per-seed differences 0, 50, 100 points (two tasks, every episode of a task alike): the
    # resampled mean of 3 seeds drawn with replacement is one of 27 equally likely means, the
    # lowest (all seed 0: 0) and highest (all seed 2: 100) each with probability 1/27 = 3.7% >
    # 2.5%, so the 95% percentile interval is exactly [0, 100]
    x = _const([[0, 0], [1, 0], [1, 1]])
    r = two_level_bootstrap(x)
    assert r["mean"] == pytest.approx(50.0)
    assert (r["low"], r["high"]) == (0.0, 100.0)
    c = variance_components(x)
    assert c.episode_unit == 0.0 and c.seed == pytest.approx(2500.0)  # var(0, 50, 100), ddof 1
    assert two_level_bootstrap(x) == r  # a fixed RNG seed


def test_one_seed_reduces_to_the_stratified_episode_bootstrap():
    # one seed, two tasks of 200 episodes: task 0 wins 60 and loses 20, task 1 wins 30 and loses
    # 30. Mean difference (40 + 0) / 400 = 10 points; the variance of the mean of the two task
    # means is (var_0 / 200 + var_1 / 200) / 4, var_t the per-episode variance (ddof 0)
    t0 = np.r_[np.ones(60), -np.ones(20), np.zeros(120)]
    t1 = np.r_[np.ones(30), -np.ones(30), np.zeros(140)]
    x = 100.0 * np.stack([t0, t1])[None] / 100.0
    r = two_level_bootstrap(x, resamples=20000)
    se = 100 * math.sqrt((t0.var() / 200 + t1.var() / 200) / 4)
    assert r["mean"] == pytest.approx(10.0)
    assert r["low"] == pytest.approx(10.0 - 1.96 * se, abs=0.3) and r["high"] == pytest.approx(10.0 + 1.96 * se, abs=0.3)
    c = variance_components(x)
    assert c.seed == 0.0 and c.episode() == pytest.approx(100**2 * (t0.var(ddof=1) + t1.var(ddof=1)) / 4 / 200)


def test_variance_components_and_mde_by_hand():
    # 4 seeds x 1 task x 2 episodes; per seed the episodes (0, 1), (1, 1), (0, 0), (0, 1)
    x = np.array([[[0, 1]], [[1, 1]], [[0, 0]], [[0, 1]]], dtype=float)
    c = variance_components(x)
    # per-seed sample variances (points², ddof 1): 5000, 0, 0, 5000 -> mean 2500 at one
    # episode; per-seed means 50, 100, 0, 50 -> var 1666.67; minus the episode part 2500 / 2
    assert c.episode_unit == pytest.approx(2500.0) and c.episode() == pytest.approx(1250.0)
    assert c.seed == pytest.approx(5000 / 3 - 1250.0)
    se = math.sqrt((c.seed + 1250.0) / 4)
    assert mde(c) == pytest.approx((st.t.ppf(0.975, 3) + st.t.ppf(0.8, 3)) * se)
    # more episodes shrink only the episode part
    assert mde(c, E=1000) == pytest.approx((st.t.ppf(0.975, 3) + st.t.ppf(0.8, 3)) * math.sqrt((c.seed + 2.5) / 4))


def test_the_plan_is_the_fewest_seeds_within_the_width():
    c = Components(seed=9.0, episode_unit=2000.0, n_seeds=3, episodes_per_task=20, tasks=10)
    for E in (20, 100):
        S = seeds_for_half_width(c, 3.0, E)
        half = lambda n: st.t.ppf(0.975, n - 1) * math.sqrt((9.0 + 2000.0 / E) / n)  # noqa: E731
        assert half(S) <= 3.0 < half(S - 1)
    assert seeds_for_half_width(c, 3.0, 100) < seeds_for_half_width(c, 3.0, 20)  # episodes are cheaper
    assert seeds_for_half_width(c, 0.01, 100) is None  # beyond 1000 seeds


@pytest.mark.parametrize("low, high, n, word", [
    (1.0, 5.0, 5, "holds"), (-5.0, -1.0, 10, "reversed"),
    (1.0, 5.0, 3, "too few seeds (n=3), direction: +"), (-5.0, -1.0, 4, "too few seeds (n=4), direction: −"),
    (-1.0, 5.0, 10, "not separated (MDE 7.2)"),
    # one seed: its interval has no between-seed part, so never "not separated (MDE ...)"
    (-3.5, 1.2, 1, "too few seeds (n=1), direction: −"), (1.0, 5.0, 1, "too few seeds (n=1), direction: +"),
])
def test_verdict_words(low, high, n, word):
    assert MIN_SEEDS == 5
    assert verdict(low, high, n, 7.2) == word


def test_one_seeds_direction_is_its_estimate():
    assert verdict(-6.5, 7.0, 1, mean=0.0) == "too few seeds (n=1), direction: none"
    assert verdict(-6.5, 7.0, 1, mean=-0.5) == "too few seeds (n=1), direction: −"


def _eval(successes: list[list[bool]], seeds0=1000):
    return {"per_task": [{"task": f"t{i}", "seeds": list(range(seeds0, seeds0 + len(s))), "successes": s}
                         for i, s in enumerate(successes)]}


def test_pairing_needs_the_same_episodes():
    a, b = _eval([[True, False], [True, True]]), _eval([[False, False], [True, False]])
    assert paired_array([a], [b]).tolist() == [[[1, 0], [0, 1]]]
    assert episode_array([a]).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="same tasks and episode seeds"):
        paired_array([a], [_eval([[False, False], [True, False]], seeds0=7)])
    with pytest.raises(ValueError, match="2 against 1 seeds"):
        paired_array([a, a], [b])


def _simulate(rng, S, T, E, delta, sd):
    """Two runs' outcomes on the same episodes: task base rates, a per-seed training shift of each
    run (per task and overall, sd `sd`), `delta` added to run a."""
    base = rng.uniform(0.2, 0.7, size=T)
    pa = np.clip(base + delta + rng.normal(0, sd, (S, T)) + rng.normal(0, sd, (S, 1)), 0, 1)
    pb = np.clip(base + rng.normal(0, sd, (S, T)) + rng.normal(0, sd, (S, 1)), 0, 1)
    return (rng.random((S, T, E)) < pa[..., None]).astype(float) - (rng.random((S, T, E)) < pb[..., None])


def test_simulation_zero_effect_covers_about_95_percent_and_a_known_effect_is_found():
    rng = np.random.default_rng(123)
    n, covered = 200, 0
    for i in range(n):
        r = two_level_bootstrap(_simulate(rng, 5, 10, 20, 0.0, 0.05), resamples=1000, seed=i)
        covered += r["low"] <= 0.0 <= r["high"]
    assert 0.88 <= covered / n <= 0.99, covered / n
    # +15 points, 8 seeds x 50 episodes per task: the interval holds the truth and excludes 0
    found, near = 0, 0
    for i in range(50):
        x = _simulate(rng, 8, 10, 50, 0.15, 0.03)
        r = two_level_bootstrap(x, resamples=1000, seed=i)
        found += r["low"] > 0 and verdict(r["low"], r["high"], 8) == "holds"
        near += r["low"] <= 15.0 <= r["high"]
    assert found == 50 and near >= 44


def test_compare_pair_on_eval_files():
    rng = np.random.default_rng(0)
    a = [_eval((rng.random((10, 20)) < 0.6).tolist()) for _ in range(3)]
    b = [_eval((rng.random((10, 20)) < 0.4).tolist()) for _ in range(3)]
    r = compare_pair(a, b)
    diffs = [100 * (episode_array([x]).mean() - episode_array([y]).mean()) for x, y in zip(a, b)]
    assert r["diffs"] == pytest.approx(diffs) and r["mean"] == pytest.approx(np.mean(diffs))
    assert r["low"] < r["mean"] < r["high"] and r["mde"] > 0
    assert r["verdict"].startswith(("too few seeds (n=3)", "not separated (MDE"))


def test_t_interval_uses_scipy():
    ti = t_interval([5.0, 4.5, 5.5])
    assert ti["t"] == pytest.approx(4.302652730) and ti["half_width"] == pytest.approx(4.302652730 * 0.5 / math.sqrt(3))
    assert t_interval([1.0]) is None


def test_the_plan_command_on_the_committed_results(capsys):
    from pathlib import Path

    from care.evaluation.stats import main

    root = Path(__file__).parents[2] / "results/paper_mt10"
    assert main(["--results", str(root), "--pair", "care+fp32", "no_pretrain+fp32", "--half-width", "3",
                 "--episodes", "20", "100", "--design", "10", "100"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| care+fp32 − no_pretrain+fp32 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "3 × 20" and cells[8].startswith("±")
    s20, s100 = (int(c.split()[0]) for c in cells[6:8])
    assert s100 <= s20  # more episodes per task, fewer seeds for the same width


def test_spread_names_the_task_by_seed_interaction(tmp_path):
    """Two runs whose policies each solve a different half of the tasks on every seed: the
    overall rate barely moves, a task's rate swings from seed to seed far beyond its episodes."""
    import json

    from care.evaluation.stats import spread_lines

    rng = np.random.default_rng(0)
    for run in ("a", "b"):
        for k in range(4):
            good = rng.permutation(6) < 3
            succ = [(rng.random(20) < (0.9 if g else 0.1)).tolist() for g in good]
            d = tmp_path / run / f"s{k}"
            d.mkdir(parents=True)
            (d / "eval_info.json").write_text(json.dumps(_eval(succ)))
    out = "\n".join(spread_lines(tmp_path, ["a", "b"], shuffles=50))
    row = next(line for line in out.splitlines() if line.startswith("| a |"))
    inter, episode_part = (float(c) for c in row.split("|")[6:8])
    assert inter > 5 * episode_part  # the policy, not the episodes, moves a task's success
    assert "explained by the task" in out and "shuffled within task" in out


def test_ratio_interval_of_two_runs():
    from care.evaluation.stats import ratio_interval

    def runs(seeds: int, won: int, episodes: int = 10) -> np.ndarray:
        """(seeds, 2 tasks, episodes): `won` of every 10 episodes of every (seed, task) succeed."""
        x = np.zeros((seeds, 2, episodes))
        x[..., : won * episodes // 10] = 1.0
        return x

    # 40% against 80%: the ratio is 0.5; the seeds agree, so only the episodes vary
    r = ratio_interval(runs(2, 4), runs(3, 8))
    assert r["ratio"] == pytest.approx(0.5) and (r["n_num"], r["n_den"]) == (2, 3)
    assert r["low"] < 0.5 < r["high"] and r["high"] - r["low"] > 0.2
    # the same fractions with 100x the episodes: the interval narrows around 0.5
    rb = ratio_interval(runs(2, 4, 1000), runs(3, 8, 1000))
    assert rb["low"] < 0.5 < rb["high"] and rb["high"] - rb["low"] < (r["high"] - r["low"]) / 5
