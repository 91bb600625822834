"""CareVLA: the network a fine-tuned policy runs (paper §2.3, docs/DESIGN.md §4).

    obs uint8 (B,3,S,S) ─► latent VLM, policy view ─► K placeholder hidden states (B,K,W) ─► action head ─► (B,H,A)
    [state (B,S_dim), normalised] ─► StateProjector ─► one token after the vision tokens ─┘

The same network serves every pretraining method (care, and the baselines of the method
registry): they differ in how the VLM's weights were pretrained, never in this network, so
a success rate compares pretraining alone.

Proprioceptive state (optional, beyond the paper): projected by a small MLP into one LLM
token, as OpenVLA-OFT's proprio projector does, so the LLM attends to it beside the image.

LoRA helpers (`apply_lora`, `merge_lora`) wrap the VLM's LLM with `peft` adapters and fold
them back before a policy folder is written, so a policy loads without `peft`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.models.action_head import ActionHead


class StateProjector(nn.Module):
    """(B, S_dim) normalised state -> (B, 1, H): Linear -> GELU -> Linear (OpenVLA-OFT's ProprioProjector)."""

    def __init__(self, state_dim: int, hidden_size: int):
        super().__init__()
        self.state_dim = state_dim
        self.fc1 = nn.Linear(state_dim, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        for fc in (self.fc1, self.fc2):  # fan-in init: the token arrives O(1), like the vision tokens
            nn.init.normal_(fc.weight, std=1.0 / math.sqrt(fc.in_features))
            nn.init.zeros_(fc.bias)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if state.shape[-1] != self.state_dim:
            raise ValueError(f"expected a state of {self.state_dim} dims, got shape {tuple(state.shape)}")
        if state.shape[0] > 1 and not self.training:  # batch-invariant inference, as ActionHead.forward
            return torch.cat([self(state[i:i + 1]) for i in range(state.shape[0])])
        return self.fc2(F.gelu(self.fc1(state))).unsqueeze(1)  # (B, 1, H)


class CareVLA(nn.Module):
    """obs uint8 (B,3,S,S) + instructions [+ state (B, S_dim)] -> (B, H, A) normalised actions."""

    def __init__(self, vlm: nn.Module, head: ActionHead, state_dim: int = 0):
        super().__init__()
        self.vlm = vlm
        self.head = head
        self.state_proj = StateProjector(state_dim, vlm.hidden_size) if state_dim else None

    @property
    def state_dim(self) -> int:
        return self.state_proj.state_dim if self.state_proj is not None else 0

    def forward(self, obs: torch.Tensor, instructions: list[str], state: torch.Tensor | None = None) -> torch.Tensor:
        extra = None
        if self.state_proj is not None:
            if state is None:
                raise ValueError(f"this policy reads a {self.state_dim}-d state (observation.state); none was given")
            extra = self.state_proj(state.to(obs.device, torch.float32))  # (B, 1, W)
        _, hidden = self.vlm.encode(obs, instructions, extra_tokens=extra)  # policy view: (B, K, W)
        return self.head(hidden)  # (B, H, A)


def apply_lora(model: CareVLA, lora) -> None:
    """Wrap the LLM with peft LoRA adapters (LoRAConfig: rank, alpha, dropout, target_modules);
    its base weights are frozen, the adapters trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
    )
    model.vlm.llm = get_peft_model(model.vlm.llm, config)


def has_lora(model: CareVLA) -> bool:
    from peft import PeftModel

    return isinstance(model.vlm.llm, PeftModel)


def merge_lora(model: CareVLA) -> CareVLA:
    """Fold the LoRA updates into the LLM's weights, in place (W <- W + (alpha/r)·B·A)."""
    if has_lora(model):
        model.vlm.llm = model.vlm.llm.merge_and_unload()
    return model
