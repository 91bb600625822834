"""The CoTracker adapter, run for real against a small local hub repository (conftest.fake_cotracker)."""

import numpy as np
import pytest
import torch

from care.configs import CoTrackerConfig
from care.errors import ConfigError
from care.tracking.cotracker import load_cotracker, track_cotracker
from care.tracking.grid import grid_points


SHIFT = (1.5, -1.0)  # as the fake_cotracker fixture's checkpoint (conftest.py)


@pytest.fixture
def hub(fake_cotracker) -> CoTrackerConfig:
    assert fake_cotracker.shift == SHIFT
    return fake_cotracker.cfg


def test_loads_from_local_repo_and_converts(hub):
    predictor = load_cotracker(hub)
    assert torch.allclose(predictor.model.shift, torch.tensor(SHIFT))
    T, H, W = 6, 32, 40
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    q = grid_points(4, H, W)  # rows at y = 3.5, 11.5, ...
    tracks, visible = track_cotracker(predictor, frames, q)
    assert tracks.shape == (T, 16, 2) and tracks.dtype == np.float32
    assert visible.shape == (T, 16) and visible.dtype == bool
    expected = q[None] + np.arange(T)[:, None, None] * np.float32(SHIFT)
    np.testing.assert_allclose(tracks, expected, atol=1e-5)
    # CoTracker's own visibility is kept (point 5 blinks), and points it places outside the
    # image are invisible: the top row reaches y < 0 and the right column x > W-1 at t = 4
    expected_visible = np.ones((T, 16), dtype=bool)
    expected_visible[:, 5] = np.arange(T) % 2 == 0
    expected_visible[4:, 0:4] = False  # top row
    expected_visible[4:, 3::4] = False  # right column
    np.testing.assert_array_equal(visible, expected_visible)


def test_checkpoint_wrapped_in_model_key(hub, tmp_path):
    torch.save({"model": {"shift": torch.tensor([2.0, 0.0])}}, hub.checkpoint)
    assert torch.allclose(load_cotracker(hub).model.shift, torch.tensor([2.0, 0.0]))


def test_missing_paths_say_what_to_provide(hub, tmp_path):
    with pytest.raises(ConfigError, match="--tracker.repo_dir"):
        load_cotracker(CoTrackerConfig(checkpoint=hub.checkpoint))
    with pytest.raises(ConfigError, match="no hubconf.py"):
        load_cotracker(CoTrackerConfig(repo_dir=tmp_path, checkpoint=hub.checkpoint))
    with pytest.raises(ConfigError, match="--tracker.checkpoint"):
        load_cotracker(CoTrackerConfig(repo_dir=hub.repo_dir))
    with pytest.raises(ConfigError, match="not found"):
        load_cotracker(CoTrackerConfig(repo_dir=hub.repo_dir, checkpoint=tmp_path / "nope.pth"))


def test_wrong_checkpoint_or_model_name(hub):
    torch.save({"other": torch.zeros(3)}, hub.checkpoint)
    with pytest.raises(ConfigError, match="does not fit"):
        load_cotracker(hub)
    with pytest.raises(ConfigError, match="cannot build 'cotracker9'"):
        load_cotracker(CoTrackerConfig(repo_dir=hub.repo_dir, checkpoint=hub.checkpoint, model_name="cotracker9"))
    with pytest.raises(ConfigError, match="online"):
        load_cotracker(CoTrackerConfig(repo_dir=hub.repo_dir, checkpoint=hub.checkpoint, model_name="cotracker3_online"))
