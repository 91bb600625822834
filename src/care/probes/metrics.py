"""The probes themselves, on arrays: nothing here knows about models, datasets or folders.

    linear_probe(x_train, y_train, x_test, y_test, epochs, lr, seed)   LP-MSE (CoMo; paper Tab. 2)
    mean_prediction_mse(y_train, y_test)                               its "predict the mean" scale
    s_pcfc(z_prev_to_t, z_next_to_t)                                    S-PCFC (CoMo; paper Tab. 2)
    semantic_rows(frames, latents, train)                               Tab. 3's four inputs
    sequence_accuracy(x_train, y_train, x_test, y_test, ...)           the task classifier
    pca_2d(x)                                                           for the latent plot

Every probe is deterministic given its seed (CPU, float64 for the linear probe), so two methods
probed with the same settings differ only by their latents.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

_STD_FLOOR = 1e-8  # a feature constant over probe-train is centred only (it carries nothing)


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Z-score every column with the mean and std of `train` (N, D); returns train and others
    transformed the same way. Statistics come from probe-train only (no test leakage)."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std < _STD_FLOOR, 1.0, std)
    return tuple((np.asarray(x, dtype=np.float64) - mean) / std for x in (train, *others))


def flat(z) -> np.ndarray:
    """(N, ...) -> (N, prod(...)) float64."""
    z = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
    return z.reshape(len(z), -1)


# ----------------------------------------------------------------------------------------
# LP-MSE
# ----------------------------------------------------------------------------------------


def linear_probe(x_train, y_train, x_test, y_test, epochs: int = 2000, lr: float = 1e-2, seed: int = 0) -> dict:
    """One linear layer (weights and bias) from z-scored features to targets, trained with
    full-batch Adam on the mean squared error; lr `lr` cosine-decayed to 0 over `epochs`.

    The loss is convex, so with enough epochs this is the least-squares fit (the tests check it
    against numpy's lstsq); a fixed budget keeps it the same procedure for every method.
    Returns {"mse": held-out MSE (mean over clips and target dims), "train_mse", "pred": (M, O)}.
    """
    x_train, x_test = standardize(flat(x_train), flat(x_test))
    y_train, y_test = flat(y_train), flat(y_test)
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"the linear probe needs probe-train and probe-test clips, got {len(x_train)} and {len(x_test)}")
    gen = torch.Generator().manual_seed(int(seed))
    d, o = x_train.shape[1], y_train.shape[1]
    bound = 1.0 / math.sqrt(max(d, 1))  # nn.Linear's default init, from our own generator
    w = ((torch.rand(d, o, generator=gen, dtype=torch.float64) * 2 - 1) * bound).requires_grad_()
    b = ((torch.rand(o, generator=gen, dtype=torch.float64) * 2 - 1) * bound).requires_grad_()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    opt = torch.optim.Adam([w, b], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs)))
    for _ in range(int(epochs)):
        opt.zero_grad(set_to_none=True)
        loss = ((xt @ w + b - yt) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = (torch.from_numpy(x_test) @ w + b).numpy()
        train_mse = float(((xt @ w + b - yt) ** 2).mean())
    return {"mse": float(((pred - y_test) ** 2).mean()), "train_mse": train_mse, "pred": pred}


def mean_prediction_mse(y_train, y_test) -> float:
    """Held-out MSE of predicting the probe-train mean target for every clip (LP-MSE's scale)."""
    y_train, y_test = flat(y_train), flat(y_test)
    return float(((y_test - y_train.mean(axis=0)) ** 2).mean())


# ----------------------------------------------------------------------------------------
# S-PCFC
# ----------------------------------------------------------------------------------------


def cosine(a, b, eps: float = 1e-12) -> np.ndarray:
    """Row-wise cosine similarity of flattened (N, ...) arrays, (N,)."""
    a, b = flat(a), flat(b)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), eps)


def s_pcfc(z_prev_to_t, z_next_to_t) -> float:
    """mean_t cos(flatten z(o_{t-n} -> o_t), flatten z(o_{t+n} -> o_t)) (CoMo). Both latents end
    at the same target frame o_t: a latent that encodes only the target scores 1, a motion code
    scores low (the two motions into o_t usually point different ways). Lower is better."""
    return float(cosine(z_prev_to_t, z_next_to_t).mean())


