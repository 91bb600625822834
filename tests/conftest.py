"""Shared fixtures. `make_dataset` builds a micro synthetic LeRobot v3 dataset (tests/helpers.py).

Import the helpers as `from helpers import make_dataset` (this folder is put on sys.path):
`tests` itself is not importable as a package, because draccus installs a top-level
`tests` package into site-packages that shadows ours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_dataset as _make_dataset, one_thread  # noqa: E402


@pytest.fixture
def make_dataset(tmp_path):
    """Factory: make_dataset(episodes=2, T=30, size=32, with_actions=True, with_tracks=True, ...) -> root."""
    counter = iter(range(10**6))

    def factory(**kw):
        kw.setdefault("name", f"ds{next(counter)}")
        return _make_dataset(tmp_path, **kw)

    return factory


@pytest.fixture
def micro_dataset(tmp_path):
    """A 2-episode, 2-task dataset with actions, state and tracks (T=30, 32x32, 10 fps)."""
    return _make_dataset(tmp_path, episodes=2, T=30, size=32)


_SINGLE_THREAD_FOLDERS = {"models", "training"}


@pytest.fixture(autouse=True)
def _single_thread(request):
    """Micro models (tests/models, tests/training) run single-threaded (helpers.one_thread: 3 min
    instead of 10 s on a shared CPU); folders with module-scoped training fixtures do it per module."""
    if Path(str(request.path)).parent.name not in _SINGLE_THREAD_FOLDERS:
        yield
        return
    with one_thread():
        yield


@pytest.fixture(autouse=True)
def _fp32_unless_asked(monkeypatch):
    """`--mixed-precision auto` (the default) is bf16 on CPUs with native bf16 and fp32 elsewhere;
    tests check numbers, so in tests "auto" means fp32 on every machine. A test that wants bf16
    asks for "bf16"; the micro YAML configs (run in subprocesses too) pin fp32."""
    import care.models.precision as precision

    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": False)
