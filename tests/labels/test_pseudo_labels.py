"""`care label`: an inverse-dynamics model learns the actions from a few labelled episodes and
labels the rest into a LeRobot v3 dataset that validates and says which actions are inferred."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from care.cli import main, parse_config
from care.configs import IDMConfig, PseudoLabelConfig
from care.data.lerobot import Episode, LeRobotDataset, LeRobotDatasetWriter
from care.labels import idm as I
from care.labels.run import Features
from care.methods.care.modeling_care import CareModel
from care.models.tokenizer import build_tokenizer
from care.training.finetune import labelled_episodes as finetune_episodes
from helpers import ENV_NAMES, REPO_ROOT, TASKS, micro_configs


def drifting_frames(T: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (T, size, size, 3) frames of a smooth pattern that moves by a random velocity at each
    step, and the (T, 2) velocities (pixels per step; the last one is 0: nothing follows)."""
    rng = np.random.default_rng(seed)
    vel = rng.uniform(-1.0, 1.0, size=(T, 2))
    vel[-1] = 0.0
    shift = np.concatenate([[0.0, 0.0]], 0)[None].repeat(T, 0)
    shift[1:] = np.cumsum(vel[:-1], axis=0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    frames = np.empty((T, size, size, 3), np.uint8)
    for t in range(T):
        x, y = xx - shift[t, 0], yy - shift[t, 1]
        v = 0.5 + 0.3 * np.sin(2 * np.pi * (x / (size * 0.9) + y / (size * 1.4)) + phase)
        v = v + 0.1 * np.cos(2 * np.pi * (y / (size * 0.7) - x / (size * 2.3)))
        frames[t] = np.clip(v[..., None] * np.array([0.9, 1.0, 0.8]) * 255, 0, 255).astype(np.uint8)
    return frames, vel


M = np.array([[1.5, 0.0], [0.0, -1.5], [1.0, 1.0], [0.0, 0.0]])  # velocity -> a 4-d action, linearly


def drifting_dataset(root, episodes=32, T=16, size=32):
    """Episodes whose frames move by a random velocity at every step, and whose action a_t is a
    known linear map of the motion from o_t to o_t+1: what an IDM must learn from pixels."""
    writer = LeRobotDatasetWriter(root, fps=10, robot_type="synthetic")
    for i in range(episodes):
        frames, vel = drifting_frames(T, size, seed=i)
        writer.add_episode(Episode(frames={"corner": frames}, task=TASKS[i % 2], action=(vel @ M.T).astype(np.float32),
                                   state=np.zeros((T, 2), np.float32),
                                   extra={"success": True, "env_name": ENV_NAMES[i % 2], "seed": i}))
    writer.finalize()
    return root


FAST = ["--idm.image-size", "32", "--idm.width", "16", "--idm.hidden", "64", "--idm.batch-size", "64"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label")
    src = drifting_dataset(tmp / "ds")
    out = tmp / "pseudo"
    assert main(["label", "--dataset", str(src), "--output-dir", str(out), "--episodes-per-task", "8", "--seed", "3",
                 "--idm.steps", "1000", "--idm.lr", "0.003", "--idm.frame-interval", "1", *FAST]) == 0
    return src, out


def test_pixel_idm_learns_a_known_linear_action_from_synthetic_frames(labelled):
    src, out = labelled
    record = json.loads((out / "meta/pseudo_labels.json").read_text())
    held = record["error_held_out"]
    # the labels beat predicting the mean action by a wide margin on episodes it never trained on
    assert held["frames"] == 16 * 16
    assert held["l1"] < 0.35 * held["l1_mean_action"], held  # ~0.25 on this CPU


def test_the_labelled_episodes_are_the_ones_finetuning_trains_on(labelled):
    src, out = labelled
    record = json.loads((out / "meta/pseudo_labels.json").read_text())
    train, _ = finetune_episodes(LeRobotDataset(src), 8, 3, val_per_task=2)
    assert record["labelled_episodes"] == train
    assert sorted(record["labelled_episodes"] + record["inferred_episodes"]) == list(range(32))


def test_pseudo_labelled_dataset_validates_and_records_which_actions_are_inferred(labelled, capsys):
    src, out = labelled
    assert main(["dataset", "validate", str(out)]) == 0
    record = json.loads((out / "meta/pseudo_labels.json").read_text())
    a, b = LeRobotDataset(src), LeRobotDataset(out)
    table = pq.read_table(sorted((out / "data").rglob("*.parquet"))[0])
    flags = np.asarray(table.column("action_is_inferred").to_pylist())
    eps = table.column("episode_index").to_numpy()
    assert flags[np.isin(eps, record["labelled_episodes"])].sum() == 0
    assert flags[np.isin(eps, record["inferred_episodes"])].all()
    for e in record["labelled_episodes"]:  # recorded actions kept to the bit
        np.testing.assert_array_equal(a.episode_actions(e), b.episode_actions(e))
    changed = [not np.array_equal(a.episode_actions(e), b.episode_actions(e)) for e in record["inferred_episodes"]]
    assert all(changed)
    # same frames, same tasks
    np.testing.assert_array_equal(a.episode_frames(5), b.episode_frames(5))
    assert [a.episode_task(e) for e in a.episode_indices] == [b.episode_task(e) for e in b.episode_indices]
    episodes = pq.read_table(sorted((out / "meta/episodes").rglob("*.parquet"))[0])
    assert episodes.column("action_inferred").to_pylist() == [e in record["inferred_episodes"] for e in range(32)]


def test_an_existing_output_is_refused_and_left_whole(labelled, capsys):
    src, out = labelled
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["label", "--dataset", str(src), "--output-dir", str(out), "--idm.steps", "1", *FAST]) != 0
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_shift_pairs_moves_both_frames_of_a_pair_by_one_offset_within_the_pad():
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (16, 3, 12, 12), generator=g, dtype=torch.uint8)
    future = torch.roll(obs, shifts=1, dims=3)  # a known motion: one pixel to the right
    a, b = I.shift_pairs(2)((obs, future), torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == obs.shape and b.shape == future.shape
    padded_a = torch.nn.functional.pad(obs.float(), (2, 2, 2, 2), mode="replicate")
    padded_b = torch.nn.functional.pad(future.float(), (2, 2, 2, 2), mode="replicate")
    moved = 0
    for i in range(16):  # each pair is the crop of both padded frames at one and the same offset
        offsets = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded_a[i, :, dy:dy + 12, dx:dx + 12], a[i].float())
                   and torch.equal(padded_b[i, :, dy:dy + 12, dx:dx + 12], b[i].float())]
        assert offsets, f"pair {i} is not one crop of both frames"
        moved += (2, 2) not in offsets
    assert moved >= 8  # most pairs moved (1 in 25 stays put)
    # drawn from the generator alone: the same seed gives the same shifts
    a2, _ = I.shift_pairs(2)((obs, future), torch.Generator().manual_seed(1))
    assert torch.equal(a, a2)


