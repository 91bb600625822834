"""`care report`: the paper's tables on our benchmark, rebuilt from committed result files.

    care report --config configs/report/paper_mt10.yaml --output-dir docs/report
    care report --config configs/report/paper_mt10.yaml --missing      (what is still to run)
    care report --config configs/report/headline_mt10.yaml --allow-missing   (the complete seeds)

Reads the small files of `cfg.results` (layout in care.configs.ReportConfig), never a checkpoint,
and writes `<output_dir>/README.md` (the tables in the paper's layout, the paper's numbers beside
ours, and for every ordering the paper claims whether it holds here), the PNG plots, and with
`summary:` a short results table, `summary.md` (the README's):

    Tab. 1   success per method (mean over pipeline seeds and its two-level 95% interval; the
             paired difference with the reference of the row's precision), and per task
    Tab. 1'  success per pretraining video (the paper's data rows)
    Tab. 2   LP-MSE and S-PCFC per pretrained method
    Tab. 3   semantic accuracy: the frame references and each method's latents
    Tab. 4   the multi-task ablation: success and the final held-out latent loss
    Beyond   the few-label recipe ladder (`recipes:`): each change paired with the run it builds
             on and with the reference, and as a fraction of the ceiling (label-supervised)
    and for each further benchmark (`benchmarks:`, e.g. LIBERO-Object) its Tab. 1: success by
    method under its own protocol, per task, and a plot

A seed is the whole pipeline (pretraining seed k, then fine-tuning seed k), so the intervals
include the variance of pretraining. Success intervals are two-level (care.evaluation.stats):
they carry the training seeds' noise and the evaluation episodes', each once (a bootstrap of the
pipeline seeds, then of each drawn seed's episodes task by task, widened for few seeds; one
seed: its episodes alone), paired episode by episode where two runs are compared. An ordering
"a > b" is tested on the seeds both runs have: it *holds* (or is *reversed*) only when that 95%
interval is clear of 0 and there are at least 5 seeds; clear of 0 with fewer seeds it reads "too
few seeds (n=3), direction: +";
otherwise "not separated (MDE x.x)", with the smallest difference those seeds x episodes detect
at 80% power. Probe metrics (one number per seed) use the t-interval over seeds, same words.

Every comparison is at one training precision: a run's precision is read from its files (job.json
`training_precision`, else an explicit `mixed_precision` in its finetune/pretrain config, else the
report config's `precision:`), and a claim, a recipe pairing or a note that pairs two runs at
different precisions stops the build naming both files. "Δ vs reference" columns pair a row with
the reference of its own precision (`references:`), or show why not.

Notes are templates (care.report.notes): every number in them is computed from the files. A
result file that is missing is named on the page and in the output; one that does not match the
protocol stops the report with the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import yaml

from care.configs import ReportBenchmark, ReportConfig
from care.errors import ConfigError
from care.evaluation import stats
from care.evaluation.stats import t_interval
from care.io import atomic_write_bytes, read_json
from care.report.notes import Quantities, train_episodes_per_task

FILES = {"eval": "eval_info.json", "probe": "probe.json", "probe_shared": "probe_shared.json",
         "pretrain": "val_metrics.json", "finetune": "policy_config.json"}
# the metric of each claim table, and whether higher is better
CLAIM_METRICS = {"methods": ("success", True), "video": ("success", True), "ablation": ("success", True),
                 "lp_mse": ("lp_mse", False), "s_pcfc": ("s_pcfc", False), "semantic": ("semantic", True)}


@dataclass
class Results:
    """Every result file the config needs that exists, by kind -> run -> seed, and what is missing."""

    files: dict[str, dict[str, dict[int, dict]]] = field(default_factory=dict)
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # (run, seed, path)
    benchmarks: dict[str, Results] = field(default_factory=dict)  # further benchmarks, by title
    root: Path = Path(".")
    declared: dict[str, str] = field(default_factory=dict)  # the config's `precision:`
    seeds: list[int] = field(default_factory=list)  # the pipeline seeds the page is built from
    more_seeds: list[int] = field(default_factory=list)  # further seeds, read where a run has them
    _precision: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    _jobs: dict[tuple[str, int], dict] = field(default_factory=dict)

    def get(self, kind: str, run: str) -> dict[int, dict]:
        return self.files.get(kind, {}).get(run, {})

    def job_path(self, run: str, seed: int) -> Path:
        return self.root / run / f"s{seed}" / "job.json"

    def job(self, run: str, seed: int) -> dict:
        """One run's seed's job.json (the machine, threads, commit and precision it ran under),
        read once; {} where the seed has none."""
        key = (run, seed)
        if key not in self._jobs:
            path = self.job_path(run, seed)
            self._jobs[key] = read_json(path) if path.is_file() else {}
        return self._jobs[key]

    def precision(self, run: str, seed: int) -> tuple[str, str]:
        """(training precision, where it was read) of one run's seed: job.json
        `training_precision`, else an explicit fp32/bf16 `mixed_precision` in the seed's
        finetune/pretrain config, else the report config's `precision:` ("run/s<k>" or "run"),
        else "unknown"."""
        key = (run, seed)
        if key not in self._precision:
            p = self.job(run, seed).get("training_precision")
            self._precision[key] = ((str(p), str(self.job_path(run, seed))) if p else
                                    read_precision(self.root / run / f"s{seed}", run, seed, self.declared))
        return self._precision[key]


def read_precision(folder: Path, run: str, seed: int, declared: dict[str, str]) -> tuple[str, str]:
    """A seed's training precision where its job.json does not record it: an explicit fp32/bf16
    `mixed_precision` in its finetune/pretrain config, else the report config's `precision:`."""
    found = []
    for name in ("finetune_config.yaml", "pretrain_config.yaml"):
        f = folder / name
        if f.is_file():
            try:
                mp = (yaml.safe_load(f.read_text()) or {}).get("mixed_precision")
            except yaml.YAMLError as e:
                raise ConfigError(f"{f}: not readable YAML ({e})") from None
            if mp in ("fp32", "bf16"):
                found.append((str(mp), str(f)))
    if found:
        if len({p for p, _ in found}) > 1:
            return "mixed", " and ".join(f for _, f in found)
        return found[0]
    for key in (f"{run}/s{seed}", run):
        if key in declared:
            return str(declared[key]), f"the report config's precision.{key} ({folder} records only `auto`)"
    return "unknown", f"{folder} (no job.json training_precision, no explicit mixed_precision)"


def needed(cfg: ReportConfig) -> dict[str, list[str]]:
    """kind -> the runs that need a file of that kind (in the order the tables list them)."""
    def uniq(xs):
        return list(dict.fromkeys(xs))

    recipes = [*cfg.recipes, *cfg.recipe_base.values(), *([cfg.ceiling] if cfg.recipes and cfg.ceiling else [])]
    refs = [cfg.reference] if cfg.methods or cfg.recipes or cfg.video or cfg.ablation or cfg.summary else []
    evals = uniq([*cfg.methods, *refs, *cfg.references.values(), *cfg.video, *cfg.ablation, *recipes, *cfg.summary])
    return {"eval": evals, "probe": uniq(cfg.probes), "probe_shared": uniq(cfg.probes), "pretrain": uniq(cfg.ablation)}


