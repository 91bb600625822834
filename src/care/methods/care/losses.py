"""Uncertainty-weighted multi-task loss (Kendall, Gal & Cipolla 2018; paper §2.2).

Each task i has a learned s_i = log σ_i². With loss L_i:

    Gaussian likelihood (frame features, point regression):  ½·exp(−s)·L + ½·s
    softmax likelihood  (point classification over bins):      exp(−s)·L + ½·s

The minimum over s is at s = log L (Gaussian) or log 2L (softmax), so each task ends up
weighted by the inverse of its own loss: the tasks are balanced whatever their units.

docs/DESIGN.md §3: s starts at the log of the task's baseline loss (what the model scores at
init), not at 0 — with s = 0 and a point loss of ~1e-3, the weights had to travel many units
at a small learning rate and barely moved. The trainer gives `log_vars` their own, higher
learning rate (CareConfig.log_var_lr) and no weight decay.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

KINDS = ("gaussian", "softmax")


class UncertaintyWeighting(nn.Module):
    def __init__(self, tasks: dict[str, str]):
        """tasks: name -> likelihood kind ("gaussian" | "softmax")."""
        super().__init__()
        for name, kind in tasks.items():
            if kind not in KINDS:
                raise ValueError(f"task {name!r}: likelihood must be one of {KINDS}, got {kind!r}")
        self.kinds = dict(tasks)
        self.log_vars = nn.ParameterDict({name: nn.Parameter(torch.zeros(())) for name in tasks})

    @torch.no_grad()
    def init_from_baselines(self, baselines: dict[str, float]) -> None:
        """s_i = log(baseline loss_i)."""
        for name, value in baselines.items():
            self.log_vars[name].fill_(math.log(max(float(value), 1e-8)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, kind in self.kinds.items():
            s = self.log_vars[name]
            scale = 0.5 if kind == "gaussian" else 1.0
            total = total + scale * torch.exp(-s) * losses[name] + 0.5 * s
        return total

    def sigmas(self) -> dict[str, float]:
        """σ_i = exp(s_i / 2), for logging."""
        return {name: math.exp(0.5 * s.item()) for name, s in self.log_vars.items()}
