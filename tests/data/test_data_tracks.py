"""care.data.tracks: per-episode safetensors, atomic, errors naming the file."""

import numpy as np
import pytest

from care.data.tracks import TrackStore
from care.errors import DatasetError


def test_round_trip_and_listing(tmp_path):
    store = TrackStore(tmp_path)
    assert store.episodes() == [] and not store.has(0)
    rng = np.random.default_rng(0)
    tracks = rng.uniform(0, 64, size=(12, 5, 2)).astype(np.float32)
    visible = rng.random((12, 5)) > 0.5
    store.write(3, tracks, visible, {"method": "klt", "grid": 16})
    store.write(0, tracks[:4], visible[:4])
    assert store.episodes() == [0, 3] and store.has(3)
    t, v, meta = store.read(3)
    np.testing.assert_array_equal(t, tracks)
    np.testing.assert_array_equal(v, visible)
    assert t.dtype == np.float32 and v.dtype == bool
    assert meta == {"method": "klt", "grid": "16"} and store.meta(3) == meta
    assert sorted(p.name for p in store.dir.iterdir()) == ["episode_000000.safetensors", "episode_000003.safetensors"]


def test_bad_inputs_and_files(tmp_path):
    store = TrackStore(tmp_path)
    with pytest.raises(ValueError, match=r"\(T, N, 2\)"):
        store.write(0, np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="visible"):
        store.write(0, np.zeros((3, 4, 2)), np.zeros((3, 5)))
    with pytest.raises(DatasetError, match="episode_000007.safetensors: no tracks.*care track"):
        store.read(7)
    store.dir.mkdir(parents=True, exist_ok=True)
    store.path(1).write_bytes(b"\x00" * 20)
    with pytest.raises(DatasetError, match="episode_000001.safetensors: unreadable"):
        store.read(1)