def test_the_idm_shift_is_recorded_and_refused_for_the_latent_idm(labelled, tmp_path):
    src, _ = labelled
    out = tmp_path / "pseudo_shift"
    assert main(["label", "--dataset", str(src), "--output-dir", str(out), "--idm.steps", "20", "--idm.shift", "2",
                 "--idm.frame-interval", "1", *FAST]) == 0
    assert json.loads((out / "meta/pseudo_labels.json").read_text())["idm"]["shift"] == 2
    with pytest.raises(ValueError, match="idm.shift"):
        IDMConfig(type="latent", pretrained=tmp_path, shift=2)
    with pytest.raises(ValueError, match="idm.shift"):
        IDMConfig(shift=-1)


def test_average_chunks_gives_each_action_the_mean_of_the_chunks_covering_it():
    actions = np.arange(12, dtype=np.float64).reshape(6, 2)
    chunks = I.chunk_targets(actions, 3)
    assert chunks.shape == (6, 3, 2)
    np.testing.assert_array_equal(chunks[4], actions[[4, 5, 5]])
    np.testing.assert_allclose(I.average_chunks(chunks)[:5], actions[:5])  # exact chunks give back the actions
    assert I.chunk_starts(6, 3) == [(0, 3), (1, 4), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_latent_idm_reads_a_pretrained_model_and_its_frame_interval(tmp_path):
    src = drifting_dataset(tmp_path / "ds", episodes=8, T=10)
    cfg, method = micro_configs()
    model = CareModel(cfg, method, build_tokenizer(cfg, LeRobotDataset(src).tasks()))
    run = model.save_pretrained(tmp_path / "run")
    (run / "episodes.json").write_text(json.dumps({"dataset": str(src), "frame_interval": 3, "stage": "pretrain",
                                                   "train": [0, 1], "val": []}))
    feats = Features(PseudoLabelConfig(dataset=src, idm=IDMConfig(type="latent", pretrained=run)), LeRobotDataset(src))
    assert feats.horizon == 3
    (z,) = feats.episode(0)
    assert z.shape[0] == 10 and z.ndim == 2 and torch.isfinite(z).all()
    out = tmp_path / "pseudo"
    assert main(["label", "--dataset", str(src), "--output-dir", str(out), "--episodes-per-task", "2",
                 "--idm.type", "latent", "--idm.pretrained", str(run), "--idm.steps", "20", "--idm.hidden", "32"]) == 0
    record = json.loads((out / "meta/pseudo_labels.json").read_text())
    assert record["idm"]["type"] == "latent" and record["idm"]["frame_interval"] == 3
    with pytest.raises(Exception, match="frame-interval"):
        Features(PseudoLabelConfig(dataset=src, idm=IDMConfig(type="latent", pretrained=run, frame_interval=5)),
                 LeRobotDataset(src))


def test_the_shifted_idm_config_is_the_experiment_scripts_idmshift4_recipe():
    """configs/label/pixel_idm_shift.yaml documents the runs named +pseudo+idmshift4, which
    scripts/experiments/paper_mt10.sh makes as pixel_idm.yaml with --idm.shift 4: one recipe."""
    documented = parse_config(PseudoLabelConfig, ["--config", str(REPO_ROOT / "configs/label/pixel_idm_shift.yaml")])
    made = parse_config(PseudoLabelConfig, ["--config", str(REPO_ROOT / "configs/label/pixel_idm.yaml"),
                                            "--idm.shift", "4"])
    assert documented == made and documented.idm.shift == 4
