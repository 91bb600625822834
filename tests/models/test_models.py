"""Every generic model module's output shapes and the behaviours the design relies on (micro
preset); CARE's own parts are tests/methods/test_care.py's."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from care.models.latent_vlm import LatentVLM
from care.presets import PRESETS, get_preset
from care.models.tokenizer import InstructionEncoder, load_tokenizer, train_bpe_tokenizer
from care.models.vision import FusedMLPProjector, VisionBackbone
from helpers import micro_configs

from helpers import MODEL_INSTR, make_batch, micro_cfg, micro_method, tok_for


def test_presets_build_configs():
    assert {"micro", "tiny", "base", "pretrained"} <= set(PRESETS)
    assert get_preset("tiny") == type(get_preset("tiny"))()  # tiny is the embedded default
    with pytest.raises(Exception, match="unknown model preset"):
        get_preset("huge")


def test_vision_backbone_and_projector_shapes():
    cfg = micro_cfg()
    vis = VisionBackbone(cfg)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    f = vis(x)
    P = (32 // 8) ** 2
    assert f.shape == (2, P, cfg.siglip.hidden_size + cfg.dino.hidden_size) == (2, P, vis.feature_dim)
    assert FusedMLPProjector(vis.feature_dim, cfg.hidden_size)(f).shape == (2, P, cfg.hidden_size)
    # feature layer -1 keeps every block; -2 drops the last one (Prismatic)
    deeper = dataclasses.replace(cfg.siglip, num_layers=3)
    cfg2 = micro_cfg(siglip=deeper, dino=deeper, vision_feature_layer=-2)
    assert len(VisionBackbone(cfg2).towers["siglip"].blocks()) == 2
    # another image size is resized inside the tower
    assert vis(torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)).shape == (1, P, vis.feature_dim)


def test_latent_vlm_views_shapes_and_batch_independence():
    cfg = micro_cfg()
    torch.manual_seed(0)
    vlm = LatentVLM(cfg, tok_for(cfg)).eval()
    b = make_batch(cfg)
    z_inv, h_inv = vlm.encode(b["obs"], b["instruction"], b["future_obs"])
    z_pol, h_pol = vlm.encode(b["obs"], b["instruction"])
    K = cfg.num_latents
    assert z_inv.shape == z_pol.shape == (3, K, cfg.latent_dim)
    assert h_inv.shape == h_pol.shape == (3, K, cfg.hidden_size)
    assert not torch.allclose(z_inv, z_pol)  # the views differ
    # a sample's latent does not depend on the rest of its batch (fixed text padding, masks)
    z1, _ = vlm.encode(b["obs"][1:2], b["instruction"][1:2], b["future_obs"][1:2])
    torch.testing.assert_close(z1, z_inv[1:2], atol=1e-5, rtol=1e-5)
    # the inverse view reads o_{t+n}
    z_other, _ = vlm.encode(b["obs"], b["instruction"], b["obs"])
    assert (z_other - z_inv).abs().max() > 1e-3


def test_llm_init_is_explicit_and_wide():
    cfg = micro_cfg()
    vlm = LatentVLM(cfg, tok_for(cfg))
    std = vlm.llm.layers[0].self_attn.q_proj.weight.std().item()
    assert abs(std - 1 / math.sqrt(cfg.hidden_size)) < 0.2 / math.sqrt(cfg.hidden_size)  # not HF's 0.02


def test_tokenizer_trains_pads_and_round_trips(tmp_path):
    tok = train_bpe_tokenizer(MODEL_INSTR, 320)
    assert len(tok) <= 320
    enc = InstructionEncoder(tok, 8)
    ids, mask = enc(["close the drawer", "Close the drawer", "zebra ünicode"], torch.device("cpu"))
    assert ids.shape == mask.shape == (3, 8)
    assert torch.equal(ids[0], ids[1])  # lower-cased
    assert mask[2].sum() > 0 and (ids[2][mask[2].bool()] != tok.unk_token_id).all()  # bytes: never unknown
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    assert again("close the drawer", add_special_tokens=False)["input_ids"] == tok("close the drawer", add_special_tokens=False)["input_ids"]


def test_lora_wrapping_prints_no_future_warning():
    """peft's check of a deprecated transformers property warned on every fine-tune; care hides
    exactly that warning, and nothing else."""
    import warnings

    from helpers import micro_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        micro_model(lora=True)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