def _check_eval(info: dict, path: Path, cfg: ReportConfig | ReportBenchmark, tasks: list[str]) -> None:
    """`cfg`'s protocol (eval_seed, episodes_per_task, max_steps; a benchmark's `protocol` record)
    and `tasks` are what `info` used."""
    def bad(what: str, got, want):
        raise ConfigError(f"{path}: {what} is {got}, the report's protocol says {want} ({cfg.results} must hold "
                          "evaluations of one protocol; re-run it or fix the report config)")

    if "per_task" not in info or "overall" not in info:
        raise ConfigError(f"{path}: not a `care eval` output (no per_task/overall)")
    got_tasks = [r["task"] for r in info["per_task"]]
    if got_tasks != tasks:
        bad("the task list", got_tasks, tasks)
    want_seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.episodes_per_task))
    for r in info["per_task"]:
        if list(r["seeds"]) != want_seeds:
            bad(f"{r['task']}'s evaluation seeds", f"{r['seeds'][:3]}... ({len(r['seeds'])})",
                f"{cfg.eval_seed}..{cfg.eval_seed + cfg.episodes_per_task - 1}")
    max_steps = (info.get("config") or {}).get("max_steps")
    if max_steps != cfg.max_steps:
        bad("the step limit (config.max_steps)", max_steps, cfg.max_steps)
    got = (info.get("config") or {}).get("protocol") or {}
    for key, want in getattr(cfg, "protocol", {}).items():
        if key not in got or str(got[key]) != str(want):  # compared as text (YAML gives strings)
            bad(f"config.protocol.{key}", repr(got.get(key)), repr(want))


def _check_probe_settings(files: dict[str, dict[int, dict]], kind: str, root: Path) -> None:
    """Every probe of a kind was measured with the same settings (care.probes)."""
    first = None
    for run, by_seed in files.items():
        for seed, info in by_seed.items():
            path = root / run / f"s{seed}" / FILES[kind]
            for key in ("lp_mse", "s_pcfc", "semantic_accuracy", "settings"):
                if key not in info:
                    raise ConfigError(f"{path}: not a `care probe` output (no {key!r})")
            if first is None:
                first = (path, info["settings"])
            elif info["settings"] != first[1]:
                diff = sorted(k for k in set(info["settings"]) | set(first[1])
                              if info["settings"].get(k) != first[1].get(k))
                raise ConfigError(f"{path}: probe settings {diff} differ from {first[0]}'s; probes are compared "
                                  "only when measured the same way (care probe with the same flags)")


def _load(res: Results, root: Path, kind: str, runs: list[str], seeds: list[int], check=None,
          optional: bool = False) -> None:
    """Read `kind`'s file of every (run, seed) into `res`, `check(info, path)` each; note the absent
    (unless `optional`)."""
    for run in runs:
        for seed in seeds:
            path = Path(root) / run / f"s{seed}" / FILES[kind]
            if not path.is_file():
                if not optional:
                    res.missing.append((run, seed, str(path)))
                continue
            info = read_json(path)  # names the file when malformed
            if check:
                check(info, path)
            res.files.setdefault(kind, {}).setdefault(run, {})[seed] = info


def _check_pretrain(info: dict, path: Path) -> None:
    if "final" not in info:
        raise ConfigError(f"{path}: not a pretraining val_metrics.json (no 'final')")


def load_results(cfg: ReportConfig, seeds: list[int] | None = None) -> Results:
    """Every file the page needs, of `seeds` (default: the config's). With `cfg.allow_missing`
    and files missing, the page is built from the seeds that every run has (stated on the page)."""
    if seeds is None and cfg.allow_missing:
        full = load_results(cfg, list(cfg.seeds))
        if not full.missing:
            return full
        short = {s for _, s, _ in full.missing}
        complete = [s for s in cfg.seeds if s not in short]
        if not complete:
            raise ConfigError(f"{cfg.results}: --allow-missing, but no pipeline seed of {list(cfg.seeds)} has every "
                              "result file the page needs (care report --missing lists them)")
        res = load_results(cfg, complete)
        res.missing = full.missing  # still listed on the page, as the seeds left out
        return res
    seeds = list(cfg.seeds) if seeds is None else seeds
    tasks = _tasks(cfg)
    checks = {"eval": lambda info, path: _check_eval(info, path, cfg, tasks), "pretrain": _check_pretrain}
    res = Results(root=Path(cfg.results), declared=dict(cfg.precision), seeds=seeds, more_seeds=list(cfg.more_seeds))
    for kind, runs in needed(cfg).items():
        _load(res, cfg.results, kind, runs, seeds, checks.get(kind))
        if kind == "eval":  # seeds beyond the page's, where a run has them
            _load(res, cfg.results, kind, runs, list(cfg.more_seeds), checks[kind], optional=True)
    for kind in ("probe", "probe_shared"):
        _check_probe_settings(res.files.get(kind, {}), kind, Path(cfg.results))
    # optional: the curves' runs (a point shows the seeds it has), and the fine-tuning's held-out
    # action error, where the run kept its policy_config.json
    curve_runs = list(dict.fromkeys(r for c in cfg.curves for pts in c.series.values() for r in pts.values()))
    _load(res, cfg.results, "eval", [r for r in curve_runs if r not in res.files.get("eval", {})],
          [*seeds, *cfg.more_seeds], checks["eval"], optional=True)
    _load(res, cfg.results, "finetune", list(dict.fromkeys([*needed(cfg)["eval"], *curve_runs])),
          [*seeds, *cfg.more_seeds], optional=True)
    for b in cfg.benchmarks:
        res.benchmarks[b.title] = bres = Results(root=Path(b.results), declared=dict(b.precision),
                                                 seeds=list(b.seeds or cfg.seeds))
        _load(bres, b.results, "eval", list(dict.fromkeys([*b.methods, b.reference])), b.seeds or cfg.seeds,
              lambda info, path, b=b: _check_eval(info, path, b, list(b.tasks)))
        res.missing += bres.missing
    return res


# --- numbers -------------------------------------------------------------------------------


def metric(res: Results, run: str, name: str) -> dict[int, float]:
    """seed -> the value of one metric for a run (only the seeds whose file exists)."""
    if name == "success":
        return {s: float(i["overall"]["pc_success"]) for s, i in res.get("eval", run).items()}
    if name in ("lp_mse", "s_pcfc"):
        return {s: float(i[name]) for s, i in res.get("probe", run).items()}
    if name == "semantic":
        return {s: 100.0 * float(i["semantic_accuracy"]) for s, i in res.get("probe_shared", run).items()}
    if name == "val_l1":
        return {s: float(i["val_l1"]) for s, i in res.get("finetune", run).items() if i.get("val_l1") is not None}
    if name == "latent_loss":
        return {s: float(i["final"]["view_mse"]) for s, i in res.get("pretrain", run).items() if "view_mse" in i["final"]}
    raise KeyError(name)


