"""CARE's own parts (care.methods.care): the decoders, the uncertainty weighting, the model's
objectives, latent-loss schedule and EMA target (micro preset)."""

from __future__ import annotations

import math

import pytest
import torch

from care.methods.care.decoders import FourierEmbedding, FrameDecoder, PointDecoder
from care.methods.care.losses import UncertaintyWeighting
from care.methods.care.modeling_care import CareModel
from helpers import make_batch, micro_cfg, micro_configs, micro_method, tok_for



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


def _with_actions(cfg, labelled, B=3, H=2, A=4, seed=0):
    b = make_batch(cfg, B=B, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    b["actions"] = torch.rand(B, H, A, generator=g) * 2 - 1
    b["action_is_pad"] = torch.zeros(B, H, dtype=torch.bool)
    b["action_labelled"] = torch.tensor(labelled)
    return b


def test_latent_supervision_is_off_and_costs_nothing_at_weight_zero():
    """The default (weight 0) builds no action head and reads no action: the loss is the unsupervised one."""
    cfg, method = micro_configs()
    torch.manual_seed(0)
    m = CareModel(cfg, method, tok_for(cfg))
    assert not hasattr(m, "action_head") and CareModel.action_labels_per_task(method) == 0
    b = _with_actions(cfg, [True, True, True])
    plain = {k: v for k, v in b.items() if not k.startswith("action")}
    torch.testing.assert_close(m(b)["loss"], m(plain)["loss"])
    assert "loss_action" not in m(b)


def test_latent_supervision_adds_the_weighted_action_loss_on_labelled_clips_only():
    cfg, method = micro_configs(action_loss_weight=0.5, action_dim=4, action_horizon=2, latent_loss_ramp=0)
    torch.manual_seed(0)
    m = CareModel(cfg, method, tok_for(cfg))
    assert CareModel.action_labels_per_task(method) == method.action_episodes_per_task
    m.set_action_normalizer([-1.0] * 4, [1.0] * 4)
    b = _with_actions(cfg, [True, False, True])
    out = m(b)
    plain = {k: v for k, v in b.items() if not k.startswith("action")}
    torch.testing.assert_close(out["loss"].detach(), m(plain)["loss"].detach() + 0.5 * out["loss_action"])
    # the action loss is the head's L1 on the labelled clips: the unlabelled clip's actions do not count
    changed = dict(b, actions=b["actions"].clone())
    changed["actions"][1] = 0.9
    torch.testing.assert_close(m(changed)["loss_action"], out["loss_action"])
    none = m(dict(b, action_labelled=torch.tensor([False, False, False])))
    assert float(none["loss_action"]) == 0.0
    # it trains the latent: z* (the inverse view, the VLM) gets a gradient from the action loss alone
    m.zero_grad()
    m.action_loss(b, m.views(b)["z_star"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.vlm.parameters())
