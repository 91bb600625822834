"""`care eval compare`: the paper's comparison table, mean +- std over training seeds.

    care eval compare --config configs/eval/compare_mt10.yaml
    care eval compare --methods '{"CARE": "runs/cmp/care_s*_eval", "scratch": "runs/cmp/none_s*_eval"}'

Each method is a glob of `care eval` output folders, one per training seed. For every method
and task the success rate of each seed is read from its `eval_info.json`; the table gives the
mean and the sample standard deviation (ddof = 1) over seeds, and the overall row does the same
with each seed's overall rate. The comparison is refused unless every folder evaluated the same
tasks on the same episode seeds, with the same step limit and observations (size, camera):
otherwise the columns would not be measured on the same episodes. How a policy executes its
chunks (`--execution`, `--n-action-steps`) belongs to the method and may differ.

With `reference` set, every other method is also compared with it *paired*: seed k of one
method against seed k of the reference (folders are paired in natural sort order, numbers
compared as numbers, so name them `..._s0_eval`, `..._s1_eval`, ..., `..._s10_eval`), on the
same evaluation episodes (both rolled out from the same simulator seeds). The training seed is
the unit: the same evaluation seeds recur in every training seed, so episodes are not
independent draws and a test pooling them over seeds would be too optimistic. Reported per
method: the per-seed differences of overall success (points), their mean +- sample std, a 95%
Student-t interval over seeds (mean +- t(0.975, S-1) * std / sqrt(S); n/a with one seed), the
95% two-level bootstrap interval of `care.evaluation.stats` (seeds, then episodes within task
of each drawn seed, each noise counted once, percentiles widened for few seeds; fixed RNG
seed), the smallest difference these seeds x episodes detect with 80% power (MDE), the verdict (holds / reversed only with the interval clear of zero and at least
5 seeds), and per seed the episodes won / lost (this method succeeded where the reference
failed, and the converse).

Outputs in `cfg.output_dir`: compare.md, compare.json (every number behind the table) and
compare.png (bars = mean, whiskers = std, dots = seeds).
"""

from __future__ import annotations

import glob
import math
import re
from pathlib import Path

import numpy as np

from care.evaluation import stats
from care.configs import CompareConfig
from care.io import atomic_write_bytes, atomic_write_json, read_json
from care.errors import ConfigError
from care.io import save_figure

# eval settings that must agree for two evaluations to be comparable (how actions are executed,
# "execution" and "n_action_steps", is part of a method and may differ)
_SAME = ("max_steps", "size", "camera")


