"""`care eval compare`: mean +- std over seeds, refusal of unlike evaluations, CLI outputs."""

import json
import math

import numpy as np
import pytest

from care.cli import main
from care.configs import CompareConfig
from care.errors import CareError
from care.evaluation.compare import compare
from care.evaluation.evaluate import aggregate


def _write_eval(path, successes: dict, seed0=1000, max_steps=200, execution="chunk"):
    rows = []
    for task, succ in successes.items():
        for i, s in enumerate(succ):
            rows.append({"task": task, "episode_ix": i, "seed": seed0 + i, "success": bool(s),
                         "length": 10 if s else max_steps, "sum_reward": None, "video_path": None})
    info = aggregate(rows, list(successes))
    info["config"] = {"max_steps": max_steps, "execution": execution, "n_action_steps": None,
                      "size": 128, "camera": "corner", "seed": seed0}
    info["policy"] = {"path": str(path).replace("_eval", "")}
    path.mkdir(parents=True)
    (path / "eval_info.json").write_text(json.dumps(info))


def test_mean_std_over_seeds(tmp_path):
    a = {"reach-v3": [1, 1, 0, 0], "push-v3": [0, 0, 0, 0]}  # 50, 0  -> overall 25
    b = {"reach-v3": [1, 1, 1, 0], "push-v3": [1, 0, 0, 0]}  # 75, 25 -> overall 50
    c = {"reach-v3": [1, 1, 1, 1], "push-v3": [1, 1, 0, 0]}  # 100, 50 -> overall 75
    for i, s in enumerate((a, b, c)):
        _write_eval(tmp_path / f"care_s{i}_eval", s)
    _write_eval(tmp_path / "none_s0_eval", a)
    cfg = CompareConfig(methods={"CARE": str(tmp_path / "care_s*_eval"), "none": str(tmp_path / "none_s*_eval")},
                        output_dir=tmp_path / "out")
    summary = compare(cfg)
    care = summary["methods"]["CARE"]
    assert care["n_seeds"] == 3 and care["per_task"]["reach-v3"]["seeds"] == [50.0, 75.0, 100.0]
    assert care["per_task"]["reach-v3"]["mean"] == 75.0
    assert care["per_task"]["reach-v3"]["std"] == pytest.approx(np.std([50, 75, 100], ddof=1))  # 25.0
    assert care["overall"]["mean"] == 50.0 and care["overall"]["std"] == pytest.approx(25.0)
    assert summary["methods"]["none"]["overall"] == {"seeds": [25.0], "mean": 25.0, "std": 0.0}
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "| reach-v3 | 75.0 ± 25.0 | 50.0 |" in md and "**50.0 ± 25.0**" in md
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["tasks"] == ["reach-v3", "push-v3"]


def test_refuses_evaluations_on_other_episodes(tmp_path):
    _write_eval(tmp_path / "a_s0_eval", {"reach-v3": [1, 0]})
    _write_eval(tmp_path / "b_s0_eval", {"reach-v3": [1, 0]}, seed0=2000)
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "b": str(tmp_path / "b_s*")}, output_dir=tmp_path / "o")
    with pytest.raises(CareError, match="b_s0_eval.*other tasks or episode seeds"):
        compare(cfg)
    _write_eval(tmp_path / "c_s0_eval", {"reach-v3": [1, 0]}, max_steps=100)
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "c": str(tmp_path / "c_s*")}, output_dir=tmp_path / "o")
    with pytest.raises(CareError, match=r"c_s0_eval.*max_steps=100 vs 200"):
        compare(cfg)
    # how chunks are executed is part of the method: comparable
    _write_eval(tmp_path / "e_s0_eval", {"reach-v3": [1, 1]}, execution="ensemble")
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "e": str(tmp_path / "e_s*")}, output_dir=tmp_path / "o")
    assert compare(cfg)["methods"]["e"]["execution"] == ["ensemble"]
    assert "- e (ensemble execution): " in (tmp_path / "o" / "compare.md").read_text()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["eval", "compare", "--methods", json.dumps({"x": str(tmp_path / "nothing_*")})]) == 2
    assert "no folder matches" in capsys.readouterr().err
    (tmp_path / "broken_eval").mkdir()
    (tmp_path / "broken_eval" / "eval_info.json").write_text("{not json")
    assert main(["eval", "compare", "--methods", json.dumps({"x": str(tmp_path / "broken_eval")})]) == 2
    err = capsys.readouterr().err
    assert "broken_eval/eval_info.json" in err and "malformed JSON" in err
    assert main(["eval", "compare"]) == 2
    assert "methods is empty" in capsys.readouterr().err