def summary(values: dict[int, float]) -> dict:
    x = np.array([values[s] for s in sorted(values)], dtype=np.float64)
    return {"n": len(x), "seeds": sorted(values), "values": x.tolist(),
            "mean": float(x.mean()) if len(x) else math.nan,
            "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan}


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """a - b on the seeds both have, for a metric with one number per seed (the probes): per-seed
    differences, their mean, 95% t-interval and the MDE from their spread."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    ci = t_interval(d)
    out = {"seeds": seeds, "diffs": d.tolist(), "mean": float(d.mean()) if len(d) else math.nan, "ci": ci,
           "interval": "t over seeds", "mde": math.nan}
    if ci:
        out.update(low=ci["low"], high=ci["high"],
                   mde=stats.mde(stats.Components(float(d.var(ddof=1)), 0.0, len(d), 1, 1)))
    return out


def _word(p: dict, digits: int = 1) -> str:
    if not p["seeds"]:
        return "not measured yet"
    if "low" not in p:
        return f"not separated (1 seed: {p['mean']:+.3g})"
    return stats.verdict(p["low"], p["high"], len(p["seeds"]), p["mde"], digits)


def verdict(a: dict[int, float], b: dict[int, float], higher_better: bool, digits: int = 1) -> tuple[str, dict]:
    """Does "a is better than b" hold, for a metric of one number per seed? -> (verdict, paired)."""
    p = paired(a, b) if higher_better else paired(b, a)  # positive = a better
    return _word(p, digits), p


def check_precision(res: Results, a: str, b: str, seeds: list[int], what: str) -> str:
    """The one precision of a and b on `seeds`; ConfigError naming both files otherwise."""
    got = set()
    for s in seeds:
        (pa, fa), (pb, fb) = res.precision(a, s), res.precision(b, s)
        if pa != pb:
            raise ConfigError(
                f"{what}: {a} seed {s} trained in {pa} ({fa}) but {b} seed {s} in {pb} ({fb}); a comparison "
                "needs one training precision: compare rows of the same precision, re-run one of them at the "
                "other's, or declare an unrecorded precision in the report config's `precision:`")
        got.add(pa)
    return "/".join(sorted(got))


def conditions(res: Results, run: str, seed: int) -> dict[str, str]:
    """What a run's seed ran under that a comparison should hold fixed and job.json records: the
    thread count ("threads") and the CPU's kernels ("kernels": AVX-512 or not, native bf16 or
    not). Empty where job.json is absent or silent."""
    i = res.job(run, seed)
    out = {}
    if i.get("threads") is not None:
        out["threads"] = f"{i['threads']} thread{'s' if i['threads'] != 1 else ''}"
    if k := kernels(i):
        out["kernels"] = k
    return out


def kernels(job: dict) -> str | None:
    """The CPU kernels a job.json records ("AVX-512, bf16", "no AVX-512"), None where it does not."""
    if "cpu_avx512" not in job:
        return None
    return ("AVX-512" if job["cpu_avx512"] else "no AVX-512") + (", bf16" if job.get("cpu_bf16") else "")


def unequal_conditions(res: Results, a: str, b: str, seeds: list[int]) -> list[str]:
    """Per seed where a and b ran under different recorded conditions (`conditions`), a phrase
    "seed 2: 2 threads / 1 thread": such a pair is kept (the difference is of the size of the
    seed-to-seed spread, RESULTS.md) but the claim line says so."""
    out = []
    for s in seeds:
        ca, cb = conditions(res, a, s), conditions(res, b, s)
        diff = [f"{ca[k]} / {cb[k]}" for k in ("threads", "kernels") if k in ca and k in cb and ca[k] != cb[k]]
        if diff:
            out.append(f"seed {s}: " + ", ".join(diff))
    return out


def compare_success(res: Results, a: str, b: str, what: str) -> dict:
    """Success of a minus b (points) on the seeds both have, at one precision: per-seed
    differences and the two-level interval, MDE and verdict of care.evaluation.stats."""
    ea, eb = res.get("eval", a), res.get("eval", b)
    seeds = sorted(set(ea) & set(eb))
    if not seeds:
        return {"seeds": [], "diffs": [], "mean": math.nan}
    prec = check_precision(res, a, b, seeds, what)
    r = stats.compare_pair([ea[s] for s in seeds], [eb[s] for s in seeds])
    out = {k: r[k] for k in ("diffs", "mean", "low", "high", "mde", "verdict", "var_seed", "var_episode",
                             "episodes_per_task")}
    return {**out, "seeds": seeds, "precision": prec, "interval": "two-level"}


def success_interval(res: Results, run: str) -> dict | None:
    """One run's success over its seeds and episodes: mean and two-level 95% interval."""
    infos = [res.get("eval", run)[s] for s in sorted(res.get("eval", run))]
    return stats.two_level_bootstrap(stats.episode_array(infos)) if infos else None


def fraction_of(res: Results, run: str, ceiling: str, what: str) -> dict:
    """`run`'s success as a fraction of `ceiling`'s on the ceiling's seeds at `run`'s precision
    (every seed of each; care.evaluation.stats.ratio_interval): ratio, 95% interval, seeds."""
    prec = row_precision(res, run)
    ceil = sorted(_ceiling_at(res, ceiling, prec))
    mine = sorted(res.get("eval", run))
    if not mine or not ceil:
        return {"ratio": math.nan, "seeds": mine, "ceiling_seeds": ceil, "precision": prec}
    if prec.startswith("mixed"):
        raise ConfigError(f"{what}: {run}'s seeds trained at different precisions ({prec})")
    r = stats.ratio_interval(stats.episode_array([res.get("eval", run)[s] for s in mine]),
                             stats.episode_array([res.get("eval", ceiling)[s] for s in ceil]))
    return {**r, "seeds": mine, "ceiling_seeds": ceil, "precision": prec}


def row_precision(res: Results, run: str) -> str:
    """The run's training precision, or "mixed (s0–1 bf16, s2 fp32)" when its seeds differ."""
    by = {s: res.precision(run, s)[0] for s in sorted(res.get("eval", run))}
    vals = list(dict.fromkeys(by.values()))  # in seed order
    if len(vals) <= 1:
        return vals[0] if vals else "—"
    parts = [f"s{','.join(str(s) for s in by if by[s] == v)} {v}" for v in vals]
    return "mixed (" + "; ".join(parts) + ")"


# --- the page --------------------------------------------------------------------------------


def _fmt(s: dict, digits: int = 1) -> str:
    if not s["n"]:
        return "—"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f} (1 seed)"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _seeds(s: dict, digits: int = 1) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in s["values"]) or "—"


def _diff(p: dict, digits: int = 1) -> str:
    if not p["seeds"]:
        return "—"
    if "low" not in p:
        return f"{p['mean']:+.{digits}f} (1 seed)"
    return f"{p['mean']:+.{digits}f} [{p['low']:+.{digits}f}, {p['high']:+.{digits}f}]"


def _interval(r: dict | None, digits: int = 1) -> str:
    return "—" if r is None else f"{r['mean']:.{digits}f} [{r['low']:.{digits}f}, {r['high']:.{digits}f}]"


def _paper(cfg: ReportConfig, run: str, key: str, digits: int = 1) -> str:
    return _paper_cell(cfg.paper.get(run, {}).get(key), cfg.paper_rows.get(run), digits)


def _paper_cell(v: float | None, row: str | None, digits: int = 1) -> str:
    """The paper's number and the name of its row, or a dash."""
    return "—" if v is None else f"{v:.{digits}f}" + (f" ({row})" if row else "")


