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


def test_univla_head_reads_the_latent_and_the_scene():
    from care.models.action_head import UniVLAHead, action_head_from_dict, build_action_head

    torch.manual_seed(0)
    cfg = ActionHeadConfig(type="univla", chunk_size=3, width=32, attention_heads=4)
    head = build_action_head(cfg, input_dim=16, num_latents=2, action_dim=4)
    assert isinstance(head, UniVLAHead) and head.reads_vision and not hasattr(head, "in_proj")
    hidden = torch.randn(2, 2, 16, requires_grad=True)
    vision = torch.randn(2, 9, 16, requires_grad=True)
    out = head(hidden, vision)
    assert out.shape == (2, 3, 4)
    out.sum().backward()
    assert hidden.grad.abs().sum() > 0 and vision.grad.abs().sum() > 0  # both inputs reach the actions
    head.eval()
    with torch.no_grad():
        base = head(hidden, vision)
        # the scene matters: other vision states, other actions; the latent matters too
        assert (head(hidden, torch.randn(2, 9, 16)) - base).abs().max() > 1e-3
        assert (head(torch.randn(2, 2, 16), vision) - base).abs().max() > 1e-3
        # a sample's actions do not depend on the batch it is in (batch-invariant inference)
        assert torch.equal(head(hidden[1:], vision[1:]), base[1:])
        # policy_config.json's record rebuilds the same head
        again = action_head_from_dict(head.to_dict())
        again.load_state_dict(head.state_dict())
        assert torch.equal(again.eval()(hidden, vision), base)
    with pytest.raises(ValueError, match="reads the vision tokens"):
        head(hidden)
    with pytest.raises(ValueError, match="multiple of head.attention_heads"):
        ActionHeadConfig(type="univla", width=30, attention_heads=4)
    # a record written before heads had a type is the MLP head
    old = {"chunk_size": 3, "width": 32, "num_blocks": 2, "dropout": 0.0, "input_dim": 16, "num_latents": 2,
           "action_dim": 4}
    assert type(action_head_from_dict(old)) is ActionHead


def test_univla_policy_fine_tunes_and_loads(tmp_path):
    """CareVLA hands the univla head the vision tokens' states; the saved folder loads the same policy."""
    from care.configs import FinetuneConfig, LoRAConfig
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import train_bpe_tokenizer
    from care.policy import save_policy
    from care.policy.folder import load_policy_model
    from care.presets import get_preset
    from care.training.finetune import build_policy_model
    from helpers import INSTR, META, normalizer

    torch.manual_seed(0)
    mcfg = get_preset("micro")
    vlm = LatentVLM(mcfg, train_bpe_tokenizer(INSTR, mcfg.vocab_size))
    cfg = FinetuneConfig(pretrained=None, head=ActionHeadConfig(type="univla", chunk_size=2, width=32),
                         lora=LoRAConfig(enabled=False))
    model = build_policy_model(cfg, vlm, action_dim=4)
    obs = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    target = torch.rand(2, 2, 4) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):  # the head and the VLM's vision tokens both learn from the action loss
        loss = l1_action_loss(model(obs, INSTR), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    model.eval()
    save_policy(tmp_path / "p", model, normalizer(), META)
    loaded = load_policy_model(tmp_path / "p")[0]
    assert type(loaded.head).__name__ == "UniVLAHead"
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(obs, INSTR), model(obs, INSTR), atol=1e-6)