def test_yaml_config_keeps_the_order_of_methods(tmp_path):
    for name in ("zeta", "alpha", "mid"):
        _write_eval(tmp_path / f"{name}_s0_eval", {"reach-v3": [1, 0]})
    cfg = tmp_path / "cmp.yaml"
    cfg.write_text("methods:\n" + "".join(f"  {n}: {tmp_path}/{n}_s*_eval\n" for n in ("zeta", "alpha", "mid"))
                   + f"output_dir: {tmp_path / 'out'}\n")
    assert main(["eval", "compare", "--config", str(cfg)]) == 0
    header = (tmp_path / "out" / "compare.md").read_text().splitlines()[2]
    assert header == "| Task | zeta | alpha | mid |"


def _write_pair(tmp_path, label, k, won, lost, both=0, neither=0, task="reach-v3"):
    """Seed k of method `label` and of "ref" on the same episodes: `label` wins `won` episodes
    (succeeds where ref fails), loses `lost`, and they tie on `both` + `neither` episodes."""
    a = [1] * won + [0] * lost + [1] * both + [0] * neither
    r = [0] * won + [1] * lost + [1] * both + [0] * neither
    _write_eval(tmp_path / f"{label}_s{k}_eval", {task: a})
    if not (tmp_path / f"ref_s{k}_eval").exists():
        _write_eval(tmp_path / f"ref_s{k}_eval", {task: r})


def _paired(tmp_path, label="A"):
    cfg = CompareConfig(methods={label: str(tmp_path / f"{label}_s*"), "ref": str(tmp_path / "ref_s*")},
                        reference="ref", output_dir=tmp_path / "o")
    summary = compare(cfg)
    return summary["paired"][label], (tmp_path / "o" / "compare.md").read_text(), summary


def test_paired_with_a_reference(tmp_path):
    # seed 0: A wins episodes 1 and 2, loses episode 3; seed 1: A wins episode 0
    _write_eval(tmp_path / "ref_s0_eval", {"reach-v3": [1, 0, 0, 1]})
    _write_eval(tmp_path / "A_s0_eval", {"reach-v3": [1, 1, 1, 0]})
    _write_eval(tmp_path / "ref_s1_eval", {"reach-v3": [0, 0, 0, 0]})
    _write_eval(tmp_path / "A_s1_eval", {"reach-v3": [1, 0, 0, 0]})
    pr, md, _ = _paired(tmp_path)
    assert pr["unit"] == "training seed" and pr["n_seeds"] == 2
    assert pr["diff_seeds"] == [25.0, 25.0] and pr["diff_mean"] == 25.0 and pr["diff_std"] == 0.0
    # per-seed episode counts, never pooled into one test over episodes
    assert pr["won_seeds"] == [2, 1] and pr["lost_seeds"] == [1, 0] and pr["episodes_seeds"] == [4, 4]
    assert "p_sign_test" not in pr and "wins" not in pr and "losses" not in pr
    assert "sign" not in md and "McNemar" not in md
    # identical per-seed differences: a zero-width t-interval (df 1) ...
    assert pr["t_interval"] == {"level": 0.95, "df": 1, "t": pytest.approx(12.706204736), "half_width": 0.0,
                                "low": 25.0, "high": 25.0}
    # ... but the episodes within each seed still vary, which the bootstrap sees
    bs = pr["bootstrap"]
    assert bs["resamples"] == 4000 and bs["level"] == 0.95
    assert bs["low"] < 25.0 < bs["high"]
    assert "| A | +25.0 ± 0.0 | [+25.0, +25.0] | " in md
    assert pr["verdict"].startswith("not separated (MDE ") and pr["mde"] > 0  # 2 seeds of 4 episodes
    assert "| +25.0, +25.0 | 2 / 1, 1 / 0 |" in md
    saved = json.loads((tmp_path / "o" / "compare.json").read_text())["paired"]["A"]
    assert saved["won_seeds"] == [2, 1] and saved["t_interval"]["df"] == 1 and saved["bootstrap"] == bs

    with pytest.raises(CareError, match="reference 'nope' is not one of the methods"):
        compare(CompareConfig(methods={"A": str(tmp_path / "A_s*"), "ref": str(tmp_path / "ref_s*")},
                              reference="nope", output_dir=tmp_path / "o"))
    _write_eval(tmp_path / "b_s0_eval", {"reach-v3": [1, 1, 1, 0]})
    with pytest.raises(CareError, match="'B' has 1 seed folder.*reference 'ref' has 2"):
        compare(CompareConfig(methods={"B": str(tmp_path / "b_s*"), "ref": str(tmp_path / "ref_s*")},
                              reference="ref", output_dir=tmp_path / "o"))