def quantities(cfg: ReportConfig, res: Results) -> Quantities:
    """What the notes may name, computed from `res` (care.report.notes)."""
    tasks = _tasks(cfg)

    def runs() -> set[str]:
        return {d.name for d in res.root.iterdir() if d.is_dir()} if res.root.is_dir() else set()

    def loaded(kind: str, run: str, check=None) -> dict[int, dict]:
        if run not in res.files.get(kind, {}):  # a run the tables do not show: read it now
            _load(res, res.root, kind, [run], [*res.seeds, *res.more_seeds], check, optional=True)
        return res.get(kind, run)

    def evals(run: str) -> dict[int, dict]:
        return loaded("eval", run, lambda info, path: _check_eval(info, path, cfg, tasks))

    def seeds(run: str) -> list[int]:
        return sorted(evals(run)) or [s for s in res.seeds if (res.root / run / f"s{s}").is_dir()]

    def success(run: str) -> dict[int, float]:
        v = {s: float(i["overall"]["pc_success"]) for s, i in evals(run).items()}
        if not v:
            raise KeyError(f"{res.root / run}: no eval_info.json of seeds {res.seeds}")
        return v

    def task(run: str, name: str) -> dict[int, float]:
        out = {}
        for s, info in evals(run).items():
            row = [r for r in info["per_task"] if r["task"] in (name, f"{name}-v3")]
            if not row:
                raise KeyError(f"no task {name!r} in {run}'s evaluations ({', '.join(r['task'] for r in info['per_task'])})")
            out[s] = float(row[0]["pc_success"])
        if not out:
            raise KeyError(f"{res.root / run}: no eval_info.json of seeds {res.seeds}")
        return out

    def interval(run: str) -> dict:
        success(run)
        return success_interval(res, run)

    pairs: dict[tuple[str, str], dict] = {}  # a pair's bootstrap once, however many quantities read it

    def compare(a: str, b: str, arg: str) -> dict:
        success(a), success(b)
        if (a, b) not in pairs:
            pairs[(a, b)] = compare_success(res, a, b, f"the quantity {arg}")
        return pairs[(a, b)]

    def precision(run: str) -> str:
        success(run)
        return row_precision(res, run)

    def fraction(a: str, b: str, arg: str) -> dict:
        success(a), success(b)
        return fraction_of(res, a, b, f"the quantity {arg}")

    def pending() -> set[str]:  # runs of the page with every file missing: no seed run yet
        missing = {r for r, _, _ in res.missing}
        return {r for r in missing if not evals(r)}

    return Quantities(res.root, runs, seeds, success, interval, compare, task, precision, fraction,
                      lambda run: loaded("finetune", run), pending)


def note(cfg: ReportConfig, section: str, res: Results | None = None) -> list[str]:
    """The config's paragraph on a section's orderings, if any, its quantities filled from `res`."""
    text = cfg.notes.get(section, "").strip()
    if text and res is not None:
        text = quantities(cfg, res).fill(section, text)
    return [f"**What the diagnostics say.** {text}", ""] if text else []


def label(cfg: ReportConfig, run: str) -> str:
    return cfg.labels.get(run, run)


def claims_block(cfg: ReportConfig, res: Results, table: str, claims: list[str] | None = None,
                 where: str | None = None) -> list[str]:
    """One line per claimed ordering of `table` (`claims`: a further benchmark's, else cfg's)."""
    name, higher = CLAIM_METRICS[table]
    where = where or f"claims.{table}"
    lines = []
    for claim in cfg.claims.get(table, []) if claims is None else claims:
        a, sep, b = (x.strip() for x in claim.partition(">"))
        if not sep or not a or not b:
            raise ConfigError(f"{where}: {claim!r} is not of the form 'a > b'")
        if name == "success":
            p = compare_success(res, a, b, f"{where}: {claim!r}")
            v = (stats.verdict(p["low"], p["high"], len(p["seeds"]), p["mde"], mean=p["mean"]) if p["seeds"]
                 else "not measured yet")
            how = "two-level 95% interval" + ("; one seed, so the episodes' noise only" if len(p["seeds"]) == 1 else "")
        else:
            va, vb = metric(res, a, name), metric(res, b, name)
            seeds = sorted(set(va) & set(vb))
            check_precision(res, a, b, seeds, f"{where}: {claim!r}")
            v, p = verdict(va, vb, higher, 3 if name in ("lp_mse", "s_pcfc") else 1)
            how = "95% t-interval over seeds"
        digits = 3 if name in ("lp_mse", "s_pcfc") else 1
        extra = ""
        if p["seeds"]:
            prec = "/".join(sorted({res.precision(a, s)[0] for s in p["seeds"]}))
            mde = f"; MDE {p['mde']:.{digits}f}" if math.isfinite(p.get("mde", math.nan)) else ""
            extra = (f"; difference {_diff(p, digits)} ({how}, seeds {', '.join(map(str, p['seeds']))}, "
                     f"{prec}{mde})")
            unequal = unequal_conditions(res, a, b, p["seeds"])
            if unequal:
                extra += (f"; not run under the same conditions ({label(cfg, a)} / {label(cfg, b)}): "
                          + "; ".join(unequal))
        lines.append(f"- paper: **{label(cfg, a)} better than {label(cfg, b)}** ({name}) — here: **{v}**{extra}")
    return lines


def reference_for(res: Results, run: str, reference: str, references: dict[str, str]) -> tuple[str | None, str]:
    """The run a row's "Δ vs reference" pairs with: the reference of the row's own precision
    (`references`, default `reference`), or None and why not."""
    if not res.get("eval", run):  # no seed of the row yet: nothing to pair
        return None, "—"
    p = row_precision(res, run)
    if p.startswith("mixed"):
        return None, "— (mixed precision)"
    ref = references.get(p, reference)
    if ref == run:
        return None, "(reference)"
    if not res.get("eval", ref):
        return None, "—"
    if row_precision(res, ref) != p:
        return None, f"— (no {p} reference)"
    return ref, ""


def delta_cell(cfg: ReportConfig, res: Results, run: str, reference: str, references: dict[str, str]) -> str:
    ref, why = reference_for(res, run, reference, references)
    if ref is None:
        return why
    p = compare_success(res, run, ref, f"Δ of {run} against {ref}")
    return _diff(p) + ("" if ref == reference else f" (vs {label(cfg, ref)})")


def references_line(cfg: ReportConfig, res: Results, reference: str, references: dict[str, str]) -> list[str]:
    refs = {p: r for p, r in references.items() if res.get("eval", r)}
    if not refs:
        return [f"Δ: paired with {label(cfg, reference)} (trained in {row_precision(res, reference)}) on the same "
                "seeds and episodes, two-level 95% interval; only rows of its precision are paired."]
    return ["Δ: paired with the reference of the row's own training precision ("
            + "; ".join(f"{p}: {label(cfg, r)}" for p, r in sorted(refs.items()))
            + ") on the same seeds and episodes, two-level 95% interval; rows are never paired across precisions."]


def success_tables(cfg: ReportConfig, res: Results, runs: list[str], heading: str, paper_col: str,
                   bench: ReportBenchmark | None = None) -> list[str]:
    reference = bench.reference if bench else cfg.reference
    references = {} if bench else cfg.references
    l1 = any(metric(res, run, "val_l1") for run in runs)  # a column only where some run kept it
    out = [f"| {heading} | precision | success % [95%] | per seed | Δ vs {label(cfg, reference)} [95%] | "
           + ("held-out action L1 | " if l1 else "") + f"{paper_col} |",
           "|---|---|---:|---:|---:|" + ("---:|" if l1 else "") + "---:|"]
    for run in runs:
        s = summary(metric(res, run, "success"))
        paper = (_paper(cfg, run, "success") if bench is None
                 else _paper_cell(bench.paper.get(run), bench.paper_rows.get(run)))
        cell = f"{_fmt(summary(metric(res, run, 'val_l1')), 3)} | " if l1 else ""
        out.append(f"| {label(cfg, run)} | {row_precision(res, run)} | {_interval(success_interval(res, run))} | "
                   f"{_seeds(s)} | {delta_cell(cfg, res, run, reference, references)} | {cell}{paper} |")
    out += ["", "Success: mean over seeds and its two-level 95% interval (pipeline seeds, then episodes within "
            "task; widened for few seeds). " + references_line(cfg, res, reference, references)[0]]
    if l1:
        out += ["", "Held-out action L1: the fine-tuning's error on labelled episodes it never trained on "
                "(normalised actions, `val_l1` of policy_config.json; — where the run did not keep it)."]
    return out


def _tasks(cfg: ReportConfig) -> list[str]:
    from care.envs.metaworld import resolve_tasks

    return resolve_tasks(cfg.tasks)


