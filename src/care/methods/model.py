"""What every method's model is to the rest of care: the hooks the training loop calls, and the
pretrained folder (docs/DESIGN.md §10, §11).

    MethodModel          the hooks, each with its default: a method overrides what it needs
    PretrainedModel      a method's stage-2 (or only) model: `.vlm` + its own parts, saved as
                         <dir>/config.json + method.json + model.safetensors + tokenizer (+ hf/)

Loading checks every tensor's name and shape before copying, and names what does not fit
(nanoGPT's from_pretrained habit). Nothing here is unpickled: JSON and safetensors only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn

from care.configs import ModelConfig
from care.errors import ConfigError
from care.folders import CONFIG_NAME, METHOD_NAME, WEIGHTS_NAME
from care.io import atomic_write_json
from care.methods.base import MethodConfig
from care.models.pretrained import (NON_ARCHITECTURAL, build_config, config_diff, load_weights,
                                    model_config_from_dict, read_json, save_vlm_files, save_weights)


class MethodModel(nn.Module):
    """The hooks the training loop (care.training.loop) calls on a method's model, declared once,
    with defaults: a model that only defines `forward` runs every flag of `care pretrain`."""

    cfg: ModelConfig
    method: MethodConfig

    def forward(self, batch: dict) -> dict:
        """batch (care.training.batching.collate_clips) -> {"loss": scalar tensor, other scalars to log}."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    @classmethod
    def requires_tracks(cls, method: MethodConfig) -> bool:
        """Whether this method's batches must carry point tracks (checked before training)."""
        return False

    @classmethod
    def action_labels_per_task(cls, method: MethodConfig) -> int:
        """Labelled episodes per task whose actions this method's pretraining reads (0: none, the
        default: pretraining reads no action). The pretraining then serves `actions` and
        `action_labelled` for the clips of exactly the episodes `care finetune
        --episodes-per-task k --seed s` trains on, zeros for every other clip."""
        return 0

    def set_action_normalizer(self, low, high) -> None:
        """The labelled actions' per-dimension q01/q99 (fine-tuning's normalisation), before
        training, for a method whose `action_labels_per_task` is > 0."""

    def prepare_training(self, batch: dict) -> dict[str, float]:
        """Once before the first step, on the same batch in every process; returns what to
        store with checkpoints (e.g. CARE's baseline losses)."""
        return {}

    def param_groups(self, optim) -> dict[str, dict]:
        """{parameter-name substring: optimiser overrides} for parameters that need their own lr/eps."""
        return {}

    def enable_gradient_checkpointing(self) -> None:
        """`--gradient-checkpointing`: recompute in backward the activations of every trainable
        `transformers` part (the Llama, the vision towers); a method with its own blocks overrides."""
        from transformers import PreTrainedModel

        done: list[str] = []
        for name, m in self.named_modules():
            if not isinstance(m, PreTrainedModel) or any(name.startswith(d + ".") for d in done):
                continue
            if any(p.requires_grad for p in m.parameters()):
                enable_hf_checkpointing(m)
                done.append(name)

    def after_optimizer_step(self) -> None:
        """After every optimiser step (EMA targets, schedules, codebook upkeep)."""

    def log_scalars(self, scalars: dict[str, float]) -> dict[str, float]:
        """The window-averaged training scalars as logged (a method may add derived ones)."""
        return scalars

    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out metrics at every validation (docs/DESIGN.md: log the latent's health)."""
        return {}

    def brief(self, metrics: dict) -> dict:
        """The few validation numbers worth a log line."""
        return {}


def enable_hf_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing on a `transformers` model."""
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)


# ----------------------------------------------------------------------------------------
# method configs <-> dicts
# ----------------------------------------------------------------------------------------


def method_config_to_dict(cfg: MethodConfig) -> dict:
    return {"type": cfg.type, **dataclasses.asdict(cfg)}


def method_config_from_dict(d: dict, source: str = METHOD_NAME) -> MethodConfig:
    d = dict(d)
    name = d.pop("type", None)
    try:
        cls = MethodConfig.get_choice_class(name)
    except KeyError:
        raise ConfigError(f"{source}: unknown method {name!r} (known: {sorted(MethodConfig.get_known_choices())})") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{source}: fields method {name!r} of this care version does not know: {unknown}")
    return cls(**d)


def read_folder_configs(path: Path) -> tuple[ModelConfig, MethodConfig]:
    """The (ModelConfig, MethodConfig) of a pretrained folder; a ConfigError for anything else."""
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise ConfigError(f"{path} is not a pretrained care model (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    raw = read_json(path / CONFIG_NAME)
    model_cfg = model_config_from_dict(raw)
    if (path / METHOD_NAME).is_file():
        method_cfg = method_config_from_dict(read_json(path / METHOD_NAME), str(path / METHOD_NAME))
    else:  # written before methods had their own file: CARE, its fields in config.json
        cls = MethodConfig.get_choice_class(MethodConfig.default_choice_name())
        fields = {f.name for f in dataclasses.fields(cls)}
        method_cfg = cls(**{k: v for k, v in raw.items() if k in fields})
    return model_cfg, method_cfg


# ----------------------------------------------------------------------------------------
# the pretrained folder
# ----------------------------------------------------------------------------------------


class PretrainedModel(MethodModel):
    """Base of every method's pretraining model: holds `.vlm` (a LatentVLM), `.cfg`
    (ModelConfig) and `.method` (its MethodConfig); saves and loads the folder above."""

    config_class: ClassVar[type] = MethodConfig  # the MethodConfig subclass this model is built from
    # key prefixes older folders kept in model.safetensors and this model stores elsewhere
    stored_elsewhere: ClassVar[tuple[str, ...]] = ()

    # --- what the latent probes (care probe) call ---
    @torch.no_grad()
    def action_latent(self, obs: torch.Tensor, future_obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """The method's latent action for (o_t -> o_{t+n}), (B, T, d): what LP-MSE, S-PCFC and
        the semantic probe read. Default: the VLM's inverse view z* (B, K, latent_dim), CARE's
        latent; a two-stage method reads its stage-1 model's (care.methods.two_stage)."""
        return self.vlm.encode(obs, instructions, future_obs)[0]

    def reset_loaded_parts(self, seed: int) -> None:
        """Fresh random weights (seeded) for parts the constructor loaded from another folder
        rather than built (a two-stage model's stage-1 model): with them, a freshly constructed
        model is the probes' random-weights reference. Default: none."""

    def save_extra(self, out: Path) -> None:
        """Anything else the folder needs to load on its own (e.g. a stage-1 model); default none."""

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_vlm_files(self.vlm, out)
        atomic_write_json(out / METHOD_NAME, method_config_to_dict(self.method), indent=2)
        save_weights(self, out / WEIGHTS_NAME, type(self).__name__)
        self.save_extra(out)
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, cfg: ModelConfig | None = None, method: MethodConfig | None = None,
                        map_location: str | torch.device = "cpu") -> "PretrainedModel":
        """Load a folder written by `save_pretrained`. With `cfg` / `method`, they must describe
        the same architecture: otherwise a ConfigError names every field that differs."""
        from care.models.tokenizer import load_tokenizer

        path = Path(path)
        saved, saved_method = read_folder_configs(path)
        for want, have, ignore in ((cfg, saved, NON_ARCHITECTURAL),
                                   (method, saved_method, getattr(method, "non_architectural", frozenset()))):
            if want is not None:
                diff = config_diff(have, want, ignore)
                if diff:
                    raise ConfigError(
                        f"checkpoint {path} was saved with another config; differing fields "
                        f"(checkpoint vs requested): {'; '.join(diff)}"
                    )
        saved = dataclasses.replace(cfg) if cfg is not None else saved  # keep the caller's non-architectural choices
        saved_method = (method if method is not None else saved_method).resolve_paths(path)
        if type(saved_method) is not cls.config_class:
            raise ConfigError(f"{path} holds a {saved_method.type!r} model, not a {cls.__name__} "
                              "(care.methods.registry.load_pretrained loads any method)")
        model = cls(build_config(saved, path), saved_method, load_tokenizer(path))
        model.cfg = saved
        model.vlm.cfg = saved
        load_weights(model, path / WEIGHTS_NAME, map_location, drop=cls.stored_elsewhere)
        return model
