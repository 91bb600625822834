"""Models, frames and the latent actions the probes read.

    model = load_model(run, device)                         # any method (care.methods.registry)
    rand = random_init_model(run, seed, device)             # same method and configs, fresh weights
    z = latent_actions(model, frames, pairs, instr, bs)     # (P, K, d) for (source, target) pairs
    frame_features(frames)                                  # the cheap fixed frame embedding

A latent "from a to b" is `model.action_latent(obs=a, future_obs=b, instructions)`: every
method's latent action for the motion o_a -> o_b (care.methods.model.PretrainedModel).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

FRAME_FEATURE_SIZE = 8  # frames -> 8x8x3 = 192 numbers: the semantic probe's and S-PCFC reference's frame code


def load_model(run: Path, device: str = "cpu"):
    """The pretraining model of a `care pretrain` folder, whatever its method, in eval mode."""
    from care.methods.registry import load_pretrained

    return load_pretrained(Path(run)).to(device).eval()


def random_init_model(run: Path, seed: int, device: str = "cpu"):
    """A model of the folder's method and configs with fresh random weights (seeded): LP-MSE's
    "what the architecture alone gives" reference. A two-stage model reads its latent from its
    frozen stage-1 model, which is re-initialised too (PretrainedModel.reset_loaded_parts)."""
    from care.methods.model import read_folder_configs
    from care.methods.registry import model_class
    from care.models.pretrained import build_config
    from care.models.tokenizer import load_tokenizer

    run = Path(run)
    cfg, method = read_folder_configs(run)
    method = method.resolve_paths(run)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = model_class(method)(build_config(cfg, run), method, load_tokenizer(run))
    model.reset_loaded_parts(int(seed) + 1)
    return model.to(device).eval()


def resize(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size, size, 3), cv2.INTER_AREA (as the clip dataset serves them)."""
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def frame_features(frames: np.ndarray, size: int = FRAME_FEATURE_SIZE) -> np.ndarray:
    """A fixed, cheap frame embedding: the frame area-downsampled to size x size, RGB, in [0, 1],
    flattened: (T, size*size*3). Nothing learnt, the same for every method."""
    small = resize(np.asarray(frames), size).astype(np.float64) / 255.0
    return small.reshape(len(small), -1)


@torch.no_grad()
def latent_actions(model, frames: torch.Tensor, pairs: list[tuple[int, int]], instruction: str,
                   batch_size: int) -> np.ndarray:
    """The latent action of each (source, target) frame pair of one episode.

    frames: uint8 (T, 3, S, S) at the model's image size; pairs: [(a, b)] frame indices;
    returns float32 (P, K, d) = model.action_latent(frames[a], frames[b], [instruction]).
    """
    if not pairs:
        return np.zeros((0, 0, 0), np.float32)
    device = next(model.parameters()).device
    src = torch.as_tensor([p[0] for p in pairs])
    tgt = torch.as_tensor([p[1] for p in pairs])
    out = []
    for i in range(0, len(pairs), batch_size):
        a = frames[src[i:i + batch_size]].to(device)
        b = frames[tgt[i:i + batch_size]].to(device)
        z = model.action_latent(a, b, [instruction] * len(a))
        out.append(z.float().cpu().numpy())
    z = np.concatenate(out)
    return z.reshape(len(z), -1, z.shape[-1]) if z.ndim >= 2 else z.reshape(len(z), 1, 1)
