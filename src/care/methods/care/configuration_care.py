"""CARE's settings (`--method.type=care`, the default): two decoders on the VLM's inverse view.

The latent VLM itself (towers, LLM, K placeholders, latent_dim) is `care.configs.ModelConfig`,
shared by every method; this holds what only CARE has (docs/DESIGN.md §3, paper §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from care.methods.base import MethodConfig


@MethodConfig.register_subclass("care")
@dataclass
class CareConfig(MethodConfig):
    """CARE: frame decoder + point decoder read the inverse view's z*, uncertainty-weighted,
    plus the latent loss that pulls the policy view's ẑ towards stopgrad(z*).

    Decoders:
        decoder_width/layers/heads: both decoders' transformer size.
        point_mode: classification (softmax over `point_bins` displacement bins per axis, in
            [-R, R] with R = point_max_disp * image_size) or regression (squared error).
        fourier_freqs: octaves of the Fourier embedding of point coordinates.
    Objective:
        objective: multitask (frame + point, uncertainty-weighted) | frame | point (paper Tab. 4).
        task_weighting: "uncertainty" (Kendall et al.: learned log-variances) or "equal" (the
            task losses simply summed, weight 1 each: the ablation of the weighting itself).
        target_encoder: where frame-decoder targets come from: "ema" (an EMA copy of the towers,
            for from-scratch towers) or "frozen" (a frozen copy; with pretrained, frozen towers
            the towers themselves).
        ema_decay: EMA decay per optimiser step.
        latent_loss_weight: weight of ||ẑ − stopgrad(z*)||². The views share the Llama, and the
            latent loss pulls the inverse view towards ignoring o_{t+n} (docs/DESIGN.md §3).
            Measured on MT10 (tiny, 300 steps, held-out point EPE / "no motion"): weight 0 ->
            0.57, 0.1 -> 0.61, 1.0 -> 0.69, while the policy view's EPE was the same at 0.1 and
            1.0 (3.43 vs 3.37 px): hence 0.1.
        latent_loss_delay, latent_loss_ramp: the weight is 0 for `delay` optimiser steps, then
            rises linearly to `latent_loss_weight` over `ramp` steps.
    Latent supervision (LAOM, Nikulin et al. 2025; beyond the paper, off by default):
        action_loss_weight: weight of an L1 action loss on the labelled clips: a small head reads
            z* (the inverse view) and predicts the n actions a_t..a_{t+n-1} in fine-tuning's
            normalised units, so a few labels steer what the latent encodes. 0: off (no head,
            no action read).
        action_episodes_per_task: the labelled episodes per task whose clips carry actions:
            exactly the ones `care finetune --episodes-per-task k --seed s` trains on (the
            pretraining's --seed); every other clip is label-free.
        action_dim, action_horizon: the head's sizes, set by `care pretrain` from the dataset
            and --frame-interval when the weight is > 0 (0: no head).
    Optimiser:
        log_var_lr: learning rate of the uncertainty weights s = log σ² (their own AdamW group, no
            weight decay, the schedule's shape; docs/DESIGN.md §3: at the base rate they barely moved).
    The CARE action latent the probes read is the inverse view's z* (PretrainedModel.action_latent).
    """

    modeling: ClassVar[str] = "care.methods.care.modeling_care:CareModel"
    non_architectural: ClassVar[frozenset[str]] = frozenset(
        {"ema_decay", "latent_loss_weight", "latent_loss_delay", "latent_loss_ramp", "log_var_lr",
         "action_loss_weight", "action_episodes_per_task"})

    # --- decoders ---
    decoder_width: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    point_mode: Literal["classification", "regression"] = "classification"
    point_bins: int = 64
    point_max_disp: float = 0.125  # R / image side: ±16 px at 128², 0.5-px bins with 64 bins
    fourier_freqs: int = 6
    # --- objective ---
    objective: Literal["multitask", "frame", "point"] = "multitask"
    task_weighting: Literal["uncertainty", "equal"] = "uncertainty"  # "equal": Tab. 4's fixed-weight ablation
    target_encoder: Literal["ema", "frozen"] = "ema"
    ema_decay: float = 0.99
    latent_loss_weight: float = 0.1  # 1.0 cost the inverse view 0.61 -> 0.69 EPE ratio (docs/DESIGN.md §3 trap)
    latent_loss_delay: int = 0
    latent_loss_ramp: int = 300
    # --- latent supervision (off by default) ---
    action_loss_weight: float = 0.0
    action_episodes_per_task: int = 5
    action_dim: int = 0
    action_horizon: int = 0
    # --- optimiser ---
    log_var_lr: float = 5e-3

    def __post_init__(self):
        if self.decoder_width % self.decoder_heads:
            raise ValueError(
                f"decoder_width ({self.decoder_width}) must divide by decoder_heads ({self.decoder_heads})"
            )
        if self.point_bins < 2:
            raise ValueError(f"point_bins must be >= 2, got {self.point_bins}")
        if not 0.0 < self.point_max_disp <= 1.0:
            raise ValueError(f"point_max_disp is a fraction of the image side in (0, 1], got {self.point_max_disp}")
        if self.action_loss_weight < 0 or self.action_episodes_per_task < 1:
            raise ValueError(f"action_loss_weight must be >= 0 and action_episodes_per_task >= 1, got "
                             f"{self.action_loss_weight}, {self.action_episodes_per_task}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def preset(self, name: str) -> "CareConfig":
        """Decoder sizes that go with a model preset (care.presets)."""
        import dataclasses

        sizes = {
            "micro": dict(decoder_width=32, decoder_layers=1, decoder_heads=2, point_bins=16, fourier_freqs=4,
                          latent_loss_ramp=5),
            "base": dict(decoder_width=384, decoder_layers=4, decoder_heads=6, point_bins=128, latent_loss_ramp=2000),
            "pretrained": dict(decoder_width=384, decoder_layers=4, decoder_heads=6, point_bins=128,
                               target_encoder="frozen", latent_loss_ramp=2000),
        }.get(name, {})
        return dataclasses.replace(self, **sizes)
