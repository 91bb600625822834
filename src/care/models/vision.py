"""Vision: two ViT towers (SigLIP-style, DINOv2-style), fused patch features, MLP projector.

    uint8 (B,3,S,S) ──► normalise per tower ──► SigLIP ViT ─┐ patch features of the
                                            └─► DINOv2 ViT ─┴ feature layer, concatenated
                                                              channel-wise (B, P, Ds+Dd)
                                                                    │
                              merge m x m neighbours (optional) │ (B, P/m², m²·(Ds+Dd))
                                                  FusedMLPProjector ▼ (B, P/m², llm width)

The towers are the `transformers` classes (SiglipVisionModel, Dinov2Model), built from our
config or loaded from a local `save_pretrained` directory (nothing is fetched from a hub).
As in Prismatic, features come from the second-to-last block by default; the blocks after
the feature layer (and the final norms / pooling heads) are removed, so they cost nothing
and leave no unused parameters for DDP to trip over.

Towers are composed by name (Prismatic-style): `ModelConfig.vision_towers` lists names of
VISION_TOWERS ("siglip", "dinov2"), so a single-tower model is `--model.vision-towers
'[dinov2]'` and another backbone is one entry more.
"""

from __future__ import annotations

import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ModelConfig, ViTConfig
from care.errors import ConfigError
from care.models.attention import ATTN_IMPLEMENTATION
from care.models.local_weights import load_hf_model

# Normalisation each tower was pretrained with; images arrive uint8 and are normalised here.
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _keep_blocks(num_layers: int, feature_layer: int) -> int:
    """How many blocks produce hidden_states[feature_layer] (HF convention: index 0 is the
    patch embedding, index i the output of block i; -1 the last block, -2 the one before)."""
    keep = num_layers + 1 + feature_layer if feature_layer < 0 else feature_layer
    if not 1 <= keep <= num_layers:
        raise ConfigError(
            f"vision_feature_layer={feature_layer} is outside a tower of {num_layers} blocks "
            f"(use -1 .. -{num_layers}, or 1 .. {num_layers})"
        )
    return keep


class VisionTower(nn.Module):
    """One HF ViT, truncated after its feature layer, returning patch tokens only.

    Subclasses say how to build the HF model, where its blocks live, and how many
    non-patch (CLS) tokens lead the sequence.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_prefix_tokens: int = 0

    def __init__(self, vit: ViTConfig, cfg: ModelConfig):
        super().__init__()
        self.model = self.load(vit.path) if vit.path else self.build(vit, cfg)
        hf = self.model.config
        self.hidden_size: int = hf.hidden_size
        self.patch_size: int = hf.patch_size if isinstance(hf.patch_size, int) else hf.patch_size[0]
        self.grid = cfg.image_size // cfg.patch_size  # tokens per side, shared by both towers
        self.input_size = self.grid * self.patch_size  # a pretrained /14 tower sees a resized image
        keep = _keep_blocks(len(self.blocks()), cfg.vision_feature_layer)
        self.truncate(keep)
        # Key biases shift all of a query's logits equally: softmax ignores them, so their gradient
        # is float noise that Adam would turn into random steps (and 2 processes would drift from 1).
        for name, p in self.model.named_parameters():
            if name.endswith(("k_proj.bias", "key.bias")):
                p.requires_grad_(False)
        self.register_buffer("mean_", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std_", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    # --- per-architecture hooks ---
    def build(self, vit: ViTConfig, cfg: ModelConfig) -> nn.Module: ...
    def load(self, path: str) -> nn.Module: ...
    def blocks(self) -> nn.ModuleList: ...
    def truncate(self, keep: int) -> None: ...

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> normalised float (B,3,s,s) at this tower's input size."""
        x = images.float() / 255.0
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return (x - self.mean_) / self.std_

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        h = self.embed(x)  # (B, prefix + P, D)
        for block in self.blocks():
            h = self.run_block(block, h)
        return h[:, self.num_prefix_tokens:]  # (B, P, D)


def _vit_hf_kwargs(vit: ViTConfig, cfg: ModelConfig) -> dict:
    return dict(
        hidden_size=vit.hidden_size,
        num_hidden_layers=vit.num_layers,
        num_attention_heads=vit.num_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        layer_norm_eps=1e-6,
        attn_implementation=ATTN_IMPLEMENTATION,
    )


