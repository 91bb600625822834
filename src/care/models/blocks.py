"""The transformer blocks every method builds from, written once (nanoGPT-style).

    init_linear      N(0, 1/fan_in) weights, zero bias
    Attention        multi-head self- or cross-attention (q, k without bias, v, proj); causal optional
    MLP              Linear -> GELU -> Linear
    Block            pre-LN: self-attention, MLP              (LAPA's spatial / temporal encoder)
    CrossBlock       pre-LN: self-attention, cross-attention to a context, MLP
                     (CARE's decoders, LAPA's decoder, CoMo's Q-Former and forward model)
    LatentContext    latent tokens (B,K,d) -> keys/values (B,K,C) with a position per token
    patchify         pixels (B,C,S,S) <-> flattened patches (B,(S/p)², C·p·p), either channel order

`init=False` leaves a block's linear layers at PyTorch's default init for a caller that
initialises the whole model itself (CoMo's `init_weights`). `legacy_names` maps parameter names
of older folders to today's (care.models.pretrained.load_weights renames them on load).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.models.attention import scaled_dot_product_attention


def init_linear(fc: nn.Linear, std: float | None = None) -> None:
    nn.init.normal_(fc.weight, std=std if std is not None else 1.0 / math.sqrt(fc.in_features))
    if fc.bias is not None:
        nn.init.zeros_(fc.bias)


class Attention(nn.Module):
    """Multi-head attention (care.models.attention's SDPA): queries from x (B,T,C), keys and values
    from `context` (B,S,Cc), x itself when None. `causal`: token t sees tokens <= t only."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, causal: bool = False, init: bool = True):
        super().__init__()
        assert dim % heads == 0, f"width {dim} must divide by heads {heads}"
        self.heads, self.causal = heads, causal
        self.q = nn.Linear(dim, dim)
        # no key bias: it shifts all of a query's logits equally, softmax ignores it, and its
        # gradient is float noise that Adam would turn into random steps
        self.k = nn.Linear(context_dim or dim, dim, bias=False)
        self.v = nn.Linear(context_dim or dim, dim)
        self.proj = nn.Linear(dim, dim)  # the residual branch's output
        if init:
            for fc in (self.q, self.k, self.v, self.proj):
                init_linear(fc)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B,T,C); context (B,S,Cc) or None (self); key_mask (B,S) bool, True = attend."""
        B, T, C = x.shape
        ctx = x if context is None else context
        S, h = ctx.shape[1], self.heads
        q = self.q(x).view(B, T, h, C // h).transpose(1, 2)  # (B, h, T, c)
        k = self.k(ctx).view(B, S, h, C // h).transpose(1, 2)  # (B, h, S, c)
        v = self.v(ctx).view(B, S, h, C // h).transpose(1, 2)  # (B, h, S, c)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, S)
        y = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)  # (B, h, T, c)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class MLP(nn.Module):
    legacy_names = {"fc": "fc1", "proj": "fc2"}  # CoMo folders written before the blocks were shared

    def __init__(self, dim: int, mult: int = 4, init: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(dim, mult * dim)
        self.fc2 = nn.Linear(mult * dim, dim)  # the residual branch's output
        if init:
            init_linear(self.fc1)
            init_linear(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention (causal optional), MLP."""

    def __init__(self, dim: int, heads: int, causal: bool = False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, causal=causal)
        self.mlp = MLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CrossBlock(nn.Module):
    """Pre-LN block: self-attention among x, cross-attention from x to a context, MLP.
    `norm_context`: the context gets its own LayerNorm first (CoMo's blocks)."""

    legacy_names = {"ln_self": "ln1", "ln_cross": "ln2", "ln_mlp": "ln3"}  # CoMo folders, as MLP's

    def __init__(self, dim: int, heads: int, norm_context: bool = False, init: bool = True):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ln_context = nn.LayerNorm(dim) if norm_context else nn.Identity()
        self.self_attn = Attention(dim, heads, init=init)
        self.cross_attn = Attention(dim, heads, init=init)
        self.mlp = MLP(dim, init=init)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.ln1(x), key_mask=mask)  # (B, T, C); mask: (B, T) real queries
        x = x + self.cross_attn(self.ln2(x), self.ln_context(context))  # context: (B, S, C)
        return x + self.mlp(self.ln3(x))


class LatentContext(nn.Module):
    """Latent tokens z (B,K,latent_dim) -> keys/values (B,K,C) for cross-attention."""

    def __init__(self, latent_dim: int, num_latents: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(latent_dim, dim)
        self.pos = nn.Parameter(torch.zeros(num_latents, dim))  # which of the K latents
        self.ln = nn.LayerNorm(dim)
        init_linear(self.proj)
        nn.init.normal_(self.pos, std=dim ** -0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.ln(self.proj(z) + self.pos)  # (B, K, C)


def patchify(pixels: torch.Tensor, p: int, channels_last: bool = False) -> torch.Tensor:
    """(B, C, S, S) -> (B, (S/p)², C·p·p), row-major over the grid; each patch flattened
    channel-first (c p p: LAPA's) or, with `channels_last`, (p p c: CoMo's)."""
    B, C, S, _ = pixels.shape
    g = S // p
    x = pixels.reshape(B, C, g, p, g, p)
    x = x.permute(0, 2, 4, 3, 5, 1) if channels_last else x.permute(0, 2, 4, 1, 3, 5)  # (B, g, g, ...)
    return x.reshape(B, g * g, C * p * p)


def unpatchify(patches: torch.Tensor, p: int, channels: int = 3) -> torch.Tensor:
    """(B, g², C·p·p) channel-first patches -> (B, C, g·p, g·p), the inverse of `patchify`."""
    B, P, _ = patches.shape
    g = math.isqrt(P)
    x = patches.reshape(B, g, g, channels, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, g, p, g, p)
    return x.reshape(B, channels, g * p, g * p)
