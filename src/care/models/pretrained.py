"""Model folders (save_pretrained style): the latent VLM's config and weights, method-agnostic.

    <dir>/config.json        the latent VLM's ModelConfig (shared by every method)
    <dir>/model.safetensors  every weight of the folder's model
    <dir>/tokenizer files    the instruction tokenizer
    <dir>/hf/<part>/config.json   architectures of parts built from local `transformers` dirs,
                                  so the folder loads without the original directories

A pretraining method's folder adds its own config (method.json) and parts: care.methods.model;
a policy folder adds the head and normalisers: care.policy.folder.

Loading checks every tensor's name and shape before copying, and names what does not fit
(nanoGPT's from_pretrained habit). Nothing here is unpickled: JSON and safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from care.configs import ModelConfig, ViTConfig
from care.errors import ConfigError
from care.folders import CONFIG_NAME, HF_DIR, WEIGHTS_NAME  # noqa: F401  (WEIGHTS_NAME: care.policy.folder reads it here)
from care.io import atomic_write_json, atomic_write_with

# ModelConfig fields that do not change the weights' names or shapes
NON_ARCHITECTURAL = {"llm_path", "siglip.path", "dino.path", "init_std"}
# fields older care versions kept in config.json before methods had their own config
_LEGACY_CARE_FIELDS = {
    "decoder_width", "decoder_layers", "decoder_heads", "point_mode", "point_bins", "point_max_disp",
    "fourier_freqs", "objective", "target_encoder", "ema_decay", "latent_loss_weight", "latent_loss_delay",
    "latent_loss_ramp",
}


# ----------------------------------------------------------------------------------------
# configs <-> dicts
# ----------------------------------------------------------------------------------------


def model_config_from_dict(d: dict) -> ModelConfig:
    d = {k: v for k, v in d.items() if k not in _LEGACY_CARE_FIELDS}
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"model config has fields this version of care does not know: {unknown}")
    for tower in ("siglip", "dino"):
        if isinstance(d.get(tower), dict):
            d[tower] = ViTConfig(**d[tower])
    if "vision_towers" in d:
        d["vision_towers"] = tuple(d["vision_towers"])
    return ModelConfig(**d)


def read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: malformed JSON ({e})") from e


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: Any, b: Any, ignore: set[str] | frozenset[str] = NON_ARCHITECTURAL) -> list[str]:
    """'field: a != b' for every architectural field that differs (ModelConfig or MethodConfig)."""
    fa, fb = _flatten(dataclasses.asdict(a)), _flatten(dataclasses.asdict(b))
    ignore = set(ignore)
    # a tower loaded from a path takes its sizes from that checkpoint, not from our fields
    for tower, key in (("siglip", "siglip.path"), ("dino", "dino.path")):
        if fa.get(key) or fb.get(key):
            ignore |= {k for k in fa if k.startswith(tower + ".")}
    if fa.get("llm_path") or fb.get("llm_path"):  # likewise the LLM (its width is checked on load)
        ignore |= {"num_layers", "num_heads", "intermediate_size", "vocab_size"}
    if type(a) is not type(b):
        return [f"type: {type(a).__name__} != {type(b).__name__}"]
    return [f"{k}: {fa[k]!r} != {fb[k]!r}" for k in fa if k not in ignore and fa[k] != fb.get(k)]


def check_state_fits(model: nn.Module, state: dict, source: str, hint: str = "") -> None:
    """ConfigError naming every missing, unexpected or mis-shaped tensor (before any copy)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in sorted(own.keys() & state.keys()) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        def head(xs):
            return ", ".join(xs[:6]) + (f" (+{len(xs) - 6} more)" if len(xs) > 6 else "")
        problems = [p for p in (missing and f"missing {head(missing)}", unexpected and f"unexpected {head(unexpected)}",
                                shapes and f"shape mismatch (saved vs expected) {head(shapes)}") if p]
        raise ConfigError(f"{source} does not fit the model its config describes: {'; '.join(problems)}. {hint}".strip())


