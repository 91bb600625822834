"""Parameter counts on the meta device against published sizes, and the memory table of
docs/DESIGN.md §7 against the command that writes it (care.training.sizing)."""

from __future__ import annotations

import pytest
import torch

from care.presets import get_preset
from care.training.sizing import (MARK_BEGIN, MARK_END, build_on_meta, fits_batch, memory_per_gpu, method_for,
                                  parameter_counts, tables)
from helpers import REPO_ROOT

GiB = 1024 ** 3


@pytest.fixture(scope="module")
def prismatic():
    return build_on_meta(get_preset("prismatic-7b"), method_for("prismatic-7b"))


def test_prismatic_7b_parts_match_the_published_models(prismatic):
    assert all(p.device.type == "meta" for p in prismatic.parameters())  # no memory was spent
    counts = parameter_counts(prismatic)
    llm, _ = counts["llm"]
    # Llama-2-7B: 6,738,415,616 parameters, of which the LM head (32000 x 4096) is not built (we read hidden states)
    assert llm == 6_738_415_616 - 32000 * 4096
    assert counts["projector"][0] == 2176 * 8704 + 8704 + 8704 * 4096 + 4096 + 4096 * 4096 + 4096  # Prismatic's fused MLP
    # frozen towers (Prismatic), truncated after the second-to-last block: one block fewer than the full models
    assert counts["vision.siglip"][1] == counts["vision.dinov2"][1] == 0
    assert counts["total"][0] == pytest.approx(7.39e9, rel=0.01)
    assert counts["total"][1] == counts["total"][0] - counts["vision.siglip"][0] - counts["vision.dinov2"][0]


def test_full_towers_have_the_published_sizes():
    """SigLIP-so400m/14 (with its pooling head) ~0.43e9 and DINOv2-L/14 ~0.30e9 at 224², built by
    care's tower classes with every block kept."""
    import dataclasses

    from care.models.vision import Dinov2Tower, SiglipTower

    cfg = dataclasses.replace(get_preset("prismatic-7b"), vision_feature_layer=-1)
    with torch.device("meta"):
        siglip, dino = SiglipTower(cfg.siglip, cfg), Dinov2Tower(cfg.dino, cfg)
    width, mlp = 1152, 4304
    map_head = (width + 3 * width * width + 3 * width + width * width + width + 2 * width
                + 2 * width * mlp + mlp + width)  # probe, attention, its out-proj, norm, MLP
    n_siglip = sum(p.numel() for p in siglip.parameters()) + 2 * width + map_head  # + post-norm and head
    n_dino = sum(p.numel() for p in dino.parameters()) + 2 * 1024  # + final norm
    assert n_siglip == pytest.approx(0.428e9, rel=0.005)
    assert n_dino == pytest.approx(0.303e9, rel=0.005)


def test_memory_estimate_says_only_fsdp2_fits_the_7b_model_on_80gb(prismatic):
    P, T = parameter_counts(prismatic)["total"]
    ddp = memory_per_gpu(prismatic, "ddp", 8, 1, checkpointing=False)
    fsdp = memory_per_gpu(prismatic, "fsdp2", 8, 1, checkpointing=False)
    assert ddp["params"] + ddp["grads"] + ddp["adamw"] == 4 * P + 16 * T  # > 100 GiB before activations
    assert ddp["total"] > 80 * GiB and fits_batch(prismatic, "ddp", 8, checkpointing=True) == 0
    sharded = (4 * P + 12 * T) / 8
    assert sharded < fsdp["params"] + fsdp["grads"] + fsdp["adamw"] < sharded + 3 * GiB  # + gathered blocks
    ac = memory_per_gpu(prismatic, "fsdp2", 8, 8, checkpointing=True)["activations"]
    no_ac = memory_per_gpu(prismatic, "fsdp2", 8, 8, checkpointing=False)["activations"]
    assert ac < no_ac / 5
    assert 0 < fits_batch(prismatic, "fsdp2", 8, checkpointing=False) < fits_batch(prismatic, "fsdp2", 8, True)


def test_design_doc_holds_the_current_table():
    doc = (REPO_ROOT / "docs/DESIGN.md").read_text()
    block = doc[doc.index(MARK_BEGIN):doc.index(MARK_END) + len(MARK_END)]
    assert block == tables(), "docs/DESIGN.md §7 is stale: run `python -m care.training.sizing --write docs/DESIGN.md`"
