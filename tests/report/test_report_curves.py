"""`care report`'s curves (success against labelled episodes or video) and seeds beyond the page's:
the hand-computed points, the paired orderings at each x, the "all" point read from the files,
and what `--missing` says a curve still lacks."""

from __future__ import annotations

import pytest

from helpers import eval_info, write_result
from care.configs import ReportConfig, ReportCurve
from care.report.build import compare_success, fraction_of, load_results, metric, report, success_interval

TASKS = ["reach-v3", "drawer-close-v3"]


def _eval(won: int) -> dict:
    """`won` of 4 episodes (2 per task) succeed, the first ones."""
    s = [i < won for i in range(4)]
    return eval_info({TASKS[0]: s[:2], TASKS[1]: s[2:]})


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for k, won in enumerate([1, 2, 2, 1, 2]):  # no pretraining at 5 labels: seeds 0-4 (3 and 4 beyond the page's)
        write_result(root, "np", k, "eval_info.json", _eval(won))
    for k, won in enumerate([0, 1, 0]):  # 1 label
        write_result(root, "np_l1", k, "eval_info.json", _eval(won))
    for k, won in enumerate([3, 3, 4, 4, 3]):  # pseudo-labels at 5 labels: 5 seeds
        write_result(root, "pseudo", k, "eval_info.json", _eval(won))
    write_result(root, "pseudo_l1", 0, "eval_info.json", _eval(2))  # one seed only
    for k in range(3):  # every training episode: 7 of them over 2 tasks -> x = 3.5
        write_result(root, "ls", k, "eval_info.json", _eval(4))
        write_result(root, "ls", k, "policy_config.json",
                     {"train_episodes": list(range(7)), "val_l1": 0.1,
                      "train_seeds": {TASKS[0]: [0, 1, 2, 3], TASKS[1]: [0, 1, 2]}})
    return root


def _config(root, tmp_path, **kw) -> ReportConfig:
    curve = ReportCurve(name="label_efficiency", title="label efficiency", x_label="labelled episodes per task",
                        series={"no pretraining": {"1": "np_l1", "5": "np", "all": "ls"},
                                "pseudo": {"1": "pseudo_l1", "5": "pseudo", "all": "ls"}},
                        compare=["pseudo > no pretraining"])
    base = dict(results=root, seeds=[0, 1, 2], more_seeds=[3, 4], tasks=",".join(TASKS), episodes_per_task=2,
                output_dir=tmp_path / "page", methods=["np", "pseudo"], reference="np", curves=[curve],
                labels={"np": "no pretraining", "pseudo": "pseudo"}, claims={"methods": ["pseudo > np"]},
                notes={"label_efficiency": "Pseudo-labels reach {frac:pseudo-ls} of label-supervised."})
    base.update(kw)
    return ReportConfig(**base)


def test_a_curve_table_plot_and_its_orderings(results, tmp_path, capsys):
    cfg = _config(results, tmp_path)
    res = load_results(cfg)
    assert res.missing == []  # the curves' points and the seeds beyond the page's are optional
    assert metric(res, "np", "success") == {0: 25.0, 1: 50.0, 2: 50.0, 3: 25.0, 4: 50.0}
    assert metric(res, "pseudo_l1", "success") == {0: 50.0}
    assert report(cfg) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| ")}
    # x = 1: no pretraining 0 / 25 / 0 over 3 seeds; pseudo one seed (marked); x = all: 7 / 2 = 3.5
    iv = success_interval(res, "np_l1")
    assert f"| {iv['mean']:.1f} [{iv['low']:.1f}, {iv['high']:.1f}] (3) | 50.0 [" in rows["1"]
    assert rows["1"].rstrip().endswith("(1) † |")
    assert "all (3.5)" in rows and rows["all (3.5)"].count("100.0 [100.0, 100.0] (3)") == 2
    # the ordering at x = 5 is paired over all five seeds both runs have (pseudo - np: +50, +25, +50,
    # +75, +25), at x = 1 over the one seed both have; x = all is the same run and not compared
    five = compare_success(res, "pseudo", "np", "test")
    assert five["seeds"] == [0, 1, 2, 3, 4] and five["diffs"] == pytest.approx([50, 25, 50, 75, 25])
    line = next(x for x in page.splitlines() if x.startswith("- **pseudo − no pretraining**"))
    assert f"5: +45.0 [{five['low']:+.1f}, {five['high']:+.1f}] (5 seeds; {five['verdict']})" in line
    assert "1: +50.0 [+50.0, +50.0] (1 seed; too few seeds (n=1), direction: +)" in line and "all" not in line
    # the methods table's claim also uses the seeds beyond the page's, and the preamble says so
    assert "pseudo better than no pretraining** (success) — here: **" + five["verdict"] in page
    assert "and [3, 4] where a run has them" in page and "| 25.0 / 50.0 / 50.0 / 25.0 / 50.0 |" in rows["no pretraining"]
    assert (tmp_path / "page" / "curve_label_efficiency.png").stat().st_size > 1000
    # the curve's paragraph: pseudo's 5 seeds (mean 85%) as a fraction of label-supervised's 3 (100%)
    f = fraction_of(res, "pseudo", "ls", "test")
    assert f["ratio"] == pytest.approx(0.85) and f["seeds"] == [0, 1, 2, 3, 4] and f["ceiling_seeds"] == [0, 1, 2]
    assert f"Pseudo-labels reach 85% [{100 * f['low']:.0f}, {100 * f['high']:.0f}] of label-supervised." in page
    # --missing names the points below the curve's seed count, each run once
    cfg.missing = True
    assert report(cfg) == 0
    out = capsys.readouterr().out
    assert "curve label_efficiency: pseudo at 1 = pseudo_l1 has 1 of 3 seeds (0)" in out
    assert "np_l1" not in out and out.count("= ls ") == 0


def test_curve_configs_are_checked(results, tmp_path):
    with pytest.raises(ValueError, match="x 'ten' is not a positive number"):
        ReportCurve(name="c", title="t", series={"a": {"ten": "np"}})
    with pytest.raises(ValueError, match="compare 'a > b' is not 'A > B' over its series"):
        ReportCurve(name="c", title="t", series={"a": {"1": "np"}}, compare=["a > b"])
    with pytest.raises(ValueError, match="names must differ"):
        _config(results, tmp_path, notes={}, curves=[ReportCurve(name="video", title="t", series={"a": {"1": "np"}})])
    with pytest.raises(ValueError, match="more_seeds .* repeats"):
        _config(results, tmp_path, more_seeds=[2, 3])
    # "all" needs the run's training episodes, on every seed with a policy_config.json: the error
    # names the curve and the file
    write_result(results, "ls", 1, "policy_config.json", {"val_l1": 0.1})
    with pytest.raises(Exception, match=r"curves\[label_efficiency\]: ls stands at x 'all'.*ls/s1/policy_config.json"):
        report(_config(results, tmp_path))
    (results / "ls" / "s0" / "policy_config.json").unlink()
    (results / "ls" / "s1" / "policy_config.json").unlink()
    (results / "ls" / "s2" / "policy_config.json").unlink()
    with pytest.raises(Exception, match="stands at x 'all', but its fine-tuning records no train_episodes"):
        report(_config(results, tmp_path))
