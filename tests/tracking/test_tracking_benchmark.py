"""benchmarks/tracking_accuracy.py runs on a dataset with ground-truth tracks and prints its table."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "tracking_accuracy.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("tracking_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_a_table(make_dataset, capsys):
    root = make_dataset(episodes=2, T=12, size=32, with_tracks=True)
    bench = load_benchmark()
    assert bench.main([str(root), "--intervals", "2", "4", "--methods", "klt,static"]) == 0
    out = capsys.readouterr().out
    for row in ("| klt | n=2 |", "| static | n=4 |", "| klt | episode |"):
        assert row in out
    assert "command: .venv/bin/python benchmarks/tracking_accuracy.py" in out


def test_scores_are_exact_on_known_errors():
    bench = load_benchmark()
    s = bench.Score()
    gt = np.zeros((4, 2))
    pred = np.array([[0.5, 0], [3, 0], [0, 10], [0, 0]])
    s.add(pred, np.array([True, True, False, True]), gt, np.array([True, True, True, False]))
    r = s.row()
    assert r["pairs"] == 3 and r["median"] == 3 and np.isclose(r["mean"], 13.5 / 3)
    # within 1, 2, 4, 8, 16 px: 1/3, 1/3, 2/3, 2/3, 3/3
    assert np.isclose(r["delta_avg"], (1 + 1 + 2 + 2 + 3) / 15)
    assert r["occ_acc"] == 0.5  # right on the first two pairs only
    assert np.isclose(r["kept"], 2 / 3) and r["median_kept"] == 1.75
