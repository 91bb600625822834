"""The policy folder: what `care finetune` writes and `CarePolicy.from_pretrained` reads.

    config.json          the latent VLM's ModelConfig (as in a pretrained folder)
    policy_config.json   the action head, chunk size, state input, image pipeline (camera,
                         stored frame size, model input size), the training episodes and seeds
    model.safetensors    VLM + head (+ state projector) weights, LoRA already merged: loading
                         needs no `peft`
    normalizer.json      per-dimension action bounds (q01 / q99 of the labelled episodes)
    state_normalizer.json  the same for the state inputs, when the policy reads a state
    tokenizer files, hf/<part>/config.json (parts built from pretrained `transformers` dirs)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from care.errors import ConfigError
from care.io import atomic_write_json
from care.models.action_head import action_head_from_dict
from care.models.pretrained import (CONFIG_NAME, WEIGHTS_NAME, build_config, load_weights, model_config_from_dict,
                                    save_vlm_files, save_weights)
from care.models.vla import CareVLA, has_lora
from care.policy.normalize import ActionNormalizer

POLICY_CONFIG_NAME = "policy_config.json"
STATE_NORMALIZER_NAME = "state_normalizer.json"
FORMAT_VERSION = 2  # 2: head config without dims duplicated, optional state input


def save_policy(out_dir: str | Path, model: CareVLA, normalizer: ActionNormalizer, meta: dict,
                state_normalizer: ActionNormalizer | None = None) -> Path:
    """Write a policy folder. `model` must have its LoRA merged (care.models.vla.merge_lora)."""
    if has_lora(model):
        raise ValueError("save_policy needs a merged model: call merge_lora(copy) first")
    if (model.state_dim > 0) != (state_normalizer is not None):
        raise ValueError("a policy that reads a state needs its state normaliser (and only such a policy)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "head": model.head.to_dict(), "state_dim": model.state_dim, **meta}
    meta.setdefault("chunk_size", model.head.config.chunk_size)
    meta.setdefault("action_dim", model.head.action_dim)
    meta.setdefault("image_size", model.vlm.cfg.image_size)
    save_vlm_files(model.vlm, out)
    atomic_write_json(out / POLICY_CONFIG_NAME, meta, indent=2)
    save_weights(model, out / WEIGHTS_NAME, "CarePolicy")
    normalizer.save(out)
    if state_normalizer is not None:
        state_normalizer.save(out, STATE_NORMALIZER_NAME)
    return out


def read_policy_meta(path: str | Path) -> dict:
    """policy_config.json of a policy folder; a clear ConfigError for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"policy folder {path} not found (make one with `care finetune --output-dir {path}`)")
    file = path / POLICY_CONFIG_NAME
    if not file.is_file():
        if (path / CONFIG_NAME).is_file():
            raise ConfigError(
                f"{path} is a pretrained model (`care pretrain`), not a policy: it has no action head. "
                f"Fine-tune it first: care finetune --pretrained {path} --output-dir {path}_ft"
            )
        raise ConfigError(f"{path} is not a policy folder (no {POLICY_CONFIG_NAME}); run `care finetune` to make one")
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: malformed JSON ({e})") from e
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{file}: policy format {meta['format_version']} is newer than this care ({FORMAT_VERSION})")
    return meta


def load_policy_model(path: str | Path, map_location: str | torch.device = "cpu"
                      ) -> tuple[CareVLA, ActionNormalizer, ActionNormalizer | None, dict]:
    """(model, action normaliser, state normaliser or None, meta) of a policy folder, every
    tensor checked before loading."""
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import load_tokenizer

    path = Path(path)
    meta = read_policy_meta(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise ConfigError(f"{path}: policy folder is incomplete, {name} is missing (re-run `care finetune`)")
    saved = model_config_from_dict(json.loads((path / CONFIG_NAME).read_text()))
    vlm = LatentVLM(build_config(saved, path), load_tokenizer(path))
    vlm.cfg = saved
    head = action_head_from_dict(meta["head"])
    if head.input_dim != vlm.hidden_size or head.num_latents != saved.num_latents:
        raise ConfigError(
            f"{path / POLICY_CONFIG_NAME}: the action head reads ({head.num_latents}, {head.input_dim}) "
            f"hidden states but {path / CONFIG_NAME} describes a VLM with ({saved.num_latents}, "
            f"{vlm.hidden_size}): the folder mixes files of two runs; re-run `care finetune`"
        )
    state_dim = int(meta.get("state_dim", 0))
    model = CareVLA(vlm, head, state_dim, wrist=bool(meta.get("wrist_camera")))
    load_weights(model, path / WEIGHTS_NAME, map_location,
                 hint="The weights were saved with another config than the folder's config.json / "
                      f"{POLICY_CONFIG_NAME} (or by a care version whose model defaults differ); "
                      "re-run `care finetune` into a clean folder.")
    normalizer = ActionNormalizer.load(path)
    if normalizer.action_dim != head.action_dim:
        raise ConfigError(
            f"{path}: normalizer.json has {normalizer.action_dim} action dims, the head predicts {head.action_dim}"
        )
    state_normalizer = None
    if state_dim:
        state_normalizer = ActionNormalizer.load(path, STATE_NORMALIZER_NAME)
        if state_normalizer.action_dim != state_dim:
            raise ConfigError(f"{path}: {STATE_NORMALIZER_NAME} has {state_normalizer.action_dim} dims, "
                              f"the policy reads a {state_dim}-d state")
    return model.eval(), normalizer, state_normalizer, meta

