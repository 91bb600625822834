"""Name -> pretraining model class, imported lazily (the config layer never imports torch models)."""

from __future__ import annotations

import importlib

from care.errors import ConfigError
from care.methods.base import MethodConfig


def method_names() -> list[str]:
    return sorted(MethodConfig.get_known_choices())


def model_class(method: str | MethodConfig) -> type:
    name = method if isinstance(method, str) else method.type
    try:
        cfg_cls = MethodConfig.get_choice_class(name)
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose one of {method_names()}") from None
    module, cls = cfg_cls.modeling.split(":")
    return getattr(importlib.import_module(module), cls)


def load_pretrained(path, map_location="cpu"):
    """The pretraining model of a `care pretrain` folder, whatever its method (method.json says)."""
    from care.models.pretrained import read_folder_configs

    _, method = read_folder_configs(path)
    return model_class(method).from_pretrained(path, map_location=map_location)


def load_pretrained_vlm(path):
    """The latent VLM of a pretrained folder of any method: what fine-tuning starts from (the
    method's own parts — decoders, targets, quantisers — are dropped)."""
    return load_pretrained(path).vlm
