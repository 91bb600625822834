"""Batches: a data order that is a function of (seed, step), and a collate for clips.

The order is what makes resume exact and multi-process runs equivalent to one process:

    epoch e        = a permutation of the items drawn from (seed, e)
    global batch s = positions [s·G, (s+1)·G) of the concatenated epochs   (G = b × processes)
    process p      = positions [p·b, (p+1)·b) of global batch s

so a run resumed at step k asks for steps k, k+1, ... and gets exactly the batches the
uninterrupted run got, and 2 processes with b each see the same samples as 1 with 2b.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate


class StepBatchSampler(Sampler[list[int]]):
    """Yields this process's indices for steps start_step, start_step+1, ..., start_step+num_steps-1."""

    def __init__(self, num_items: int, batch_size: int, num_processes: int = 1, process_index: int = 0,
                 seed: int = 0, start_step: int = 0, num_steps: int | None = None):
        if num_items < 1:
            raise ValueError("StepBatchSampler needs at least one item")
        self.n = num_items
        self.b = batch_size
        self.procs = num_processes
        self.rank = process_index
        self.seed = seed
        self.start_step = start_step
        self.num_steps = num_steps
        self._perm_epoch, self._perm = -1, None

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def global_batch(self, step: int) -> list[int]:
        """All processes' indices for one step (G = b × processes)."""
        G = self.b * self.procs
        out = []
        for pos in range(step * G, (step + 1) * G):
            epoch, i = divmod(pos, self.n)
            out.append(int(self._epoch_perm(epoch)[i]))
        return out

    def batch(self, step: int) -> list[int]:
        return self.global_batch(step)[self.rank * self.b:(self.rank + 1) * self.b]

    def __iter__(self):
        step = self.start_step
        while self.num_steps is None or step < self.start_step + self.num_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return self.num_steps


def step_loader(dataset: Dataset, sampler_kw: dict, start_step: int, total_steps: int, num_workers: int,
                collate_fn) -> DataLoader:
    """The training loader: this process's batches for steps start_step .. total_steps - 1
    (`sampler_kw`: StepBatchSampler's num_items, batch_size, num_processes, process_index, seed)."""
    sampler = StepBatchSampler(**sampler_kw, start_step=start_step, num_steps=max(total_steps - start_step, 0))
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_fn)


def collate_clips(items: list[dict]) -> dict:
    """default_collate, except that point tracks of different counts (tasks track different
    bodies) are padded to the batch's largest N, with `point_valid` (B, N) marking real points."""
    if "tracks" not in items[0]:
        return default_collate(items)
    counts = [it["tracks"].shape[0] for it in items]
    N = max(counts)
    keyed = ("tracks", "future_tracks", "visible")
    rest = default_collate([{k: v for k, v in it.items() if k not in keyed} for it in items])
    B = len(items)
    tracks = torch.zeros(B, N, 2)
    future = torch.zeros(B, N, 2)
    visible = torch.zeros(B, N, dtype=torch.bool)
    valid = torch.zeros(B, N, dtype=torch.bool)
    for i, it in enumerate(items):
        n = counts[i]
        tracks[i, :n] = it["tracks"]
        if "future_tracks" in it:
            future[i, :n] = it["future_tracks"]
        visible[i, :n] = it["visible"]
        valid[i, :n] = True
    rest.update(tracks=tracks, visible=visible, point_valid=valid)
    if "future_tracks" in items[0]:
        rest["future_tracks"] = future
    return rest
