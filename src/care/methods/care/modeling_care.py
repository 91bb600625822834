"""CARE (`--method.type=care`): the latent VLM + frame decoder + point decoder + uncertainty weighting.

    batch ─► vision(o_t), vision(o_{t+n}) ──► inverse view ─► z* ─┬─► frame decoder ─► L_frame ─┐
                   │                                              └─► point decoder ─► L_point ─┤ UWL
                   └────────────────────────► policy view  ─► ẑ ──── ||ẑ − sg(z*)||² ───────────┴──+─► loss
                                                                     × latent weight (delayed, ramped)

Frame-decoder targets come from a separate target encoder (an EMA or frozen copy of the
towers), layer-normalised per token, so they can neither collapse nor shrink while the
online towers train (docs/DESIGN.md §3).

Checkpoints are the shared pretrained folders of care.methods.model (config.json =
ModelConfig, method.json = CareConfig, model.safetensors, tokenizer, hf/ part configs).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ModelConfig
from care.methods.care.configuration_care import CareConfig
from care.methods.care.decoders import FrameDecoder, PointDecoder
from care.methods.care.losses import UncertaintyWeighting
from care.methods.model import PretrainedModel
from care.models.latent_vlm import LatentVLM


class CareModel(PretrainedModel):
    config_class = CareConfig

    def __init__(self, cfg: ModelConfig, method: CareConfig, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.method = method
        self.vlm = LatentVLM(cfg, tokenizer)
        D = self.vlm.vision.feature_dim
        P = self.vlm.vision.num_patches
        self.tasks: dict[str, str] = {}

        # the frame target encoder: not registered as a submodule when it is the (frozen) online
        # towers themselves, so the weights are stored once
        self._shared_target = method.target_encoder == "frozen" and cfg.freeze_vision
        if method.objective in ("multitask", "frame"):
            if not self._shared_target:
                self.target_encoder = copy.deepcopy(self.vlm.vision).requires_grad_(False)
            self.frame_decoder = FrameDecoder(method, cfg, D, D, P)
            self.tasks["frame"] = "gaussian"
        if method.objective in ("multitask", "point"):
            self.point_decoder = PointDecoder(method, cfg)
            self.tasks["point"] = "softmax" if method.point_mode == "classification" else "gaussian"
        # "equal" weighting has no log-variances at all (no parameter without a gradient for DDP)
        self.uwl = UncertaintyWeighting(self.tasks if method.task_weighting == "uncertainty" else {})
        if method.action_dim > 0:  # latent supervision (LAOM): z* -> the n actions of the clip
            zdim = cfg.num_latents * cfg.latent_dim
            self.action_head = nn.Sequential(nn.LayerNorm(zdim), nn.Linear(zdim, method.decoder_width), nn.GELU(),
                                             nn.Linear(method.decoder_width, method.action_horizon * method.action_dim))
            self.register_buffer("action_low", -torch.ones(method.action_dim))
            self.register_buffer("action_high", torch.ones(method.action_dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken
        if cfg.freeze_vision:
            self.vlm.vision.requires_grad_(False)

    # --- targets and schedule ---
    @torch.no_grad()
    def target_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> layer-normalised target features (B, P, D)."""
        enc = self.vlm.vision if self._shared_target else self.target_encoder
        f = enc(images).float()
        return F.layer_norm(f, f.shape[-1:])

    def latent_weight(self) -> float:
        c = self.method
        t = int(self.num_updates) - c.latent_loss_delay
        if t < 0:
            return 0.0
        return c.latent_loss_weight * (1.0 if c.latent_loss_ramp <= 0 else min(1.0, (t + 1) / c.latent_loss_ramp))

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Call once after every optimiser step: advances the schedule, updates the EMA target."""
        self.num_updates += 1
        if hasattr(self, "target_encoder") and self.method.target_encoder == "ema":
            d = self.method.ema_decay
            online = dict(self.vlm.vision.named_parameters())
            targets = [p for _, p in self.target_encoder.named_parameters()]
            sources = [online[name].detach().to(p.dtype) for name, p in self.target_encoder.named_parameters()]
            torch._foreach_lerp_(targets, sources, 1.0 - d)  # one fused update instead of a loop of lerp_

    # --- forward ---
    def views(self, batch: dict) -> dict:
        """Everything the losses and the diagnostics need, from one pass over both views."""
        obs, fut, instr = batch["obs"], batch["future_obs"], batch["instruction"]
        B = obs.shape[0]
        feats, fut_feats = self.vlm.vision_features(torch.cat([obs, fut], dim=0)).split(B)  # (B, P, D) x2
        z_star, _ = self.vlm.latents_from_features(feats, instr, fut_feats)  # inverse view (B, K, Dz)
        z_hat, _ = self.vlm.latents_from_features(feats, instr)  # policy view (B, K, Dz)
        out = {"feats": feats, "z_star": z_star, "z_hat": z_hat}
        if "frame" in self.tasks:
            tgt_t, tgt_f = self.target_features(torch.cat([obs, fut], dim=0)).split(B)
            out["target_t"], out["target_f"] = tgt_t, tgt_f
        return out

    def frame_loss(self, v: dict, z: torch.Tensor) -> torch.Tensor:
        """Per-sample MSE between predicted and target features of o_{t+n} (B,)."""
        pred = self.frame_decoder(v["feats"], z, v["target_t"])  # (B, P, D)
        return (pred.float() - v["target_f"]).pow(2).mean(dim=(1, 2))

    def point_loss(self, batch: dict, z: torch.Tensor) -> torch.Tensor:
        valid = batch.get("point_valid")  # padding mask from care.training.batching.collate_clips
        out = self.point_decoder(batch["tracks"], z, valid)
        visible = batch["visible"] if valid is None else batch["visible"] & valid
        return self.point_decoder.loss(out, batch["future_tracks"] - batch["tracks"], visible)  # (B,)

    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S), instruction list[str], tracks/future_tracks
        (B,N,2) px and visible (B,N) (point objective). Returns loss + scalars to log."""
        v = self.views(batch)
        losses = {}
        if "frame" in self.tasks:
            losses["frame"] = self.frame_loss(v, v["z_star"]).mean()
        if "point" in self.tasks:
            losses["point"] = self.point_loss(batch, v["z_star"]).mean()
        latent = (v["z_hat"].float() - v["z_star"].detach().float()).pow(2).mean()
        w = self.latent_weight()
        task_loss = self.uwl(losses) if self.method.task_weighting == "uncertainty" else sum(losses.values())
        loss = task_loss + w * latent
        logs = {f"loss_{k}": l.detach() for k, l in losses.items()}
        if self.method.action_loss_weight > 0 and "action_labelled" in batch:
            action = self.action_loss(batch, v["z_star"])
            loss = loss + self.method.action_loss_weight * action
            logs["loss_action"] = action.detach()
        logs.update({f"log_var_{k}": s.detach().clone() for k, s in self.uwl.log_vars.items()})  # at forward time
        logs["loss_latent"] = latent.detach()
        logs["latent_weight"] = torch.tensor(w)
        return {"loss": loss, **logs}

    def action_loss(self, batch: dict, z: torch.Tensor) -> torch.Tensor:
        """L1 between the head's actions from z* and the labelled clips' actions, normalised to
        [-1, 1] by the labelled q01/q99 (as fine-tuning does); padded steps and label-free clips
        count for nothing (0 when the batch has no labelled clip)."""
        B = z.shape[0]
        pred = self.action_head(z.float().reshape(B, -1)).view(B, self.method.action_horizon, self.method.action_dim)
        low, high = self.action_low, self.action_high
        target = (2 * (batch["actions"].float() - low) / (high - low).clamp_min(1e-6) - 1).clamp(-1, 1)
        mask = batch["action_labelled"].float()[:, None] * (~batch["action_is_pad"]).float()  # (B, H)
        err = (pred - target).abs().mean(-1)  # (B, H)
        return (err * mask).sum() / mask.sum().clamp_min(1.0)

    @classmethod
    def action_labels_per_task(cls, method: CareConfig) -> int:
        return method.action_episodes_per_task if method.action_loss_weight > 0 else 0

    def set_action_normalizer(self, low, high) -> None:
        self.action_low.copy_(torch.as_tensor(low, dtype=torch.float32))
        self.action_high.copy_(torch.as_tensor(high, dtype=torch.float32))

    @torch.no_grad()
    def init_log_vars(self, batch: dict) -> dict[str, float]:
        """s_i = log(loss_i at init) (docs/DESIGN.md §3); with zero-init decoders that is the
        "nothing moves" baseline. Call before training, on the same batch in every process."""
        v = self.views(batch)
        base = {}
        if "frame" in self.tasks:
            base["frame"] = float(self.frame_loss(v, v["z_star"]).mean())
        if "point" in self.tasks:
            base["point"] = float(self.point_loss(batch, v["z_star"]).mean())
        if self.method.task_weighting == "uncertainty":
            self.uwl.init_from_baselines(base)
        return base

    # --- the hooks the training loop calls (care.methods.model.MethodModel) ---
    @classmethod
    def requires_tracks(cls, method: CareConfig) -> bool:
        return method.objective in ("multitask", "point")

    def prepare_training(self, batch: dict) -> dict[str, float]:
        """Before the first step: the uncertainty weights start at the log of the baseline losses."""
        return self.init_log_vars(batch)

    def param_groups(self, optim) -> dict[str, dict]:
        # The Gaussian log-variance starts at its optimum (s = log L), where its gradient is float
        # noise; Adam's default eps would turn that noise into full-size steps of random sign (and
        # make 2 processes drift from 1). Real gradients of s are >= ~1e-2, so eps=1e-4 costs nothing.
        return {"uwl.log_vars": {"lr": self.method.log_var_lr, "eps": 1e-4}}

    def log_scalars(self, scalars: dict[str, float]) -> dict[str, float]:
        """The uncertainty weights are logged as s = log σ² (`log_var_*`) and as σ (`sigma_*`)."""
        for k in [k for k in scalars if k.startswith("log_var_")]:
            scalars["sigma_" + k[len("log_var_"):]] = math.exp(0.5 * scalars[k])
        return scalars

    @torch.no_grad()
    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out latent diagnostics (care.methods.care.diagnostics): point/frame error against
        the no-motion baselines, with z shuffled, with the policy view; z spread."""
        from care.methods.care.diagnostics import latent_diagnostics

        return latent_diagnostics(self, batches)

    def brief(self, metrics: dict) -> dict:
        """The few validation numbers worth a log line."""
        return {k: metrics[k] for k in ("point_epe_ratio", "frame_ratio", "z_spread_rel") if k in metrics}