# ----------------------------------------------------------------------------------------
# Semantic accuracy (paper Tab. 3)
# ----------------------------------------------------------------------------------------

SEMANTIC_ROWS = {  # probe.json key -> the input the classifier sees
    "semantic_initial": "initial frame",
    "semantic_initial_x10": "initial frame repeated 10 times",
    "semantic_frames": "initial frame + 9 later frames",
    "semantic_accuracy": "initial frame + 9 latent actions",
}


def semantic_rows(frames: np.ndarray, latents: np.ndarray, train: np.ndarray) -> dict[str, np.ndarray]:
    """Tab. 3's four inputs as (N, L, D) sequences, from per-episode features:

    frames: (N, 10, F) frame features at t_0 = 0, t_1, ..., t_9; latents: (N, 9, D) the latent
    actions z(o_{t_k} -> o_{t_{k+1}}); train: bool (N,) probe-train rows. Frame and latent
    features are z-scored separately with probe-train statistics. Row "semantic_accuracy" (the
    latents) is a 10-step sequence whose first step holds the initial frame in a frame slot and
    whose next 9 hold the latents in a latent slot (the other slot zero).
    """
    frames, latents, train = np.asarray(frames, np.float64), np.asarray(latents, np.float64), np.asarray(train, bool)
    n, steps, f = frames.shape
    d = latents.shape[-1]
    fz = standardize(frames[train].reshape(-1, f), frames.reshape(-1, f))[1].reshape(n, steps, f)
    lz = standardize(latents[train].reshape(-1, d), latents.reshape(-1, d))[1].reshape(n, -1, d)
    with_latents = np.zeros((n, 1 + lz.shape[1], f + d))
    with_latents[:, 0, :f] = fz[:, 0]
    with_latents[:, 1:, f:] = lz
    return {
        "semantic_initial": fz[:, :1],
        "semantic_initial_x10": np.repeat(fz[:, :1], steps, axis=1),
        "semantic_frames": fz,
        "semantic_accuracy": with_latents,
    }


class SequenceClassifier(nn.Module):
    """A one-layer GRU over the steps, its last hidden state -> task logits."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, C)
        _, h = self.gru(x)  # h: (1, B, hidden)
        return self.head(h[-1])


def sequence_accuracy(x_train, y_train, x_test, y_test, epochs: int = 300, lr: float = 3e-3, seed: int = 0,
                      hidden: int = 64) -> float:
    """Train a SequenceClassifier on (N, L, D) sequences with integer labels (full-batch Adam,
    cross-entropy, fixed epochs) and return its accuracy on the test sequences."""
    x_train = torch.as_tensor(np.asarray(x_train), dtype=torch.float32)
    x_test = torch.as_tensor(np.asarray(x_test), dtype=torch.float32)
    y_train = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    y_test = torch.as_tensor(np.asarray(y_test), dtype=torch.long)
    if len(x_test) == 0:
        raise ValueError("the semantic probe needs probe-test episodes")
    num_classes = int(max(int(y_train.max()), int(y_test.max())) + 1)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(int(seed))
        net = SequenceClassifier(x_train.shape[-1], num_classes, hidden)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(int(epochs)):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x_train), y_train).backward()
            opt.step()
    with torch.no_grad():
        return float((net(x_test).argmax(-1) == y_test).float().mean())


# ----------------------------------------------------------------------------------------
# The plot's projection
# ----------------------------------------------------------------------------------------


def pca_2d(x) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> the first two principal components (N, 2) of the z-scored rows, and the share
    of variance each explains (2,)."""
    x = standardize(flat(x))[0]
    x = x - x.mean(axis=0)
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros(2)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    proj = np.zeros((len(x), 2))
    proj[:, :k] = u[:, :k] * s[:k]
    var = s**2
    ratio = np.zeros(2)
    ratio[:k] = var[:k] / max(var.sum(), 1e-12)
    return proj, ratio
