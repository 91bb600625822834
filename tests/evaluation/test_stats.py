"""care.evaluation.stats: the two-level bootstrap against hand-computed cases and a simulation,
the variance components, the minimal detectable effect, the seed plan and the verdict words."""

import math

import numpy as np
import pytest
from scipy import stats as st

from care.evaluation.stats import (
    MIN_SEEDS, Components, bootstrap_means, compare_pair, episode_array, expansion, mde, paired_array,
    seeds_for_half_width, simulate_pair, t_interval, two_level_bootstrap, variance_components, verdict,
)


def _const(cells):
    """(seeds, tasks, episodes=10) with every episode of a (seed, task) the same value."""
    return np.repeat(np.asarray(cells, dtype=np.float64)[..., None], 10, axis=-1)


def test_no_episode_variance_reduces_to_the_seed_bootstrap_then_widened():
    # per-seed differences 0, 50, 100 points (two tasks, every episode of a task alike): the
    # resampled mean of 3 seeds drawn with replacement is one of 27 equally likely means, the
    # lowest (all seed 0: 0) and highest (all seed 2: 100) each with probability 1/27 = 3.7% >
    # 2.5%, so the 95% percentiles are exactly [0, 100]
    x = _const([[0, 0], [1, 0], [1, 1]])
    r = two_level_bootstrap(x, expand=False)
    assert r["mean"] == pytest.approx(50.0)
    assert (r["low"], r["high"]) == (0.0, 100.0) == tuple(r["percentile"])
    c = variance_components(x)
    assert c.episode_unit == 0.0 and c.seed == pytest.approx(2500.0)  # var(0, 50, 100), ddof 1
    assert two_level_bootstrap(x, expand=False) == r  # a fixed RNG seed
    # widened about the mean by t(0.975, S-1) / z(0.975) * sqrt(S/(S-1)), within [0, 100] here
    f = st.t.ppf(0.975, 2) / st.norm.ppf(0.975) * math.sqrt(1.5)
    assert expansion(3) == pytest.approx(f) and expansion(1) == 1.0
    assert expansion(5) == pytest.approx(1.583, abs=1e-3) and expansion(10) == pytest.approx(1.217, abs=1e-3)
    w = two_level_bootstrap(x)  # 0/1 values: a success rate
    assert w["percentile"] == r["percentile"] and w["expansion"] == pytest.approx(f)
    assert (w["low"], w["high"]) == (0.0, 100.0)
    # five seeds at 40, 42, 44, 46, 48% (every episode of a seed alike): widened 1.58x about 44
    five = np.stack([np.full((2, 10), k / 100) for k in (40, 42, 44, 46, 48)])
    five = (np.arange(100)[None, None] < 100 * five[..., :1]).astype(float)  # (5, 2, 100) of 0/1
    five[:, 1] = five[:, 0]
    p5, w5 = two_level_bootstrap(five, expand=False), two_level_bootstrap(five)
    assert w5["mean"] == pytest.approx(44.0) and p5["percentile"] == w5["percentile"]
    assert w5["low"] == pytest.approx(44.0 - expansion(5) * (44.0 - p5["low"]))
    assert w5["high"] == pytest.approx(44.0 + expansion(5) * (p5["high"] - 44.0))
    assert w5["low"] < p5["low"] < 44.0 < p5["high"] < w5["high"]


