"""Micro IDMs run single-threaded (a shared CPU makes spinning OpenMP threads slow micro tensors)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
