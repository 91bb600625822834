"""The probes on hand-made arrays: each must give the answer known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from care.probes import metrics as M


def test_linear_probe_equals_least_squares_on_a_linear_latent():
    rng = np.random.default_rng(0)
    n, d, o = 300, 12, 6
    actions = rng.uniform(-1, 1, size=(n, o))
    # a latent that is a noisy linear code of the actions, with an offset and uneven scales
    z = (actions @ rng.normal(size=(o, d)) + 0.3 * rng.normal(size=(n, d))) * np.linspace(0.1, 10, d) + 4.0
    y = np.clip(actions + 0.05 * rng.normal(size=actions.shape), -1, 1)
    tr, te = slice(0, 200), slice(200, None)
    xs_tr, xs_te = M.standardize(z[tr], z[te])
    w = np.linalg.lstsq(np.c_[xs_tr, np.ones(200)], y[tr], rcond=None)[0]
    lstsq = float(((np.c_[xs_te, np.ones(100)] @ w - y[te]) ** 2).mean())
    fit = M.linear_probe(z[tr].reshape(200, 3, 4), y[tr], z[te].reshape(100, 3, 4), y[te], epochs=600, lr=3e-2, seed=0)
    assert fit["mse"] == pytest.approx(lstsq, rel=1e-3)
    assert fit["mse"] < 0.2 * M.mean_prediction_mse(y[tr], y[te])  # the latent does carry the actions
    runs = [M.linear_probe(z[tr], y[tr], z[te], y[te], epochs=30, lr=3e-2, seed=0)["mse"] for _ in range(2)]
    assert runs[0] == runs[1]  # deterministic


def test_mean_prediction_mse_is_the_test_variance_around_the_train_mean():
    y_tr = np.array([[0.0], [2.0]])
    y_te = np.array([[1.0], [3.0]])
    assert M.mean_prediction_mse(y_tr, y_te) == pytest.approx((0 + 4) / 2)


def test_s_pcfc_is_one_for_a_target_only_latent_and_near_zero_for_independent_ones():
    rng = np.random.default_rng(1)
    frames = rng.random((50, 3, 8, 8))  # the target frames o_t

    def target_only(a, b):  # a latent that encodes only the target frame b
        return b.reshape(len(b), -1)

    sources_prev, sources_next = rng.random((50, 3, 8, 8)), rng.random((50, 3, 8, 8))
    assert M.s_pcfc(target_only(sources_prev, frames), target_only(sources_next, frames)) == pytest.approx(1.0)
    independent = M.s_pcfc(rng.normal(size=(2000, 4, 16)), rng.normal(size=(2000, 4, 16)))
    assert abs(independent) < 0.02
    assert M.s_pcfc(np.ones((3, 5)), -np.ones((3, 5))) == pytest.approx(-1.0)  # opposite motions


def _sequences(rng, n, classes, signal):
    labels = np.arange(n) % classes
    x = rng.normal(size=(n, 10, 6))
    x[:, 3:, 0] += signal * (labels[:, None] - (classes - 1) / 2)  # the class shows in later steps only
    return x, labels


def test_semantic_classifier_separates_separable_sequences_and_is_at_chance_on_noise():
    rng = np.random.default_rng(2)
    x_tr, y_tr = _sequences(rng, 60, 3, signal=4.0)
    x_te, y_te = _sequences(rng, 60, 3, signal=4.0)
    assert M.sequence_accuracy(x_tr, y_tr, x_te, y_te, epochs=100, lr=1e-2, seed=0) == 1.0
    accs = []
    for seed in range(2):
        n_tr, n_te = _sequences(rng, 60, 3, signal=0.0), _sequences(rng, 300, 3, signal=0.0)
        accs.append(M.sequence_accuracy(*n_tr, *n_te, epochs=100, lr=1e-2, seed=seed))
    assert abs(np.mean(accs) - 1 / 3) < 0.08


def test_semantic_rows_have_the_table_shapes_and_slots():
    rng = np.random.default_rng(3)
    frames, latents = rng.random((4, 10, 5)), rng.random((4, 9, 7))
    rows = M.semantic_rows(frames, latents, np.array([True, True, False, False]))
    assert rows["semantic_initial"].shape == (4, 1, 5)
    assert rows["semantic_initial_x10"].shape == (4, 10, 5)
    assert np.array_equal(rows["semantic_initial_x10"][:, 9], rows["semantic_initial"][:, 0])
    assert rows["semantic_frames"].shape == (4, 10, 5)
    d = rows["semantic_accuracy"]
    assert d.shape == (4, 10, 12)
    assert np.array_equal(d[:, 0, :5], rows["semantic_initial"][:, 0]) and not d[:, 0, 5:].any()
    assert not d[:, 1:, :5].any() and d[:, 1:, 5:].any()
    assert list(rows) == list(M.SEMANTIC_ROWS)


def test_pca_finds_the_spread_direction():
    rng = np.random.default_rng(4)
    x = np.c_[rng.normal(size=200) * 10, rng.normal(size=200) * 0.1]  # z-scored first, so both count equally
    proj, ratio = M.pca_2d(np.c_[x, x[:, :1]])  # a duplicated column: one direction holds 2/3
    assert proj.shape == (200, 2) and ratio[0] == pytest.approx(2 / 3, abs=0.05)
