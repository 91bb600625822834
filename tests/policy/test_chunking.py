"""Executing action chunks: open-loop order, re-planning, ACT temporal ensembling."""

import math

import numpy as np
import pytest

from care.policy.chunking import ChunkExecutor


def _chunk(start, H=3, B=1, A=2):
    """Chunk whose action i is filled with the value start + i (distinguishable steps)."""
    vals = start + np.arange(H, dtype=np.float64)
    return np.broadcast_to(vals[None, :, None], (B, H, A)).copy()


def test_chunk_mode_executes_in_order_then_replans():
    ex = ChunkExecutor(chunk_size=3, mode="chunk")
    executed, plans = [], 0
    for step in range(7):
        if ex.needs_plan():
            ex.add_chunk(_chunk(100 * plans))
            plans += 1
        executed.append(ex.next_action()[0, 0])
    assert executed == [0, 1, 2, 100, 101, 102, 200]
    assert plans == 3
    ex.reset()
    assert ex.needs_plan()


def test_chunk_mode_with_fewer_action_steps():
    ex = ChunkExecutor(chunk_size=4, mode="chunk", n_action_steps=2)
    out = []
    for _ in range(4):
        if ex.needs_plan():
            ex.add_chunk(_chunk(10 * len(out), H=4))
        out.append(ex.next_action()[0, 0])
    assert out == [0, 1, 20, 21]


def test_temporal_ensembling_hand_computed():
    k = 0.5
    ex = ChunkExecutor(chunk_size=3, mode="ensemble", decay=k)
    w = [math.exp(-k * i) for i in range(3)]
    chunks = [_chunk(10.0 * s) for s in range(4)]  # chunk s predicts 10s, 10s+1, 10s+2 for steps s, s+1, s+2
    got = []
    for s in range(4):
        assert ex.needs_plan()
        ex.add_chunk(chunks[s])
        assert not ex.needs_plan()
        got.append(ex.next_action()[0, 0])
    # step 0: only chunk 0 (its action 0)
    # step 1: chunk 0's action 1 (oldest, weight 1), chunk 1's action 0 (weight e^-k)
    # step 2: chunk0[2], chunk1[1], chunk2[0]; step 3: chunk 0 is exhausted: chunk1[2], chunk2[1], chunk3[0]
    expected = [
        0.0,
        (1 * w[0] + 10 * w[1]) / (w[0] + w[1]),
        (2 * w[0] + 11 * w[1] + 20 * w[2]) / sum(w),
        (12 * w[0] + 21 * w[1] + 30 * w[2]) / sum(w),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ensemble_batched_and_decay_zero_is_plain_mean():
    ex = ChunkExecutor(chunk_size=2, mode="ensemble", decay=0.0)
    a = np.zeros((2, 2, 4))
    b = np.ones((2, 2, 4))
    b[1] *= 3
    ex.add_chunk(a)
    ex.next_action()
    ex.add_chunk(b)
    out = ex.next_action()
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out[0], 0.5)
    np.testing.assert_allclose(out[1], 1.5)


def test_misuse_is_reported():
    ex = ChunkExecutor(chunk_size=3)
    with pytest.raises(RuntimeError, match="add_chunk"):
        ex.next_action()
    with pytest.raises(ValueError, match=r"\(B, 3, A\)"):
        ex.add_chunk(np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="chunk \\| ensemble|one of"):
        ChunkExecutor(chunk_size=3, mode="weird")