def test_paired_t_interval_over_seeds_by_hand(tmp_path):
    """Per-seed differences +5, +4.5, +5.5 points (200 episodes per seed): mean 5.0, sample sd
    0.5, and the 95% interval mean ± t(0.975, df=2) · sd / sqrt(3), t(0.975, 2) = 4.303."""
    for k, (won, lost) in enumerate([(12, 2), (10, 1), (11, 0)]):  # (won - lost) / 200 = 5 %, 4.5 %, 5.5 %
        _write_pair(tmp_path, "A", k, won, lost, both=20 + k, neither=200 - won - lost - 20 - k)
    pr, md, _ = _paired(tmp_path)
    assert pr["diff_seeds"] == pytest.approx([5.0, 4.5, 5.5])
    assert pr["episodes_seeds"] == [200, 200, 200]
    assert pr["won_seeds"] == [12, 10, 11] and pr["lost_seeds"] == [2, 1, 0]
    mean = (5.0 + 4.5 + 5.5) / 3
    sd = math.sqrt(((5.0 - mean) ** 2 + (4.5 - mean) ** 2 + (5.5 - mean) ** 2) / (3 - 1))
    assert mean == 5.0 and sd == pytest.approx(0.5)
    half = 4.302652730 * sd / math.sqrt(3)  # = 1.2421
    ti = pr["t_interval"]
    assert ti["df"] == 2 and ti["t"] == pytest.approx(4.302652730)
    assert pr["diff_mean"] == pytest.approx(mean) and pr["diff_std"] == pytest.approx(sd)
    assert ti["half_width"] == pytest.approx(half) and half == pytest.approx(1.2421, abs=1e-4)
    assert (ti["low"], ti["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert "| A | +5.0 ± 0.5 | [+3.8, +6.2] | " in md
    assert "| +5.0, +4.5, +5.5 | 12 / 2, 10 / 1, 11 / 0 |" in md
    bs = pr["bootstrap"]
    assert bs["low"] < mean < bs["high"]
    # the bootstrap also resamples the episodes of each seed: far wider than the t-interval,
    # whose 3 seeds happen to agree closely (each seed's own episode noise is 1.6-1.8 points)
    assert bs["high"] - bs["low"] > ti["high"] - ti["low"]
    # a fixed RNG seed: the same interval every time
    assert _paired(tmp_path)[0]["bootstrap"] == bs


def test_paired_single_seed_has_no_t_interval(tmp_path):
    """One training seed: no spread over seeds to estimate, so no t-interval (n/a, not a crash);
    the bootstrap then only resamples episodes: for W won, L lost of n, the per-episode
    differences (+100, -100, 0) have variance 100² (W + L) / n - Δ², and the interval is close to
    Δ ± 1.96 · sqrt(variance / n)."""
    won, lost, n = 30, 10, 200
    _write_pair(tmp_path, "A", 0, won, lost, both=40, neither=n - won - lost - 40)
    pr, md, _ = _paired(tmp_path)
    delta = 100.0 * (won - lost) / n  # 10 points
    assert pr["diff_seeds"] == [delta] and pr["n_seeds"] == 1
    assert pr["t_interval"] is None and pr["diff_std"] is None
    assert f"| A | +{delta:.1f} | n/a (1 seed) | " in md
    se = math.sqrt((100.0**2 * (won + lost) / n - delta**2) / n)  # 3.08
    bs = pr["bootstrap"]
    assert bs["low"] == pytest.approx(delta - 1.96 * se, abs=0.6)
    assert bs["high"] == pytest.approx(delta + 1.96 * se, abs=0.6)
    # that interval is the episodes' noise only: clear of 0 here, yet no verdict and no MDE
    assert bs["low"] > 0 and pr["verdict"] == "too few seeds (n=1), direction: +"
    assert math.isnan(pr["mde"]) and "| — (1 seed) | too few seeds (n=1), direction: + |" in md


@pytest.mark.parametrize("won, lost, both, delta", [(6, 0, 0, 100.0), (0, 0, 6, 0.0), (0, 6, 0, -100.0)])
def test_paired_bootstrap_is_degenerate_when_every_difference_is_the_same(tmp_path, won, lost, both, delta):
    """Every episode of every seed has the same difference: nothing to resample, a zero-width
    interval at that difference (and a zero-width t-interval)."""
    for k in range(3):
        _write_pair(tmp_path, "A", k, won, lost, both=both)
    pr, _, _ = _paired(tmp_path)
    assert pr["diff_seeds"] == [delta] * 3 and pr["diff_std"] == 0.0
    assert pr["bootstrap"]["low"] == pytest.approx(delta) and pr["bootstrap"]["high"] == pytest.approx(delta)
    assert pr["t_interval"]["low"] == pytest.approx(delta) and pr["t_interval"]["high"] == pytest.approx(delta)


def test_t_quantiles():
    from care.evaluation.compare import t_quantile_975

    # printed tables (e.g. Abramowitz & Stegun 26.10)
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3) and t_quantile_975(2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile_975(10) == pytest.approx(2.228, abs=1e-3) and t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)
    assert t_quantile_975(10**6) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_seed_folders_pair_in_natural_order(tmp_path):
    from care.evaluation.compare import load_method

    for s in (10, 2, 1):
        _write_eval(tmp_path / f"m_s{s}_eval", {"reach-v3": [1]})
    assert [d.name for d, _ in load_method("m", str(tmp_path / "m_s*_eval"))] == ["m_s1_eval", "m_s2_eval", "m_s10_eval"]