def with_saved_hf_parts(cfg: ModelConfig, hf_dir: Path) -> ModelConfig:
    """Point the pretrained paths at the folder's hf/<part> configs (weights come from
    model.safetensors, so the original directories are not needed)."""
    c = dataclasses.replace(cfg)
    if (hf_dir / "siglip").is_dir():
        c = dataclasses.replace(c, siglip=dataclasses.replace(c.siglip, path=f"config-only:{hf_dir / 'siglip'}"))
    if (hf_dir / "dinov2").is_dir():
        c = dataclasses.replace(c, dino=dataclasses.replace(c.dino, path=f"config-only:{hf_dir / 'dinov2'}"))
    if (hf_dir / "llm").is_dir():
        c = dataclasses.replace(c, llm_path=f"config-only:{hf_dir / 'llm'}")
    return c


def build_config(cfg: ModelConfig, folder: Path) -> ModelConfig:
    """The config to build a folder's VLM with (its hf/ parts instead of the original dirs)."""
    return with_saved_hf_parts(cfg, Path(folder) / HF_DIR) if (Path(folder) / HF_DIR).is_dir() else cfg


# ----------------------------------------------------------------------------------------
# writing and reading weights
# ----------------------------------------------------------------------------------------


def hf_parts(vlm: nn.Module) -> dict[str, nn.Module]:
    """The VLM's parts that came from local `transformers` checkpoints (their configs are saved)."""
    cfg = vlm.cfg
    parts = {}
    if cfg.siglip.path and "siglip" in vlm.vision.towers:
        parts["siglip"] = vlm.vision.towers["siglip"].model
    if cfg.dino.path and "dinov2" in vlm.vision.towers:
        parts["dinov2"] = vlm.vision.towers["dinov2"].model
    if cfg.llm_path:
        parts["llm"] = vlm.llm
    return parts


def save_weights(model: nn.Module, file: Path, kind: str) -> None:
    """model.state_dict() -> safetensors, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_with(Path(file), lambda tmp: save_file(state, str(tmp), metadata={"format": "pt", "care": kind}))


def load_weights(model: nn.Module, file: Path, map_location: str | torch.device = "cpu", hint: str = "",
                 drop: tuple[str, ...] = ()) -> None:
    """Copy a safetensors state dict in, after checking that every name and shape lines up.
    `drop`: key prefixes older folders stored and today's model keeps elsewhere (they are skipped)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"{file}: unreadable weights file ({e})") from e
    state = rename_legacy_keys(model, {k: v for k, v in state.items() if not k.startswith(drop)} if drop else state)
    check_state_fits(model, state, str(file), hint)
    model.load_state_dict(state)


def rename_legacy_keys(model: nn.Module, state: dict) -> dict:
    """Parameter names of older folders -> today's: a submodule class may list {old: new} names of
    its children in `legacy_names` (care.models.blocks); a key is renamed only when the model has
    the new name and not the old one."""
    own = model.state_dict()
    renames = {}
    for prefix, m in model.named_modules():
        for old, new in getattr(type(m), "legacy_names", {}).items():
            renames[f"{prefix}.{old}." if prefix else f"{old}."] = f"{prefix}.{new}." if prefix else f"{new}."
    if not renames or all(k in own for k in state):
        return state
    out = {}
    for k, v in state.items():
        if k not in own:
            for old, new in renames.items():
                if k.startswith(old) and new + k[len(old):] in own:
                    k = new + k[len(old):]
                    break
        out[k] = v
    return out


def save_vlm_files(vlm: nn.Module, out: Path) -> None:
    """config.json, the tokenizer and hf/<part> configs of a latent VLM."""
    atomic_write_json(out / CONFIG_NAME, dataclasses.asdict(vlm.cfg), indent=2)
    vlm.tokenizer.save_pretrained(str(out))
    for name, hf in hf_parts(vlm).items():
        (out / HF_DIR / name).mkdir(parents=True, exist_ok=True)
        hf.config.to_json_file(str(out / HF_DIR / name / CONFIG_NAME))
