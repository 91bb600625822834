"""Micro IDMs train in module fixtures: one thread from the start (helpers.one_thread)."""

from __future__ import annotations

import pytest

from helpers import one_thread


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_thread():
        yield
