"""The pretrained-model folder every method writes and fine-tuning reads (save_pretrained style).

    <dir>/config.json        the latent VLM's ModelConfig (shared by every method)
    <dir>/method.json        the method's config, with its "type" (care.methods)
    <dir>/model.safetensors  every weight of the method's model (VLM + its own parts)
    <dir>/tokenizer files    the instruction tokenizer
    <dir>/hf/<part>/config.json   architectures of parts built from local `transformers` dirs,
                                  so the folder loads without the original directories

Loading checks every tensor's name and shape before copying, and names what does not fit
(nanoGPT's from_pretrained habit). Nothing here is unpickled: JSON and safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from care.configs import ModelConfig, ViTConfig
from care.errors import ConfigError
from care.io import atomic_write_json, atomic_write_with
from care.methods.base import MethodConfig

CONFIG_NAME = "config.json"
METHOD_NAME = "method.json"
WEIGHTS_NAME = "model.safetensors"
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


def method_config_to_dict(cfg: MethodConfig) -> dict:
    return {"type": cfg.type, **dataclasses.asdict(cfg)}


def method_config_from_dict(d: dict, source: str = "method.json") -> MethodConfig:
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
    raw = _read_json(path / CONFIG_NAME)
    model_cfg = model_config_from_dict(raw)
    if (path / METHOD_NAME).is_file():
        method_cfg = method_config_from_dict(_read_json(path / METHOD_NAME), str(path / METHOD_NAME))
    else:  # written before methods had their own file: CARE, its fields in config.json
        from care.methods.care.configuration_care import CareConfig

        fields = {f.name for f in dataclasses.fields(CareConfig)}
        method_cfg = CareConfig(**{k: v for k, v in raw.items() if k in fields})
    return model_cfg, method_cfg


def _read_json(file: Path) -> Any:
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
    return with_saved_hf_parts(cfg, Path(folder) / "hf") if (Path(folder) / "hf").is_dir() else cfg


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


def load_weights(model: nn.Module, file: Path, map_location: str | torch.device = "cpu", hint: str = "") -> None:
    """Copy a safetensors state dict in, after checking that every name and shape lines up."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"{file}: unreadable weights file ({e})") from e
    check_state_fits(model, state, str(file), hint)
    model.load_state_dict(state)


def save_vlm_files(vlm: nn.Module, out: Path) -> None:
    """config.json, the tokenizer and hf/<part> configs of a latent VLM."""
    atomic_write_json(out / CONFIG_NAME, dataclasses.asdict(vlm.cfg), indent=2)
    vlm.tokenizer.save_pretrained(str(out))
    for name, hf in hf_parts(vlm).items():
        (out / "hf" / name).mkdir(parents=True, exist_ok=True)
        hf.config.to_json_file(str(out / "hf" / name / "config.json"))


class PretrainedModel(nn.Module):
    """Base of every method's pretraining model: holds `.vlm` (a LatentVLM), `.cfg`
    (ModelConfig) and `.method` (its MethodConfig); saves and loads the folder above."""

    cfg: ModelConfig
    method: MethodConfig
    config_class: ClassVar[type] = MethodConfig  # the MethodConfig subclass this model is built from

    # --- what the pretraining loop (care.training.pretrain) calls; methods override ---
    @classmethod
    def requires_tracks(cls, method: MethodConfig) -> bool:
        """Whether this method's batches must carry point tracks (checked before training)."""
        return False

    def prepare_training(self, batch: dict) -> dict[str, float]:
        """Once before the first step, on the same batch in every process; returns what to
        store with checkpoints (e.g. CARE's baseline losses)."""
        return {}

    def param_groups(self, optim) -> dict[str, dict]:
        """{parameter-name prefix: optimiser overrides} for parameters that need their own lr/eps."""
        return {}

    def after_optimizer_step(self) -> None:
        """After every optimiser step (EMA targets, schedules)."""

    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out metrics at every validation (docs/DESIGN.md: log the latent's health)."""
        return {}

    def brief(self, metrics: dict) -> dict:
        return {}

    # --- what the latent probes (care probe) call ---
    @torch.no_grad()
    def action_latent(self, obs: torch.Tensor, future_obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """The method's latent action for (o_t -> o_{t+n}), (B, T, d): what LP-MSE, S-PCFC and
        the semantic probe read (CARE: the inverse view's z*; LAPA: the quantised code vectors
        of its stage-1 model; CoMo: its Q-former latent)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose a latent action")

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
        load_weights(model, path / WEIGHTS_NAME, map_location)
        return model


