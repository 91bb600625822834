"""Name -> a method's model classes, imported lazily from the import strings its config names
(`modeling`, and `lam_modeling` for a two-stage method): the config layer never imports torch
models, and care.models never imports a method."""

from __future__ import annotations

import importlib

from care.errors import ConfigError
from care.methods.base import MethodConfig


def method_names() -> list[str]:
    return sorted(MethodConfig.get_known_choices())


def _load(target: str) -> type:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def model_class(method: str | MethodConfig) -> type:
    name = method if isinstance(method, str) else method.type
    try:
        cfg_cls = MethodConfig.get_choice_class(name)
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose one of {method_names()}") from None
    return _load(cfg_cls.modeling)


def lam_class(method: MethodConfig) -> type:
    """The stage-1 class a two-stage method names in `lam_modeling`."""
    target = getattr(type(method), "lam_modeling", "")
    if not target:
        raise ConfigError(f"method {method.type!r} has no stage-1 latent action model: `care lam` is for "
                          "two-stage methods (lapa, como); CARE's latent model is the VLM itself")
    return _load(target)


def load_pretrained(path, map_location="cpu"):
    """The pretraining model of a `care pretrain` folder, whatever its method (method.json says)."""
    from care.methods.model import read_folder_configs

    _, method = read_folder_configs(path)
    return model_class(method).from_pretrained(path, map_location=map_location)


def load_pretrained_vlm(path):
    """The latent VLM of a pretrained folder of any method: what fine-tuning starts from (the
    method's own parts — decoders, targets, quantisers — are dropped)."""
    return load_pretrained(path).vlm
