"""The action head: shapes, L1 loss on a hand-computed example, padding left out."""

import pytest
import torch

from care.configs import ActionHeadConfig
from care.models.action_head import ActionHead, l1_action_loss


def test_shapes_and_gradients():
    head = ActionHead(ActionHeadConfig(chunk_size=5, width=32), input_dim=16, num_latents=3, action_dim=4)
    hidden = torch.randn(2, 3, 16, requires_grad=True)
    out = head(hidden)
    assert out.shape == (2, 5, 4)
    out.sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    # a fresh head predicts near the middle of the normalised range
    assert out.abs().max() < 1.0
    with pytest.raises(ValueError, match=r"\(B, 3, 16\)"):
        head(torch.randn(2, 4, 16))


def test_l1_loss_hand_computed():
    pred = torch.tensor([[[0.0, 1.0], [0.5, -0.5]]])  # (1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.5]]])
    # |diffs| = 1, 0, 0.5, 1.0 -> mean 0.625
    assert l1_action_loss(pred, target).item() == pytest.approx(0.625)
    # second step is padding: only 1, 0 count -> 0.5
    is_pad = torch.tensor([[False, True]])
    assert l1_action_loss(pred, target, is_pad).item() == pytest.approx(0.5)
    # everything padded: zero, not NaN
    assert l1_action_loss(pred, target, torch.ones(1, 2, dtype=torch.bool)).item() == 0.0


def test_head_fits_a_simple_map():
    torch.manual_seed(0)
    head = ActionHead(ActionHeadConfig(chunk_size=2, width=32), input_dim=8, num_latents=2, action_dim=2)
    x = torch.randn(64, 2, 8)
    y = torch.tanh(x[:, :1, :2]).expand(64, 2, 2)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    first = None
    for _ in range(200):
        loss = l1_action_loss(head(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
