"""Every model module's output shapes and the behaviours the design relies on (micro preset)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from care.methods.care.modeling_care import CareModel
from care.models.decoders import Attention, FourierEmbedding, FrameDecoder, PointDecoder
from care.models.latent_vlm import LatentVLM
from care.models.losses import UncertaintyWeighting
from care.presets import PRESETS, get_preset
from care.models.tokenizer import InstructionEncoder, load_tokenizer, train_bpe_tokenizer
from care.models.vision import FusedMLPProjector, VisionBackbone
from helpers import micro_configs

INSTR = ["close the drawer", "press the button from the top", "open the window"]


def micro_cfg(**kw):
    return micro_configs(**kw)[0]


def micro_method(**kw):
    return micro_configs(**kw)[1]


def tok_for(cfg):
    return train_bpe_tokenizer(INSTR, cfg.vocab_size)


def make_batch(cfg, B=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = cfg.image_size
    tracks = torch.rand(B, N, 2, generator=g) * (S - 1)
    return {
        "obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
        "future_obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
        "instruction": [INSTR[i % len(INSTR)] for i in range(B)],
        "tracks": tracks,
        "future_tracks": tracks + torch.randn(B, N, 2, generator=g) * 2,
        "visible": torch.rand(B, N, generator=g) > 0.2,
    }


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


def test_decoders_shapes_and_zero_init():
    cfg = micro_cfg()
    B, P, D, N = 2, 16, 64, 7
    z = torch.randn(B, cfg.num_latents, cfg.latent_dim)
    fd = FrameDecoder(micro_method(), cfg, D, D, P)
    cur = torch.randn(B, P, D)
    out = fd(torch.randn(B, P, D), z, cur)
    assert out.shape == (B, P, D)
    torch.testing.assert_close(out, cur)  # zero-init output: starts at "next = current"

    pd = PointDecoder(micro_method(), cfg)
    pts = torch.rand(B, N, 2) * 31
    logits = pd(pts, z)
    assert logits.shape == (B, N, 2, micro_method().point_bins)
    assert pd.displacement(logits).abs().max() < 1e-5  # starts at "points do not move"
    disp = torch.randn(B, N, 2)
    vis = torch.ones(B, N, dtype=torch.bool)
    loss = pd.loss(logits, disp, vis)
    assert loss.shape == (B,)
    torch.testing.assert_close(loss, torch.full((B,), math.log(micro_method().point_bins)))  # uniform softmax

    pr = PointDecoder(micro_method(point_mode="regression"), cfg)
    out = pr(pts, z)
    assert out.shape == (B, N, 2) and pr.displacement(out).shape == (B, N, 2)
    assert pr.loss(out, disp, vis).shape == (B,)

    assert FourierEmbedding(4)(pts / 31).shape == (B, N, 2 + 16)
    x = torch.randn(B, N, 32)
    assert Attention(32, 2)(x).shape == (B, N, 32)
    assert Attention(32, 2, context_dim=16)(x, torch.randn(B, 3, 16)).shape == (B, N, 32)


def test_point_loss_masks_invisible_and_padding_does_not_leak():
    cfg = micro_cfg()
    torch.manual_seed(0)
    pd = PointDecoder(micro_method(), cfg)
    torch.nn.init.normal_(pd.out.weight, std=0.1)  # a non-trivial decoder
    z = torch.randn(1, cfg.num_latents, cfg.latent_dim)
    pts = torch.rand(1, 4, 2) * 31
    disp = torch.randn(1, 4, 2)
    vis = torch.tensor([[True, True, False, True]])
    base = pd.loss(pd(pts, z), disp, vis)
    disp2 = disp.clone()
    disp2[0, 2] += 100.0  # an invisible point's target does not matter
    torch.testing.assert_close(pd.loss(pd(pts, z), disp2, vis), base)
    # two padded points (valid=False) change nothing for the real ones
    pts_p = torch.cat([pts, torch.rand(1, 2, 2) * 31], dim=1)
    valid = torch.tensor([[True] * 4 + [False] * 2])
    out_p = pd(pts_p, z, valid)
    torch.testing.assert_close(out_p[:, :4], pd(pts, z), atol=1e-5, rtol=1e-5)


def test_point_classification_two_hot_is_sub_bin():
    pd = PointDecoder(micro_method(point_bins=5, point_max_disp=0.125), micro_cfg())  # R = 4 px: centres -4,-2,0,2,4
    logits = torch.zeros(1, 1, 2, 5, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=5.0)
    disp = torch.tensor([[[1.0, -3.0]]])
    for _ in range(300):
        opt.zero_grad()
        pd.loss(logits, disp, torch.ones(1, 1, dtype=torch.bool)).sum().backward()
        opt.step()
    torch.testing.assert_close(pd.displacement(logits.detach()), disp, atol=0.05, rtol=0)


def test_uncertainty_weighting():
    uwl = UncertaintyWeighting({"frame": "gaussian", "point": "softmax"})
    uwl.init_from_baselines({"frame": 0.5, "point": 2.0})
    assert math.isclose(uwl.log_vars["frame"].item(), math.log(0.5), rel_tol=1e-6)
    lf, lp = torch.tensor(0.5), torch.tensor(2.0)
    total = uwl({"frame": lf, "point": lp})
    expect = 0.5 * math.exp(-math.log(0.5)) * 0.5 + 0.5 * math.log(0.5) + math.exp(-math.log(2.0)) * 2.0 + 0.5 * math.log(2.0)
    assert math.isclose(total.item(), expect, rel_tol=1e-6)
    total.backward()
    # at s = log L: Gaussian is at its optimum, softmax wants s to rise (towards log 2L)
    assert abs(float(uwl.log_vars["frame"].grad)) < 1e-6
    assert float(uwl.log_vars["point"].grad) < 0
    assert set(uwl.sigmas()) == {"frame", "point"}
    with pytest.raises(ValueError):
        UncertaintyWeighting({"x": "laplace"})


def test_tokenizer_trains_pads_and_round_trips(tmp_path):
    tok = train_bpe_tokenizer(INSTR, 320)
    assert len(tok) <= 320
    enc = InstructionEncoder(tok, 8)
    ids, mask = enc(["close the drawer", "Close the drawer", "zebra ünicode"], torch.device("cpu"))
    assert ids.shape == mask.shape == (3, 8)
    assert torch.equal(ids[0], ids[1])  # lower-cased
    assert mask[2].sum() > 0 and (ids[2][mask[2].bool()] != tok.unk_token_id).all()  # bytes: never unknown
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    assert again("close the drawer", add_special_tokens=False)["input_ids"] == tok("close the drawer", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("objective", ["multitask", "frame", "point"])
def test_care_model_forward_and_objectives(objective):
    cfg, method = micro_configs(objective=objective)
    torch.manual_seed(0)
    m = CareModel(cfg, method, tok_for(cfg))
    b = make_batch(cfg)
    base = m.init_log_vars(b)
    assert set(base) == set(m.tasks) == {"multitask": {"frame", "point"}, "frame": {"frame"}, "point": {"point"}}[objective]
    out = m(b)
    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    assert {f"loss_{t}" for t in m.tasks} | {"loss_latent", "latent_weight"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.uwl.parameters())
    assert hasattr(m, "frame_decoder") == (objective != "point")
    assert hasattr(m, "point_decoder") == (objective != "frame")


def test_latent_weight_schedule_and_ema_update():
    cfg, method = micro_configs(latent_loss_weight=0.5, latent_loss_delay=2, latent_loss_ramp=4, ema_decay=0.5)
    m = CareModel(cfg, method, tok_for(cfg))
    weights = []
    for _ in range(8):
        weights.append(m.latent_weight())
        with torch.no_grad():
            for p in m.vlm.vision.parameters():
                p.add_(1.0)
        m.after_optimizer_step()
    assert weights == [0.0, 0.0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    online = dict(m.vlm.vision.named_parameters())
    name, p = next(iter(m.target_encoder.named_parameters()))
    assert not p.requires_grad
    assert (online[name] - p).abs().mean() < 1.01  # the EMA follows (lags by ~1 after 8 steps of +1)
    assert (online[name] - p).abs().mean() > 0.5


def test_equal_task_weights_sum_the_losses_and_have_no_log_variances():
    """Tab. 4's other ablation: fixed equal weights instead of uncertainty weighting."""
    cfg, method = micro_configs(task_weighting="equal", latent_loss_weight=0.5, latent_loss_ramp=0)
    torch.manual_seed(0)
    m = CareModel(cfg, method, tok_for(cfg))
    assert len(list(m.uwl.parameters())) == 0
    b = make_batch(cfg)
    m.init_log_vars(b)
    out = m(b)
    expected = out["loss_frame"] + out["loss_point"] + 0.5 * out["loss_latent"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.point_decoder.parameters())


def test_lora_wrapping_prints_no_future_warning():
    """peft's check of a deprecated transformers property warned on every fine-tune; care hides
    exactly that warning, and nothing else."""
    import warnings

    from helpers import micro_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        micro_model(lora=True)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
