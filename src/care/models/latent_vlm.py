"""The latent VLM (docs/DESIGN.md §2, paper §2.1): vision + projector + Llama -> latent action z.

    inverse view:  [vision(o_t)][vision(o_{t+n})][instruction][K inverse placeholders] -> z*  (B,K,latent_dim)
    policy view:   [vision(o_t)]                 [instruction][K policy placeholders]  -> ẑ   (B,K,latent_dim)

Vision tokens are the projected patch features, optionally merged m x m (`vision_token_merge`,
InternVL-style space-to-depth): on CPU the Llama's cost is its token count, and merging 2x2
makes the inverse view 52 tokens instead of 148 at 128² (tiny) without discarding features.

The last hidden states at the K placeholder positions (`hidden`, (B,K,hidden_size)) are
projected to `latent_dim`: that is z. Fine-tuning puts its action head on `hidden` of the
policy view.

Future tokens (`future_tokens`): "frames" gives the Llama the tokens of o_{t+n} as they are;
"delta" (the default) gives tokens(o_{t+n}) − tokens(o_t), as CoMo feeds [F_t, F_{t+n} − F_t]. The
information is the same (o_t's tokens are in the sequence too), but a softmax-attention
placeholder cannot subtract two tokens, and in Meta-World scenes o_t and o_{t+n} differ in a
few patches: with raw frames the placeholder outputs barely varied across samples and the
decoders learned to ignore z (measured: z spread 0.07 of its scale, shuffled-z error equal to
the real one after 300 tiny steps).

Shared-weights trap (docs/DESIGN.md §3): the two views run the same Llama, and the latent loss
(policy ẑ -> stopgrad(z*)) is cheapest to satisfy with a Llama that ignores o_{t+n}. One of our
guards lives here: each view has its own placeholder embeddings, so "which question is being
asked" is explicit at the placeholder tokens; the other (a delayed, ramped latent-loss weight)
is in care.methods.care.modeling_care. A learned frame embedding also marks which vision tokens are o_t and
which o_{t+n}, on top of their order.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from care.configs import ModelConfig
from care.errors import ConfigError
from care.models.llm import build_llm, llm_init_std
from care.models.tokenizer import InstructionEncoder
from care.models.vision import FusedMLPProjector, VisionBackbone, merge_tokens

INVERSE, POLICY = 0, 1  # view index into the placeholder table


class LatentVLM(nn.Module):
    def __init__(self, cfg: ModelConfig, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.text = InstructionEncoder(tokenizer, cfg.max_text_tokens)
        if cfg.llm_path is None and len(tokenizer) > cfg.vocab_size:
            raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but model.vocab_size={cfg.vocab_size}")

        self.vision = VisionBackbone(cfg)
        self.llm = build_llm(cfg, cfg.vocab_size)  # a transformers LlamaModel (peft LoRA targets it)
        H = self.llm.config.hidden_size
        self.hidden_size = H
        m = cfg.vision_token_merge
        self.projector = FusedMLPProjector(m * m * self.vision.feature_dim, H, hidden=4 * self.vision.feature_dim)
        self.frame_embed = nn.Parameter(torch.empty(2, H))  # [o_t, o_{t+n}] markers
        self.latent_queries = nn.Parameter(torch.empty(2, cfg.num_latents, H))  # [inverse, policy]
        self.latent_proj = nn.Linear(H, cfg.latent_dim)

        std = llm_init_std(cfg, H)  # the scale of the Llama's own embeddings (docs/DESIGN.md §3)
        nn.init.normal_(self.frame_embed, std=std)
        nn.init.normal_(self.latent_queries, std=std)
        # hidden states leave the final RMSNorm with O(1) entries: fan-in init keeps z O(1) too
        nn.init.normal_(self.latent_proj.weight, std=1.0 / math.sqrt(H))
        nn.init.zeros_(self.latent_proj.bias)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the LLM's and the towers' activations in backward (non-reentrant)."""
        kw = {"use_reentrant": False}
        for m in [self.llm, *[t.model for t in self.vision.towers.values()]]:
            if hasattr(m, "activation_checkpointing_enable"):
                m.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

    # --- pieces ---
    def vision_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> fused patch features (B, P, Ds+Dd), before the projector."""
        return self.vision(images)

    def latents_from_features(
        self, feats: torch.Tensor, instructions: list[str], future_feats: torch.Tensor | None = None,
        extra_tokens: torch.Tensor | None = None, vision_states: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Fused features of o_t (and of o_{t+n} for the inverse view) -> (z, hidden), and with
        `vision_states` the last hidden states at o_t's vision tokens too, (B, P/m², H) (UniVLA's
        action decoder reads them).

        extra_tokens (B, n, H): already-embedded tokens placed after the vision tokens (the
        fine-tuned policy's proprioceptive state, OpenVLA-OFT's proprio token)."""
        B, K = feats.shape[0], self.cfg.num_latents
        dev = feats.device
        m = self.cfg.vision_token_merge
        now = self.projector(merge_tokens(feats, m))  # (B, P/m², H)
        parts = [now + self.frame_embed[0]]
        if future_feats is not None:
            future = self.projector(merge_tokens(future_feats, m))  # (B, P/m², H)
            if self.cfg.future_tokens == "delta":
                future = future - now  # the static scene cancels: what is left is the change
            parts.append(future + self.frame_embed[1])
        if extra_tokens is not None:
            parts.append(extra_tokens)  # (B, n, H)
        ids, text_mask = self.text(instructions, dev)  # (B, L), (B, L)
        parts.append(self.llm.get_input_embeddings()(ids))  # (B, L, H)
        view = INVERSE if future_feats is not None else POLICY
        parts.append(self.latent_queries[view].unsqueeze(0).expand(B, -1, -1))  # (B, K, H)
        x = torch.cat([p.to(parts[0].dtype) for p in parts], dim=1)  # (B, T, H)

        n_vis = x.shape[1] - text_mask.shape[1] - K
        mask = torch.cat([text_mask.new_ones(B, n_vis), text_mask, text_mask.new_ones(B, K)], dim=1)  # (B, T)
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)  # pads do not advance the position
        out = self.llm(inputs_embeds=x, attention_mask=mask, position_ids=position_ids, use_cache=False)
        hidden = out.last_hidden_state[:, -K:]  # (B, K, H): the placeholder positions
        z = self.latent_proj(hidden)  # (B, K, latent_dim)
        if vision_states:
            return z, hidden, out.last_hidden_state[:, : now.shape[1]]  # o_t's vision tokens come first
        return z, hidden

    # --- the public entry point ---
    def encode(
        self, obs: torch.Tensor, instructions: list[str], future_obs: torch.Tensor | None = None,
        extra_tokens: torch.Tensor | None = None, vision_states: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """obs uint8 (B,3,S,S); future_obs given -> inverse view (z*), None -> policy view (ẑ).

        Returns z (B, K, latent_dim) and the placeholder hidden states (B, K, hidden_size), and
        with `vision_states` the vision tokens' hidden states of o_t (latents_from_features).
        """
        if future_obs is None:
            return self.latents_from_features(self.vision_features(obs), instructions, extra_tokens=extra_tokens,
                                              vision_states=vision_states)
        both = self.vision_features(torch.cat([obs, future_obs], dim=0))  # one tower pass: (2B, P, D)
        feats, future_feats = both.chunk(2, dim=0)
        return self.latents_from_features(feats, instructions, future_feats, extra_tokens, vision_states)
