"""Inverse-dynamics models (IDM): the actions between two frames, learnt from a few labelled episodes.

    idm = PixelIDM(action_dim=4, horizon=4)            # (o_t, o_{t+n}) pixels -> a_t .. a_{t+n-1}
    idm = LatentIDM(in_dim=K * d, action_dim=4, horizon=4)   # a pretrained z(o_t, o_{t+n}) -> the same
    fit(idm, inputs, targets, ...)                     # L1 on normalised actions, AdamW, cosine
    fit(..., augment=shift_pairs(4))                   # the pixel IDM with DrQ shifts of both frames

Both read a pair (o_t, o_{t+n}) and predict the n actions taken between them, in the fine-tuning's
normalised units ([-1, 1] between the 1st and 99th percentiles): an inverse-dynamics feature is
what CARE's latent z(o_t, o_{t+n}) is by construction, so the latent variant is a small head on it
(VPT's recipe, Baker et al. 2022, with CARE's latent in place of a video model).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from care.data.augment import augment_generator, random_shift


class PixelIDM(nn.Module):
    """(o_t, o_{t+n}) uint8 (B, 3, S, S) each -> (B, n, A). The two frames and their difference
    on 9 channels, four stride-2 convolutions, global average pooling, an MLP."""

    def __init__(self, action_dim: int, horizon: int, width: int = 32, hidden: int = 256):
        super().__init__()
        self.action_dim, self.horizon = int(action_dim), int(horizon)
        chans = [9, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.GELU()]
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(chans[-1], hidden), nn.GELU(), nn.Linear(hidden, self.horizon * self.action_dim))

    def forward(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        a = obs.float() / 255.0
        b = future_obs.float() / 255.0
        x = self.convs(torch.cat([a, b, b - a], dim=1))
        return self.head(x.mean(dim=(2, 3))).view(-1, self.horizon, self.action_dim)


class LatentIDM(nn.Module):
    """A frozen latent action (B, in_dim) -> (B, n, A): a two-layer MLP on the standardised latent."""

    def __init__(self, in_dim: int, action_dim: int, horizon: int, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.action_dim, self.horizon = int(action_dim), int(horizon)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, self.horizon * self.action_dim),
        )

    def set_standardisation(self, z: torch.Tensor) -> None:
        self.mean.copy_(z.mean(0))
        self.std.copy_(z.std(0).clamp_min(1e-6))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net((z.float() - self.mean) / self.std).view(-1, self.horizon, self.action_dim)


Augment = Callable[[tuple[torch.Tensor, ...], torch.Generator], tuple[torch.Tensor, ...]]


def shift_pairs(pad: int) -> Augment:
    """The pixel IDM's augmentation: DrQ's random shift of up to `pad` pixels, one offset per pair
    applied to both frames, so the image moves and the motion between the frames does not."""

    def augment(batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        obs, future_obs = batch
        both = random_shift(torch.cat([obs, future_obs], dim=1), pad, generator)
        return both[:, :obs.shape[1]], both[:, obs.shape[1]:]

    return augment


def fit(model: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, steps: int, batch_size: int,
        lr: float, weight_decay: float, seed: int, progress=None, augment: Augment | None = None) -> list[float]:
    """Train `model(*inputs[idx]) -> targets[idx]` (normalised actions (N, n, A)) with an L1 loss,
    AdamW, linear warm-up then cosine decay; minibatches drawn with replacement, seeded. `augment`
    (e.g. `shift_pairs`) transforms each minibatch's inputs with a generator of (seed, step).
    Returns the loss every 50 steps (for the log)."""
    g = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps)))))
    n = len(targets)
    losses, window = [], []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        batch = tuple(x[idx] for x in inputs)
        if augment is not None:
            batch = augment(batch, augment_generator(seed, step))
        loss = F.l1_loss(model(*batch), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        window.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            losses.append(float(np.mean(window)))
            window = []
            if progress is not None:
                progress(step + 1, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple[torch.Tensor, ...], batch_size: int = 256) -> torch.Tensor:
    """model(*inputs) in batches, in eval mode: (N, n, A)."""
    model.eval()
    n = len(inputs[0])
    return torch.cat([model(*(x[i:i + batch_size] for x in inputs)) for i in range(0, n, batch_size)]) if n else \
        torch.zeros(0, model.horizon, model.action_dim)


def chunk_starts(T: int, horizon: int) -> list[tuple[int, int]]:
    """The (source, target) frame pairs whose chunks cover every action of a T-frame episode:
    source s = 0 .. T-1, target min(s + n, T - 1) (the last chunks see a clamped future frame,
    at training and at labelling alike)."""
    return [(s, min(s + horizon, T - 1)) for s in range(T)]


def chunk_targets(actions: np.ndarray, horizon: int) -> np.ndarray:
    """(T, A) -> (T, n, A): the n actions from each frame on, the last one repeated past the end."""
    T = len(actions)
    idx = np.minimum(np.arange(T)[:, None] + np.arange(horizon)[None, :], T - 1)
    return actions[idx]


def average_chunks(chunks: np.ndarray) -> np.ndarray:
    """(T, n, A) predictions of the chunks starting at each frame -> (T, A): each action is the mean
    of every chunk that covers it (ACT's temporal ensemble with equal weights)."""
    T, n, A = chunks.shape
    total = np.zeros((T, A), np.float64)
    count = np.zeros((T, 1), np.float64)
    for k in range(n):
        total[k:] += chunks[:T - k, k]
        count[k:] += 1
    return (total / count).astype(np.float32)
