"""Which episodes a probe may use: never one a stage of the model trained on."""

from __future__ import annotations

import json

import pytest

from care.errors import ConfigError
from care.probes.episodes import held_out_episodes, split_probe


def write_episodes(folder, dataset, train, val, n=2, stage="pretrain"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "episodes.json").write_text(json.dumps(
        {"dataset": str(dataset), "frame_interval": n, "stage": stage, "train": train, "val": val}))


def test_the_pretraining_dataset_probes_its_val_episodes_and_refuses_training_ones(tmp_path):
    ds, run = tmp_path / "ds", tmp_path / "run"
    ds.mkdir()
    write_episodes(run, ds, train=[0, 1, 2, 5], val=[3, 4], n=3)
    held = held_out_episodes(run, ds, list(range(6)))
    assert held.held_out == [3, 4] and held.frame_interval == 3 and not held.warnings
    assert held_out_episodes(run, ds, list(range(6)), requested=[4]).held_out == [4]
    with pytest.raises(ConfigError, match=r"episodes \[1, 5\] were trained on") as e:
        held_out_episodes(run, ds, list(range(6)), requested=[1, 3, 5])
    assert "Held-out episodes" in str(e.value) and "[3, 4]" in str(e.value)
    with pytest.raises(ConfigError, match=r"\[9\] are not in the dataset"):
        held_out_episodes(run, ds, list(range(6)), requested=[9])


def test_another_dataset_is_held_out_entirely(tmp_path):
    run, other = tmp_path / "run", tmp_path / "probe_ds"
    other.mkdir()
    write_episodes(run, tmp_path / "pretrain_ds", train=[0, 1], val=[2])
    held = held_out_episodes(run, other, [0, 1, 2, 3])
    assert held.held_out == [0, 1, 2, 3] and "not the dataset any stage was trained on" in held.notes[0]
    assert not held.warnings


def test_no_episodes_json_is_said_clearly(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="episodes.json not found.*cannot tell which episodes"):
        held_out_episodes(tmp_path / "run", tmp_path, [0])


def test_a_two_stage_model_excludes_its_stage_1_training_episodes_too(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    lam_run, run = tmp_path / "lam_run", tmp_path / "run"
    write_episodes(lam_run, ds, train=[0, 1, 2, 3], val=[4, 5, 6], stage="lam")
    write_episodes(run, ds, train=[0, 1, 2, 4], val=[3, 5, 6])  # another split: 4 and 3 are now trained on
    (run / "method.json").write_text(json.dumps({"type": "como", "lam": str(lam_run)}))
    held = held_out_episodes(run, ds, list(range(7)))
    assert held.held_out == [5, 6] and len(held.stages) == 2
    with pytest.raises(ConfigError, match=r"episodes \[3\] were trained on.*lam \("):
        held_out_episodes(run, ds, list(range(7)), requested=[3, 5])
    # the stage-2 folder's own copy of stage 1 (<run>/lam) is found without the original folder
    (run / "method.json").write_text(json.dumps({"type": "como", "lam": str(tmp_path / "gone")}))
    write_episodes(run / "lam", ds, train=[0, 1, 2, 3], val=[4, 5, 6], stage="lam")
    assert held_out_episodes(run, ds, list(range(7))).held_out == [5, 6]
    # a stage-2 model whose stage-1 record cannot be found: nothing is measured
    (run / "lam" / "episodes.json").unlink()
    with pytest.raises(ConfigError, match="stage-1 run's episodes.json was not found.*will not measure"):
        held_out_episodes(run, ds, list(range(7)))


def test_probe_split_is_per_task_seeded_and_independent_of_other_tasks():
    groups = {"a": [0, 1, 2, 3], "b": [10, 11], "c": [20]}
    train, test, notes = split_probe(groups, 0.5, seed=0)
    assert sorted(train + test) == [0, 1, 2, 3, 10, 11, 20]
    assert len(set(test) & {0, 1, 2, 3}) == 2 and len(set(test) & {10, 11}) == 1 and 20 in train
    assert "'c'" in notes[0]
    assert split_probe(groups, 0.5, seed=0) == (train, test, notes)
    alone = split_probe({"a": [0, 1, 2, 3]}, 0.5, seed=0)  # another task set: same split of "a"
    assert set(alone[1]) == set(test) & {0, 1, 2, 3}
    assert any(split_probe(groups, 0.5, seed=s)[1] != test for s in range(1, 6))


def test_an_extra_pretraining_dataset_without_episode_lists_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "episodes.json").write_text(json.dumps({"dataset": str(tmp_path / "a"), "frame_interval": 2, "train": [0],
                                                   "val": [1], "extra": [{"dataset": str(tmp_path / "b")}]}))
    with pytest.raises(ConfigError, match="malformed episodes file") as e:
        held_out_episodes(run, tmp_path / "b", [0, 1])
    assert str(run / "episodes.json") in str(e.value)
