"""Attention for every part of care: `scaled_dot_product_attention`, and ATTN_IMPLEMENTATION for
the `transformers` parts (LLM and vision towers).

It is torch's SDPA except in one case: bf16 / fp16 autocast on a CPU. There torch's flash-attention
kernel is slower than in fp32 — forward + backward of (64, 4, 65, 24) took 39 ms in bf16 against
9.5 ms in fp32 — and it ate every gain the bf16 matmuls bring (docs/RESULTS.md, issue 11). So
under CPU autocast the attention is two matmuls in the autocast dtype with an fp32 softmax (what
transformers' "eager" attention computes): 10.7 ms for the same shapes. fp32 runs and GPUs go
through SDPA unchanged, bit for bit.

Importing this module registers ATTN_IMPLEMENTATION with transformers' AttentionInterface (with
SDPA's mask builder); care.models.llm / care.models.vision build their parts with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

ATTN_IMPLEMENTATION = "care_sdpa"


def _cpu_autocast_dtype(q: torch.Tensor) -> torch.dtype | None:
    """The half dtype when `q` is on a CPU inside an autocast region, else None."""
    if q.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    return torch.get_autocast_dtype("cpu")


def _matmul_attention(q, k, v, attn_mask, is_causal: bool, dropout_p: float, scale: float | None, dtype):
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)).float() * scale  # (..., Tq, Tk) in fp32
    if attn_mask is None and is_causal:
        tq, tk = q.shape[-2], k.shape[-2]
        attn_mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:  # finite, as eager attention: a fully masked row stays finite
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attn_mask.float()
    probs = F.dropout(torch.softmax(scores, dim=-1), p=dropout_p, training=dropout_p > 0).to(dtype)
    return torch.matmul(probs, v)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention's contract: (..., T, d) in and out;
    attn_mask bool (True = attend) or additive float."""
    dtype = _cpu_autocast_dtype(q)
    if dtype is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)
    return _matmul_attention(q, k, v, attn_mask, is_causal, dropout_p, scale, dtype)


def care_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query/key/value (B, heads, T, d) (a Llama's query is
    fp32 after its rotary embedding, even under autocast); attention_mask as SDPA's mask builder
    makes it (bool, or None with `is_causal`). Returns ((B, T, heads, d), None)."""
    dtype = _cpu_autocast_dtype(query)
    if dtype is None or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    n_rep = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    causal = bool(is_causal) and attention_mask is None and query.shape[2] > 1
    out = _matmul_attention(query, key, value, attention_mask, causal, dropout if module.training else 0.0,
                            scaling, dtype)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTN_IMPLEMENTATION, care_attention_forward)
AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
