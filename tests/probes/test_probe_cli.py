"""`care probe` end to end on a micro CARE model and a micro dataset (seconds)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from care.cli import main, parse_config
from care.configs import ProbeConfig
from helpers import make_dataset, micro_configs

KEYS = {"lp_mse", "lp_mse_mean_action", "lp_mse_random_init", "lp_mse_state_change", "s_pcfc", "s_pcfc_centered",
        "s_pcfc_target_only", "s_pcfc_state_change", "semantic_accuracy", "semantic_initial", "semantic_initial_x10",
        "semantic_frames", "semantic_chance", "method", "model", "dataset", "episodes", "frame_interval", "settings",
        "seed"}
FAST = ["--epochs", "40", "--semantic-epochs", "10", "--max-clips", "4", "--batch-size", "16"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A saved micro CARE model whose run trained on episodes 0-3 of an 8-episode, 2-task dataset."""
    from care.data.lerobot import LeRobotDataset
    from care.methods.care.modeling_care import CareModel
    from care.models.tokenizer import build_tokenizer

    tmp = tmp_path_factory.mktemp("probe")
    ds = make_dataset(tmp, episodes=8, T=24, size=32, tasks=2)
    cfg, method = micro_configs()
    torch.manual_seed(1)  # not the probe's seed: its random-weights reference must differ
    model = CareModel(cfg, method, build_tokenizer(cfg, LeRobotDataset(ds).tasks()))
    out = model.save_pretrained(tmp / "run")
    (out / "episodes.json").write_text(json.dumps(  # as care.training.pretrain.run_pretraining writes it
        {"dataset": str(ds.resolve()), "frame_interval": 2, "stage": "pretrain", "train": [0, 1, 2, 3],
         "val": [4, 5, 6, 7]}))
    return out, ds


def test_care_probe_writes_the_metrics_table_and_plot(run, tmp_path, capsys):
    model, ds = run
    out = tmp_path / "probe"
    assert main(["probe", "--model", str(model), "--dataset", str(ds), "--output-dir", str(out), *FAST]) == 0
    info = json.loads((out / "probe.json").read_text())
    assert KEYS <= set(info)
    assert info["method"] == "care" and info["frame_interval"] == 2
    eps = info["episodes"]
    assert sorted(eps["probe_train"] + eps["probe_test"]) == [4, 5, 6, 7] and len(eps["probe_test"]) == 2
    assert eps["excluded_trained_on"] == [0, 1, 2, 3]
    for k in ("lp_mse", "lp_mse_mean_action", "lp_mse_random_init", "lp_mse_state_change", "s_pcfc",
              "semantic_accuracy", "semantic_initial", "semantic_frames"):
        assert isinstance(info[k], float), k
    assert info["s_pcfc_target_only"] == pytest.approx(1.0)
    assert -1.0 <= info["s_pcfc"] <= 1.0 and 0.0 <= info["semantic_accuracy"] <= 1.0
    assert info["lp_mse_random_init"] != info["lp_mse"]
    assert {"probe.json", "probe.md", "latents.png", "run_config.yaml"} <= {p.name for p in out.iterdir()}
    md = (out / "probe.md").read_text()
    assert "| LP-MSE (↓) |" in md and "Initial frame + 9 care latent actions" in md
    assert (out / "latents.png").read_bytes()[:4] == b"\x89PNG"
    cfg = parse_config(ProbeConfig, ["--config", str(out / "run_config.yaml")])  # the run's config reads back
    assert cfg.epochs == 40 and cfg.max_clips == 4 and cfg.model == model
    assert "LP-MSE" in capsys.readouterr().out

    # an existing probe is not replaced without --overwrite
    assert main(["probe", "--model", str(model), "--dataset", str(ds), "--output-dir", str(out), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_probing_training_episodes_is_refused_naming_them(run, tmp_path, capsys):
    model, ds = run
    rc = main(["probe", "--model", str(model), "--dataset", str(ds), "--output-dir", str(tmp_path / "p"),
               "--episodes", "[1, 3, 5]", *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "episodes [1, 3] were trained on" in err and "[4, 5, 6, 7]" in err
    assert not (tmp_path / "p").exists()


def test_random_init_model_reinitialises_a_stage_1_model_too(run, monkeypatch):
    """A two-stage model reads its latent from `.lam`: the random-weights reference must not keep
    the trained stage-1 weights (a fake method stands in for LAPA / CoMo)."""
    import care.methods.registry as registry
    from care.methods.two_stage import TwoStageModel
    from care.probes.latents import random_init_model

    class FakeLam(nn.Module):
        def __init__(self, cfg, method):
            super().__init__()
            self.cfg, self.method = cfg, method
            self.w = nn.Linear(4, 4)

    class FakeStage2(nn.Module):
        def __init__(self, cfg, method, tokenizer):
            super().__init__()
            self.cfg, self.method = cfg, method
            self.head = nn.Linear(2, 2)
            lam = FakeLam(cfg, method)
            nn.init.zeros_(lam.w.weight)  # "trained" stage-1 weights, as loaded from <run>/lam
            object.__setattr__(self, "lam", lam)  # outside the state dict, as TwoStageModel keeps it

        reset_loaded_parts = TwoStageModel.reset_loaded_parts

    monkeypatch.setattr(registry, "model_class", lambda method: FakeStage2)
    a, b = random_init_model(run[0], seed=3), random_init_model(run[0], seed=3)
    assert a.lam.w.weight.abs().sum() > 0 and "lam" not in a._modules
    assert torch.equal(a.lam.w.weight, b.lam.w.weight) and torch.equal(a.head.weight, b.head.weight)  # seeded


def test_too_few_held_out_episodes_says_what_fixes_it(tmp_path, capsys):
    """A model pretrained with one validation episode per task, probed on its own dataset: the
    advice is the pretraining's clip.val_episodes_per_task (collecting more would not help)."""
    from care.data.lerobot import LeRobotDataset
    from care.methods.care.modeling_care import CareModel
    from care.models.tokenizer import build_tokenizer

    ds = make_dataset(tmp_path, episodes=6, T=24, size=32, tasks=2)
    cfg, method = micro_configs()
    out = CareModel(cfg, method, build_tokenizer(cfg, LeRobotDataset(ds).tasks())).save_pretrained(tmp_path / "run")
    (out / "episodes.json").write_text(json.dumps(
        {"dataset": str(ds.resolve()), "frame_interval": 2, "stage": "pretrain", "train": [0, 1, 2, 3],
         "val": [4, 5]}))  # one held-out episode per task
    rc = main(["probe", "--model", str(out), "--dataset", str(ds), "--output-dir", str(tmp_path / "p"), *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--clip.val-episodes-per-task 2" in err and "collect a probe dataset with more episodes" not in err
