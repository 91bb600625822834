"""CareVLA: the network a fine-tuned policy runs (paper §2.3, docs/DESIGN.md §4).

    obs uint8 (B,3,S,S) ─► latent VLM, policy view ─► K placeholder hidden states (B,K,W) ─► action head ─► (B,H,A)
                                                  [─► o_t's vision-token states (B,N,W), `--head.type univla` ─┘]
    [wrist (B,3,S,S)] ─► the same towers + projector, + a wrist marker ─► tokens after the vision tokens ─┘
    [state (B,S_dim), normalised] ─► StateProjector ─► one token after those ─┘

The same network serves every pretraining method (care, and the baselines of the method
registry): they differ in how the VLM's weights were pretrained, never in this network, so
a success rate compares pretraining alone.

Proprioceptive state (optional, beyond the paper): projected by a small MLP into one LLM
token, as OpenVLA-OFT's proprio projector does, so the LLM attends to it beside the image.
A wrist camera (optional; LIBERO policies commonly read both views, as OpenVLA-OFT does): its
frame goes through the same vision towers and projector, a learned marker tells its tokens from
the main view's, and they join the sequence as extra tokens.

LoRA helpers (`apply_lora`, `merge_lora`) wrap the VLM's LLM with `peft` adapters and fold
them back before a policy folder is written, so a policy loads without `peft`.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.models.action_head import ActionHead
from care.models.vision import merge_tokens


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
    """obs uint8 (B,3,S,S) + instructions [+ state (B, S_dim)] [+ wrist uint8 (B,3,S,S)] -> (B, H, A)
    normalised actions."""

    def __init__(self, vlm: nn.Module, head: ActionHead, state_dim: int = 0, wrist: bool = False):
        super().__init__()
        self.vlm = vlm
        self.head = head
        self.state_proj = StateProjector(state_dim, vlm.hidden_size) if state_dim else None
        self.wrist_embed = None
        if wrist:  # the wrist view's marker, at the scale of the VLM's own frame markers
            self.wrist_embed = nn.Parameter(torch.empty(vlm.hidden_size))
            nn.init.normal_(self.wrist_embed, std=float(vlm.frame_embed.detach().float().std()))

    @property
    def has_wrist(self) -> bool:
        return self.wrist_embed is not None

    @property
    def state_dim(self) -> int:
        return self.state_proj.state_dim if self.state_proj is not None else 0

    def forward(self, obs: torch.Tensor, instructions: list[str], state: torch.Tensor | None = None,
                wrist: torch.Tensor | None = None) -> torch.Tensor:
        extra = []
        if self.wrist_embed is not None:
            if wrist is None:
                raise ValueError("this policy reads a wrist camera image; none was given")
            vlm = self.vlm
            tokens = vlm.projector(merge_tokens(vlm.vision_features(wrist), vlm.cfg.vision_token_merge))
            extra.append(tokens + self.wrist_embed)  # (B, P/m², W)
        if self.state_proj is not None:
            if state is None:
                raise ValueError(f"this policy reads a {self.state_dim}-d state (observation.state); none was given")
            extra.append(self.state_proj(state.to(obs.device, torch.float32)))  # (B, 1, W)
        extra = torch.cat([e.to(extra[0].dtype) for e in extra], dim=1) if extra else None
        if self.head.reads_vision:  # UniVLA's decoder: the placeholders and the scene's tokens
            _, hidden, vision = self.vlm.encode(obs, instructions, extra_tokens=extra, vision_states=True)
            return self.head(hidden, vision)  # (B, H, A)
        _, hidden = self.vlm.encode(obs, instructions, extra_tokens=extra)  # policy view: (B, K, W)
        return self.head(hidden)  # (B, H, A)


def apply_lora(model: CareVLA, lora) -> None:
    """Wrap the LLM with peft LoRA adapters (LoRAConfig: rank, alpha, dropout, target_modules);
    its base weights are frozen, the adapters trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
    )
    with warnings.catch_warnings():
        # peft asks the model `is_gradient_checkpointing`, which transformers 5 deprecated in favour of
        # `is_activation_checkpointing` (a FutureWarning on every fine-tune); only that one is hidden
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        model.vlm.llm = get_peft_model(model.vlm.llm, config)


def has_lora(model: CareVLA) -> bool:
    from peft import PeftModel

    return isinstance(model.vlm.llm, PeftModel)


def merge_lora(model: CareVLA) -> CareVLA:
    """Fold the LoRA updates into the LLM's weights, in place (W <- W + (alpha/r)·B·A)."""
    if has_lora(model):
        model.vlm.llm = model.vlm.llm.merge_and_unload()
    return model
