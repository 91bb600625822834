"""The LLM backbone: a `transformers` Llama built from our config, or any causal-LM body
(`AutoModel`) loaded from a local dir.

Initialisation is explicit (docs/DESIGN.md §12, "LLM init"): `transformers`' default std 0.02 left the
placeholder outputs of a small from-scratch Llama nearly independent of the input, and the
latent never woke up. We draw every linear and embedding weight from N(0, init_std²) with
init_std = 1/sqrt(width) by default; RMSNorm gains start at 1.
"""

from __future__ import annotations

import math
import torch.nn as nn

from care.configs import ModelConfig
from care.errors import ConfigError
from care.models.attention import ATTN_IMPLEMENTATION
from care.models.local_weights import load_hf_model


def llm_init_std(cfg: ModelConfig, hidden_size: int | None = None) -> float:
    return cfg.init_std if cfg.init_std is not None else 1.0 / math.sqrt(hidden_size or cfg.hidden_size)


def init_llm_weights(llm: nn.Module, std: float) -> None:
    """N(0, std²) for every Linear / Embedding weight, zero biases (Llama has none by default)."""
    for m in llm.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def build_llm(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """The LLM body without an LM head (we read hidden states, never logits).

    From `llm_path`: whatever architecture its config.json names, through `AutoModel` (a local
    Llama, Qwen2, Mistral, ... directory). Built from scratch: a Llama of our sizes."""
    from transformers import AutoModel, LlamaConfig, LlamaModel

    if cfg.llm_path:
        llm = load_hf_model(AutoModel, cfg.llm_path, "LLM")
        if llm.config.hidden_size != cfg.hidden_size:
            raise ConfigError(
                f"model.hidden_size={cfg.hidden_size} but the LLM at {cfg.llm_path} is {llm.config.hidden_size} "
                f"wide: set --model.hidden_size={llm.config.hidden_size} (or use --preset pretrained)"
            )
        return llm
    hf = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=1024,
        initializer_range=llm_init_std(cfg),
        rms_norm_eps=1e-6,
        use_cache=False,
        tie_word_embeddings=False,
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation=ATTN_IMPLEMENTATION,
    )
    llm = LlamaModel(hf)
    init_llm_weights(llm, llm_init_std(cfg))
    return llm
