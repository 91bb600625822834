"""LAPA-style method (`--method.type lapa`): NSVQ, the stage-1 quantiser, stage 2 on the VLM,
fine-tuning from it, and the errors a user meets. Micro sizes; one stage-1 and one stage-2 run
per module, shared by the tests that read them."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from care.cli import main, parse_config
from care.configs import PretrainConfig
from care.methods.lapa.configuration_lapa import LapaConfig
from care.methods.lapa.modeling_lapa import NSVQ, LapaModel, LatentActionQuantizer
from care.models.blocks import patchify, unpatchify
from care.methods.registry import load_pretrained, load_pretrained_vlm
from care.methods.lam import LatentActionModel
from care.models.latent_vlm import LatentVLM
from care.presets import get_preset
from helpers import REPO_ROOT, make_dataset, one_thread

LAM_MICRO = str(REPO_ROOT / "configs/lam/lapa_micro.yaml")
PRETRAIN_MICRO = str(REPO_ROOT / "configs/pretrain/lapa_micro.yaml")


def read_log(out, split="train") -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if r["split"] == split}


def mean(rows, key, steps):
    return sum(rows[s][key] for s in steps) / len(steps)


def micro_lam(**kw) -> LatentActionQuantizer:
    torch.manual_seed(0)
    return LatentActionQuantizer(get_preset("micro"), dataclasses.replace(LapaConfig().preset("micro"), **kw))


def frames(B=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (B, 3, 32, 32), generator=g, dtype=torch.uint8)
    return obs, torch.randint(0, 256, (B, 3, 32, 32), generator=g, dtype=torch.uint8)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # 6 episodes, 2 tasks, with actions (fine-tuning) and without tracks (LAPA needs none)
    return make_dataset(tmp_path_factory.mktemp("data"), episodes=6, T=24, size=32, with_tracks=False)


@pytest.fixture(scope="module")
def stage1(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("lapa") / "lam"
    assert main(["lam", "--config", LAM_MICRO, "--dataset", str(dataset), "--output-dir", str(out),
                 "--steps", "40", "--log-every", "1", "--val-every", "20"]) == 0
    return out


@pytest.fixture(scope="module")
def stage2(dataset, stage1, tmp_path_factory):
    """Stage 2 on a copy of the stage-1 folder (a test deletes the copy)."""
    root = tmp_path_factory.mktemp("lapa2")
    lam = root / "lam_copy"
    shutil.copytree(stage1, lam)
    out = root / "pre"
    assert main(["pretrain", "--config", PRETRAIN_MICRO, "--method.lam", str(lam), "--dataset", str(dataset),
                 "--output-dir", str(out), "--steps", "40", "--log-every", "1", "--val-every", "20"]) == 0
    return out, lam


# --- config ---


def test_config_registered_validated_and_preset():
    cfg = parse_config(PretrainConfig, ["--method.type", "lapa", "--preset", "micro"])
    assert isinstance(cfg.method, LapaConfig) and cfg.method.lam_patch_size == 8 and cfg.model.image_size == 32
    assert (cfg.method.codebook_size, cfg.method.code_seq_len) == (8, 4)  # LAPA's
    with pytest.raises(ValueError, match=r"lam_width \(30\) must divide by lam_heads \(4\)"):
        LapaConfig(lam_width=30)
    with pytest.raises(ValueError, match="codebook_size must be >= 2.*got 1"):
        LapaConfig(codebook_size=1)
    assert LapaConfig(lam="some/dir").lam.name == "dir"  # a string from method.json becomes a Path


# --- NSVQ ---


def test_nsvq_passes_gradients_and_is_the_hard_code_at_eval():
    torch.manual_seed(0)
    vq = NSVQ(8, 4)
    z = torch.randn(16, 3, 4, requires_grad=True)
    zq, idx = vq(z, noisy=True)
    assert zq.shape == z.shape and idx.shape == (16, 3)
    hard = vq.codebook[idx]
    # the substituted noise has exactly the norm of the quantisation error
    torch.testing.assert_close((zq - z).norm(dim=-1), (z - hard).norm(dim=-1), rtol=1e-5, atol=1e-6)
    w = torch.randn(4)
    (zq * w).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # the encoder gets a gradient ...
    assert vq.codebook.grad is not None  # ... and the chosen codes their own
    used = idx.unique()
    assert vq.codebook.grad[used].abs().sum() > 0
    unused = torch.tensor([c for c in range(8) if c not in used.tolist()], dtype=torch.long)
    assert vq.codebook.grad[unused].abs().sum() == 0
    zq_eval, idx_eval = vq(z.detach(), noisy=False)
    assert torch.equal(idx_eval, idx) and torch.equal(zq_eval, vq.codebook[idx].detach())


def test_laq_shapes_gradients_and_static_pairs():
    lam = micro_lam()
    obs, fut = frames()
    x = lam.pixels(obs)
    assert patchify(x, 8).shape == (8, 16, 3 * 8 * 8) and torch.equal(unpatchify(patchify(x, 8), 8), x)
    assert torch.equal(patchify(x, 8)[0, 1], x[0, :, :8, 8:16].flatten())  # row-major patches, channel-first
    out = lam({"obs": obs, "future_obs": fut})
    assert {"loss", "loss_recon", "perplexity", "codes_used"} <= set(out)
    out["loss"].backward()
    # DDP-safe: every trainable parameter takes part in every step
    assert [n for n, p in lam.named_parameters() if p.grad is None] == []
    lam.eval()
    assert lam.latent(obs, fut).shape == (8, 4, 8)
    t = lam.targets(obs, fut)
    assert t.dtype == torch.long and t.shape == (8, 4)
    torch.testing.assert_close(lam.latent(obs, fut), lam.vq.codebook[t].detach())
    # a pair without change has a zero delta: one code sequence for every static pair
    still = lam.targets(obs, obs)
    assert (still == still[0]).all()
    # at init the decoder predicts "nothing moves" ("change" target, zero-initialised output)
    d = lam.diagnostics([{"obs": obs, "future_obs": fut}])
    assert d["recon_ratio"] == pytest.approx(1.0)


def test_dead_code_replacement_revives_an_unused_code():
    lam = micro_lam(dead_code_every=5, dead_code_until=20)
    obs, fut = frames()
    with torch.no_grad():
        lam.vq.codebook[3] = 1e3  # far from every encoder output: never chosen
    lam.train()
    lam({"obs": obs, "future_obs": fut})
    assert lam.code_usage.sum() == 0  # counted after the optimiser step, not in forward
    lam.num_updates.fill_(3)
    lam.after_optimizer_step()  # step 4: counted, nothing replaced
    assert int(lam.code_usage.sum()) == 8 * 4 and lam.code_usage[3] == 0
    assert lam.vq.codebook[3, 0] == 1e3
    lam({"obs": obs, "future_obs": fut})
    z = lam._last_z.clone()
    lam.after_optimizer_step()  # step 5: replaced
    assert lam.vq.codebook[3, 0] != 1e3 and int(lam.codes_replaced) >= 1
    assert (z - lam.vq.codebook[3].detach()).norm(dim=1).min() == 0  # it is one of the batch's z
    assert lam.code_usage.sum() == 0  # usage restarts
    lam.eval()
    with torch.no_grad():
        z_eval, _ = lam.encode(lam.pixels(obs), lam.pixels(fut))
    assert 3 in lam.vq(z_eval, noisy=False)[1]  # the revived code is chosen for the z it came from
    # past dead_code_until nothing is replaced any more
    lam.train()
    with torch.no_grad():
        lam.vq.codebook[3] = 1e3
    lam.num_updates.fill_(24)
    lam({"obs": obs, "future_obs": fut})
    lam.after_optimizer_step()
    assert lam.vq.codebook[3, 0] == 1e3


def test_prepare_training_puts_the_codebook_on_encoder_outputs():
    lam = micro_lam()
    obs, fut = frames()
    base = lam.prepare_training({"obs": obs, "future_obs": fut})
    assert base["copy_mse"] > 0
    with torch.no_grad():
        z, _ = lam.encode(lam.pixels(obs), lam.pixels(fut))
    # exact distances: the matmul form of cdist leaves ~1e-3 (the root of rounding) for equal rows
    dist = torch.cdist(lam.vq.codebook.detach(), z.reshape(-1, z.shape[-1]),
                       compute_mode="donot_use_mm_for_euclid_dist")  # (C, N)
    assert dist.min(dim=1).values.max() < 1e-5
    assert int(lam.codes_replaced) == 0 and lam.code_usage.sum() == 0


# --- stage 1 through `care lam` ---


def test_stage1_trains_through_care_lam(stage1):
    log = read_log(stage1)
    assert set(log) == set(range(1, 41))
    assert mean(log, "loss_recon", range(33, 41)) < mean(log, "loss_recon", range(1, 9))
    val = json.loads((stage1 / "val_metrics.json").read_text())
    assert [h["step"] for h in val["history"]] == [20, 40]
    final = val["final"]
    assert final["perplexity"] > 1 or final["codes_used"] > 1
    for k in ("recon_mse", "copy_mse", "recon_ratio", "recon_mse_shuffled", "code_usage"):
        assert np.isfinite(final[k]), k
    assert 0 < final["code_usage"] <= 1
    lam = LatentActionModel.from_pretrained(stage1)
    assert isinstance(lam, LatentActionQuantizer) and int(lam.num_updates) == 40
    assert json.loads((stage1 / "episodes.json").read_text())["stage"] == "lam"


def test_care_lam_refuses_a_single_stage_method(dataset, tmp_path, capsys):
    assert main(["lam", "--method.type", "care", "--preset", "micro", "--dataset", str(dataset),
                 "--output-dir", str(tmp_path / "x")]) == 2
    assert "no stage-1 latent action model" in capsys.readouterr().err


# --- stage 2 through `care pretrain` ---


def test_stage2_without_a_lam_is_refused(dataset, tmp_path, capsys):
    assert main(["pretrain", "--config", PRETRAIN_MICRO, "--dataset", str(dataset),
                 "--output-dir", str(tmp_path / "x"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "care lam --method.type lapa" in err and "--method.lam" in err


def test_stage2_with_another_laq_size_is_refused(dataset, stage1, tmp_path, capsys):
    assert main(["pretrain", "--config", PRETRAIN_MICRO, "--method.lam", str(stage1), "--method.code-dim", "4",
                 "--dataset", str(dataset), "--output-dir", str(tmp_path / "x"), "--steps", "2"]) == 2
    assert "code_dim: 8 != 4" in capsys.readouterr().err


def test_stage2_trains_and_keeps_the_laq_frozen(stage2, stage1):
    out, _ = stage2
    log = read_log(out)
    assert set(log) == set(range(1, 41))
    assert mean(log, "loss_ce", range(33, 41)) < mean(log, "loss_ce", range(1, 9))
    assert log[1]["loss_ce"] == pytest.approx(np.log(8), abs=1e-3)  # zero-initialised head: uniform
    val = json.loads((out / "val_metrics.json").read_text())["final"]
    assert {"code_acc", "code_acc_majority", "ce", "ce_marginal"} <= set(val)
    assert {"lam_config.json", "model.safetensors", "episodes.json"} <= {p.name for p in (out / "lam").iterdir()}
    model = load_pretrained(out)
    assert isinstance(model, LapaModel)
    assert not any(p.requires_grad for p in model.lam.parameters())
    # the LAQ did not move in stage 2
    want = LatentActionModel.from_pretrained(stage1).state_dict()
    for k, v in model.lam.state_dict().items():
        assert torch.equal(v, want[k]), k
    model.train()
    assert not model.lam.training  # never noisy, even while the VLM trains


def test_stage2_folder_loads_without_the_original_laq(stage2, dataset):
    out, lam_dir = stage2
    obs, fut = frames(4, seed=1)
    instr = ["close the drawer"] * 4
    before = load_pretrained(out).eval()
    with torch.no_grad():
        want = (before.logits(obs, instr), before.code_targets(obs, fut), before.action_latent(obs, fut, instr))
    shutil.rmtree(lam_dir)
    after = load_pretrained(out).eval()
    assert after.method.lam == out / "lam"
    with torch.no_grad():
        got = (after.logits(obs, instr), after.code_targets(obs, fut), after.action_latent(obs, fut, instr))
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert got[2].shape == (4, 4, 8)  # (B, code_seq_len, code_dim): what the probes read
    vlm = load_pretrained_vlm(out)
    assert type(vlm) is LatentVLM  # fine-tuning starts from the VLM alone


def test_finetune_from_a_stage2_folder_gives_a_policy_that_acts(stage2, dataset, tmp_path):
    from care.policy import CarePolicy

    out, _ = stage2
    ft = tmp_path / "ft"
    assert main(["finetune", "--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml"), "--pretrained", str(out),
                 "--dataset", str(dataset), "--output-dir", str(ft), "--steps", "4"]) == 0
    policy = CarePolicy.from_pretrained(ft)
    assert not any(k.startswith("lam.") or "codebook" in k for k in policy.model.state_dict())  # no LAQ in it
    got, want = policy.model.vlm.state_dict(), load_pretrained(out).vlm.state_dict()
    assert torch.equal(got["llm.embed_tokens.weight"], want["llm.embed_tokens.weight"])  # LoRA leaves it as pretrained
    action = policy.select_action(np.zeros((32, 32, 3), np.uint8), "close the drawer")
    assert action.shape == (policy.action_dim,) and np.isfinite(action).all()


def test_stage2_stores_the_laq_once_and_older_folders_still_load(stage2, tmp_path):
    """The LAQ's weights live in <folder>/lam only; a folder written when model.safetensors also
    held them (`lam.*`) loads to the same model."""
    from safetensors.torch import load_file, save_file

    out, _ = stage2
    stored = load_file(str(out / "model.safetensors"))
    assert stored and not any(k.startswith("lam.") for k in stored)
    laq = load_file(str(out / "lam" / "model.safetensors"))
    old = tmp_path / "old"
    shutil.copytree(out, old, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    save_file({**stored, **{f"lam.{k}": v for k, v in laq.items()}}, str(old / "model.safetensors"))
    obs, fut = frames(4, seed=2)
    instr = ["close the drawer"] * 4
    a, b = load_pretrained(out).eval(), load_pretrained(old).eval()
    with torch.no_grad():
        assert torch.equal(a.logits(obs, instr), b.logits(obs, instr))
        assert torch.equal(a.action_latent(obs, fut, instr), b.action_latent(obs, fut, instr))
