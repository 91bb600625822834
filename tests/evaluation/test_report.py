"""Evaluation outputs: aggregation keys, Markdown table, bar chart, mp4 round trip."""

import numpy as np

from care.evaluation.evaluate import aggregate
from care.evaluation.report import markdown_table, plot_success
from care.data.video import read_mp4, write_mp4


def _episodes():
    rows = []
    for task, succ in (("reach-v3", [1, 1, 0, 1]), ("push-v3", [0, 0, 1, 0])):
        for i, s in enumerate(succ):
            rows.append({"task": task, "episode_ix": i, "seed": 1000 + i, "success": bool(s),
                         "length": 10 + i if s else 50, "sum_reward": None, "video_path": None})
    return rows


def test_aggregate_per_task_and_overall():
    info = aggregate(_episodes(), ["reach-v3", "push-v3"])
    reach, push = info["per_task"]
    assert reach["task"] == "reach-v3" and reach["pc_success"] == 75.0 and reach["n_episodes"] == 4
    assert reach["avg_episode_length"] == (10 + 11 + 50 + 13) / 4
    assert push["pc_success"] == 25.0 and push["successes"] == [False, False, True, False]
    assert info["overall"]["pc_success"] == 50.0 and info["overall"]["n_episodes"] == 8
    assert info["overall"]["avg_sum_reward"] is None


def test_markdown_and_plot(tmp_path):
    info = aggregate(_episodes(), ["reach-v3", "push-v3"])
    md = markdown_table(info)
    assert "| reach-v3 | 75.0 | 4 |" in md and "**Overall** | **50.0**" in md
    path = plot_success(info, tmp_path / "s.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_mp4_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, size=(1, 33, 32, 3), dtype=np.uint8), 5, axis=0)
    frames[:, :16] = 0  # some structure for the codec
    path = write_mp4(tmp_path / "v" / "a.mp4", frames, fps=10)
    back = read_mp4(path)
    assert back.shape == (5, 34, 32, 3)  # odd height padded to even
