"""Notes without typed numbers: a note in a report config is a template whose quantities the
builder computes from the result files, so a number under a table is never older than the table.

A quantity is written in braces, `{kind:args}` or `{kind:args|digits}` (digits after the point;
run names are folders of the report's `results`, as in its tables):

    {mean:RUN}                 mean success over the run's seeds (%), e.g. 37.7
    {seeds:RUN}                success of each seed, "40.0 / 36.0 / 37.0"
    {ci:RUN}                   mean success and its two-level 95% interval, "37.7 [33.1, 42.0]"
    {n:RUN}                    how many seeds the run has, "3"
    {seedlist:RUN}             which, "0, 1, 2"; {seedlist:A-B}: the seeds the pair A-B uses
                               (those both runs have)
    {precision:RUN}            its training precision, "fp32" (see care.report.build)
    {diff:A-B}                 paired success difference, A minus B, with its two-level 95%
                               interval, "+2.5 [-0.8, +6.0]" (refused across precisions)
    {diffs:A-B}                the per-seed differences, "+3.0 / +2.5 / +2.0"
    {half:A-B}                 the half-width of that interval, (high - low) / 2, "3.6"
    {mde:A-B}                  the smallest difference those seeds x episodes detect (80% power)
    {verdict:A-B}              "holds", "too few seeds (n=3), direction: +", "not separated (MDE 9.6)"
    {frac:A-B}                 A's success as a % of B's (e.g. of the label-supervised ceiling) with
                               its 95% interval, "88% [83, 93]" (each run's seeds and episodes
                               resampled on their own; B's seeds at A's precision)
    {task:RUN:TASK}            a task's success, mean over seeds ("drawer-close-v3" or "drawer-close")
    {taskseeds:RUN:TASK}       a task's success per seed, "40 / 70 / 65"
    {taskdiff:A-B:TASK}        a task's success difference, mean over the paired seeds
    {file:RUN:FILE:KEY}        a value of FILE (a JSON file in the run's seed folders) per seed,
                               "0.0028 / 0.0026 / 0.0025"; KEY is a dotted path ("final.view_mse",
                               "history.-1.point_epe"), or KEY/KEY for a ratio of two values
    {range:RUN:FILE:KEY}       the same values as "lowest–highest"
    {fmean:RUN:FILE:KEY}       their mean
    {pct:RUN:FILE:KEY}         their mean x 100 (a fraction as a percentage; 1 digit)
    {episodes:RUN}             the episodes per task its fine-tuning trained on, mean over seeds
                               (policy_config.json: train_episodes over the tasks of train_seeds)

Default digits: 1 for success, differences and episodes, 0 for task successes, 3 otherwise. A
quantity the files cannot give (an unknown run, a missing file or key, a comparison across
precisions, an unknown kind) stops the build with an error naming the note and the quantity.
One exception keeps a page of runs still in progress buildable: a quantity of a run the page
shows but that has no result file yet (every one of its files is listed as missing) reads
"(not run yet)" — the page says what is missing — while a name the page does not show fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np

from care.errors import CareError, ConfigError

_FIELD = re.compile(r"\{([a-z]+):([^{}|]+?)(?:\|(\d+))?\}")


def _fmt(v: float, digits: int, sign: bool = False) -> str:
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _path(obj, key: str, where: str):
    for part in key.split("."):
        if isinstance(obj, list):
            try:
                obj = obj[int(part)]
            except (ValueError, IndexError):
                raise KeyError(f"{where} has no {key!r} (at {part!r})") from None
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise KeyError(f"{where} has no {key!r} (at {part!r})")
    if not isinstance(obj, (int, float)) or isinstance(obj, bool):
        raise KeyError(f"{where}: {key!r} is not a number")
    return float(obj)


def file_values(root: Path, run: str, seeds: list[int], name: str, key: str) -> list[float]:
    """KEY (or KEY/KEY) of <root>/<run>/s<k>/<name> for every seed in `seeds`."""
    if "/" in name or ".." in name or not name.endswith(".json"):
        raise KeyError(f"{name!r} is not a JSON file name of a run's seed folder")
    out = []
    for s in seeds:
        path = Path(root) / run / f"s{s}" / name
        if not path.is_file():
            raise KeyError(f"{path} does not exist")
        obj = json.loads(path.read_text())
        num, _, den = key.partition("/")
        v = _path(obj, num, str(path))
        out.append(v / _path(obj, den, str(path)) if den else v)
    return out


def train_episodes_per_task(configs: dict[int, dict], seeds: list[int], folder: Path) -> float:
    """The episodes per task a run's fine-tuning trained on, mean over `seeds`, from its decoded
    policy_config.json files (`configs`: seed -> config, as the report loaded them; each records
    the episodes, `train_episodes`, and their tasks, `train_seeds`: task -> seeds). `folder` is the
    run's result folder, for the errors."""
    if not seeds:
        raise KeyError(f"no policy_config.json under {folder}")
    per_seed = []
    for s in seeds:
        path = Path(folder) / f"s{s}" / "policy_config.json"
        if s not in configs:
            raise KeyError(f"{path} does not exist")
        episodes, tasks = configs[s].get("train_episodes"), configs[s].get("train_seeds")
        if not episodes or not isinstance(tasks, dict) or not tasks:
            raise KeyError(f"{path} records no train_episodes and train_seeds")
        per_seed.append(len(episodes) / len(tasks))
    return float(np.mean(per_seed))


