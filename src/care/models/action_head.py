"""The action head: a residual MLP from the latent placeholders' hidden states to actions.

Paper §2.3: "a lightweight residual MLP attached to the decoder output [...] following the
design pattern in [OpenVLA-OFT]", trained with an L1 loss. As in OpenVLA-OFT's
`L1RegressionActionHead` (an `MLPResNet`): an input LayerNorm + projection, pre-LayerNorm
residual blocks, a final LayerNorm and a linear read-out.

Deviation (docs/DESIGN.md §4, beyond the paper): OFT reads one hidden state per action token; we read
the K latent-placeholder states of the policy view, flatten them and regress a whole chunk of
H actions (H = 1 reproduces the paper's single-step head).

    head = ActionHead(ActionHeadConfig(chunk_size=H), input_dim=W, num_latents=K, action_dim=A)
    pred = head(hidden)                          # (B, K, W) -> (B, H, A), normalised actions
    loss = l1_action_loss(pred, target, is_pad)  # mean |pred - target| over non-padded steps

Beyond the paper, `--head.type univla` is UniVLA's action decoder (Bu et al., RSS 2025): the
action is read from the latent action *and* the scene. A learned query attention-pools the
vision tokens' last hidden states into one scene summary; the summary, added to a second learned
query, attention-pools the K latent placeholders' states; the same residual MLP reads the result
out. (UniVLA pools with Prismatic's MAPBlock and a tanh read-out; ours pools with
`nn.MultiheadAttention` and keeps the linear read-out of the MLP head, so the two heads differ
only in what they read.)

    head = build_action_head(ActionHeadConfig(type="univla", chunk_size=H), W, K, A)
    pred = head(hidden, vision)                  # (B, K, W), (B, N, W) -> (B, H, A)
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ActionHeadConfig


class ResidualBlock(nn.Module):
    """x + W2·GELU(W1·LN(x)): a pre-LayerNorm residual MLP block."""

    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm(x)))))


class ActionHead(nn.Module):
    """(B, K, W) hidden states -> (B, H, A). `config` is the fine-tuning's `--head.*` (chunk size,
    width, blocks, dropout); the three dimensions come from the VLM and the dataset."""

    reads_vision = False  # forward(hidden) only; UniVLAHead also reads the vision tokens' states

    def __init__(self, config: ActionHeadConfig, input_dim: int, num_latents: int, action_dim: int):
        super().__init__()
        for name, v in (("input_dim", input_dim), ("num_latents", num_latents), ("action_dim", action_dim)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.config = c = config
        self.input_dim, self.num_latents, self.action_dim = input_dim, num_latents, action_dim
        self.in_norm = nn.LayerNorm(input_dim)  # the LLM's states are not normalised at the placeholders
        self.in_proj = nn.Linear(num_latents * input_dim, c.width)
        self.blocks = nn.ModuleList([ResidualBlock(c.width, c.dropout) for _ in range(c.num_blocks)])
        self.out_norm = nn.LayerNorm(c.width)
        self.out_proj = nn.Linear(c.width, c.chunk_size * action_dim)
        self._init_weights()

    def to_dict(self) -> dict:
        """What policy_config.json records under "head" (enough to rebuild this module)."""
        return {**asdict(self.config), "input_dim": self.input_dim, "num_latents": self.num_latents,
                "action_dim": self.action_dim}

    def _init_weights(self) -> None:
        # Explicit init (docs/DESIGN.md §3: defaults have bitten us). Fan-in scaled projections; each
        # block's output projection scaled by 1/sqrt(2·blocks) so the residual stream's variance
        # does not grow with depth (GPT-2's scaled residual init); a small read-out so that the
        # first predictions sit near 0, the middle of the normalised range.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)
        for b in self.blocks:
            b.fc2.weight.data.mul_(1.0 / math.sqrt(2 * max(1, len(self.blocks))))
        self.out_proj.weight.data.mul_(0.1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, K, W) placeholder hidden states -> (B, H, A) normalised actions."""
        B, K, W = hidden.shape
        c = self.config
        if (K, W) != (self.num_latents, self.input_dim):
            raise ValueError(f"expected hidden states (B, {self.num_latents}, {self.input_dim}), got {tuple(hidden.shape)}")
        if B > 1 and not self.training:
            # Batch-invariant inference: a (B, D) matmul picks its CPU kernel by B, so a row inside
            # a batch of 10 and the same row alone differed in the last bits (1e-7), and a batched
            # evaluation drifted from the one-at-a-time one. Row by row costs ~nothing here (the
            # (B·T, D) matmuls of the VLM are batch-invariant as they are: tests/policy/test_controller.py).
            return torch.cat([self(hidden[i:i + 1]) for i in range(B)])
        x = self.in_norm(hidden).reshape(B, K * W)  # (B, K*W)
        x = self.in_proj(x)  # (B, width)
        for block in self.blocks:
            x = block(x)
        x = self.out_proj(self.out_norm(x))  # (B, H*A)
        return x.view(B, c.chunk_size, self.action_dim)  # (B, H, A)


