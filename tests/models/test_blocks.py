"""The shared transformer blocks (care.models.blocks) and loading folders written with older
parameter names (care.models.pretrained.rename_legacy_keys)."""

from __future__ import annotations

import torch
import torch.nn as nn

from care.models.blocks import MLP, Attention, CrossBlock, patchify, unpatchify
from care.models.pretrained import load_weights


def test_attention_self_cross_causal_and_masked():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    assert Attention(32, 2)(x).shape == (2, 5, 32)
    assert Attention(32, 2, context_dim=16)(x, torch.randn(2, 3, 16)).shape == (2, 5, 32)
    causal = Attention(32, 2, causal=True)
    y = causal(x)
    x2 = x.clone()
    x2[:, -1] += 1.0  # the last token changes: no earlier output may
    torch.testing.assert_close(causal(x2)[:, :-1], y[:, :-1])
    a = Attention(32, 2)
    mask = torch.tensor([[True] * 4 + [False]] * 2)
    x3 = x.clone()
    x3[:, -1] += 1.0  # a masked key changes: the outputs of the others do not
    torch.testing.assert_close(a(x3, key_mask=mask)[:, :-1], a(x, key_mask=mask)[:, :-1])


def test_patchify_layouts_are_row_major_and_invertible():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    first = patchify(x, 4)
    assert first.shape == (2, 4, 48) and torch.equal(unpatchify(first, 4), x)
    assert torch.equal(first[0, 1], x[0, :, :4, 4:8].flatten())  # channel-first (c p p)
    last = patchify(x, 4, channels_last=True)
    assert torch.equal(last[0, 1], x[0, :, :4, 4:8].permute(1, 2, 0).flatten())  # channels last (p p c)


class _Old(nn.Module):
    """The parameter names CoMo's blocks had before they were shared."""

    def __init__(self):
        super().__init__()
        self.ln_self, self.ln_cross, self.ln_mlp = nn.LayerNorm(8), nn.LayerNorm(8), nn.LayerNorm(8)
        self.mlp = nn.Module()
        self.mlp.fc, self.mlp.proj = nn.Linear(8, 32), nn.Linear(32, 8)
        for ln in (self.ln_self, self.ln_cross, self.ln_mlp):
            nn.init.normal_(ln.weight)  # not the new block's init: the copy is what is checked


def test_folders_with_older_parameter_names_load(tmp_path):
    torch.manual_seed(0)
    old = _Old()
    file = tmp_path / "model.safetensors"
    new = CrossBlock(8, 2, norm_context=True, init=False)
    state = {k: v for k, v in new.state_dict().items() if not k.startswith(("ln1", "ln2", "ln3", "mlp"))}
    state.update({k: v for k, v in old.state_dict().items()})
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(file))
    load_weights(new, file)
    assert torch.equal(new.ln1.weight, old.ln_self.weight) and torch.equal(new.ln3.weight, old.ln_mlp.weight)
    assert torch.equal(new.mlp.fc1.weight, old.mlp.fc.weight) and torch.equal(new.mlp.fc2.weight, old.mlp.proj.weight)
    assert isinstance(new.mlp, MLP)
