"""DrQ random shift: exact translations with repeated edges, per sample, reproducible by (seed, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from care.cli import parse_config
from care.configs import FinetuneConfig
from care.errors import ConfigError
from care.data.augment import augment_generator, random_shift


def shifted(img: np.ndarray, dx: int, dy: int, pad: int) -> np.ndarray:
    """(C, H, W) moved by the crop offset (dx, dy) of a `pad`-padded copy, edges repeated."""
    p = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    h, w = img.shape[1:]
    return p[:, dy:dy + h, dx:dx + w]


def test_every_sample_is_an_exact_translation_with_its_own_offset():
    pad = 3
    x = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = random_shift(x, pad, augment_generator(seed=0, step=5))
    assert y.shape == x.shape and y.dtype == torch.uint8
    offsets = []
    for xi, yi in zip(x.numpy(), y.numpy()):
        hits = [(dx, dy) for dx in range(2 * pad + 1) for dy in range(2 * pad + 1)
                if np.array_equal(shifted(xi, dx, dy, pad), yi)]
        assert len(hits) == 1, hits  # random images: exactly one offset explains the output
        offsets.append(hits[0])
    assert len(set(offsets)) > 10  # per sample, not one shift for the batch
    assert {o for off in offsets for o in off} <= set(range(2 * pad + 1))


def test_the_same_seed_and_step_draw_the_same_shifts_and_zero_is_identity():
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    a = random_shift(x, 4, augment_generator(1, 7))
    assert torch.equal(a, random_shift(x, 4, augment_generator(1, 7)))  # a resumed run draws the same
    assert not torch.equal(a, random_shift(x, 4, augment_generator(1, 8)))
    assert not torch.equal(a, random_shift(x, 4, augment_generator(2, 7)))
    assert random_shift(x, 0, augment_generator(1, 7)) is x


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*\(3, 16, 16\)"):
        random_shift(torch.zeros(3, 16, 16, dtype=torch.uint8), 2, augment_generator(0, 0))
    with pytest.raises(ConfigError, match="augment.shift must be >= 0 pixels, got -1"):
        parse_config(FinetuneConfig, ["--augment.shift", "-1"])
    assert parse_config(FinetuneConfig, ["--augment.shift", "4"]).augment.shift == 4