def test_seeds_that_agree_by_luck_still_carry_their_episodes_noise():
    # five seeds with identical outcomes, 2 tasks x 50 episodes at 50%: the seed means do not
    # spread at all, yet each is a 100-episode estimate with a standard error of 5 points. The
    # interval is that of the episodes (var of a seed's mean 2500 / 100 (ddof 0 ~ 1), over 5
    # seeds), never a zero-width one; and the episodes are not counted twice where seeds do spread
    one = np.tile((np.arange(50) < 25).astype(float), (2, 1))
    x = np.stack([one] * 5)
    r = two_level_bootstrap(x, resamples=20000, expand=False)
    se = math.sqrt(2500.0 / 100 / 5)
    assert r["high"] - r["low"] == pytest.approx(2 * 1.96 * se, rel=0.05)
    assert variance_components(x).seed == 0.0
    # the same episodes with the seeds 20 points apart (+-10 from 50): the seed part is then
    # var_seed = var(seed means) - var_episode, and the draws' variance is
    # ((S-1)/S var_seed + var_episode) / S (the percentile interval's, before widening)
    y = x.copy()
    for s, shift in enumerate([-10, -5, 0, 5, 10]):
        y[s] = (np.arange(50) < 25 + shift / 2).astype(float)
    c = variance_components(y)
    draws = bootstrap_means(y, 20000, np.random.default_rng(0))
    assert draws.var() == pytest.approx((4 / 5 * c.seed + c.episode()) / 5, rel=0.1)


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


# the seeds' noise about 2x the episodes' (variance), then about 12x (the headline's is 5x)
@pytest.mark.parametrize("E, sd", [(20, 0.05), (100, 0.05)])
def test_simulation_at_five_seeds_zero_effect_is_not_separated_95_percent_of_the_time(E, sd):
    # the headline's design: 5 seeds x 10 tasks. 400 zero-effect comparisons: the widened
    # interval holds 0 about 95% of the time (a little more where the episodes' noise is a large
    # part: it is known better than the t quantile assumes), the plain percentiles clearly less
    rng = np.random.default_rng(123)
    n, words, plain = 400, 0, 0
    for i in range(n):
        r = compare_pair_array(simulate_pair(rng, 5, 10, E, 0.0, sd), seed=i)
        words += r["verdict"].startswith("not separated")
        plain += r["percentile"][0] <= 0.0 <= r["percentile"][1]
    assert 0.93 <= words / n <= 0.99, words / n
    assert plain / n <= words / n - 0.05, (plain / n, words / n)


def test_simulation_a_known_effect_is_found():
    # +15 points, 8 seeds x 50 episodes per task: the interval holds the truth and excludes 0
    rng = np.random.default_rng(7)
    found, near = 0, 0
    for i in range(50):
        x = simulate_pair(rng, 8, 10, 50, 0.15, 0.03)
        r = two_level_bootstrap(x, resamples=1000, seed=i)
        found += r["low"] > 0 and verdict(r["low"], r["high"], 8) == "holds"
        near += r["low"] <= 15.0 <= r["high"]
    assert found == 50 and near >= 45


def compare_pair_array(d, seed):
    r = two_level_bootstrap(d, resamples=1000, seed=seed)
    return {**r, "verdict": verdict(r["low"], r["high"], r["n_seeds"], mean=r["mean"])}


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

    # 40% against 80% with the seeds apart (30/50% and 70/80/90%): the ratio is 0.5, its
    # percentiles widened by the expansion of the run with fewer seeds (2)
    num = np.concatenate([runs(1, 3), runs(1, 5)])
    den = np.concatenate([runs(1, 7), runs(1, 8), runs(1, 9)])
    r = ratio_interval(num, den)
    assert r["ratio"] == pytest.approx(0.5) and (r["n_num"], r["n_den"]) == (2, 3)
    assert r["expansion"] == pytest.approx(expansion(2))
    lo, hi = r["percentile"]
    assert r["low"] == pytest.approx(0.5 - expansion(2) * (0.5 - lo)) and r["high"] == pytest.approx(
        0.5 + expansion(2) * (hi - 0.5))
    assert lo < 0.5 < hi
    # one seed each: only the episodes vary, and 100x the episodes narrow the interval around 0.5
    one = ratio_interval(runs(1, 4), runs(1, 8))
    many = ratio_interval(runs(1, 4, 1000), runs(1, 8, 1000))
    assert one["expansion"] == 1.0 and one["low"] < 0.5 < one["high"] and one["high"] - one["low"] > 0.2
    assert many["low"] < 0.5 < many["high"] and many["high"] - many["low"] < (one["high"] - one["low"]) / 5
