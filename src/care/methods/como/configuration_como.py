"""CoMo-style settings (`--method.type=como`): a continuous latent motion, in two stages.

    stage 1  care lam      --method.type como --dataset D --output-dir runs/como_lam
             a Motion Q-Former reads the encoder features [F_t, F_{t+n} − F_t] and gives the
             latent motion z (num_queries × motion_dim); a forward model rebuilds o_{t+n}'s
             pixels from o_t and z (care.methods.como.modeling_como.MotionQFormer)
    stage 2  care pretrain --method.type como --method.lam runs/como_lam --dataset D --output-dir runs/como
             the latent VLM's policy view (o_t + instruction) regresses the frozen stage-1 z:
             latents as pseudo-labels, as CoMo co-trains its policy (ComoModel)

The latent VLM itself (towers, LLM, K placeholders) is `care.configs.ModelConfig`, shared by
every method; this holds what only CoMo has (reference design §9: arXiv 2505.17006).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from care.methods.base import MethodConfig, TwoStageConfig


@MethodConfig.register_subclass("como")
@dataclass
class ComoConfig(TwoStageConfig):
    """CoMo: a Motion Q-Former latent (stage 1), regressed by the VLM's policy view (stage 2).

    Stage 2:
        lam: the `care lam --method.type como` folder whose latent stage 2 regresses. Required by
            `care pretrain` (there is no latent to learn without it); ignored by `care lam`. A
            stage-2 folder keeps a copy in <folder>/lam, so it loads without the original.
    Stage 1, the encoder:
        encoder: the features the Q-Former reads come from a `VisionBackbone` built from the
            `model.*` towers. CoMo uses a frozen pretrained MAE ViT-L. "frozen" is right with
            pretrained towers (`model.dino.path`, `model.siglip.path`; the `pretrained` preset);
            "online" (the default) trains the towers through the reconstruction loss, which is
            the only way from-scratch towers (micro, tiny, base) learn anything. The target is
            pixels, not features, so an online encoder cannot collapse.
    Stage 1, the latent:
        num_queries: learned queries of the Q-Former = latent tokens (None: model.num_latents,
            so z has as many tokens as CARE's).
        motion_dim: width of each latent token (None: model.latent_dim). CoMo found 128 best
            (with ViT-L features at 224²): 16 carried too little motion, 256 picked up
            appearance. For the tiny model we keep CARE's latent_dim (64): 4 × 64 numbers per
            clip for both methods, so the probes compare latents of equal capacity.
        qformer_width, qformer_layers, qformer_heads: the Q-Former (blocks of self-attention
            over the queries, cross-attention to the frame tokens, MLP).
    Stage 1, the forward model:
        decoder_width, decoder_layers, decoder_heads: transformer blocks over o_t's pixel patches
            (self-attention, cross-attention to z, MLP).
        decoder_patch_size: pixel patch side of the forward model (must divide model.image_size).
            Smaller patches reconstruct finer motion at a quadratic token cost: 8 at 128² is
            256 tokens, the CPU budget of the tiny run.
    """

    modeling: ClassVar[str] = "care.methods.como.modeling_como:ComoModel"
    lam_modeling: ClassVar[str] = "care.methods.como.modeling_como:MotionQFormer"
    # the stage-1 folder is a path, and online/frozen towers have the same weights' names and shapes
    non_architectural: ClassVar[frozenset[str]] = frozenset({"lam", "encoder"})
    # stage 2 takes every stage-1 field from its stage-1 run (TwoStageConfig.stage2_fields: `lam` only)

    # --- stage 1: encoder and latent ---
    encoder: Literal["online", "frozen"] = "online"  # no pretrained MAE here: from-scratch towers must train
    num_queries: int | None = None  # None: model.num_latents
    motion_dim: int | None = None  # None: model.latent_dim (CoMo: 128; 16 too little, 256 picks up appearance)
    qformer_width: int = 128
    qformer_layers: int = 2
    qformer_heads: int = 4
    # --- stage 1: forward model ---
    decoder_width: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_patch_size: int = 8  # 256 pixel patches at 128²

    def __post_init__(self):
        super().__post_init__()
        if self.encoder not in ("online", "frozen"):
            raise ValueError(f"encoder must be 'online' or 'frozen', got {self.encoder!r}")
        for name in ("num_queries", "motion_dim"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 (or None for the model's own), got {v}")
        for part in ("qformer", "decoder"):
            width, layers, heads = (getattr(self, f"{part}_{k}") for k in ("width", "layers", "heads"))
            if layers < 1 or heads < 1 or width < 1:
                raise ValueError(f"{part}_width/layers/heads must be >= 1, got {width}/{layers}/{heads}")
            if width % heads:
                raise ValueError(f"{part}_width ({width}) must divide by {part}_heads ({heads})")
        if self.decoder_patch_size < 1:
            raise ValueError(f"decoder_patch_size must be >= 1, got {self.decoder_patch_size}")

    def preset(self, name: str) -> "ComoConfig":
        """Q-Former and forward-model sizes that go with a model preset (care.presets)."""
        big = dict(qformer_width=384, qformer_layers=4, qformer_heads=6, decoder_width=384, decoder_layers=4,
                   decoder_heads=6, decoder_patch_size=16, motion_dim=128)  # 224²: 196 pixel patches
        sizes = {
            "micro": dict(qformer_width=32, qformer_layers=1, qformer_heads=2, decoder_width=32, decoder_layers=1,
                          decoder_heads=2, decoder_patch_size=4),  # 32²: 64 pixel patches
            "base": big,
            "pretrained": dict(big, encoder="frozen"),  # CoMo's recipe: frozen pretrained features
        }.get(name, {})
        return dataclasses.replace(self, **sizes)