def per_task_table(cfg: ReportConfig, res: Results, runs: list[str], tasks: list[str]) -> list[str]:
    cols = [r for r in runs if res.get("eval", r)]
    if not cols:
        return []
    out = ["| task | " + " | ".join(label(cfg, r) for r in cols) + " |", "|---|" + "---:|" * len(cols)]
    for t in tasks:
        cells = []
        for r in cols:
            vals = [next(x["pc_success"] for x in i["per_task"] if x["task"] == t) for i in res.get("eval", r).values()]
            cells.append(f"{np.mean(vals):.0f}")
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    return out


def benchmark_section(cfg: ReportConfig, b: ReportBenchmark, res: Results, plot: str | None) -> list[str]:
    seeds = b.seeds or cfg.seeds
    L = [f"## Tab. 1 on {b.title} — success rate by pretraining method", "",
         f"From `{b.results}`. Protocol: {len(b.tasks)} tasks, {b.episodes_per_task} evaluation episodes per task "
         f"(evaluation seeds {b.eval_seed}..{b.eval_seed + b.episodes_per_task - 1}), step limit {b.max_steps}; "
         f"pipeline seeds {seeds}. The paper's column is its own result on this benchmark (the row named in "
         "brackets), with its own data and model: compare orderings, not values.", ""]
    L += declared_line(res)
    L += success_tables(cfg, res, b.methods, "method", f"paper SR ({b.title})", bench=b) + [""]
    L += claims_block(cfg, res, "methods", claims=b.claims, where=f"benchmarks[{b.title}].claims") + [""]
    if plot:
        L += [f"![success per task, {b.title}]({plot})", ""]
    L += ["Success per task (%, mean over seeds):", ""] + per_task_table(cfg, res, b.methods, list(b.tasks)) + [""]
    return L


def recipe_base(cfg: ReportConfig, run: str) -> str | None:
    """The run a recipe row changes: `recipe_base`, else the row above (None for the first)."""
    i = cfg.recipes.index(run)
    return cfg.recipe_base.get(run, cfg.recipes[i - 1] if i else None)


def _ceiling_at(res: Results, ceiling: str, precision: str) -> dict[int, float]:
    """The ceiling's success on its seeds that trained at `precision`."""
    return {s: v for s, v in metric(res, ceiling, "success").items() if res.precision(ceiling, s)[0] == precision}


def recipe_section(cfg: ReportConfig, res: Results, plot: str | None) -> list[str]:
    frac_col = f" % of {label(cfg, cfg.ceiling)} (same precision) |" if cfg.ceiling else ""
    L = ["## Beyond the paper — the few-label recipe", "",
         "Each row changes one thing in the row it builds on, with the same labelled episodes (and the same "
         "evaluation), at the same training precision; Δ are paired over pipeline seeds and episodes "
         "(two-level 95% interval).", "",
         f"| recipe | precision | success % [95%] | per seed | Δ vs the row it builds on [95%] | "
         f"Δ vs {label(cfg, cfg.reference)} [95%] |{frac_col}",
         "|---|---|---:|---:|---|---:|" + ("---:|" if cfg.ceiling else "")]
    best = None
    for run in cfg.recipes:
        v = metric(res, run, "success")
        s = summary(v)
        base = recipe_base(cfg, run)
        vs_base = "(first)"
        if base:
            p = compare_success(res, run, base, f"recipe_base: {run} builds on {base}")
            vs_base = f"{label(cfg, base)}: {_diff(p)}" + (f" — {p['verdict']}" if p["seeds"] else "")
        prec = row_precision(res, run)
        frac = ""
        if cfg.ceiling:
            ceil = summary(_ceiling_at(res, cfg.ceiling, prec))
            frac = (f" {100 * s['mean'] / ceil['mean']:.0f}% (of s{','.join(map(str, ceil['seeds']))}) |"
                    if s["n"] and ceil["n"] and ceil["mean"] > 0 else " — |")
            if s["n"] >= len(res.seeds) and ceil["n"] and (best is None or s["mean"] / ceil["mean"] > best[1]):
                best = (run, s["mean"] / ceil["mean"], ceil, prec)  # only rows with every seed of the page
        L.append(f"| {label(cfg, run)} | {prec} | {_interval(success_interval(res, run))} | {_seeds(s)} | {vs_base} | "
                 f"{delta_cell(cfg, res, run, cfg.reference, cfg.references)} |{frac}")
    L += ["", references_line(cfg, res, cfg.reference, cfg.references)[0], ""]
    if cfg.recipe_goal and best:
        run, _, ceil, prec = best
        f = fraction_of(res, run, cfg.ceiling, f"recipe goal: {run} against {cfg.ceiling}")
        L += [f"Goal: at least {100 * cfg.recipe_goal:.0f}% of {label(cfg, cfg.ceiling)}'s success. Best recipe "
              f"so far: {label(cfg, run)} over {len(f['seeds'])} seeds, {100 * f['ratio']:.0f}% "
              f"[{100 * f['low']:.0f}, {100 * f['high']:.0f}] of {label(cfg, cfg.ceiling)}'s {prec} seed(s) "
              f"{', '.join(map(str, ceil['seeds']))} ({ceil['mean']:.1f}%) — goal "
              f"**{goal_word(f, cfg.recipe_goal)}** (95% interval of the fraction: each run's seeds and "
              "episodes resampled on their own).", ""]
    L += note(cfg, "recipes", res)
    if plot:
        L += [f"![recipe ladder]({plot})", ""]
    return L


def curve_points(cfg: ReportConfig, res: Results, curve) -> dict[str, list[tuple[float, str, str]]]:
    """series label -> [(x, x as written, run)] sorted by x, for the points with results. "all" is
    the run's training episodes per task (policy_config.json `train_episodes`, mean over seeds)."""
    out = {}
    for name, points in curve.series.items():
        pts = []
        for x, run in points.items():
            if not res.get("eval", run):
                continue
            if str(x) == "all":
                configs = res.get("finetune", run)
                try:
                    eps = train_episodes_per_task(configs, sorted(configs), res.root / run)
                except KeyError as e:
                    raise ConfigError(f"curves[{curve.name}]: {run} stands at x 'all', but its fine-tuning "
                                      f"records no train_episodes: {e.args[0]}") from None
                pts.append((eps, f"all ({eps:.1f})", run))
            else:
                pts.append((float(x), str(x), run))
        out[name] = sorted(pts)
    return out


def curve_section(cfg: ReportConfig, res: Results, curve, plot: str | None) -> list[str]:
    """A curve's table (x by series: success with its two-level interval and seed count), its
    orderings at every x, and its paragraph."""
    pts = curve_points(cfg, res, curve)
    xs = sorted({(x, w) for p in pts.values() for x, w, _ in p})
    runs = [r for p in pts.values() for _, _, r in p]
    precs = sorted({row_precision(res, r) for r in runs})
    L = [f"## Beyond the paper — {curve.title}", ""]
    if not runs:
        return L + ["No point of this curve has results yet (runs: "
                    + ", ".join(r for p in curve.series.values() for r in p.values()) + ").", ""]
    L += [f"Success (%, mean over pipeline seeds, two-level 95% interval, seeds in brackets) against "
          f"{curve.x_label}. Training precision of every point: {', '.join(precs)}. A point with fewer than "
          f"{curve.min_seeds} seeds is marked † (hollow in the plot, the line to it dotted).", "",
          f"| {curve.x_label} | " + " | ".join(pts) + " |", "|---|" + "---:|" * len(pts)]
    for x, written in xs:
        cells = []
        for name in pts:
            run = next((r for xx, _, r in pts[name] if xx == x), None)
            if run is None:
                cells.append("—")
                continue
            n = len(res.get("eval", run))
            cells.append(f"{_interval(success_interval(res, run))} ({n}){' †' if n < curve.min_seeds else ''}")
        L.append(f"| {written} | " + " | ".join(cells) + " |")
    L.append("")
    for claim in curve.compare:
        a, _, b = (t.strip() for t in claim.partition(">"))
        parts = []
        for x, written in xs:
            ra = next((r for xx, _, r in pts[a] if xx == x), None)
            rb = next((r for xx, _, r in pts[b] if xx == x), None)
            if ra is None or rb is None or ra == rb:
                continue
            c = compare_success(res, ra, rb, f"curves[{curve.name}]: {claim!r} at {written}")
            if c["seeds"]:
                n = len(c["seeds"])
                parts.append(f"{written}: {_diff(c)} ({n} seed{'s' if n > 1 else ''}; {c['verdict']})")
        if parts:
            L.append(f"- **{a} − {b}**, paired over the seeds both have: " + "; ".join(parts))
    if curve.compare:
        L.append("")
    L += note(cfg, curve.name, res)
    if plot:
        L += [f"![{curve.title}]({plot})", ""]
    return L