def _episode_key(info: dict) -> tuple:
    return tuple((r["task"], tuple(r["seeds"])) for r in info["per_task"])


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def load_method(label: str, pattern: str) -> list[tuple[Path, dict]]:
    """The (folder, eval_info) pairs of one method, in natural order (s2 before s10)."""
    dirs = sorted((Path(p) for p in glob.glob(pattern) if Path(p).is_dir()), key=_natural_key)
    if not dirs:
        raise ConfigError(f"method {label!r}: no folder matches {pattern!r}")
    out = []
    for d in dirs:
        info = read_json(d / "eval_info.json")  # names the file when missing or malformed
        if "per_task" not in info or "overall" not in info:
            raise ConfigError(f"{d / 'eval_info.json'}: not a `care eval` output (no per_task/overall)")
        out.append((d, info))
    return out


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (scipy; a 95% two-sided interval)."""
    return stats.t_quantile(0.975, df)


def _outcomes(info: dict) -> dict:
    return {(r["task"], seed): bool(ok) for r in info["per_task"] for seed, ok in zip(r["seeds"], r["successes"])}


def paired(runs: dict[str, list[tuple[Path, dict]]], reference: str) -> dict:
    """Every method against `reference`, seed k with seed k, on the same episodes; the training
    seed is the unit of the intervals (see the module docstring)."""
    if reference not in runs:
        raise ConfigError(f"reference {reference!r} is not one of the methods {list(runs)}")
    ref = runs[reference]
    out = {}
    for label, pairs in runs.items():
        if label == reference:
            continue
        if len(pairs) != len(ref):
            raise ConfigError(
                f"paired comparison: {label!r} has {len(pairs)} seed folder(s), reference {reference!r} "
                f"has {len(ref)}; pairing is by folder order (s0, s1, ...), so give both the same seeds"
            )
        diffs, won, lost, episodes = [], [], [], []
        for (_, a), (_, r) in zip(pairs, ref):
            diffs.append(a["overall"]["pc_success"] - r["overall"]["pc_success"])
            oa, orf = _outcomes(a), _outcomes(r)
            won.append(sum(oa[k] and not orf[k] for k in oa))
            lost.append(sum(orf[k] and not oa[k] for k in oa))
            episodes.append(len(oa))
        d = np.array(diffs, dtype=np.float64)
        two = stats.compare_pair([a for _, a in pairs], [r for _, r in ref])
        out[label] = {
            "unit": "training seed",
            "n_seeds": len(d),
            "diff_seeds": d.tolist(),  # overall success minus the reference's, points, per seed
            "diff_mean": float(d.mean()),
            "diff_std": float(d.std(ddof=1)) if len(d) > 1 else None,
            "t_interval": stats.t_interval(d),
            # seeds, then episodes within task of each drawn seed; widened for few seeds (care.evaluation.stats)
            "bootstrap": {k: two[k] for k in ("level", "resamples", "rng_seed", "low", "high")},
            "var_seed": two["var_seed"],  # points², between training seeds
            "var_episode": two["var_episode"],  # points², one seed's mean from its episodes
            "mde": two["mde"],  # 80% power, alpha 0.05, these seeds x episodes
            "verdict": two["verdict"],
            "won_seeds": [int(v) for v in won],  # per seed: episodes this method won, lost, of how many
            "lost_seeds": [int(v) for v in lost],
            "episodes_seeds": [int(v) for v in episodes],
        }
    return out


def summarize(runs: dict[str, list[tuple[Path, dict]]], reference: str | None = None) -> dict:
    """Per method: per-task and overall success of each seed, their mean and std (and the
    paired comparison with `reference`, if given)."""
    ref_dir, ref = next(iter(runs.values()))[0]
    ref_key, ref_cfg = _episode_key(ref), ref.get("config", {})
    for label, pairs in runs.items():
        for d, info in pairs:
            if _episode_key(info) != ref_key:
                raise ConfigError(
                    f"{d} ({label}) was evaluated on other tasks or episode seeds than {ref_dir}: "
                    "re-run `care eval` with the same --tasks, --episodes-per-task and --seed"
                )
            cfg = info.get("config", {})
            diff = [k for k in _SAME if cfg.get(k) != ref_cfg.get(k)]
            if diff:
                raise ConfigError(
                    f"{d} ({label}) differs from {ref_dir} in eval settings {diff}: "
                    + ", ".join(f"{k}={cfg.get(k)!r} vs {ref_cfg.get(k)!r}" for k in diff)
                )
    tasks = [t for t, _ in ref_key]
    methods = {}
    for label, pairs in runs.items():
        per_task = np.array([[r["pc_success"] for r in info["per_task"]] for _, info in pairs])  # (S, T)
        overall = np.array([info["overall"]["pc_success"] for _, info in pairs])  # (S,)
        ddof = 1 if len(pairs) > 1 else 0
        methods[label] = {
            "runs": [str(d) for d, _ in pairs],
            "policies": [info.get("policy", {}).get("path") for _, info in pairs],
            "execution": sorted({str(info.get("config", {}).get("execution")) for _, info in pairs}),
            "n_seeds": len(pairs),
            "per_task": {
                t: {"seeds": per_task[:, i].tolist(), "mean": float(per_task[:, i].mean()),
                    "std": float(per_task[:, i].std(ddof=ddof))}
                for i, t in enumerate(tasks)
            },
            "overall": {"seeds": overall.tolist(), "mean": float(overall.mean()), "std": float(overall.std(ddof=ddof))},
        }
    episodes = ref["per_task"][0]["n_episodes"]
    summary = {"tasks": tasks, "episodes_per_task": episodes, "eval_config": ref_cfg, "methods": methods}
    if reference is not None:
        summary["reference"] = reference
        summary["paired"] = paired(runs, reference)
    return summary


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}" if len(stats["seeds"]) > 1 else f"{stats['mean']:.1f}"


def markdown(summary: dict, title: str | None = None) -> str:
    labels = list(summary["methods"])
    ms = summary["methods"]
    lines = [f"# {title}", ""] if title else []
    lines += ["| Task | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for t in summary["tasks"]:
        lines.append(f"| {t} | " + " | ".join(_cell(ms[m]["per_task"][t]) for m in labels) + " |")
    lines.append("| **Overall** | " + " | ".join(f"**{_cell(ms[m]['overall'])}**" for m in labels) + " |")
    lines.append("| seeds (overall each) | " + " | ".join(
        ", ".join(f"{v:.1f}" for v in ms[m]["overall"]["seeds"]) for m in labels) + " |")
    n_seeds = sorted({ms[m]["n_seeds"] for m in labels})
    lines += ["", f"{summary['episodes_per_task']} evaluation episodes per task and seed; "
              f"{'/'.join(map(str, n_seeds))} training seed(s) per method; ± is the sample std over seeds.", ""]
    for m in labels:
        lines.append(f"- {m} ({'/'.join(ms[m]['execution'])} execution): " + ", ".join(f"`{r}`" for r in ms[m]["runs"]))
    if summary.get("paired"):
        ref = summary["reference"]
        lines += ["", f"Paired with **{ref}** (seed k with seed k, on the same evaluation episodes):", "",
                  "| Method | Δ overall (points) | 95% CI, t over seeds | 95% CI, two-level bootstrap | MDE "
                  "| verdict | Δ per seed | episodes won / lost per seed |",
                  "|---|---:|---:|---:|---:|---|---|---|"]
        for m, pr in summary["paired"].items():
            delta = f"{pr['diff_mean']:+.1f}" + (f" ± {pr['diff_std']:.1f}" if pr["diff_std"] is not None else "")
            ti, bs = pr["t_interval"], pr["bootstrap"]
            t_cell = f"[{ti['low']:+.1f}, {ti['high']:+.1f}]" if ti else f"n/a ({pr['n_seeds']} seed)"
            mde = f"{pr['mde']:.1f}" if math.isfinite(pr["mde"]) else "— (1 seed)"
            lines.append(
                f"| {m} | {delta} | {t_cell} | [{bs['low']:+.1f}, {bs['high']:+.1f}] | {mde} | {pr['verdict']} | "
                + ", ".join(f"{v:+.1f}" for v in pr["diff_seeds"]) + " | "
                + ", ".join(f"{w} / {lo}" for w, lo in zip(pr["won_seeds"], pr["lost_seeds"])) + " |"
            )
        n_eps = sorted({n for pr in summary["paired"].values() for n in pr["episodes_seeds"]})
        lines += ["", "The training seed is the unit: Δ is a seed's overall success minus the reference's "
                  "(± the sample std over seeds); the t interval is mean ± t(0.975, S−1)·std/√S over the S "
                  "seeds (n/a with one seed); the two-level bootstrap resamples the seeds and, within each, "
                  f"its {'/'.join(map(str, n_eps))} episodes task by task (each noise counted once), and widens "
                  f"the percentiles by t(0.975, S−1)/z(0.975)·√(S/(S−1)) ({pr['bootstrap']['resamples']:,} "
                  f"resamples, RNG seed {pr['bootstrap']['rng_seed']}). MDE: the smallest true difference these seeds × episodes detect with 80% power at α = 0.05, from the observed between-seed "
                  "and episode variances. A verdict holds or is reversed only with the interval clear of 0 "
                  f"and at least {stats.MIN_SEEDS} seeds. Episodes won / lost: where this method "
                  "succeeded and the reference failed, and the converse; the same evaluation seeds recur "
                  "in every training seed, so these counts are not pooled into a test."]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ms = list(summary["methods"]), summary["methods"]
    groups = summary["tasks"] + ["overall"]
    x = np.arange(len(groups))
    w = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.13 * len(labels) * len(groups) + 3.0), 4.4))
    for j, m in enumerate(labels):
        stats = [ms[m]["per_task"][t] for t in summary["tasks"]] + [ms[m]["overall"]]
        xs = x - 0.4 + w * (j + 0.5)
        ax.bar(xs, [s["mean"] for s in stats], w, yerr=[s["std"] for s in stats], capsize=2,
               label=m, color=f"C{j}", alpha=0.85)
        for xi, s in zip(xs, stats):  # the seeds themselves
            ax.scatter([xi] * len(s["seeds"]), s["seeds"], s=6, color="k", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success (%)")
    ax.legend(fontsize=8, ncols=min(3, len(labels)), loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def compare(cfg: CompareConfig) -> dict:
    runs = {label: load_method(label, pattern) for label, pattern in cfg.methods.items()}
    summary = summarize(runs, cfg.reference)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", summary)
    text = markdown(summary, cfg.title)
    atomic_write_bytes(out / "compare.md", text.encode("utf-8"))
    plot(summary, out / "compare.png", cfg.title)
    print(text)
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'}")
    return summary
