"""The two decoders that read the latent action z (docs/DESIGN.md §3, paper §2.2).

    frame decoder: queries = o_t vision features (B,P,D) ─┐ blocks of          ┌─► Δ features (B,P,Dt)
                                                           ├ [self-attn,        │  + target(o_t)
    point decoder: queries = Fourier(x_t, y_t)   (B,N,F) ─┘  cross-attn to z,   └─► per-axis logits over
                                                             MLP]                   displacement bins (B,N,2,nb)
                                                                                    (or a (B,N,2) regression)

Both predict the *change* from t to t+n and their output layers start at zero, so at init
they predict exactly "nothing moves" (docs/DESIGN.md §3: zero-init outputs helped the latent wake
up). Deviations from the paper, and why:
- the frame decoder outputs target(o_{t+n}) − target(o_t) added to the (stop-gradient) target
  features of o_t: the baseline "next = current" is then the starting point, and all capacity
  goes to the change, which is what z should carry;
- the point decoder classifies the *displacement* per axis over bins in [−R, R] (R =
  point_max_disp · image side), not the absolute coordinate over the image: 64 bins over a
  128-px image are 2 px wide, coarser than the motion to see; soft (two-hot) labels keep
  sub-bin precision and the prediction is the softmax-weighted bin centre.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from care.configs import ModelConfig
from care.methods.care.configuration_care import CareConfig
from care.models.blocks import CrossBlock, LatentContext, init_linear


class FrameDecoder(nn.Module):
    """o_t features + z -> predicted target features of o_{t+n}."""

    def __init__(self, cfg: CareConfig, model: ModelConfig, feature_dim: int, target_dim: int, num_patches: int):
        super().__init__()
        C = cfg.decoder_width
        self.inp = nn.Linear(feature_dim, C)
        self.pos = nn.Parameter(torch.zeros(num_patches, C))
        self.context = LatentContext(model.latent_dim, model.num_latents, C)
        self.blocks = nn.ModuleList(CrossBlock(C, cfg.decoder_heads) for _ in range(cfg.decoder_layers))
        self.ln_f = nn.LayerNorm(C)
        self.out = nn.Linear(C, target_dim)
        init_linear(self.inp)
        nn.init.normal_(self.pos, std=C ** -0.5)
        nn.init.zeros_(self.out.weight)  # start at "next = current" (docs/DESIGN.md §3)
        nn.init.zeros_(self.out.bias)

    def forward(self, feats: torch.Tensor, z: torch.Tensor, current_target: torch.Tensor) -> torch.Tensor:
        """feats (B,P,D) online features of o_t; z (B,K,Dz); current_target (B,P,Dt) -> (B,P,Dt)."""
        x = self.inp(feats) + self.pos  # (B, P, C)
        ctx = self.context(z)  # (B, K, C)
        for block in self.blocks:
            x = block(x, ctx)
        return current_target + self.out(self.ln_f(x))  # (B, P, Dt)


class FourierEmbedding(nn.Module):
    """(x, y) in [-1, 1] -> [sin, cos] at octave frequencies, plus the raw coordinates."""

    def __init__(self, num_freqs: int):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(num_freqs)) * math.pi, persistent=False)
        self.dim = 2 + 4 * num_freqs

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        ang = xy.unsqueeze(-1) * self.freqs  # (B, N, 2, F)
        emb = torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)  # (B, N, 4F)
        return torch.cat([xy, emb], dim=-1)  # (B, N, 2 + 4F)


class PointDecoder(nn.Module):
    """Point coordinates at t + z -> displacement to t+n, per axis (bins or regression)."""

    def __init__(self, cfg: CareConfig, model: ModelConfig):
        super().__init__()
        C = cfg.decoder_width
        self.mode = cfg.point_mode
        self.bins = cfg.point_bins
        self.image_size = model.image_size
        self.max_disp = cfg.point_max_disp * model.image_size  # R, pixels
        self.fourier = FourierEmbedding(cfg.fourier_freqs)
        self.inp = nn.Sequential(nn.Linear(self.fourier.dim, C), nn.GELU(), nn.Linear(C, C))
        self.context = LatentContext(model.latent_dim, model.num_latents, C)
        self.blocks = nn.ModuleList(CrossBlock(C, cfg.decoder_heads) for _ in range(cfg.decoder_layers))
        self.ln_f = nn.LayerNorm(C)
        self.out = nn.Linear(C, 2 * (self.bins if self.mode == "classification" else 1))
        init_linear(self.inp[0])
        init_linear(self.inp[2])
        nn.init.zeros_(self.out.weight)  # uniform bins / zero displacement: "points do not move"
        nn.init.zeros_(self.out.bias)
        self.register_buffer("centres", torch.linspace(-self.max_disp, self.max_disp, self.bins), persistent=False)

    def forward(self, points: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """points (B,N,2) pixels at t; z (B,K,Dz); valid (B,N) bool, False for padding (a batch
        mixes tasks with different point counts) -> logits (B,N,2,bins) or normalised Δ (B,N,2)."""
        xy = points / self.image_size * 2.0 - 1.0  # pixels -> [-1, 1]
        x = self.inp(self.fourier(xy))  # (B, N, C)
        ctx = self.context(z)
        for block in self.blocks:
            x = block(x, ctx, valid)
        out = self.out(self.ln_f(x))
        if self.mode == "classification":
            return out.view(*out.shape[:2], 2, self.bins)  # (B, N, 2, bins)
        return out.view(*out.shape[:2], 2)  # (B, N, 2), displacement / R

    def displacement(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output -> predicted displacement in pixels (B, N, 2)."""
        if self.mode == "classification":
            return (out.float().softmax(dim=-1) * self.centres).sum(dim=-1)  # expected bin centre
        return out.float() * self.max_disp

    def loss(self, out: torch.Tensor, disp: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (B,): masked mean over visible points and both axes.

        classification: cross-entropy against two-hot labels on the bins (softmax likelihood);
        regression: squared error of displacement / R (Gaussian likelihood).
        """
        if self.mode == "classification":
            u = (disp.clamp(-self.max_disp, self.max_disp) + self.max_disp) / (2 * self.max_disp) * (self.bins - 1)
            lo = u.floor().clamp(max=self.bins - 2)
            w = (u - lo).unsqueeze(-1)  # weight of the upper bin
            logp = out.float().log_softmax(dim=-1)  # (B, N, 2, bins)
            lo = lo.long().unsqueeze(-1)
            nll = -((1 - w) * logp.gather(-1, lo) + w * logp.gather(-1, lo + 1)).squeeze(-1)  # (B, N, 2)
        else:
            nll = (out.float() - disp / self.max_disp).pow(2)  # (B, N, 2)
        m = visible.to(nll.dtype)  # (B, N)
        per_point = nll.mean(dim=-1)  # (B, N)
        return (per_point * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B,)
