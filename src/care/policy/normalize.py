"""Action (and state) normalisation to [-1, 1] with per-dimension percentiles (paper §2.3, OpenVLA-style).

    norm = fit_action_normalizer(actions)            # (N, A), labelled episodes only
    x = norm.normalize(a)                            # -> [-1, 1], clipped outside [q01, q99]
    a = norm.unnormalize(x)                          # exact inverse inside the range
    norm.save(dir) / ActionNormalizer.load(dir)      # <dir>/normalizer.json

The bounds are the 1st and 99th percentiles, not min/max, so that a few outlier actions do
not squash the rest of the range (OpenVLA's "BOUNDS_Q99"). A dimension whose bounds
coincide (an action that never varies, e.g. a gripper held shut) has zero width: it
normalises to 0 and un-normalises to its constant value, never dividing by zero.

Works on numpy arrays and torch tensors alike (any leading shape, last axis = action dim).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from care.errors import ConfigError
from care.io import atomic_write_json

FILENAME = "normalizer.json"
_EPS = 1e-8  # widths below this count as zero


@dataclass
class ActionNormalizer:
    """Affine map [low, high] -> [-1, 1] per action dimension."""

    low: np.ndarray  # float64 (A,)
    high: np.ndarray  # float64 (A,)
    q_low: float = 0.01
    q_high: float = 0.99
    count: int = 0  # actions the bounds were computed from

    def __post_init__(self):
        self.low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape:
            raise ValueError(f"low {self.low.shape} and high {self.high.shape} must have one shape")
        if np.any(self.high < self.low):
            raise ValueError(f"every high must be >= low; got low={self.low}, high={self.high}")

    @property
    def action_dim(self) -> int:
        return int(self.low.shape[0])

    @property
    def _width(self) -> np.ndarray:
        return self.high - self.low

    @property
    def _zero(self) -> np.ndarray:
        return self._width < _EPS

    def _consts(self, like):
        """(low, half-width, zero-mask) as arrays of `like`'s kind, dtype and device."""
        half = np.where(self._zero, 1.0, self._width / 2.0)
        if isinstance(like, torch.Tensor):
            dt = like.dtype if like.is_floating_point() else torch.float32
            t = lambda a: torch.as_tensor(a, dtype=dt, device=like.device)  # noqa: E731
            return t(self.low), t(half), torch.as_tensor(self._zero, device=like.device)
        return self.low, half, self._zero

    def _check(self, x) -> None:
        if x.shape[-1] != self.action_dim:
            raise ValueError(f"expected actions with last dim {self.action_dim}, got shape {tuple(x.shape)}")

    def normalize(self, actions):
        """(..., A) raw actions -> (..., A) in [-1, 1]; values outside [low, high] are clipped."""
        self._check(actions)
        low, half, zero = self._consts(actions)
        if isinstance(actions, torch.Tensor):
            x = (actions.to(low.dtype) - low) / half - 1.0
            return torch.where(zero, torch.zeros_like(x), x).clamp(-1.0, 1.0)
        x = (np.asarray(actions, dtype=np.float64) - low) / half - 1.0
        return np.clip(np.where(zero, 0.0, x), -1.0, 1.0)

    def unnormalize(self, x):
        """(..., A) in [-1, 1] -> raw actions; inputs outside [-1, 1] are clipped first."""
        self._check(x)
        low, half, zero = self._consts(x)
        if isinstance(x, torch.Tensor):
            t = (x.to(low.dtype).clamp(-1.0, 1.0) + 1.0) / 2.0
            high = low + 2.0 * half
            return torch.where(zero, low.expand_as(t), low * (1.0 - t) + high * t)
        t = (np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
        # the lerp form hits low and high exactly at -1 and 1
        return np.where(zero, low, low * (1.0 - t) + self.high * t)

    # --- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "type": "quantile",
            "q_low": self.q_low,
            "q_high": self.q_high,
            "count": int(self.count),
            "low": [float(v) for v in self.low],  # float64 repr: the JSON round trip is exact
            "high": [float(v) for v in self.high],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ActionNormalizer":
        return cls(
            low=np.array(d["low"]), high=np.array(d["high"]), q_low=d["q_low"], q_high=d["q_high"], count=d["count"]
        )

    def save(self, directory: Path, filename: str = FILENAME) -> Path:
        path = Path(directory) / filename
        atomic_write_json(path, self.to_dict(), indent=2)
        return path

    @classmethod
    def load(cls, directory: Path, filename: str = FILENAME) -> "ActionNormalizer":
        path = Path(directory) / filename
        if not path.is_file():
            raise ConfigError(
                f"{path} not found: {directory} is not a fine-tuned policy folder "
                "(run `care finetune ... --output-dir DIR` to make one)"
            )
        return cls.from_dict(json.loads(path.read_text()))


def fit_action_normalizer(actions: np.ndarray, q_low: float = 0.01, q_high: float = 0.99) -> ActionNormalizer:
    """Per-dimension q_low / q_high percentiles of `actions` (N, A) (or a list of (T_i, A))."""
    if isinstance(actions, (list, tuple)):
        actions = np.concatenate([np.asarray(a) for a in actions], axis=0)
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, A) array of actions, got shape {actions.shape}")
    if not 0.0 <= q_low < q_high <= 1.0:
        raise ValueError(f"need 0 <= q_low < q_high <= 1, got {q_low}, {q_high}")
    low = np.quantile(actions, q_low, axis=0)
    high = np.quantile(actions, q_high, axis=0)
    return ActionNormalizer(low=low, high=high, q_low=q_low, q_high=q_high, count=actions.shape[0])