class SiglipTower(VisionTower):
    mean, std = SIGLIP_MEAN, SIGLIP_STD
    num_prefix_tokens = 0  # SigLIP has no CLS token

    def build(self, vit, cfg):
        from transformers import SiglipVisionConfig, SiglipVisionModel

        hf = SiglipVisionConfig(intermediate_size=vit.intermediate_size, vision_use_head=False,
                                **_vit_hf_kwargs(vit, cfg))
        return SiglipVisionModel(hf)  # SigLIP's own init: xavier / lecun, 1/sqrt(width) positions

    def load(self, path):
        from transformers import SiglipVisionModel

        return load_hf_model(SiglipVisionModel, path, "SigLIP")

    def blocks(self):
        return self.model.encoder.layers

    def truncate(self, keep):
        self.model.encoder.layers = self.model.encoder.layers[:keep]
        self.model.post_layernorm = nn.Identity()  # applies to the last block only; unused
        if getattr(self.model, "head", None) is not None:
            del self.model.head
            self.model.use_head = False

    def embed(self, x):
        size = self.model.config.image_size
        size = size if isinstance(size, int) else size[0]
        # a checkpoint trained at another resolution: interpolate its position embeddings
        return self.model.embeddings(x, interpolate_pos_encoding=x.shape[-1] != size)

    def run_block(self, block, h):
        return block(h, None)


class Dinov2Tower(VisionTower):
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    num_prefix_tokens = 1  # CLS

    def build(self, vit, cfg):
        from transformers import Dinov2Config, Dinov2Model

        hf = Dinov2Config(mlp_ratio=max(1, vit.intermediate_size // vit.hidden_size), use_mask_token=False,
                          initializer_range=vit.hidden_size ** -0.5, **_vit_hf_kwargs(vit, cfg))
        return Dinov2Model(hf)

    def load(self, path):
        from transformers import Dinov2Model

        return load_hf_model(Dinov2Model, path, "DINOv2")

    def blocks(self):
        return self.model.encoder.layer

    def truncate(self, keep):
        self.model.encoder.layer = self.model.encoder.layer[:keep]
        self.model.layernorm = nn.Identity()
        if getattr(self.model.embeddings, "mask_token", None) is not None:
            self.model.embeddings.mask_token.requires_grad_(False)  # only for masked pretraining

    def embed(self, x):
        return self.model.embeddings(x)  # interpolates positions if the grid differs

    def run_block(self, block, h):
        return block(h, None)


# name -> (tower class, the ModelConfig field holding its ViTConfig). Another backbone is one
# VisionTower subclass, one entry here, a ViTConfig field in ModelConfig and its name in the
# `vision_towers` Literal (docs/DESIGN.md, "Add a vision tower").
VISION_TOWERS: dict[str, tuple[type[VisionTower], str]] = {
    "siglip": (SiglipTower, "siglip"),
    "dinov2": (Dinov2Tower, "dino"),
}


def build_tower(name: str, cfg: ModelConfig) -> VisionTower:
    if name not in VISION_TOWERS:
        raise ConfigError(f"unknown vision tower {name!r}; choose from {sorted(VISION_TOWERS)}")
    tower_cls, field_name = VISION_TOWERS[name]
    return tower_cls(getattr(cfg, field_name), cfg)


class VisionBackbone(nn.Module):
    """The towers named by `cfg.vision_towers`, their patch features concatenated channel-wise
    (both: Prismatic's DinoSigLIP; one: a single-tower model)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.towers = nn.ModuleDict({name: build_tower(name, cfg) for name in cfg.vision_towers})
        self.feature_dim = sum(t.hidden_size for t in self.towers.values())
        self.num_patches = (cfg.image_size // cfg.patch_size) ** 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> (B, P, Ds+Dd)."""
        feats = [tower(images) for tower in self.towers.values()]
        if len({f.shape[1] for f in feats}) != 1:
            raise ConfigError(f"vision towers disagree on the patch count: {[f.shape[1] for f in feats]}")
        return torch.cat(feats, dim=-1)


def merge_tokens(feats: torch.Tensor, m: int) -> torch.Tensor:
    """Space-to-depth on the patch grid (InternVL's pixel shuffle): every m x m block of
    neighbouring patches becomes one token with their features concatenated. Nothing is lost,
    and the LLM reads m² times fewer vision tokens. (B, G², D) -> (B, (G/m)², m²·D)."""
    if m == 1:
        return feats
    B, P, D = feats.shape
    G = math.isqrt(P)
    x = feats.view(B, G // m, m, G // m, m, D).permute(0, 1, 3, 2, 4, 5)  # (B, G/m, G/m, m, m, D)
    return x.reshape(B, (G // m) ** 2, m * m * D)


class FusedMLPProjector(nn.Module):
    """Prismatic's fused projector for concatenated features: D -> 4D -> H -> H, GELU between.

    With token merging the input is m²·D wide; the hidden width stays 4·D (per patch), so
    merging does not inflate the projector.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or 4 * in_dim
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.fc3 = nn.Linear(out_dim, out_dim)
        for fc in (self.fc1, self.fc2, self.fc3):  # variance-preserving: tokens arrive O(1) in the LLM
            nn.init.normal_(fc.weight, std=1.0 / math.sqrt(fc.in_features))
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))  # (B, P, H)
