"""Image augmentation for learning from a few labelled episodes: the fine-tuning's training batches
and the pseudo-labels' inverse-dynamics model (beyond the paper).

    images = random_shift(obs, pad=4, generator=g)     # uint8 (B, C, S, S) -> same shape and dtype

`random_shift` is DrQ's augmentation (Kostrikov et al. 2020; Yarats et al. 2021), the standard
one for learning visuomotor control from little data: pad each image by `pad` pixels (edge
pixels repeated) and crop it back at a random offset, so every sample is translated by up to
`pad` pixels each way. Integer offsets: the pixels are moved, never resampled.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F


def augment_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step's augmentation: a function of (seed, step) alone, so
    a resumed run draws what an uninterrupted one would."""
    return torch.Generator().manual_seed(zlib.crc32(f"augment/{seed}/{step}".encode()))


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of (B, C, H, W) by its own random (dx, dy) in [-pad, pad]."""
    if pad <= 0:
        return images
    if images.dim() != 4:
        raise ValueError(f"random_shift takes (B, C, H, W) images, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows, cols].to(images.dtype)
