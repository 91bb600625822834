"""`care report`'s claims as strong as their evidence: notes computed from the files (a changed
file changes every number it feeds, a quantity the files cannot give fails the build), one
training precision per comparison, a page built from the complete seeds says so, and the
README's results table is the builder's."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import eval_info as _eval, write_result as _write
from care.cli import main, parse_config
from care.configs import ReportConfig
from care.errors import ConfigError
from care.report.build import build_page, compare_success, load_results, quantities, summary_table
from care.report.notes import _FIELD

ROOT = Path(__file__).parents[2]
TASKS = ["reach-v3", "drawer-close-v3"]


def _shipped(results: Path, **kw) -> ReportConfig:
    cfg = parse_config(ReportConfig, ["--config", str(ROOT / "configs/report/paper_mt10.yaml")])
    cfg.results, cfg.benchmarks = results, []
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _fields(cfg: ReportConfig) -> list[tuple[str, str, list[str], int | None]]:
    return [(section, m.group(1), m.group(2).split(":"), int(m.group(3)) if m.group(3) else None)
            for section, text in cfg.notes.items() for m in _FIELD.finditer(text)]


def test_notes_are_computed_and_follow_a_changed_file(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results/paper_mt10", results)
    cfg = _shipped(results)
    fields = _fields(cfg)
    assert len(fields) > 100  # every number of the notes is a quantity
    names = r"fp32|bf16|MT\d+|stage \d|L1|±4 px|[Cc]hunks of 8|(?:step )?[13]000(?:-step| steps)?|R²"
    for section, text in cfg.notes.items():  # no number outside a quantity, but in names
        bare = re.sub(names, "", _FIELD.sub("", text))
        assert not re.search(r"\d", bare), (section, re.findall(r".{0,20}\d.{0,20}", bare))

    def values(cfg):
        res = load_results(cfg)
        q = quantities(cfg, res)
        return build_page(cfg, res, {}), {(s, k, tuple(a)): q.value(k, a, d) for s, k, a, d in fields}

    page0, before = values(cfg)
    # care+fp32's seed 1 now succeeds on every episode, and its pretraining's point error moves
    path = results / "care+fp32" / "s1" / "eval_info.json"
    info = json.loads(path.read_text())
    for r in info["per_task"]:
        r["successes"] = [True] * len(r["successes"])
        r["pc_success"] = 100.0
    info["overall"]["pc_success"] = 100.0
    path.write_text(json.dumps(info))
    vm = results / "care+fp32" / "s0" / "val_metrics.json"
    m = json.loads(vm.read_text())
    m["final"]["point_epe_policy"] += 0.5
    vm.write_text(json.dumps(m))
    page1, after = values(cfg)
    assert page1 != page0
    changed = 0
    for key, v in before.items():
        section, kind, args = key
        touches = "care+fp32" in re.split(r"[-:]", ":".join(args))
        if kind in ("verdict", "precision", "n", "seedlist", "range", "fmean", "pct"):
            continue  # words, counts, or quantities of files not changed
        if kind == "file":
            if args[0] == "care+fp32" and args[2] == "final.point_epe_policy":
                assert after[key] != v, key
                changed += 1
            else:
                assert after[key] == v, key
            continue
        if touches and kind in ("mean", "seeds", "ci", "diff", "diffs", "task", "taskseeds", "taskdiff"):
            assert after[key] != v, key
            assert after[key] in page1 or kind in ("task",), key
            changed += 1
        elif not touches:
            assert after[key] == v, key
    assert changed >= 15  # distinct quantities


@pytest.mark.parametrize("note, quantity, why", [
    ("{mean:nope}", "{mean:nope}", "no run 'nope'"),
    ("{file:care+fp32:val_metrics.json:final.nokey}", "{file:care+fp32:val_metrics.json:final.nokey}", "nokey"),
    ("{file:care+fp32:absent.json:x}", "{file:care+fp32:absent.json:x}", "absent.json does not exist"),
    ("{diff:care-como}", "{diff:care-como}", "care seed 0 trained in bf16"),
    ("{wat:care}", "{wat:care}", "unknown quantity kind 'wat'"),
    ("about {this}", "{this}", "not a quantity"),
])
def test_a_note_naming_a_quantity_the_files_cannot_give_fails(tmp_path, note, quantity, why):
    cfg = _shipped(ROOT / "results/paper_mt10", notes={"methods": note}, output_dir=tmp_path)
    with pytest.raises(ConfigError) as e:
        build_page(cfg, load_results(cfg), {})
    assert "notes.methods" in str(e.value) and quantity in str(e.value) and why in str(e.value)


def test_the_episodes_a_fine_tuning_trained_on_come_from_its_policy_configs(tmp_path):
    """{episodes:RUN}: train_episodes over the tasks of train_seeds, mean over seeds; a seed
    without a policy_config.json stops the build naming the file."""
    root = tmp_path / "results"
    _toy(root, {"care": "fp32", "no_pretrain": "fp32"})
    for k, n in enumerate((7, 8, 9)):  # 2 tasks: 3.5, 4.0 and 4.5 episodes per task
        _write(root, "care", k, "policy_config.json",
               {"train_episodes": list(range(n)), "train_seeds": {t: [] for t in TASKS}, "val_episodes": []})
    cfg = ReportConfig(results=root, seeds=[0, 1, 2], tasks=",".join(TASKS), episodes_per_task=4,
                       methods=["no_pretrain", "care"], output_dir=tmp_path / "page",
                       notes={"methods": "CARE trained on {episodes:care} episodes per task ({episodes:care|2})."})
    assert "CARE trained on 4.0 episodes per task (4.00)." in build_page(cfg, load_results(cfg), {})
    cfg.notes = {"methods": "{episodes:no_pretrain}"}
    with pytest.raises(ConfigError, match=r"notes.methods.*no_pretrain/s0/policy_config.json does not exist"):
        build_page(cfg, load_results(cfg), {})


def _toy(root: Path, precisions: dict[str, str | None], seeds=(0, 1, 2)) -> dict[str, list[Path]]:
    rng = np.random.default_rng(0)
    where = {}
    for run, prec in precisions.items():
        for k in seeds:
            _write(root, run, k, "eval_info.json", _eval({t: (rng.random(4) < 0.5).tolist() for t in TASKS}))
            if prec == "auto":
                where.setdefault(run, []).append(_write(root, run, k, "finetune_config.yaml", "mixed_precision: auto\n"))
            elif prec:
                where.setdefault(run, []).append(_write(root, run, k, "job.json", {"training_precision": prec}))
    return where


def test_a_mixed_precision_pair_is_refused_naming_both_files(tmp_path):
    root = tmp_path / "results"
    files = _toy(root, {"care": "fp32", "no_pretrain": "bf16", "como": "fp32"})
    _write(root, "no_pretrain", 0, "finetune_config.yaml", "mixed_precision: bf16\n")
    base = dict(results=root, seeds=[0, 1, 2], tasks=",".join(TASKS), episodes_per_task=4, methods=["no_pretrain", "care", "como"],
                output_dir=tmp_path / "page")
    cfg = ReportConfig(**base, claims={"methods": ["care > no_pretrain"]})
    with pytest.raises(ConfigError) as e:
        build_page(cfg, load_results(cfg), {})
    msg = str(e.value)
    assert "claims.methods: 'care > no_pretrain'" in msg and "fp32" in msg and "bf16" in msg
    assert str(files["care"][0]) in msg and str(files["no_pretrain"][0]) in msg  # job.json wins over the config
    # a recipe pairing across precisions is refused the same way
    cfg = ReportConfig(**{**base, "methods": []}, recipes=["no_pretrain", "care"])
    with pytest.raises(ConfigError, match="recipe_base: care builds on no_pretrain: care seed 0 trained in fp32"):
        build_page(cfg, load_results(cfg), {})
    # the Δ column pairs a row with the reference of its own precision, or says there is none
    cfg = ReportConfig(**base, claims={"methods": ["care > como"]})
    page = build_page(cfg, load_results(cfg), {})
    assert "| care | fp32 |" in page and "— (no fp32 reference) |" in page
    cfg = ReportConfig(**base, references={"fp32": "como"})
    page = build_page(cfg, load_results(cfg), {})
    assert "(vs como) |" in page
    # `auto` in the config is no record; the report config may declare it, and the page says so
    root2 = tmp_path / "r2"
    _toy(root2, {"care": "auto", "no_pretrain": "bf16"})
    cfg = ReportConfig(**{**base, "results": root2, "methods": ["no_pretrain", "care"]}, claims={"methods": ["care > no_pretrain"]})
    with pytest.raises(ConfigError, match=r"care seed 0 trained in unknown .*r2/care/s0 \(no job.json"):
        build_page(cfg, load_results(cfg), {})
    cfg.precision = {"care": "bf16"}
    page = build_page(cfg, load_results(cfg), {})
    assert "declared in the report config (the run's files record only `auto`): care/s0, care/s1, care/s2" in page


def test_a_run_with_seeds_of_two_precisions_is_shown_never_paired(tmp_path):
    root = tmp_path / "results"
    _toy(root, {"care": "fp32", "no_pretrain": "fp32"})
    _write(root, "care", 2, "job.json", {"training_precision": "bf16"})
    cfg = ReportConfig(results=root, seeds=[0, 1, 2], tasks=",".join(TASKS), episodes_per_task=4,
                       methods=["no_pretrain", "care"], output_dir=tmp_path / "page")
    page = build_page(cfg, load_results(cfg), {})
    assert "| care | mixed (s0,1 fp32; s2 bf16) |" in page and "— (mixed precision)" in page
    cfg.claims = {"methods": ["care > no_pretrain"]}
    with pytest.raises(ConfigError, match="care seed 2 trained in bf16"):
        build_page(cfg, load_results(cfg), {})


def test_the_headline_config_builds_from_the_complete_seeds_and_says_which(tmp_path, monkeypatch, capsys):
    """configs/report/headline_mt10.yaml on synthetic files: 10 seeds of no pretraining, 7 of CARE,
    4 of CoMo-style (every run planned on seeds 0-10)."""
    from care.envs.metaworld import resolve_tasks

    cfg = parse_config(ReportConfig, ["--config", str(ROOT / "configs/report/headline_mt10.yaml")])
    assert cfg.seeds == list(range(5)) and cfg.more_seeds == list(range(5, 11))
    assert set(cfg.more_seeds_runs) == {"care+fp32", "no_pretrain+fp32", "como+fp32"}
    assert cfg.episodes_per_task == 100 and cfg.reference == "no_pretrain+fp32"
    rng = np.random.default_rng(1)
    root = tmp_path / "results" / "headline_mt10"
    for run, n in (("no_pretrain+fp32", 10), ("care+fp32", 7), ("como+fp32", 4)):
        for k in range(n):
            succ = {t: (rng.random(100) < 0.4).tolist() for t in resolve_tasks("MT10")}
            _write(root, run, k, "eval_info.json", _eval(succ))
            cpu = {"cpu_avx512": k < 2, "cpu_bf16": k < 2} if run == "care+fp32" and k != 2 else {}
            if run == "no_pretrain+fp32" and k == 0:  # another kind of CPU than CARE's seed 0
                cpu = {"cpu_avx512": False, "cpu_bf16": False}
            threads = 1 if run == "no_pretrain+fp32" and k == 5 else 2  # and another thread count on seed 5
            _write(root, run, k, "job.json", {"training_precision": "fp32", "commit": "0123456789abcdef",
                                              "threads": threads, **cpu})
    monkeypatch.chdir(tmp_path)  # the config's results path is relative
    args = ["report", "--config", str(ROOT / "configs/report/headline_mt10.yaml"), "--output-dir", str(tmp_path / "page")]
    assert main([*args, "--missing"]) == 0
    out = capsys.readouterr().out
    # CoMo's seed 4 and further seeds 5-10, CARE's further seeds 7-10 and no pretraining's 10 are still to run
    assert "como+fp32/s4/eval_info.json   (run como+fp32, pipeline seed 4)" in out
    assert [f"care+fp32/s{k}/eval_info.json   (run care+fp32, further pipeline seed {k})" in out
            for k in (7, 8, 9, 10)] == [True] * 4
    assert [f"como+fp32/s{k}/eval_info.json   (run como+fp32, further pipeline seed {k})" in out
            for k in range(5, 11)] == [True] * 6
    assert "no_pretrain+fp32/s10/eval_info.json" in out and "no_pretrain+fp32/s9" not in out
    assert main(args) == 0  # without --allow-missing: every seed there is, and the gap named
    page = (tmp_path / "page" / "README.md").read_text()
    assert "**Not complete:** 1 result file(s) missing" in page
    assert main([*args, "--allow-missing", "true"]) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    assert "**Built from pipeline seeds [0, 1, 2, 3] only** (`--allow-missing`): seed(s) [4]" in page
    # each claim pairs the seeds both of its runs have: CARE and no pretraining 0-3 and 5-6
    assert "seeds 0, 1, 2, 3, 5, 6, fp32; MDE" in page and "seeds 0, 1, 2, 3, fp32; MDE" in page
    # the run records: commit, threads, and the CPU's kernels by seed where job.json has them
    assert "| CARE | 0123456789ab | 2 | AVX-512, bf16 (s0, s1); no AVX-512 (s3, s5, s6) |" in page
    assert "| no pretraining | 0123456789ab | 1, 2 | no AVX-512 (s0) |" in page
    # a pair whose seeds ran under different recorded conditions is kept, and its claim line says where
    assert ("not run under the same conditions (CARE / no pretraining): seed 0: AVX-512, bf16 / no AVX-512; "
            "seed 5: 2 threads / 1 thread") in page
    assert page.count("not run under the same conditions") == 1  # CoMo-style records neither: nothing to say
    summary = (tmp_path / "page" / "summary.md").read_text()  # each row: every seed its run has
    assert [summary.count(f"| {n} × 1000 |") for n in (9, 6, 4)] == [1, 1, 1]


def test_a_page_of_runs_in_progress_builds_and_its_notes_say_what_is_not_run_yet(tmp_path, monkeypatch):
    """The headline's first seeds: no pretraining on seed 0, CARE on seeds 0 and 1, CoMo-style not
    started. The notes' quantities of CoMo-style read "(not run yet)" (the page lists its files as
    missing); those of the pair are computed, over the seeds both runs have; a run the page does
    not show still stops the build."""
    from care.envs.metaworld import resolve_tasks

    rng = np.random.default_rng(2)
    root = tmp_path / "results" / "headline_mt10"
    for run, p, seeds in (("no_pretrain+fp32", 0.4, [0]), ("care+fp32", 0.5, [0, 1])):
        for k in seeds:
            succ = {t: (rng.random(100) < p).tolist() for t in resolve_tasks("MT10")}
            _write(root, run, k, "eval_info.json", _eval(succ))
            _write(root, run, k, "job.json", {"training_precision": "fp32", "commit": "0123456789abcdef", "threads": 1})
    monkeypatch.chdir(tmp_path)
    args = ["report", "--config", str(ROOT / "configs/report/headline_mt10.yaml"), "--output-dir", str(tmp_path / "page")]
    assert main(args) == 0
    page = (tmp_path / "page" / "README.md").read_text()
    note = page.split("**What the diagnostics say.**", 1)[1].split("\n", 1)[0]
    cfg = parse_config(ReportConfig, ["--config", str(ROOT / "configs/report/headline_mt10.yaml")])
    res = load_results(cfg)
    diff = compare_success(res, "care+fp32", "no_pretrain+fp32", "test")
    assert diff["seeds"] == [0]
    # the pair's seeds ({seedlist:A-B}), not CARE's own ({seedlist:care+fp32} reads "0, 1")
    assert f"CARE against no pretraining over pipeline seeds 0, both in fp32: {diff['mean']:+.1f} [" in note
    q = quantities(cfg, res)
    assert q.value("seedlist", ["care+fp32"], None) == "0, 1"
    assert q.value("seedlist", ["care+fp32-no_pretrain+fp32"], None) == "0"
    assert f"a half-width of {(diff['high'] - diff['low']) / 2:.1f})" in note  # {half:A-B}
    assert "CARE against CoMo-style over seeds (not run yet): (not run yet) (half-width (not run yet)), (not run yet)" in note
    assert "| CoMo-style | — | — | — | — |" in page  # its row: nothing yet, nothing paired
    assert "**Not complete:**" in page and "`results/headline_mt10/como+fp32/s0/eval_info.json`" in page
    # a name the page does not show is an error, in progress or not
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/report/headline_mt10.yaml").read_text()
                   .replace("{verdict:care+fp32-como+fp32}", "{verdict:care+fp32-comoo+fp32}"))
    assert main(["report", "--config", str(bad), "--output-dir", str(tmp_path / "page2")]) == 2


def test_the_readme_results_table_is_the_builders():
    """README's Results table is docs/report/summary.md, which `care report` writes; and the
    committed results rebuild the same table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    table = (ROOT / "docs/report/summary.md").read_text()
    assert table.strip() in section
    cfg = _shipped(ROOT / "results/paper_mt10")
    assert summary_table(cfg, load_results(cfg)) == table
    # and the headline's: docs/report/headline/summary.md, from configs/report/headline_mt10.yaml
    headline = (ROOT / "docs/report/headline/summary.md").read_text()
    assert headline.strip() in section
    cfg = parse_config(ReportConfig, ["--config", str(ROOT / "configs/report/headline_mt10.yaml")])
    cfg.results = ROOT / "results/headline_mt10"
    assert summary_table(cfg, load_results(cfg)) == headline