def goal_word(f: dict, goal: float) -> str:
    """"reached" (interval of the fraction above the goal, >= MIN_SEEDS seeds), "not reached"
    (below it), otherwise what the interval allows."""
    n = len(f["seeds"])
    if f["low"] >= goal:
        return "reached" if n >= stats.MIN_SEEDS else f"reached on the interval, but too few seeds (n={n})"
    if f["high"] < goal:
        return "not reached"
    return (f"{'reached' if f['ratio'] >= goal else 'not reached'} on the mean, not separated from "
            f"{100 * goal:.0f}% (n={n} seeds)")


def declared_line(res: Results) -> list[str]:
    """Which runs' precision the report config declared (their files record only `auto`)."""
    declared = sorted({f"{r}/s{s}" for r in res.files.get("eval", {}) for s in res.get("eval", r)
                       if "report config" in res.precision(r, s)[1]})
    if not declared:
        return []
    return [f"Training precision declared in the report config (the run's files record only `auto`): "
            f"{', '.join(declared)}.", ""]


def build_page(cfg: ReportConfig, res: Results, plots: dict[str, str]) -> str:
    left_out = [x for x in cfg.seeds if x not in res.seeds]
    L = [f"# {cfg.title}", "",
         f"Rebuilt by `care report` from `{cfg.results}` (committed result files only). Protocol: "
         f"{cfg.tasks}, {cfg.episodes_per_task} evaluation episodes per task (env seeds {cfg.eval_seed}+), "
         f"step limit {cfg.max_steps}; pipeline seeds {res.seeds}"
         + (f", and {list(res.more_seeds)} where a run has them (every row and pairing uses all the seeds its "
            "runs have; the per-seed column lists them)" if res.more_seeds else "")
         + " (seed k = pretraining seed k, then fine-tuning seed k). Success is the mean over seeds with its "
         "two-level 95% interval: it carries the seeds' noise and the episodes', each once (a bootstrap of the "
         "pipeline seeds, then of each drawn seed's episodes within each task, the seed means first moved toward "
         "their mean so that they spread by the between-seed variance alone; paired episode by episode for a "
         "difference), and its percentiles are widened by t(0.975, S−1)/z(0.975)·√(S/(S−1)) (1.58× at 5 seeds, "
         "1.22× at 10: a bootstrap of few seeds is too narrow; one seed: the episodes' noise alone). An ordering "
         f"holds or is reversed only when its interval is clear of 0 with at least {stats.MIN_SEEDS} seeds; MDE is the "
         "smallest difference those seeds × episodes detect with 80% power (α = 0.05). Every comparison is "
         "between runs trained at one precision (the precision column; read from each run's job.json or config, "
         "else declared in the report config). The paper's numbers are LIBERO averages of its own rows (the row "
         "named in brackets): compare orderings, not values.", ""]
    L += declared_line(res)
    if left_out:
        L += [f"**Built from pipeline seeds {res.seeds} only** (`--allow-missing`): seed(s) {left_out} of the "
              f"configured {list(cfg.seeds)} lack result files (listed at the end).", ""]
    elif res.missing:
        runs = sorted({r for r, _, _ in res.missing})
        L += [f"**Not complete:** {len(res.missing)} result file(s) missing, of run(s) {', '.join(runs)} "
              "(listed at the end; `care report --missing`). Tables show the seeds that exist.", ""]
    if cfg.methods:
        L += ["## Tab. 1 — success rate by pretraining method", ""]
        L += success_tables(cfg, res, cfg.methods, "method", "paper SR (LIBERO avg.)") + [""]
        L += claims_block(cfg, res, "methods") + [""] + note(cfg, "methods", res)
        if "success" in plots:
            L += [f"![success per task]({plots['success']})", ""]
        L += ["Success per task (%, mean over seeds):", ""] + per_task_table(cfg, res, cfg.methods, _tasks(cfg)) + [""]
    for b in cfg.benchmarks:
        L += benchmark_section(cfg, b, res.benchmarks[b.title], plots.get(f"bench:{b.title}"))
    if cfg.video:
        L += ["## Tab. 1 (data rows) — success by pretraining video", ""]
        L += success_tables(cfg, res, cfg.video, "pretraining video", "paper SR (row)") + [""]
        L += claims_block(cfg, res, "video") + [""] + note(cfg, "video", res)
        if "video" in plots:
            L += [f"![success vs video]({plots['video']})", ""]
    if cfg.probes:
        L += ["## Tab. 2 — latent probes: LP-MSE and S-PCFC (lower is better)", "",
              "| method | precision | LP-MSE | per seed | S-PCFC | per seed | paper LP-MSE | paper S-PCFC |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for run in cfg.probes:
            lp, sp = summary(metric(res, run, "lp_mse")), summary(metric(res, run, "s_pcfc"))
            L.append(f"| {label(cfg, run)} | {row_precision(res, run)} | {_fmt(lp, 3)} | {_seeds(lp, 3)} | "
                     f"{_fmt(sp, 3)} | {_seeds(sp, 3)} | {_paper(cfg, run, 'lp_mse', 3)} | {_paper(cfg, run, 's_pcfc', 3)} |")
        L += ["", "± is the standard deviation over seeds."]
        L += [""] + claims_block(cfg, res, "lp_mse") + claims_block(cfg, res, "s_pcfc") + [""] + note(cfg, "probes", res)
        if "probes" in plots:
            L += [f"![probes]({plots['probes']})", ""]
        L += ["## Tab. 3 — semantic accuracy on the shared-scene set (%)", "",
              "| input | accuracy | per seed | paper |", "|---|---:|---:|---:|"]
        shared = [i for r in cfg.probes for i in res.get("probe_shared", r).values()]
        refs = (("initial frame", "semantic_initial", "initial"), ("initial frame × 10", "semantic_initial_x10", "initial_x10"),
                ("initial + 9 subsequent frames", "semantic_frames", "frames"))
        for name, key, pkey in refs:  # model-independent: the same in every probe
            v = {0: 100 * float(shared[0][key])} if shared else {}
            L.append(f"| {name} | {_fmt(summary(v)).replace(' (1 seed)', '')} | | {_paper(cfg, pkey, 'semantic')} |")
        for run in cfg.probes:
            s = summary(metric(res, run, "semantic"))
            L.append(f"| initial + 9 {label(cfg, run)} latents | {_fmt(s)} | {_seeds(s)} | {_paper(cfg, run, 'semantic')} |")
        if shared:
            L.append(f"\nChance: {100 * float(shared[0].get('semantic_chance', math.nan)):.1f}%.")
        L += [""] + claims_block(cfg, res, "semantic") + [""] + note(cfg, "semantic", res)
    if cfg.ablation:
        L += ["## Tab. 4 — multi-task ablation", "",
              "| objective | precision | success % [95%] | per seed | Δ vs " + label(cfg, cfg.reference)
              + " [95%] | held-out latent loss | paper SR | paper latent loss |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for run in cfg.ablation:
            v = metric(res, run, "success")
            s, ll = summary(v), summary(metric(res, run, "latent_loss"))
            L.append(f"| {label(cfg, run)} | {row_precision(res, run)} | {_interval(success_interval(res, run))} | "
                     f"{_seeds(s)} | {delta_cell(cfg, res, run, cfg.reference, cfg.references)} | {_fmt(ll, 3)} | "
                     f"{_paper(cfg, run, 'success')} | {_paper(cfg, run, 'latent_loss', 3)} |")
        L += ["", "Latent loss: the pretraining's final held-out ‖ẑ − z*‖² (val_metrics.json `view_mse`; ± the "
              "standard deviation over seeds). " + references_line(cfg, res, cfg.reference, cfg.references)[0], ""]
        L += claims_block(cfg, res, "ablation") + [""] + note(cfg, "ablation", res)
    if cfg.recipes:
        L += recipe_section(cfg, res, plots.get("recipes"))
    for curve in cfg.curves:
        L += curve_section(cfg, res, curve, plots.get(f"curve:{curve.name}"))
    L += run_records(cfg, res)
    if res.missing:
        L += ["## Missing result files", ""] + [f"- `{p}`" for _, _, p in res.missing] + [""]
    return "\n".join(L)


def run_records(cfg: ReportConfig, res: Results) -> list[str]:
    """Per run, the commit, thread count and CPU kernels its job.json files record (where they
    do): a comparison should hold them fixed, since the thread count alone moves a seed, and two
    CPUs of one model name can run different fp32 kernels."""
    rows = []
    for run, by_seed in res.files.get("eval", {}).items():
        infos = {s: res.job(run, s) for s in sorted(by_seed) if res.job(run, s)}
        commits = sorted({str(i["commit"])[:12] for i in infos.values() if i.get("commit")})
        threads = sorted({str(i["threads"]) for i in infos.values() if i.get("threads") is not None})
        kinds: dict[str, list[int]] = {}  # the CPU's kernels -> the seeds that ran on such a CPU
        for s, i in infos.items():
            if k := kernels(i):
                kinds.setdefault(k, []).append(s)
        cpus = "; ".join(f"{k} (s{', s'.join(map(str, v))})" for k, v in kinds.items())
        if commits or threads:
            rows.append(f"| {label(cfg, run)} | {', '.join(commits) or '—'} | {', '.join(threads) or '—'} | "
                        f"{cpus or '—'} |")
    if not rows:
        return []
    return ["## Run records", "", "From each seed's job.json (runs that record them; the CPU's kernels since "
            "job.json records them).", "", "| run | commit(s) | threads | CPU kernels (seeds) |", "|---|---|---|---|",
            *rows, ""]


def summary_table(cfg: ReportConfig, res: Results, link: str = "docs/report/README.md") -> str:
    """The short results table (`summary:` rows) for the README: run, precision, success with its
    two-level interval, Δ vs no pretraining at the same precision, seeds × episodes."""
    L = [f"| run | precision | success % [95%] | Δ vs {label(cfg, cfg.reference)}, same precision [95%] | "
         "seeds × episodes |", "|---|---|---:|---:|---|"]
    for run in cfg.summary:
        ev = res.get("eval", run)
        eps = {sum(r["n_episodes"] if "n_episodes" in r else len(r["successes"]) for r in i["per_task"])
               for i in ev.values()}
        size = f"{len(ev)} × {'/'.join(map(str, sorted(eps)))}" if ev else "—"
        L.append(f"| {label(cfg, run)} | {row_precision(res, run)} | {_interval(success_interval(res, run))} | "
                 f"{delta_cell(cfg, res, run, cfg.reference, cfg.references)} | {size} |")
    return "\n".join(L) + "\n"


# --- plots ---------------------------------------------------------------------------------


def _hbars(ax, names: list[str], series: list[dict[int, float]], intervals: list[tuple[float, float] | None],
           color="C0", xlabel: str = "success %"):
    """Horizontal bars (long names stay readable), top to bottom in `names` order: the mean, its
    95% interval as a black whisker, and the seeds as white-edged dots."""
    y = np.arange(len(names))[::-1]
    for yi, vals, ci in zip(y, series, intervals):
        xs = [vals[s] for s in sorted(vals)]
        if not xs:
            continue
        ax.barh(yi, np.mean(xs), color=color, alpha=0.55, height=0.7)
        if ci is not None:
            ax.errorbar([np.mean(xs)], [yi], xerr=[[np.mean(xs) - ci[0]], [ci[1] - np.mean(xs)]], fmt="none",
                        ecolor="k", elinewidth=1.4, capsize=4, zorder=4)
        ax.scatter(xs, [yi] * len(xs), color="k", edgecolor="w", s=18, zorder=5)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)


def _legend_below(ax, fig, ncol: int = 3):
    """A legend under the axes, never over the bars."""
    ax.legend(fontsize=8, ncol=ncol, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)


def short_names(tasks: list[str]) -> list[str]:
    """Task names without the words they all share at the start and end (LIBERO's
    "pick_up_the_X_and_place_it_in_the_basket" -> "X")."""
    words = [t.split("_") for t in tasks]
    if len(words) < 2:
        return list(tasks)
    n = min(len(w) for w in words)
    pre = next((i for i in range(n) if len({w[i] for w in words}) > 1), n)
    suf = next((i for i in range(n - pre) if len({w[-1 - i] for w in words}) > 1), n - pre)
    return ["_".join(w[pre:len(w) - suf]) or t for w, t in zip(words, tasks)]


def make_plots(cfg: ReportConfig, res: Results, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from care.io import save_figure

    def ci(run: str, r: Results = res) -> tuple[float, float] | None:
        iv = success_interval(r, run)
        return (iv["low"], iv["high"]) if iv else None

    def per_task_plot(res: Results, methods: list[str], tasks: list[str], title: str, path: Path) -> str | None:
        runs = [r for r in methods if res.get("eval", r)]
        if not runs:
            return None
        fig, ax = plt.subplots(figsize=(max(8, 1.15 * len(tasks)), 4.6))
        w = 0.8 / len(runs)
        for j, run in enumerate(runs):
            infos = [res.get("eval", run)[s] for s in sorted(res.get("eval", run))]
            x_all = stats.episode_array(infos)  # (seeds, tasks, episodes)
            for i, t in enumerate(tasks):
                k = [r["task"] for r in infos[0]["per_task"]].index(t)
                b = stats.two_level_bootstrap(x_all[:, k:k + 1], resamples=1000)
                vals = 100.0 * x_all[:, k].mean(axis=-1)
                x = i + (j - (len(runs) - 1) / 2) * w
                ax.bar(x, b["mean"], width=w, color=f"C{j}", alpha=0.65, label=label(cfg, run) if i == 0 else None)
                ax.errorbar([x], [b["mean"]], yerr=[[b["mean"] - b["low"]], [b["high"] - b["mean"]]], fmt="none",
                            ecolor="k", elinewidth=0.8, capsize=1.5, zorder=4)
                ax.scatter([x] * len(vals), vals, color="k", s=4, zorder=5)
        ax.set_xticks(range(len(tasks)))
        names = short_names([t.replace("-v3", "") for t in tasks])
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("success %")
        ax.set_ylim(0, 105)
        ax.set_title(f"{title}: success per task (bar: mean over seeds; whisker: 95% two-level interval; dots: seeds)",
                     fontsize=9)
        ax.legend(fontsize=8, ncol=min(7, len(runs)), loc="lower center", bbox_to_anchor=(0.5, 1.07), frameon=False)
        return save_figure(fig, path).name

    def row_name(run: str) -> str:
        p = row_precision(res, run)
        return label(cfg, run) if p in label(cfg, run) else f"{label(cfg, run)} ({p})"

    def ladder(runs: list[str], color: str, title: str, path: Path, lines=()) -> str:
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(runs) + 1.6))
        _hbars(ax, [row_name(r) for r in runs], [metric(res, r, "success") for r in runs], [ci(r) for r in runs], color=color)
        prec = row_precision(res, runs[0])
        for run, style, c in lines:  # only the seeds at the rows' precision
            s = summary(_ceiling_at(res, run, prec)) if run else {"n": 0}
            if s["n"]:
                seeds = "" if s["n"] == len(res.get("eval", run)) else f" seed(s) {', '.join(map(str, s['seeds']))}"
                ax.axvline(s["mean"], color=c, ls=style, label=f"{label(cfg, run)}, {prec}{seeds}: mean")
        if lines:
            _legend_below(ax, fig, 2)
        fig.suptitle(title, fontsize=10)  # over the whole figure: long row names leave the axes narrow
        return save_figure(fig, path).name

    made = {}
    if cfg.methods and (name := per_task_plot(res, cfg.methods, _tasks(cfg), cfg.tasks, out / "success_per_task.png")):
        made["success"] = name
    for b in cfg.benchmarks:
        slug = "".join(c if c.isalnum() else "_" for c in b.title.lower()).strip("_")
        if name := per_task_plot(res.benchmarks[b.title], b.methods, list(b.tasks), b.title,
                                 out / f"success_per_task_{slug}.png"):
            made[f"bench:{b.title}"] = name
    probes = [r for r in cfg.probes if res.get("probe", r)]
    if probes:
        fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 * len(probes) + 1.6))
        for ax, name in zip(axes, ("lp_mse", "s_pcfc")):
            vals = [metric(res, r, name) for r in probes]
            cis = [(t["low"], t["high"]) if (t := t_interval(list(v.values()))) else None for v in vals]
            _hbars(ax, [row_name(r) for r in probes], vals, cis,
                   xlabel=f"{name.upper().replace('_', '-')} (lower is better)")
        axes[1].set_yticklabels([])
        fig.suptitle("Latent probes (bar: mean; whisker: 95% t-interval over seeds; dots: seeds)", fontsize=10)
        made["probes"] = save_figure(fig, out / "probes.png").name
    video = [r for r in cfg.video if res.get("eval", r)]
    if video:
        ref = cfg.references.get(row_precision(res, video[0]), cfg.reference)
        made["video"] = ladder(video, "C2", "Success by pretraining video (whisker: 95% two-level interval)",
                               out / "success_vs_video.png", [(ref, "--", "C3")])
    recipes = [r for r in cfg.recipes if res.get("eval", r)]
    if recipes:
        made["recipes"] = ladder(recipes, "C4", "The few-label recipe, one change per row\n(whisker: 95% two-level "
                                 "interval; dots: seeds)", out / "recipes.png",
                                 [(recipes[0], "--", "C3"), (cfg.ceiling, ":", "C0")] if cfg.ceiling else
                                 [(recipes[0], "--", "C3")])
    for curve in cfg.curves:
        pts = curve_points(cfg, res, curve)
        if not any(pts.values()):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for j, (name, p) in enumerate(pts.items()):
            if not p:
                continue
            xs = np.array([x for x, _, _ in p])
            ivs = [success_interval(res, r) for _, _, r in p]
            means = np.array([iv["mean"] for iv in ivs])
            full = [len(res.get("eval", r)) >= curve.min_seeds for _, _, r in p]
            # a segment that reaches a point on too few seeds is dotted: it reads less than a trend
            for i in range(len(xs) - 1):
                ax.plot(xs[i:i + 2], means[i:i + 2], color=f"C{j}", lw=1.5,
                        ls="-" if full[i] and full[i + 1] else ":")
            ax.plot([], [], color=f"C{j}", lw=1.5, label=name)
            ax.errorbar(xs, means, yerr=[means - [iv["low"] for iv in ivs], [iv["high"] for iv in ivs] - means],
                        fmt="none", ecolor=f"C{j}", elinewidth=1, capsize=3)
            for (x, _, r), m, enough in zip(p, means, full):
                ax.scatter([x], [m], s=36, zorder=5, color=f"C{j}" if enough else "w", edgecolor=f"C{j}",
                           linewidth=1.5)
                vals = list(metric(res, r, "success").values())
                ax.scatter([x] * len(vals), vals, s=6, color=f"C{j}", alpha=0.5, zorder=4)
        if curve.log_x:
            ax.set_xscale("log")
        allx = sorted({x for p in pts.values() for x, _, _ in p})
        ax.set_xticks(allx)
        ax.set_xticklabels([next(w for p in pts.values() for x, w, _ in p if x == v).split(" (")[0] for v in allx])
        ax.minorticks_off()
        ax.set_xlabel(curve.x_label + (" (log scale)" if curve.log_x else ""))
        ax.set_ylabel("success %")
        ax.grid(alpha=0.3)
        ax.set_title(f"{curve.title}\n(line: mean over seeds; whisker: 95% two-level interval;\nsmall dots: seeds; "
                     f"hollow point, dotted line: < {curve.min_seeds} seeds)", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
        made[f"curve:{curve.name}"] = save_figure(fig, out / f"curve_{curve.name}.png").name
    return made


# --- the command -----------------------------------------------------------------------------


def report(cfg: ReportConfig) -> int:
    res = load_results(cfg)
    if cfg.missing:
        further = [(run, seed, Path(cfg.results) / run / f"s{seed}" / FILES["eval"])  # planned beyond `seeds`:
                   for run in cfg.more_seeds_runs for seed in cfg.more_seeds]          # optional on the page
        further = [f for f in further if not f[2].is_file()]
        if not res.missing and not further:
            print(f"care report: every result file the report needs is in {cfg.results}")
        for run, seed, path in res.missing:
            print(f"missing: {path}   (run {run}, pipeline seed {seed})")
        for run, seed, path in further:
            print(f"missing: {path}   (run {run}, further pipeline seed {seed})")
        for curve in cfg.curves:  # optional points: what a curve still lacks
            said = set()
            for name, points in curve.series.items():
                for x, run in points.items():
                    have = sorted(res.get("eval", run))
                    if len(have) < curve.min_seeds and run not in said:
                        said.add(run)
                        print(f"curve {curve.name}: {name} at {x} = {run} has {len(have)} of {curve.min_seeds} seeds"
                              + (f" ({', '.join(map(str, have))})" if have else ""))
        return 0
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots(cfg, res, out)
    page = build_page(cfg, res, plots)
    atomic_write_bytes(out / "README.md", page.encode())
    if cfg.summary:
        atomic_write_bytes(out / "summary.md", summary_table(cfg, res).encode())
    n = sum(len(s) for r in (res, *res.benchmarks.values()) for k in r.files.values() for s in k.values())
    print(f"care report: {out / 'README.md'} from {n} result file(s)"
          + (f"; {len(res.missing)} missing (care report --missing lists them)" if res.missing else ""))
    return 0
