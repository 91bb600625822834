"""The probes' micro models and probes run single-threaded (helpers.one_thread)."""

from __future__ import annotations

import pytest

from helpers import one_thread


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield
