"""Action normalisation: [q01, q99] -> [-1, 1], exact round trip, clipping, zero-width dims."""

import numpy as np
import pytest
import torch

from care.errors import ConfigError
from care.policy.normalize import ActionNormalizer, fit_action_normalizer


def _actions(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, size=(n, 4)) * np.array([0.5, 2.0, 1.0, 1.0])
    a[:, 3] = 1.0  # a gripper that never opens: zero width
    return a.astype(np.float32)


def test_bounds_are_percentiles_and_map_to_unit_range():
    a = _actions()
    norm = fit_action_normalizer(a)
    np.testing.assert_allclose(norm.low, np.quantile(a.astype(np.float64), 0.01, axis=0))
    np.testing.assert_allclose(norm.high, np.quantile(a.astype(np.float64), 0.99, axis=0))
    np.testing.assert_allclose(norm.normalize(norm.low[None])[0, :3], -1.0)
    np.testing.assert_allclose(norm.normalize(norm.high[None])[0, :3], 1.0)
    x = norm.normalize(a)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_round_trip_exact_inside_range_and_clipped_outside():
    a = _actions().astype(np.float64)
    norm = fit_action_normalizer(a)
    inside = np.all((a >= norm.low) & (a <= norm.high), axis=1)
    assert inside.sum() > 1500
    back = norm.unnormalize(norm.normalize(a[inside]))
    np.testing.assert_allclose(back, a[inside], rtol=0, atol=1e-12)
    # outside the range: clipped to the bound
    far = norm.high + 10.0
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(far[None]))[0], norm.high)
    assert np.all(norm.unnormalize(np.full((1, 4), 5.0)) == norm.high)


def test_zero_width_dimension():
    norm = fit_action_normalizer(_actions())
    assert norm.low[3] == norm.high[3] == 1.0
    x = norm.normalize(np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, -3.0]]))
    assert np.all(np.isfinite(x)) and np.all(x[:, 3] == 0.0)
    assert np.all(norm.unnormalize(np.array([[0.3, 0.3, 0.3, 0.7]]))[:, 3] == 1.0)


def test_torch_matches_numpy_and_keeps_dtype_device():
    a = _actions()
    norm = fit_action_normalizer(a)
    t = torch.from_numpy(a)
    x = norm.normalize(t)
    assert x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), norm.normalize(a), atol=1e-6)
    np.testing.assert_allclose(norm.unnormalize(x).numpy(), norm.unnormalize(norm.normalize(a)), atol=1e-6)


def test_save_load_is_exact(tmp_path):
    norm = fit_action_normalizer(_actions())
    norm.save(tmp_path)
    again = ActionNormalizer.load(tmp_path)
    assert np.array_equal(again.low, norm.low) and np.array_equal(again.high, norm.high)
    assert again.count == 2000
    with pytest.raises(ConfigError, match="not a fine-tuned policy folder"):
        ActionNormalizer.load(tmp_path / "elsewhere")


def test_wrong_action_dim_is_rejected():
    norm = fit_action_normalizer(_actions())
    with pytest.raises(ValueError, match="last dim 4"):
        norm.normalize(np.zeros((2, 3)))
