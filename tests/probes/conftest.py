"""The probes' micro models and probes run single-threaded (as tests/models and tests/training:
on a shared CPU, torch's spinning OpenMP threads make micro tensors 10-20x slower)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
