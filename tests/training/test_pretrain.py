"""Micro pretraining end to end on a synthetic dataset (tests/helpers.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from care.cli import main
from care.configs import PretrainConfig
from care.errors import DatasetError
from care.methods.care.modeling_care import CareModel
from care.training import pretrain as P
from care.training.loop_utils import TrainingDiverged
from helpers import REPO_ROOT, micro_configs


def micro_config(root, out, **kw) -> PretrainConfig:
    model, method = micro_configs(**kw.pop("model_kw", {}))
    cfg = PretrainConfig(
        dataset=root, output_dir=out, model=model, method=method,
        frame_interval=2, steps=20, batch_size=8, num_workers=0, log_every=1, val_every=0, val_batches=2,
        save_every=0, seed=0,
    )
    cfg.optim.lr, cfg.optim.warmup_steps, cfg.method.log_var_lr = 2e-3, 3, 2e-2
    cfg.clip.val_episodes_per_task = 1
    return dataclasses.replace(cfg, **kw)


def read_log(out, split="train") -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if r["split"] == split}


def mean(rows, key, steps):
    return sum(rows[s][key] for s in steps) / len(steps)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from helpers import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data"), episodes=6, T=24, size=32)


def test_micro_pretraining_loss_falls_uwl_moves_and_writes_outputs(dataset, tmp_path):
    out = tmp_path / "run"
    cfg = micro_config(dataset, out, steps=40, val_every=20, save_every=20, keep_checkpoints=1)
    assert P.pretrain(cfg) == 0
    log = read_log(out)
    assert set(log) == set(range(1, 41))
    for key in ("loss_point", "loss_frame"):
        assert mean(log, key, range(36, 41)) < mean(log, key, range(1, 6)), key
    for key in ("log_var_point", "log_var_frame"):  # the uncertainty weights move
        assert abs(log[40][key] - log[1][key]) > 0.05, key
    assert {"grad_norm", "lr", "samples_per_s", "sigma_frame", "sigma_point", "loss_latent"} <= set(log[1])
    assert log[1]["lr"] < log[3]["lr"] and log[40]["lr"] < log[10]["lr"]  # warm-up, then cosine
    # outputs
    names = {p.name for p in out.iterdir()}
    assert {"run_config.yaml", "config.json", "method.json", "model.safetensors", "tokenizer.json", "train_log.jsonl",
            "val_metrics.json", "tensorboard", "checkpoints"} <= names
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000040"]  # keep_checkpoints=1
    assert any((out / "tensorboard").iterdir())
    val = json.loads((out / "val_metrics.json").read_text())
    assert [h["step"] for h in val["history"]] == [20, 40]
    for k in ("point_epe", "point_epe_no_motion", "point_epe_shuffled", "point_epe_policy", "frame_mse",
              "frame_mse_copy", "frame_mse_shuffled", "z_spread", "view_mse"):
        assert math.isfinite(val["final"][k]), k
    assert val["final"]["point_epe_no_motion"] > 0.3  # the synthetic pattern does drift
    model = CareModel.from_pretrained(out)
    assert int(model.num_updates) == 40


@pytest.mark.parametrize("objective", ["frame", "point"])
def test_single_objectives_train(dataset, tmp_path, objective):
    out = tmp_path / objective
    P.pretrain(micro_config(dataset, out, steps=16, model_kw={"objective": objective}))
    log = read_log(out)
    key = f"loss_{objective}"
    other = "loss_point" if objective == "frame" else "loss_frame"
    assert mean(log, key, range(13, 17)) < mean(log, key, range(1, 5))
    assert other not in log[1]


def test_resume_reproduces_the_uninterrupted_losses(dataset, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    P.pretrain(micro_config(dataset, full, steps=8, save_every=4))

    import care.training.checkpoint as C  # the loop saves through care.training.parallel's strategy, which calls it

    real_save = C.save_checkpoint

    def save_then_die(*a, **kw):
        real_save(*a, **kw)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(C, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        P.pretrain(micro_config(dataset, cut, steps=8, save_every=4))
    monkeypatch.setattr(C, "save_checkpoint", real_save)
    assert (cut / "checkpoints" / "step_00000004").is_dir()
    P.pretrain(micro_config(dataset, cut, steps=8, save_every=4, resume=True))

    a, b = read_log(full), read_log(cut)
    assert set(b) == set(range(1, 9))
    for step in range(5, 9):
        for key in ("loss", "loss_frame", "loss_point", "loss_latent", "log_var_point", "grad_norm"):
            assert abs(a[step][key] - b[step][key]) <= 1e-6, (step, key, a[step][key], b[step][key])
    wa = CareModel.from_pretrained(full).state_dict()
    wb = CareModel.from_pretrained(cut).state_dict()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-6, rtol=0, msg=k)


def test_dataset_without_tracks(tmp_path, make_dataset):
    root = make_dataset(episodes=4, T=16, size=32, with_tracks=False)
    for objective in ("multitask", "point"):
        with pytest.raises(DatasetError, match=r"care track --dataset .*--method.objective=frame"):
            P.pretrain(micro_config(root, tmp_path / objective, steps=2, model_kw={"objective": objective}))
    assert P.pretrain(micro_config(root, tmp_path / "frame", steps=2, model_kw={"objective": "frame"})) == 0


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    real_forward = CareModel.forward
    calls = {"n": 0}

    def forward(self, batch):
        out = real_forward(self, batch)
        calls["n"] += 1
        if calls["n"] >= 6:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(CareModel, "forward", forward)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 6.*step_00000004"):
        P.pretrain(micro_config(dataset, out, steps=10, save_every=2, keep_checkpoints=5))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    assert not (out / "model.safetensors").exists()


def test_cli_pretrain_with_the_micro_yaml(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["pretrain", "--config", str(REPO_ROOT / "configs/pretrain/care_micro.yaml"), "--dataset", str(dataset),
               "--output-dir", str(out), "--steps", "3", "--val-every", "0", "--save-every", "0"])
    assert rc == 0 and (out / "model.safetensors").is_file() and (out / "run_config.yaml").is_file()
    text = (out / "run_config.yaml").read_text()
    assert "preset: micro" in text and "type: care" in text
    # the run config reads back as a --config (one spelling for files and flags)
    again = main(["pretrain", "--config", str(out / "run_config.yaml"), "--output-dir", str(tmp_path / "again")])
    assert again == 0 and CareModel.from_pretrained(tmp_path / "again").method.decoder_width == 32


def test_time_limit_stops_cleanly(dataset, tmp_path):
    out = tmp_path / "limited"
    assert P.pretrain(micro_config(dataset, out, steps=50, save_every=10, val_every=0, time_limit_minutes=0.0)) == 0
    assert int(CareModel.from_pretrained(out).num_updates) == 1  # stopped after the first step
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000001"]
    assert json.loads((out / "val_metrics.json").read_text())["final"]["step"] == 1


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps one mixed-precision setting per process; a CLI run never changes it,
    a test that does must reset it (before, and after for the tests that follow)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_bf16_autocast_and_gradient_checkpointing_run(dataset, tmp_path, fresh_accelerate_state):
    out = tmp_path / "bf16"
    cfg = micro_config(dataset, out, steps=3, mixed_precision="bf16", gradient_checkpointing=True)
    assert P.pretrain(cfg) == 0
    log = read_log(out)
    assert all(math.isfinite(log[s]["loss"]) for s in (1, 2, 3))


def test_pretraining_on_several_datasets_records_each_split_for_the_probes(dataset, tmp_path, make_dataset, capsys):
    from care.probes.episodes import held_out_episodes

    other = make_dataset(episodes=4, T=20, size=32)
    out = tmp_path / "multi"
    rc = main(["pretrain", "--config", str(REPO_ROOT / "configs/pretrain/care_micro.yaml"), "--dataset", str(dataset),
               "--extra-datasets", f"[{other}]", "--output-dir", str(out), "--steps", "3", "--val-every", "0",
               "--save-every", "0", "--clip.val-episodes-per-task", "1"])
    assert rc == 0 and (out / "model.safetensors").is_file()
    rec = json.loads((out / "episodes.json").read_text())
    assert rec["dataset"] == str(dataset.resolve()) and len(rec["extra"]) == 1
    extra = rec["extra"][0]
    assert extra["dataset"] == str(other.resolve())
    # 2 tasks x 1 held-out episode in each dataset; the rest trained on
    assert len(rec["val"]) == 2 and len(rec["train"]) == 4 and len(extra["val"]) == 2 and len(extra["train"]) == 2
    assert sorted(extra["train"] + extra["val"]) == [0, 1, 2, 3]
    # the training clips are both datasets' (each split by task as a single dataset is)
    cfg = P.PretrainConfig(dataset=dataset, extra_datasets=[other], frame_interval=2)
    cfg.clip.val_episodes_per_task = 1
    train, val = P.build_datasets(cfg)
    assert len(train) == sum(len(p) for p in train.parts) and len(train.parts) == 2 and len(val.parts) == 2
    # a probe on the extra dataset excludes exactly its training episodes
    held = held_out_episodes(out, other, [0, 1, 2, 3])
    assert held.held_out == sorted(extra["val"]) and sorted(held.trained) == sorted(extra["train"])
    assert held_out_episodes(out, dataset, list(range(6))).held_out == sorted(rec["val"])


def test_latent_supervision_reads_only_the_labelled_episodes_actions(dataset, tmp_path, capsys):
    """`--method.action-loss-weight`: the head's sizes come from the data, the labelled episodes are
    the fine-tuning's, and every other clip's actions are zeros in the batch."""
    from care.data.clips import labelled_episodes_per_task
    from care.data.lerobot import LeRobotDataset
    from care.training.pretrain import collate_labelled

    out = tmp_path / "sup"
    rc = main(["pretrain", "--config", str(REPO_ROOT / "configs/pretrain/care_micro.yaml"), "--dataset", str(dataset),
               "--output-dir", str(out), "--steps", "4", "--log-every", "1", "--save-every", "0", "--seed", "1",
               "--method.action-loss-weight", "1.0", "--method.action-episodes-per-task", "1"])
    assert rc == 0
    method = json.loads((out / "method.json").read_text())
    assert method["action_dim"] == 4 and method["action_horizon"] == json.loads(
        (out / "episodes.json").read_text())["frame_interval"]
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r for r in logged if r.get("split") == "train"] and all("loss_action" in r for r in logged if r.get("split") == "train")
    labelled = set(labelled_episodes_per_task(LeRobotDataset(dataset), 1, 1))
    assert len(labelled) == 2  # one per task
    from care.data.clips import ClipDataset
    from care.configs import ClipConfig
    clips = ClipDataset(dataset, frame_interval=2, clip=ClipConfig(image_size=32))
    items = [clips[i] for i in range(0, len(clips), 7)]
    batch = collate_labelled(items, labelled)
    for it, lab, a in zip(items, batch["action_labelled"], batch["actions"]):
        assert bool(lab) == (int(it["episode_index"]) in labelled)
        assert torch.equal(a, it["actions"] if lab else torch.zeros_like(a))