def _splits(arg: str) -> list[tuple[str, str]]:
    """Every way to read "A-B" as two run names, at each dash (run names may hold dashes)."""
    return [(arg[:i], arg[i + 1:]) for i, c in enumerate(arg) if c == "-"]


class Quantities:
    """What a note may name: the builder hands its numbers in as callables, this class parses
    and formats (see the module docstring)."""

    def __init__(self, root: Path, runs: Callable[[], set[str]], seeds: Callable[[str], list[int]],
                 success: Callable[[str], dict[int, float]], interval: Callable[[str], dict],
                 compare: Callable[[str, str, str], dict], task: Callable[[str, str], dict[int, float]],
                 precision: Callable[[str], str], fraction: Callable[[str, str, str], dict],
                 finetune: Callable[[str], dict[int, dict]], pending: Callable[[], set[str]] = set):
        self.root, self.runs, self.seeds, self.success = Path(root), runs, seeds, success
        self.interval, self.compare, self.task, self.precision = interval, compare, task, precision
        self.fraction, self.finetune, self.pending = fraction, finetune, pending

    NOT_RUN = "(not run yet)"

    def _not_run(self, kind: str, args: list[str]) -> bool:
        """Whether the quantity names a run of the page that has no result file yet."""
        pending = self.pending()
        if not pending or not args:
            return False
        known = self.runs() | pending
        if kind in ("diff", "diffs", "half", "mde", "verdict", "frac", "taskdiff") or (
                kind == "seedlist" and args[0] not in known):
            return any(a in known and b in known and (a in pending or b in pending) for a, b in _splits(args[0]))
        return args[0] in pending

    def _run(self, name: str) -> str:
        if name not in self.runs():
            raise KeyError(f"no run {name!r} in {self.root} (runs with results: {', '.join(sorted(self.runs()))})")
        if not self.seeds(name):
            raise KeyError(f"run {name!r} has no seed with results")
        return name

    def _pair(self, arg: str) -> tuple[str, str]:
        runs = self.runs()
        for a, b in _splits(arg):
            if a in runs and b in runs:
                return self._run(a), self._run(b)
        raise KeyError(f"{arg!r} is not RUN-RUN over runs with results")

    def value(self, kind: str, args: list[str], digits: int | None) -> str:
        if self._not_run(kind, args):
            return self.NOT_RUN
        d = digits
        if kind == "seedlist" and len(args) == 1 and args[0] not in self.runs():  # a pair's seeds
            a, b = self._pair(args[0])
            return ", ".join(map(str, self.compare(a, b, args[0])["seeds"]))
        if kind in ("mean", "seeds", "ci", "n", "seedlist", "precision") and len(args) == 1:
            run = self._run(args[0])
            v = self.success(run)
            if kind == "mean":
                return _fmt(float(np.mean(list(v.values()))), 1 if d is None else d)
            if kind == "seeds":
                return " / ".join(_fmt(v[s], 1 if d is None else d) for s in sorted(v))
            if kind == "ci":
                r = self.interval(run)
                k = 1 if d is None else d
                return f"{_fmt(r['mean'], k)} [{_fmt(r['low'], k)}, {_fmt(r['high'], k)}]"
            if kind == "n":
                return str(len(v))
            if kind == "seedlist":
                return ", ".join(map(str, sorted(v)))
            return self.precision(run)
        if kind in ("diff", "diffs", "half", "mde", "verdict") and len(args) == 1:
            a, b = self._pair(args[0])
            r = self.compare(a, b, args[0])
            k = 1 if d is None else d
            if kind == "diff":
                return f"{_fmt(r['mean'], k, True)} [{_fmt(r['low'], k, True)}, {_fmt(r['high'], k, True)}]"
            if kind == "diffs":
                return " / ".join(_fmt(x, k, True) for x in r["diffs"])
            if kind == "half":
                return _fmt((r["high"] - r["low"]) / 2, k)
            if kind == "mde":
                return _fmt(r["mde"], k) if np.isfinite(r["mde"]) else "— (one seed)"
            return r["verdict"]
        if kind == "frac" and len(args) == 1:
            a, b = self._pair(args[0])
            r = self.fraction(a, b, args[0])
            if not r["ceiling_seeds"]:
                raise KeyError(f"{b} has no seed at {a}'s precision ({r['precision']})")
            k = 0 if d is None else d
            return f"{_fmt(100 * r['ratio'], k)}% [{_fmt(100 * r['low'], k)}, {_fmt(100 * r['high'], k)}]"
        if kind in ("task", "taskseeds") and len(args) == 2:
            v = self.task(self._run(args[0]), args[1])
            k = 0 if d is None else d
            if kind == "task":
                return _fmt(float(np.mean(list(v.values()))), k)
            return " / ".join(_fmt(v[s], k) for s in sorted(v))
        if kind == "taskdiff" and len(args) == 2:
            a, b = self._pair(args[0])
            self.compare(a, b, args[0])  # one precision
            va, vb = self.task(a, args[1]), self.task(b, args[1])
            seeds = sorted(set(va) & set(vb))
            return _fmt(float(np.mean([va[s] - vb[s] for s in seeds])), 0 if d is None else d, True)
        if kind == "episodes" and len(args) == 1:
            run = self._run(args[0])
            eps = train_episodes_per_task(self.finetune(run), self.seeds(run), self.root / run)
            return _fmt(eps, 1 if d is None else d)
        if kind in ("file", "range", "fmean", "pct") and len(args) == 3:
            run = self._run(args[0])
            vals = file_values(self.root, run, self.seeds(run), args[1], args[2])
            if kind == "pct":
                return _fmt(100.0 * float(np.mean(vals)), 1 if d is None else d)
            k = 3 if d is None else d
            if kind == "file":
                return " / ".join(_fmt(x, k) for x in vals)
            if kind == "range":
                lo, hi = min(vals), max(vals)
                return _fmt(lo, k) if _fmt(lo, k) == _fmt(hi, k) else f"{_fmt(lo, k)}–{_fmt(hi, k)}"
            return _fmt(float(np.mean(vals)), k)
        raise KeyError(f"unknown quantity kind {kind!r} with {len(args)} argument(s) (care.report.notes lists them)")

    def fill(self, section: str, text: str) -> str:
        """`text` with every {kind:args} replaced; ConfigError naming the note and the quantity."""
        def one(m: re.Match) -> str:
            kind, args, digits = m.group(1), m.group(2).split(":"), m.group(3)
            try:
                return self.value(kind, args, int(digits) if digits else None)
            except (KeyError, ValueError, CareError) as e:
                msg = e.args[0] if e.args else str(e)
                raise ConfigError(f"notes.{section}: {m.group(0)} cannot be computed from the result files: {msg}") from None

        out = _FIELD.sub(one, text)
        left = re.search(r"\{[^{}]*\}", out)
        if left:
            raise ConfigError(f"notes.{section}: {left.group(0)} is not a quantity of the form {{kind:args}} "
                              "(care.report.notes lists them)")
        return out
