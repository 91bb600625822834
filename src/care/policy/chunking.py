"""Executing action chunks (beyond the paper: its stated future work).

The action head predicts H future actions at once. The controller turns those chunks into one
action per environment step, in one of two ways:

- "chunk" (open loop, as in ACT without ensembling / LeRobot's `n_action_steps = H`): plan,
  execute the H actions in order, then plan again.
- "ensemble" (ACT's temporal ensembling, Zhao et al. 2023): plan at every step; the action for
  step t is the weighted mean of every chunk's prediction for step t, with weights
  w_i = exp(-k * i) where i = 0 is the *oldest* prediction (as in ACT and LeRobot's
  ACTTemporalEnsembler: older predictions weigh more, k sets how fast new ones are taken in).

Both work on a batch of environments that step in lockstep: chunks are (B, H, A), actions (B, A).

    ex = ChunkExecutor(chunk_size=H, mode="chunk")
    if ex.needs_plan(): ex.add_chunk(predict())      # (B, H, A)
    action = ex.next_action()                        # (B, A)
"""

from __future__ import annotations

import math

import numpy as np

MODES = ("chunk", "ensemble")


class ChunkExecutor:
    def __init__(self, chunk_size: int, mode: str = "chunk", decay: float = 0.1, n_action_steps: int | None = None):
        """
        Args:
            chunk_size: H, the actions in each predicted chunk.
            mode: "chunk" (open loop) or "ensemble" (temporal ensembling).
            decay: k in exp(-k * i) ("ensemble" only). 0 gives a plain mean of the overlapping
                predictions; a large k trusts the oldest prediction alone.
            n_action_steps: ("chunk" only) actions executed from each chunk before re-planning;
                None executes all H.
        """
        if mode not in MODES:
            raise ValueError(f"execution mode must be one of {MODES}, got {mode!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        n_action_steps = chunk_size if n_action_steps is None else n_action_steps
        if not 1 <= n_action_steps <= chunk_size:
            raise ValueError(f"n_action_steps must be in [1, chunk_size={chunk_size}], got {n_action_steps}")
        if decay < 0:
            raise ValueError(f"ensemble decay must be >= 0, got {decay}")
        self.chunk_size = chunk_size
        self.mode = mode
        self.decay = decay
        self.n_action_steps = n_action_steps
        self.reset()

    def reset(self) -> None:
        """Forget every pending action (call at the start of each episode)."""
        # "chunk": a FIFO of (B, A) actions. "ensemble": the not-yet-executed tails of every
        # chunk still overlapping the present, oldest first, each (B, h_i, A).
        self._queue: list[np.ndarray] = []
        self._tails: list[np.ndarray] = []
        self._planned_this_step = False

    def needs_plan(self) -> bool:
        """Whether the next action needs a new chunk from the model first."""
        if self.mode == "chunk":
            return not self._queue
        return not self._planned_this_step

    def add_chunk(self, chunk: np.ndarray) -> None:
        """Register a freshly predicted chunk (B, H, A) for the current step."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 3 or chunk.shape[1] != self.chunk_size:
            raise ValueError(f"expected a chunk of shape (B, {self.chunk_size}, A), got {chunk.shape}")
        if self.mode == "chunk":
            self._queue = [chunk[:, i] for i in range(self.n_action_steps)]
        else:
            if self._tails and self._tails[0].shape[0] != chunk.shape[0]:
                raise ValueError(f"batch size changed from {self._tails[0].shape[0]} to {chunk.shape[0]}; call reset()")
            self._tails.append(chunk)
            self._planned_this_step = True

    def keep(self, rows) -> None:
        """Keep only these batch rows of every pending action (environments that finished drop
        out of a lockstep batch; the others go on exactly as before)."""
        rows = np.asarray(rows, dtype=int)
        self._queue = [a[rows] for a in self._queue]
        self._tails = [t[rows] for t in self._tails]

    def next_action(self) -> np.ndarray:
        """The (B, A) action for the current step; advances time by one step."""
        if self.needs_plan():
            raise RuntimeError("no action pending: call add_chunk() with a new prediction first")
        if self.mode == "chunk":
            return self._queue.pop(0)
        # oldest first: weight exp(-k * i)
        weights = np.array([math.exp(-self.decay * i) for i in range(len(self._tails))])
        preds = np.stack([t[:, 0] for t in self._tails], axis=0)  # (n, B, A)
        action = np.tensordot(weights / weights.sum(), preds, axes=1).astype(preds.dtype)  # (B, A)
        self._tails = [t[:, 1:] for t in self._tails if t.shape[1] > 1]
        self._planned_this_step = False
        return action
