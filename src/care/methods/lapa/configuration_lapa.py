"""LAPA-style settings (`--method.type=lapa`): a discrete latent action, in two stages.

    stage 1  care lam      --method.type lapa --dataset D --output-dir runs/lapa_lam
             a latent action quantiser (LAQ) encodes (o_t, o_{t+n}), quantises the change into
             `code_seq_len` codes of a `codebook_size` codebook with NSVQ, and a decoder
             rebuilds o_{t+n}'s pixels from o_t and the codes
             (care.methods.lapa.modeling_lapa.LatentActionQuantizer)
    stage 2  care pretrain --method.type lapa --method.lam runs/lapa_lam --dataset D --output-dir runs/lapa
             the latent VLM's policy view (o_t + instruction) classifies the frozen LAQ's code
             indices, cross-entropy (LapaModel)

The latent VLM itself (towers, LLM, K placeholders) is `care.configs.ModelConfig`, shared by
every method; this holds what only LAPA has (reference design §9: Ye et al. 2024, code
LatentActionPretraining/LAPA `laq/laq_model/`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from care.methods.base import MethodConfig, TwoStageConfig


@MethodConfig.register_subclass("lapa")
@dataclass
class LapaConfig(TwoStageConfig):
    """LAPA: a VQ latent action model (stage 1) whose code indices the VLM's policy view
    learns to predict (stage 2).

    Stage 2:
        lam: the `care lam --method.type lapa` folder whose codes stage 2 predicts. Required by
            `care pretrain` (there are no targets without it); ignored by `care lam`. A stage-2
            folder keeps a copy in <folder>/lam, so it loads without the original.
        label_smoothing: of the cross-entropy over the codebook at every code position.
    Stage 1, the encoder (LAPA's LAQ, scaled to our budget):
        lam_patch_size: pixel patch side of the LAQ's own patch embedding (LayerNorm → Linear →
            LayerNorm on flattened pixels); must divide model.image_size. 16 at 128² (tiny) gives
            LAPA's 8 x 8 grid (they use 32 at 256²); 8 at 32² (micro) a 4 x 4 grid.
        lam_width, lam_heads: the LAQ's transformer width and heads (every block).
        lam_spatial_layers: blocks of the spatial transformer (per frame, weights shared by
            both frames).
        lam_temporal_layers: blocks of the causal temporal transformer (per patch position,
            across the two frames: o_t's tokens cannot see o_{t+n}).
    Stage 1, the quantiser:
        codebook_size, code_seq_len: the latent action is `code_seq_len` indices into a codebook
            of `codebook_size` entries: codebook_size ** code_seq_len actions (LAPA: 8 codes, 4
            tokens -> 4096).
        code_dim: width of a code vector (LAPA's quant_dim: 32).
        dead_code_every, dead_code_until: every `dead_code_every` optimiser steps, while fewer
            than `dead_code_until` steps are done, codes unused since the last replacement are
            replaced by encoder outputs of the last batch (LAPA replaces unused codes early in
            training only, so the new ones have time to settle). 0 disables.
    Stage 1, the decoder:
        lam_decoder_layers: blocks over o_t's (detached) patch tokens: self-attention,
            cross-attention to the code vectors, MLP; a linear layer gives the pixel patches.
        recon_target: "change" predicts o_{t+n} − o_t and adds o_t (output layer zero-initialised:
            at init the decoder predicts "nothing moves"); "frame" predicts o_{t+n}'s pixels
            directly, as LAPA does. "change" is the default because CARE's decoders get the
            same start (docs/DESIGN.md §12, "decoder outputs"), so a difference between the
            methods' policies is not this trick; "frame" is the paper's recipe.
    """

    modeling: ClassVar[str] = "care.methods.lapa.modeling_lapa:LapaModel"
    lam_modeling: ClassVar[str] = "care.methods.lapa.modeling_lapa:LatentActionQuantizer"
    # a path, a training schedule and a loss setting: none changes a weight's name or shape
    non_architectural: ClassVar[frozenset[str]] = frozenset(
        {"lam", "dead_code_every", "dead_code_until", "label_smoothing"})
    stage2_fields: ClassVar[frozenset[str]] = non_architectural  # none of them changes the LAQ's weights

    # --- stage 2 (and `lam`, TwoStageConfig's) ---
    label_smoothing: float = 0.0  # LAPA trains plain cross-entropy on the code tokens
    # --- stage 1: encoder ---
    lam_patch_size: int = 16  # 8 x 8 patches at 128², LAPA's grid (patch 32 at 256²)
    lam_width: int = 128  # LAPA: 1024; sized for 2 CPU cores (tiny)
    lam_spatial_layers: int = 2  # LAPA: 8
    lam_temporal_layers: int = 1  # LAPA: 8; two frames need little temporal depth
    lam_heads: int = 4
    # --- stage 1: quantiser ---
    codebook_size: int = 8  # LAPA: 8 codes
    code_seq_len: int = 4  # LAPA: 4 tokens -> 8⁴ = 4096 latent actions
    code_dim: int = 32  # LAPA's quant_dim
    dead_code_every: int = 25  # LAPA: every 100 steps of a far longer run; tiny stage 1 is 500 steps
    dead_code_until: int = 250  # the second half of the tiny run lets revived codes settle
    # --- stage 1: decoder ---
    lam_decoder_layers: int = 2  # LAPA: as deep as the spatial encoder
    recon_target: Literal["change", "frame"] = "change"  # CARE's decoders start at "nothing moves" too

    def __post_init__(self):
        super().__post_init__()
        if self.lam_patch_size < 1:
            raise ValueError(f"lam_patch_size must be >= 1, got {self.lam_patch_size}")
        if self.lam_width < 1 or self.lam_heads < 1 or self.lam_width % self.lam_heads:
            raise ValueError(f"lam_width ({self.lam_width}) must divide by lam_heads ({self.lam_heads}), both >= 1")
        if self.lam_spatial_layers < 1 or self.lam_temporal_layers < 0 or self.lam_decoder_layers < 1:
            raise ValueError(
                "lam_spatial_layers and lam_decoder_layers must be >= 1 and lam_temporal_layers >= 0, got "
                f"{self.lam_spatial_layers}, {self.lam_decoder_layers}, {self.lam_temporal_layers}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2 (one code carries nothing), got {self.codebook_size}")
        if self.code_seq_len < 1 or self.code_dim < 1:
            raise ValueError(f"code_seq_len and code_dim must be >= 1, got {self.code_seq_len}, {self.code_dim}")
        if self.dead_code_every < 0 or self.dead_code_until < 0:
            raise ValueError(f"dead_code_every and dead_code_until must be >= 0 (0 disables), got "
                             f"{self.dead_code_every}, {self.dead_code_until}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def preset(self, name: str) -> "LapaConfig":
        """The LAQ's sizes that go with a model preset (care.presets); the codebook stays LAPA's."""
        gpu = dict(lam_patch_size=16, lam_width=512, lam_spatial_layers=6, lam_temporal_layers=2, lam_heads=8,
                   lam_decoder_layers=6, dead_code_every=100, dead_code_until=1000)  # 224²: 14 x 14 patches
        sizes = {
            "micro": dict(lam_patch_size=8, lam_width=32, lam_spatial_layers=1, lam_temporal_layers=1, lam_heads=2,
                          lam_decoder_layers=1, code_dim=8, dead_code_every=5, dead_code_until=20),
            "base": gpu,
            "pretrained": gpu,
        }.get(name, {})
        return dataclasses.replace(self, **sizes)