class AttentionPool(nn.Module):
    """Multi-head attention pooling (as Prismatic's MAPBlock): a learned query (plus an optional
    per-sample one) attends to the tokens, then a pre-LN MLP on the pooled vector.

    (B, N, D) tokens [+ (B, width) init] -> (B, width)"""

    def __init__(self, input_dim: int, width: int, heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.empty(1, 1, width))
        self.norm = nn.LayerNorm(input_dim)  # the LLM's states are not normalised at these positions
        self.proj = nn.Linear(input_dim, width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = ResidualBlock(width)
        nn.init.normal_(self.query, std=1.0 / math.sqrt(width))

    def forward(self, tokens: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
        kv = self.proj(self.norm(tokens))  # (B, N, width)
        q = self.query.expand(tokens.shape[0], -1, -1)  # (B, 1, width)
        if init is not None:
            q = q + init.unsqueeze(1)
        pooled, _ = self.attn(q, kv, kv, need_weights=False)  # (B, 1, width)
        return self.mlp(q + pooled).squeeze(1)  # (B, width)


class UniVLAHead(ActionHead):
    """(B, K, W) placeholder states + (B, N, W) vision-token states -> (B, H, A): UniVLA's decoder
    (module docstring). Shares the MLP head's residual read-out and its bookkeeping."""

    reads_vision = True

    def __init__(self, config: ActionHeadConfig, input_dim: int, num_latents: int, action_dim: int):
        super().__init__(config, input_dim, num_latents, action_dim)
        c = config
        del self.in_norm, self.in_proj  # the pools replace the flatten-and-project input
        self.visual_pool = AttentionPool(input_dim, c.width, c.attention_heads)
        self.latent_pool = AttentionPool(input_dim, c.width, c.attention_heads)
        self._init_weights()  # every projection, the pools' included, drawn the same explicit way

    def forward(self, hidden: torch.Tensor, vision: torch.Tensor | None = None) -> torch.Tensor:
        B, K, W = hidden.shape
        if (K, W) != (self.num_latents, self.input_dim):
            raise ValueError(f"expected hidden states (B, {self.num_latents}, {self.input_dim}), got {tuple(hidden.shape)}")
        if vision is None or vision.shape[0] != B or vision.shape[-1] != W:
            raise ValueError(f"the univla head reads the vision tokens' states (B={B}, N, {W}) too, got "
                             f"{None if vision is None else tuple(vision.shape)}")
        if B > 1 and not self.training:  # batch-invariant inference, as ActionHead.forward
            return torch.cat([self(hidden[i:i + 1], vision[i:i + 1]) for i in range(B)])
        scene = self.visual_pool(vision)  # (B, width)
        x = self.latent_pool(hidden, init=scene)  # (B, width)
        for block in self.blocks:
            x = block(x)
        x = self.out_proj(self.out_norm(x))  # (B, H*A)
        return x.view(B, self.config.chunk_size, self.action_dim)


HEADS = {"mlp": ActionHead, "univla": UniVLAHead}


def build_action_head(config: ActionHeadConfig, input_dim: int, num_latents: int, action_dim: int) -> ActionHead:
    """The head `config.type` names."""
    return HEADS[config.type](config, input_dim=input_dim, num_latents=num_latents, action_dim=action_dim)


def action_head_from_dict(d: dict) -> ActionHead:
    """A head from policy_config.json's "head" record (folders written before heads had a type
    hold the MLP head)."""
    d = dict(d)
    dims = {k: int(d.pop(k)) for k in ("input_dim", "num_latents", "action_dim")}
    return build_action_head(ActionHeadConfig(**d), **dims)


def l1_action_loss(pred: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over every (step, dim) that is not padding.

    pred, target: (B, H, A); is_pad: bool (B, H), True where the target repeats the episode's
    last action past its end (ClipDataset's padding) — those steps are left out, as in ACT.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = (pred - target.to(pred.dtype)).abs()  # (B, H, A)
    if is_pad is None:
        return err.mean()
    keep = (~is_pad.bool()).unsqueeze(-1).to(err.dtype)  # (B, H, 1)
    denom = (keep.sum() * err.shape[-1]).clamp_min(1.0)
    return (err * keep).sum() / denom
