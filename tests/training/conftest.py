"""Micro models run single-threaded: on a shared CPU, torch's spinning OpenMP threads made these
tests 10-20x slower, and micro tensors gain nothing from a second thread (as tests/models)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
