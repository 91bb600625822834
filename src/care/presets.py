"""Named model presets: `care pretrain --preset NAME` (defaults < preset < YAML < flags).

A preset fixes the latent VLM's sizes (ModelConfig); each method scales its own parts for
the same name (`MethodConfig.preset`, e.g. CARE's decoders). They are applied here only:
`preset_layer` is the layer the command line puts below a YAML file and flags (care.cli), and
`apply_preset` gives a config built in Python the preset's sizes where it kept the defaults.

    micro       tests: a forward+backward in milliseconds (32², 4x4 tokens)
    tiny        the embedded default, = ModelConfig(): from scratch, 128², 8x8 patches per frame
                (4x4 LLM tokens after 2x2 merging),
                4.3M trainable parameters, ~31 samples/s on 2 CPU cores (docs/DESIGN.md §7)
    base        a GPU-sized from-scratch model (224², ViT-S/16 towers, an 86M Llama; 151M trainable)
    prismatic-7b  the paper's model at its real sizes, built from scratch: SigLIP-so400m/14 and
                DINOv2-L/14 towers at 224² (frozen, second-to-last layer), a Llama-2-7B-shaped LLM;
                7.4B parameters. For sizing on the meta device (`python -m care.training.sizing`) and
                sharded training (`--parallel.strategy fsdp2`); with the real checkpoints use `pretrained`.
    pretrained  SigLIP + DINOv2 + Llama from local `save_pretrained` dirs (Prismatic's recipe:
                second-to-last vision layer, frozen towers and frozen frame targets). The dirs
                default to ./pretrained/{siglip,dinov2,llama} and can be set with the environment
                variables CARE_SIGLIP, CARE_DINOV2, CARE_LLAMA; the LLM width and vocabulary are
                read from the Llama's config.json when it exists.

Register another with `@register("name")` on a function returning a ModelConfig (and add its
name to the `preset` Literal of care.configs.TrainConfig, so `--help` lists it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import draccus
import yaml

from care.configs import ModelConfig, ViTConfig
from care.errors import ConfigError
from care.methods.base import MethodConfig

PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register(name: str):
    def deco(fn: Callable[[], ModelConfig]):
        PRESETS[name] = fn
        return fn
    return deco


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# model presets whose method parts take another preset's sizes (the 7B model is the `pretrained`
# recipe at its real sizes: the same decoders, frozen targets, stage-1 sizes)
METHOD_SIZES_OF = {"prismatic-7b": "pretrained"}


def method_preset(name: str, method_type: str | None) -> MethodConfig:
    """The method's own settings for a preset (its defaults scaled by `MethodConfig.preset`)."""
    method_type = method_type or MethodConfig.default_choice_name()
    try:
        cls = MethodConfig.get_choice_class(method_type)
    except KeyError:
        raise ConfigError(f"unknown --method.type {method_type!r}; choose one of "
                          f"{sorted(MethodConfig.get_known_choices())}") from None
    return cls().preset(METHOD_SIZES_OF.get(name, name))


def preset_layer(name: str, fields: set[str], method_type: str | None = None) -> dict:
    """The preset as a config layer {"model": {...}, "method": {"type", ...}} for a config with
    `fields` (the command line's lowest layer, care.cli.parse_config)."""
    if "model" not in fields:
        return {}
    layer = {"model": yaml.safe_load(draccus.dump(get_preset(name)))}
    if "method" in fields:
        method = method_preset(name, method_type)
        layer["method"] = {"type": method.type, **yaml.safe_load(draccus.dump(method))}
    return layer


def apply_preset(cfg: Any) -> Any:
    """`cfg.preset` from Python: a `model` (and `method`) still at its defaults takes the preset's."""
    if getattr(cfg, "preset", None) is None:
        return cfg
    if cfg.model == ModelConfig():
        cfg.model = get_preset(cfg.preset)
    method = getattr(cfg, "method", None)
    if method is not None and method == type(method)():
        cfg.method = method_preset(cfg.preset, method.type)
    return cfg


@register("micro")
def micro() -> ModelConfig:
    vit = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return ModelConfig(
        image_size=32, patch_size=8,
        siglip=ViTConfig(**vit), dino=ViTConfig(**vit),
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
        vocab_size=320, max_text_tokens=8,
        num_latents=2, latent_dim=16,
    )


@register("tiny")
def tiny() -> ModelConfig:
    return ModelConfig()


@register("base")
def base() -> ModelConfig:
    vit = dict(hidden_size=384, num_layers=12, num_heads=6, intermediate_size=1536)  # ViT-S/16
    return ModelConfig(
        image_size=224, patch_size=16,
        siglip=ViTConfig(**vit), dino=ViTConfig(**vit),
        vision_feature_layer=-2, vision_token_merge=1,
        hidden_size=768, num_layers=12, num_heads=12, intermediate_size=2048,
        vocab_size=1024, max_text_tokens=32,
        num_latents=8, latent_dim=128,
    )


@register("pretrained")
def pretrained() -> ModelConfig:
    siglip = os.environ.get("CARE_SIGLIP", "pretrained/siglip")
    dino = os.environ.get("CARE_DINOV2", "pretrained/dinov2")
    llama = os.environ.get("CARE_LLAMA", "pretrained/llama")
    hidden, vocab, heads = 2048, 32000, 16  # overwritten from the Llama's config.json below
    cfg_file = Path(llama) / "config.json"
    if cfg_file.is_file():
        hf = json.loads(cfg_file.read_text())
        hidden, vocab, heads = hf["hidden_size"], hf["vocab_size"], hf["num_attention_heads"]
    return ModelConfig(
        image_size=224, patch_size=14,  # 16x16 tokens, as Prismatic's /14 DINOv2 + SigLIP-SO400M at 224²
        siglip=ViTConfig(path=siglip), dino=ViTConfig(path=dino),
        vision_feature_layer=-2, vision_token_merge=1, freeze_vision=True,
        llm_path=llama, hidden_size=hidden, num_heads=heads, vocab_size=vocab, max_text_tokens=32,
        num_latents=8, latent_dim=128,
    )


@register("prismatic-7b")
def prismatic_7b() -> ModelConfig:
    # Prismatic's DinoSigLIP-224 + Llama-2-7B (the paper's VLM), with the published sizes
    siglip = ViTConfig(hidden_size=1152, num_layers=27, num_heads=16, intermediate_size=4304)  # so400m/14
    dino = ViTConfig(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096)  # ViT-L/14
    return ModelConfig(
        image_size=224, patch_size=14,  # 16x16 patches per tower
        siglip=siglip, dino=dino,
        vision_feature_layer=-2, vision_token_merge=1, freeze_vision=True,
        hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008,  # Llama-2-7B
        vocab_size=32000, max_text_tokens=32,
        num_latents=8, latent_dim=128,
    )
