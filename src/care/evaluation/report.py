"""What `care eval` writes for people: a Markdown table and a bar chart of success per task.

Both read the `eval_info.json` dictionary (see care.evaluation.evaluate), so a report can be
re-made from a finished evaluation without running it again.
"""

from __future__ import annotations

from pathlib import Path

from care.io import atomic_write_bytes, save_figure


def markdown_table(info: dict, title: str | None = None) -> str:
    """Success per task and overall, as a Markdown table (paper style: success in %)."""
    lines = []
    if title:
        lines += [f"# {title}", ""]
    lines += [
        "| Task | Success (%) | Episodes | Mean length |",
        "|---|---:|---:|---:|",
    ]
    for row in info["per_task"]:
        lines.append(
            f"| {row['task']} | {row['pc_success']:.1f} | {row['n_episodes']} | {row['avg_episode_length']:.1f} |"
        )
    o = info["overall"]
    lines.append(f"| **Overall** | **{o['pc_success']:.1f}** | {o['n_episodes']} | {o['avg_episode_length']:.1f} |")
    return "\n".join(lines) + "\n"


def write_markdown(info: dict, path: Path, title: str | None = None, extra: str = "") -> Path:
    path = Path(path)
    atomic_write_bytes(path, (markdown_table(info, title) + (f"\n{extra}\n" if extra else "")).encode("utf-8"))
    return path


def plot_success(info: dict, path: Path, title: str | None = None) -> Path:
    """Bar chart of success rate per task (and overall), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on these machines
    import matplotlib.pyplot as plt

    tasks = [r["task"] for r in info["per_task"]] + ["overall"]
    values = [r["pc_success"] for r in info["per_task"]] + [info["overall"]["pc_success"]]
    colors = ["tab:blue"] * (len(tasks) - 1) + ["tab:gray"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(tasks) + 1.5), 3.6))
    bars = ax.bar(range(len(tasks)), values, color=colors)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v + 1.5, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success (%)")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


