"""What `care probe` writes for people: probe.md (a Markdown table) and latents.png.

Both read the probe.json dictionary (care.probes.run), so they can be remade from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from care.io import atomic_write_bytes, save_figure


def _fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def markdown_table(info: dict) -> str:
    """The three metrics beside their references (paper Tab. 2 and Tab. 3 layout)."""
    ep = info["episodes"]
    lines = [
        f"# Latent probes: {info['method']} ({info['model']})",
        "",
        f"Dataset {info['dataset']}, n = {info['frame_interval']}, {len(ep['probe_train'])} probe-train / "
        f"{len(ep['probe_test'])} probe-test held-out episodes, seed {info['seed']}.",
        "",
        "| Metric | Value | References |",
        "|---|---:|---|",
        f"| LP-MSE (↓) | {_fmt(info['lp_mse'])} | mean action {_fmt(info['lp_mse_mean_action'])}; "
        f"random weights {_fmt(info['lp_mse_random_init'])}; state change {_fmt(info['lp_mse_state_change'])} |",
        f"| S-PCFC (↓) | {_fmt(info['s_pcfc'])} | centred {_fmt(info['s_pcfc_centered'])}; target frame only "
        f"{_fmt(info['s_pcfc_target_only'])}; state change {_fmt(info['s_pcfc_state_change'])} |",
        "",
        f"| Semantic input (task from the sequence) | Accuracy (%) ↑ |",
        "|---|---:|",
        f"| Initial frame | {_pct(info['semantic_initial'])} |",
        f"| Initial frame repeated 10 times | {_pct(info['semantic_initial_x10'])} |",
        f"| Initial frame + 9 later frames | {_pct(info['semantic_frames'])} |",
        f"| Initial frame + 9 {info['method']} latent actions | **{_pct(info['semantic_accuracy'])}** |",
        f"| (chance) | {_pct(info['semantic_chance'])} |",
        "",
        "How each number is computed: probe.json `settings`.",
    ]
    for w in info.get("warnings", []):
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines) + "\n"


def write_markdown(info: dict, path: Path) -> Path:
    atomic_write_bytes(Path(path), markdown_table(info).encode("utf-8"))
    return Path(path)


AXES = "xyz"


def motion_labels(motion: np.ndarray, still_quantile: float = 0.25) -> list[str]:
    """The dominant direction of each clip's motion (N, k <= 3): "+x", "-z", ...; the
    `still_quantile` of clips that move least are "still" (their direction is noise)."""
    motion = np.asarray(motion, dtype=np.float64)[:, :3]
    if not len(motion):
        return []
    mag = np.abs(motion).max(axis=1)
    still = mag <= np.quantile(mag, still_quantile)
    axis = np.abs(motion).argmax(axis=1)
    sign = np.sign(motion[np.arange(len(motion)), axis])
    return ["still" if s else f"{'+' if g >= 0 else '-'}{AXES[a]}" for s, a, g in zip(still, axis, sign)]


def plot_latents(proj: np.ndarray, var_ratio: np.ndarray, tasks: list[str], motion: np.ndarray, path: Path,
                 title: str = "") -> Path:
    """Two scatter plots of the same 2-D PCA projection of held-out latents: coloured by task
    (left) and by the dominant direction of the end effector's motion over the clip (right:
    the largest of |motion| (N, <=3), with its sign; the quarter of clips that move least in grey)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on these machines
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    names = sorted(set(tasks))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        m = np.array([t == name for t in tasks])
        ax1.scatter(proj[m, 0], proj[m, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=name)
    ax1.legend(fontsize=6, markerscale=2, loc="best")
    ax1.set_title("by task", fontsize=9)
    labels = motion_labels(motion)
    colours = {"+x": "tab:red", "-x": "tab:pink", "+y": "tab:green", "-y": "tab:olive", "+z": "tab:blue",
               "-z": "tab:cyan", "still": "lightgrey"}
    for name, colour in colours.items():
        m = np.array([lab == name for lab in labels], dtype=bool)
        if m.any():
            ax2.scatter(proj[m, 0], proj[m, 1], s=6, alpha=0.7, color=colour, label=name)
    ax2.legend(fontsize=6, markerscale=2, loc="best", title="moves mostly", title_fontsize=6)
    ax2.set_title("by end-effector motion (summed actions a_t..a_t+n-1, dims 0-2)", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xlabel(f"PC 1 ({100 * var_ratio[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * var_ratio[1]:.0f}%)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
