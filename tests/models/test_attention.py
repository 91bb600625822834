"""care.models.attention: SDPA itself in fp32 (bit for bit), the bf16 matmul path under CPU
autocast (close to fp32, masks and causality respected), and the transformers parts use it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from care.models.attention import ATTN_IMPLEMENTATION, scaled_dot_product_attention
from care.models.precision import autocast, resolve_precision


def qkv(B=2, h=2, T=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, T, d, generator=g) for _ in range(3)]


def test_fp32_is_torch_sdpa_bit_for_bit():
    q, k, v = qkv()
    mask = torch.rand(2, 1, 7, 7, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[..., 0] = True
    for kw in ({}, {"is_causal": True}, {"attn_mask": mask}):
        assert torch.equal(scaled_dot_product_attention(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw))


@pytest.mark.parametrize("kind", ["plain", "causal", "bool_mask", "float_mask", "cross"])
def test_bf16_autocast_path_matches_fp32(kind):
    q, k, v = qkv()
    kw: dict = {}
    if kind == "causal":
        kw["is_causal"] = True
    elif kind == "bool_mask":
        mask = torch.ones(2, 1, 7, 7, dtype=torch.bool)
        mask[0, :, :, 4:] = False  # the first sample's last keys are padding
        kw["attn_mask"] = mask
    elif kind == "float_mask":
        kw["attn_mask"] = torch.randn(1, 1, 7, 7)
    elif kind == "cross":  # 7 queries over 4 keys
        k, v = k[:, :, :4], v[:, :, :4]
    ref = F.scaled_dot_product_attention(q, k, v, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v, **kw)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
    if kind == "bool_mask":  # masked keys have no influence at all
        v2 = v.clone()
        v2[0, :, 4:] += 100.0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(scaled_dot_product_attention(q, k, v2, **kw)[0], out[0])


def test_bf16_path_has_gradients():
    q, k, v = (t.requires_grad_() for t in qkv())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scaled_dot_product_attention(q, k, v, is_causal=True).float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 for t in (q, k, v))


def test_transformers_parts_run_it_and_match_sdpa():
    """A Llama built with ATTN_IMPLEMENTATION gives SDPA's output exactly in fp32 (padding mask
    and causality included) and close to it under bf16 autocast."""
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    kw = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2)
    ours = LlamaModel(LlamaConfig(**kw, attn_implementation=ATTN_IMPLEMENTATION)).eval()
    ref = LlamaModel(LlamaConfig(**kw, attn_implementation="sdpa")).eval()
    ref.load_state_dict(ours.state_dict())
    assert ours.config._attn_implementation == ATTN_IMPLEMENTATION
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        b = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(a, b)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(c.float()[:, :6], b[:, :6], atol=0.1, rtol=0.05)


def test_precision_resolution(monkeypatch):
    import care.models.precision as precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("no") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") == "fp32"  # tests/conftest.py: no native bf16 in tests
    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": str(device) == "cpu")
    assert resolve_precision("auto", "cpu") == "bf16" and resolve_precision("auto", "meta") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8")
    with autocast("bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
