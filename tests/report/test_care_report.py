"""`care report` on hand-written result files: the hand-computed means, intervals and verdicts,
and a missing or mismatched file named."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from care.cli import main, parse_config
from care.configs import ReportConfig
from care.errors import ConfigError
from helpers import eval_info, write_result as write
from care.report.build import (
    compare_success, fraction_of, goal_word, load_results, metric, needed, paired, report, success_interval, summary, verdict,
)

TASKS = ["reach-v3", "drawer-close-v3"]


SETTINGS = {"frame_interval": 8, "lp": {"epochs": 2000}}


def probe(lp: float, sp: float, sem: float) -> dict:
    return {"lp_mse": lp, "s_pcfc": sp, "semantic_accuracy": sem, "semantic_initial": 0.5, "semantic_initial_x10": 0.55,
            "semantic_frames": 0.8, "semantic_chance": 0.5, "settings": SETTINGS}


# overall success per seed: care 50 / 75 / 100, no pretraining 25 / 50 / 50 (4 episodes each)
SUCCESS = {
    "care": [[True, False, True, False], [True, True, True, False], [True, True, True, True]],
    "no_pretrain": [[True, False, False, False], [True, True, False, False], [True, False, True, False]],
}


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for run, seeds in SUCCESS.items():
        for k, s in enumerate(seeds):
            write(root, run, k, "eval_info.json", eval_info({TASKS[0]: s[:2], TASKS[1]: s[2:]}))
    for k, (lp_care, lp_como) in enumerate([(0.30, 0.40), (0.32, 0.41), (0.31, 0.43)]):
        write(root, "care", k, "probe.json", probe(lp_care, 0.6, 0.8))
        write(root, "como", k, "probe.json", probe(lp_como, 0.9, 0.7))
        write(root, "care", k, "probe_shared.json", probe(lp_care, 0.6, 0.8 + 0.01 * k))
        write(root, "como", k, "probe_shared.json", probe(lp_como, 0.9, 0.85))
        write(root, "care", k, "val_metrics.json", {"final": {"view_mse": 0.1 * (k + 1)}})
    return root


def config(root: Path, tmp_path: Path, **kw) -> ReportConfig:
    base = dict(results=root, seeds=[0, 1, 2], tasks=",".join(TASKS), episodes_per_task=2, output_dir=tmp_path / "page",
                methods=["no_pretrain", "care"], probes=["care", "como"], ablation=["care"],
                labels={"care": "CARE"}, paper={"care": {"success": 77.7}},
                claims={"methods": ["care > no_pretrain"], "lp_mse": ["care > como"], "semantic": ["care > como"]})
    base.update(kw)
    return ReportConfig(**base)


def test_hand_computed_means_intervals_and_verdicts(results, tmp_path):
    cfg = config(results, tmp_path)
    res = load_results(cfg)
    assert res.missing == []
    care, ref = metric(res, "care", "success"), metric(res, "no_pretrain", "success")
    assert care == {0: 50.0, 1: 75.0, 2: 100.0} and ref == {0: 25.0, 1: 50.0, 2: 50.0}
    s = summary(care)
    assert (s["mean"], s["std"]) == (75.0, 25.0)
    p = paired(care, ref)  # differences 25, 25, 50: mean 33.33, std 14.43, t(0.975, 2) = 4.3027
    assert p["diffs"] == [25.0, 25.0, 50.0]
    half = 4.302652730 * math.sqrt(((25 - 100 / 3) ** 2 * 2 + (50 - 100 / 3) ** 2) / 2) / math.sqrt(3)
    assert p["ci"]["low"] == pytest.approx(100 / 3 - half) and p["ci"]["high"] == pytest.approx(100 / 3 + half)
    # the interval [-2.5, 69.2] holds 0; MDE (t(0.975, 2) + t(0.8, 2)) * 14.43 / sqrt(3) = 44.7
    assert verdict(care, ref, True)[0] == "not separated (MDE 44.7)"
    # LP-MSE: lower is better; care beats como by 0.10, 0.09, 0.12 on every seed: clear of 0, but
    # 3 seeds are too few for a verdict (at least 5)
    assert verdict(metric(res, "care", "lp_mse"), metric(res, "como", "lp_mse"), False)[0] == \
        "too few seeds (n=3), direction: +"
    # semantic: care 80, 81, 82 vs como 85 on every seed: the paper's ordering goes the other way
    assert verdict(metric(res, "care", "semantic"), metric(res, "como", "semantic"), True)[0] == \
        "too few seeds (n=3), direction: −"
    five = {k: v for k, v in enumerate([0.1, 0.2, 0.15, 0.12, 0.18])}
    assert verdict(five, {k: 0.0 for k in five}, True)[0] == "holds"
    assert verdict({k: 0.0 for k in five}, five, True)[0] == "reversed"
    assert verdict({0: 1.0}, {0: 0.0}, True)[0].startswith("not separated (1 seed")


def test_the_page_and_plots(results, tmp_path):
    assert main(["report", "--results", str(results), "--seeds", "[0,1,2]", "--tasks", ",".join(TASKS),
                 "--episodes-per-task", "2", "--methods", "[no_pretrain,care]", "--probes", "[care,como]",
                 "--claims", '{"methods": ["care > no_pretrain"], "lp_mse": ["care > como"]}',
                 "--output-dir", str(tmp_path / "page")]) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    res = load_results(config(results, tmp_path))
    one, two = success_interval(res, "care"), compare_success(res, "care", "no_pretrain", "test")
    assert two["diffs"] == pytest.approx([25.0, 25.0, 50.0]) and two["mean"] == pytest.approx(100 / 3)
    assert f"| care | unknown | 75.0 [{one['low']:.1f}, {one['high']:.1f}] | 50.0 / 75.0 / 100.0 | " \
           f"+33.3 [{two['low']:+.1f}, {two['high']:+.1f}] |" in page
    assert f"here: **{two['verdict']}**" in page and "here: **too few seeds (n=3), direction: +**" in page
    assert "| care | unknown | 0.310 ± 0.010 |" in page  # LP-MSE mean and std over seeds
    assert {"README.md", "success_per_task.png", "probes.png"} <= {p.name for p in (tmp_path / "page").iterdir()}


def test_held_out_l1_and_notes_appear_where_given(results, tmp_path):
    for k, l1 in enumerate([0.20, 0.22, 0.24]):
        write(results, "care", k, "policy_config.json", {"val_l1": l1, "steps": 2000})
    cfg = config(results, tmp_path, notes={"methods": "CARE's policy fits held-out actions better."})
    assert report(cfg) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    assert "| held-out action L1 |" in page and "| 0.220 ± 0.020 |" in page  # mean, std over seeds
    assert "**What the diagnostics say.** CARE's policy fits held-out actions better." in page
    assert "policy_config.json" not in "".join(p for _, _, p in load_results(cfg).missing)  # optional
    with pytest.raises(ValueError, match="notes: unknown section"):
        config(results, tmp_path, notes={"tab9": "x"})


def test_missing_files_are_named(results, tmp_path, capsys):
    (results / "care" / "s2" / "eval_info.json").unlink()
    cfg = config(results, tmp_path)
    res = load_results(cfg)
    assert [(r, s) for r, s, _ in res.missing] == [("care", 2)]
    assert metric(res, "care", "success") == {0: 50.0, 1: 75.0}  # the tables use the seeds there are
    assert main(["report", "--config", str(_yaml(cfg, tmp_path)), "--missing"]) == 0
    out = capsys.readouterr().out
    assert "missing: " in out and "care/s2/eval_info.json" in out and "pipeline seed 2" in out
    assert main(["report", "--config", str(_yaml(cfg, tmp_path))]) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    assert "Not complete" in page and "care/s2/eval_info.json" in page


def _yaml(cfg: ReportConfig, tmp_path: Path) -> Path:
    import dataclasses

    import yaml

    def plain(v):
        return str(v) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, list) else \
            {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

    d = plain(dataclasses.asdict(cfg))
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.mark.parametrize("field,value,message", [
    ("seeds", lambda i: {**i, "per_task": [{**r, "seeds": [7, 8]} for r in i["per_task"]]}, "evaluation seeds"),
    ("tasks", lambda i: {**i, "per_task": i["per_task"][:1]}, "the task list"),
    ("max_steps", lambda i: {**i, "config": {"max_steps": 150}}, "step limit"),
])
def test_a_mismatched_eval_is_an_error_naming_the_file(results, tmp_path, field, value, message):
    path = results / "care" / "s1" / "eval_info.json"
    path.write_text(json.dumps(value(json.loads(path.read_text()))))
    with pytest.raises(ConfigError, match=message) as e:
        load_results(config(results, tmp_path))
    assert str(path) in str(e.value)


def test_probes_measured_differently_are_refused(results, tmp_path):
    path = results / "como" / "s1" / "probe.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "settings": {**SETTINGS, "frame_interval": 4}}))
    with pytest.raises(ConfigError, match=r"probe settings \['frame_interval'\]") as e:
        load_results(config(results, tmp_path))
    assert str(path) in str(e.value)


def test_the_shipped_config_parses_and_names_real_runs():
    cfg = parse_config(ReportConfig, ["--config", str(Path(__file__).parents[2] / "configs/report/paper_mt10.yaml")])
    assert cfg.reference in cfg.methods and set(cfg.probes) <= set(cfg.methods)
    for table, claims in cfg.claims.items():
        for c in claims:
            a, b = (x.strip() for x in c.split(">"))
            assert a in cfg.labels and b in cfg.labels, (table, c)
    with pytest.raises(ValueError, match="unknown table"):
        ReportConfig(claims={"tab9": ["a > b"]})
    # every run of every table is one the experiment script can make, and has a label
    runs = sorted({*cfg.methods, *cfg.video, *cfg.ablation, *cfg.recipes, *cfg.recipe_base.values()})
    assert set(runs) <= set(cfg.labels)
    script = Path(__file__).parents[2] / "scripts/experiments/paper_mt10.sh"
    check = subprocess.run(["bash", str(script), *runs], env={**os.environ, "CHECK": "1"}, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = subprocess.run(["bash", str(script), "care+shift4+wings"], env={**os.environ, "CHECK": "1"},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown change 'wings' in care+shift4+wings" in bad.stdout
    # JOBS names exact (run, seed) jobs; the runs are checked the same way, a job without a seed is refused
    jobs = subprocess.run(["bash", str(script)], env={**os.environ, "CHECK": "1", "JOBS": "care_frame:0 care+shift4:2 care_frame:1"},
                          capture_output=True, text=True)
    assert jobs.returncode == 0 and "runs ok: care_frame care+shift4" in jobs.stdout, jobs.stdout + jobs.stderr
    no_seed = subprocess.run(["bash", str(script)], env={**os.environ, "CHECK": "1", "JOBS": "care_frame"},
                             capture_output=True, text=True)
    assert no_seed.returncode == 2 and "bad job 'care_frame' in JOBS" in no_seed.stdout
    for b in cfg.benchmarks:
        assert b.reference in b.methods and len(b.tasks) == len(set(b.tasks)) > 0
        for c in b.claims:
            assert all(x.strip() in cfg.labels for x in c.split(">")), (b.title, c)


LIBERO_TASKS = ["pick_up_the_milk_and_place_it_in_the_basket", "pick_up_the_butter_and_place_it_in_the_basket"]


def test_a_further_benchmark_gets_its_own_table_under_its_own_protocol(results, tmp_path):
    from care.configs import ReportBenchmark

    lib = tmp_path / "libero"
    # success per seed: care 100 / 50, no pretraining 50 / 0 (two tasks x 1 episode, initial states 0..)
    for k, (c, n) in enumerate([((True, True), (True, False)), ((True, False), (False, False))]):
        write(lib, "care", k, "eval_info.json", eval_info(dict(zip(LIBERO_TASKS, ([c[0]], [c[1]]))), seed0=0, max_steps=280))
        write(lib, "no_pretrain", k, "eval_info.json", eval_info(dict(zip(LIBERO_TASKS, ([n[0]], [n[1]]))), seed0=0, max_steps=280))
    bench = ReportBenchmark(title="LIBERO-Object", results=lib, tasks=LIBERO_TASKS, episodes_per_task=1, eval_seed=0,
                            max_steps=280, methods=["no_pretrain", "care"], seeds=[0, 1], claims=["care > no_pretrain"],
                            paper={"care": 86.4}, paper_rows={"care": "Ours"})
    cfg = config(results, tmp_path, benchmarks=[bench])
    res = load_results(cfg)
    assert metric(res.benchmarks["LIBERO-Object"], "care", "success") == {0: 100.0, 1: 50.0}
    assert metric(res, "care", "success") == {0: 50.0, 1: 75.0, 2: 100.0}  # Meta-World's table is untouched
    assert main(["report", "--config", str(_yaml(cfg, tmp_path))]) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    assert "## Tab. 1 on LIBERO-Object" in page
    # differences 50, 50: mean +50 with zero spread -> the interval is the point, and the ordering holds
    # one episode per task: resampling it changes nothing, so only the 2 seeds vary: care's seeds
    # 100 and 50 give resampled means 50, 75, 100 (1/4, 1/2, 1/4) -> percentiles [50, 100], widened
    # 9.2x about 75 for 2 seeds (t(0.975, 1)/z * sqrt(2)) and kept within [0, 100]; the differences
    # are 50 and 50 -> [50, 50], clear of 0, but 2 seeds are too few for a verdict
    assert "| CARE | unknown | 75.0 [0.0, 100.0] | 100.0 / 50.0 | +50.0 [+50.0, +50.0] | 86.4 (Ours) |" in page
    assert "CARE better than no_pretrain** (success) — here: **too few seeds (n=2), direction: +**" in page
    assert "| pick_up_the_milk_and_place_it_in_the_basket | 50 | 100 |" in page  # per task, mean over seeds
    assert (tmp_path / "page" / "success_per_task_libero_object.png").is_file()

    # its own protocol is checked: random initial states instead of the suite's fixed ones ...
    cfg.benchmarks[0].protocol = {"init_states": "fixed", "num_steps_wait": "10"}
    for run, k in [(r, k) for r in ("care", "no_pretrain") for k in (0, 1)]:
        p = lib / run / f"s{k}" / "eval_info.json"
        info = json.loads(p.read_text())
        info["config"]["protocol"] = {"init_states": "random" if (run, k) == ("care", 1) else "fixed", "num_steps_wait": 10}
        p.write_text(json.dumps(info))
    path = lib / "care" / "s1" / "eval_info.json"
    with pytest.raises(ConfigError, match="config.protocol.init_states is 'random'") as e:
        load_results(cfg)
    assert str(path) in str(e.value)
    info = json.loads(path.read_text())
    del info["config"]["protocol"]  # an evaluation without the record is refused too
    path.write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="config.protocol.init_states is None"):
        load_results(cfg)
    # ... and a Meta-World step limit in the LIBERO folder is named
    path.write_text(json.dumps({**json.loads(path.read_text()), "config": {"max_steps": 200}}))
    with pytest.raises(ConfigError, match="step limit") as e:
        load_results(cfg)
    assert str(path) in str(e.value)
    path.unlink()
    assert ("care", 1, str(path)) in load_results(cfg).missing


def test_short_task_names_drop_the_shared_words():
    from care.report.build import short_names

    assert short_names(LIBERO_TASKS) == ["milk", "butter"]
    assert short_names(["reach", "push"]) == ["reach", "push"]
    assert short_names(["a_b", "a_b"]) == ["a_b", "a_b"]  # nothing left: the full name


def test_the_committed_results_rebuild_the_page(tmp_path):
    """`care report` on the shipped config and the committed results/ (what a fresh clone has)."""
    root = Path(__file__).parents[2]
    cfg = parse_config(ReportConfig, ["--config", str(root / "configs/report/paper_mt10.yaml")])
    import os

    cwd = os.getcwd()
    os.chdir(root)  # the config's results paths are relative to the repository
    try:
        assert main(["report", "--config", "configs/report/paper_mt10.yaml", "--output-dir", str(tmp_path)]) == 0
        res = load_results(cfg)
    finally:
        os.chdir(cwd)
    page = (tmp_path / "README.md").read_text()
    for b in cfg.benchmarks:
        assert f"## Tab. 1 on {b.title}" in page
    # every committed evaluation shows up in its table as its seed's value; a run only on a curve
    # shows as its mean with its seed count
    curve_only = {r for c in cfg.curves for p in c.series.values() for r in p.values()} - set(needed(cfg)["eval"])
    for r in (res, *res.benchmarks.values()):
        for run, by_seed in r.files.get("eval", {}).items():
            if run in curve_only:
                assert f"{success_interval(r, run)['mean']:.1f} [" in page and f"] ({len(by_seed)})" in page, run
                continue
            for seed, info in by_seed.items():
                assert f"{info['overall']['pc_success']:.1f}" in page, (run, seed)


def test_the_recipe_ladder_pairs_each_change_with_its_base_and_the_ceiling(results, tmp_path):
    # care 50 / 75 / 100; care + shift 75 / 100 / 100; label-supervised 100 on every seed
    for k, s in enumerate([[True, True, True, False], [True, True, True, True], [True, True, True, True]]):
        write(results, "care_shift", k, "eval_info.json", eval_info({TASKS[0]: s[:2], TASKS[1]: s[2:]}))
        write(results, "label_supervised", k, "eval_info.json", eval_info({TASKS[0]: [True] * 2, TASKS[1]: [True] * 2}))
    for k in (0, 1):  # builds on care, not on the row above; seed 2 missing
        write(results, "care_chunk", k, "eval_info.json", eval_info({TASKS[0]: [False] * 2, TASKS[1]: [True, False]}))
    # one seed at 100%: the best mean, but not a recipe until every seed is in
    write(results, "care_lucky", 0, "eval_info.json", eval_info({TASKS[0]: [True] * 2, TASKS[1]: [True] * 2}))
    cfg = config(results, tmp_path, methods=[], probes=[], ablation=[],
                 recipes=["care", "care_shift", "care_chunk", "care_lucky"],
                 recipe_base={"care_chunk": "care", "care_lucky": "care"}, ceiling="label_supervised", recipe_goal=0.9,
                 labels={"care": "CARE", "care_shift": "+ shift", "care_chunk": "+ chunk 8", "care_lucky": "+ luck",
                         "label_supervised": "LS"})
    assert report(cfg) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| ")}
    # + shift - CARE: 25, 25, 0 -> mean 16.7, its two-level interval and verdict
    res = load_results(cfg)
    p = compare_success(res, "care_shift", "care", "test")
    assert p["diffs"] == pytest.approx([25.0, 25.0, 0.0])
    assert f"CARE: +16.7 [{p['low']:+.1f}, {p['high']:+.1f}] — {p['verdict']}" in rows["+ shift"]
    assert rows["+ shift"].rstrip().endswith("| 92% (of s0,1,2) |") and rows["CARE"].rstrip().endswith("| 75% (of s0,1,2) |")
    assert "| (first) |" in rows["CARE"]
    # + chunk 8 is paired with CARE on seeds 0 and 1: 25 - 50, 25 - 75
    assert "CARE: -37.5 [" in rows["+ chunk 8"]
    assert rows["+ luck"].rstrip().endswith("| 100% (of s0,1,2) |")
    # the goal is read on the fraction's interval: LS wins every episode, so only + shift's seeds and
    # episodes vary; 91.7% on the mean, with an interval that reaches below 90% at 3 seeds
    f = fraction_of(res, "care_shift", "label_supervised", "test")
    assert f["ratio"] == pytest.approx(11 / 12) and f["low"] < 0.9 < f["high"]
    assert (f"Best recipe so far: + shift over 3 seeds, 92% [{100 * f['low']:.0f}, {100 * f['high']:.0f}] of LS's "
            "unknown seed(s) 0, 1, 2 (100.0%) — goal **reached on the mean, not separated from 90% (n=3 seeds)**") in page
    assert "at least 90% of LS's success" in page
    assert (tmp_path / "page" / "recipes.png").stat().st_size > 1000
    assert "results/care_chunk/s2/eval_info.json" in page.replace(str(results.parent) + "/", "")
    with pytest.raises(ValueError, match="recipe_base names run"):
        config(results, tmp_path, recipes=["care"], recipe_base={"other": "care"})
    with pytest.raises(ValueError, match="more_seeds_runs .* but more_seeds is empty"):
        config(results, tmp_path, more_seeds_runs=["care"])


def test_goal_words_read_the_fractions_interval():
    five, three = {"seeds": [0, 1, 2, 3, 4]}, {"seeds": [0, 1, 2]}
    assert goal_word({**five, "ratio": 0.95, "low": 0.91, "high": 0.99}, 0.9) == "reached"
    assert goal_word({**three, "ratio": 0.95, "low": 0.91, "high": 0.99}, 0.9) == \
        "reached on the interval, but too few seeds (n=3)"
    assert goal_word({**five, "ratio": 0.8, "low": 0.75, "high": 0.85}, 0.9) == "not reached"
    assert goal_word({**five, "ratio": 0.88, "low": 0.8, "high": 0.95}, 0.9) == \
        "not reached on the mean, not separated from 90% (n=5 seeds)"
