"""CareModel: the latent VLM + frame decoder + point decoder + uncertainty weighting.

    batch ─► vision(o_t), vision(o_{t+n}) ──► inverse view ─► z* ─┬─► frame decoder ─► L_frame ─┐
                   │                                              └─► point decoder ─► L_point ─┤ UWL
                   └────────────────────────► policy view  ─► ẑ ──── ||ẑ − sg(z*)||² ───────────┴──+─► loss
                                                                     × latent weight (delayed, ramped)

Frame-decoder targets come from a separate target encoder (an EMA or frozen copy of the
towers), layer-normalised per token, so they can neither collapse nor shrink while the
online towers train (DESIGN §3).

Checkpoints are `save_pretrained` folders: config.json (ModelConfig), model.safetensors,
the tokenizer files, and hf/<part>/config.json for the parts built from pretrained
`transformers` checkpoints (so `from_pretrained` rebuilds them without the original dirs).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ModelConfig, ViTConfig
from care.data.io import atomic_write_json
from care.errors import ConfigError
from care.models.decoders import FrameDecoder, PointDecoder
from care.models.latent_vlm import LatentVLM
from care.models.losses import UncertaintyWeighting

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Fields that do not change the weights' names or shapes: a checkpoint loads whatever they are.
# (freeze_vision and target_encoder do: frozen towers that are their own targets are stored once.)
NON_ARCHITECTURAL = {
    "llm_path", "siglip.path", "dino.path", "init_std", "ema_decay",
    "latent_loss_weight", "latent_loss_delay", "latent_loss_ramp",
}


class CareModel(nn.Module):
    def __init__(self, cfg: ModelConfig, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.vlm = LatentVLM(cfg, tokenizer)
        D = self.vlm.vision.feature_dim
        P = self.vlm.vision.num_patches
        self.tasks: dict[str, str] = {}

        # the frame target encoder: not registered as a submodule when it is the (frozen) online
        # towers themselves, so the weights are stored once
        self._shared_target = cfg.target_encoder == "frozen" and cfg.freeze_vision
        if cfg.objective in ("multitask", "frame"):
            if not self._shared_target:
                self.target_encoder = copy.deepcopy(self.vlm.vision).requires_grad_(False)
            self.frame_decoder = FrameDecoder(cfg, D, D, P)
            self.tasks["frame"] = "gaussian"
        if cfg.objective in ("multitask", "point"):
            self.point_decoder = PointDecoder(cfg)
            self.tasks["point"] = "softmax" if cfg.point_mode == "classification" else "gaussian"
        self.uwl = UncertaintyWeighting(self.tasks)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # optimiser steps taken
        if cfg.freeze_vision:
            self.vlm.vision.requires_grad_(False)

    # --- targets and schedule ---
    @torch.no_grad()
    def target_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> layer-normalised target features (B, P, D)."""
        enc = self.vlm.vision if self._shared_target else self.target_encoder
        f = enc(images).float()
        return F.layer_norm(f, f.shape[-1:])

    def latent_weight(self) -> float:
        c = self.cfg
        t = int(self.num_updates) - c.latent_loss_delay
        if t < 0:
            return 0.0
        return c.latent_loss_weight * (1.0 if c.latent_loss_ramp <= 0 else min(1.0, (t + 1) / c.latent_loss_ramp))

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Call once after every optimiser step: advances the schedule, updates the EMA target."""
        self.num_updates += 1
        if hasattr(self, "target_encoder") and self.cfg.target_encoder == "ema":
            d = self.cfg.ema_decay
            online = dict(self.vlm.vision.named_parameters())
            for name, p in self.target_encoder.named_parameters():
                p.lerp_(online[name].detach().to(p.dtype), 1.0 - d)

    def enable_gradient_checkpointing(self) -> None:
        kw = {"use_reentrant": False}
        for m in [self.vlm.llm, *[t.model for t in self.vlm.vision.towers.values()]]:
            if hasattr(m, "activation_checkpointing_enable"):
                m.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

    # --- forward ---
    def views(self, batch: dict) -> dict:
        """Everything the losses and the diagnostics need, from one pass over both views."""
        obs, fut, instr = batch["obs"], batch["future_obs"], batch["instruction"]
        B = obs.shape[0]
        feats, fut_feats = self.vlm.vision_features(torch.cat([obs, fut], dim=0)).split(B)  # (B, P, D) x2
        z_star, _ = self.vlm.latents_from_features(feats, instr, fut_feats)  # inverse view (B, K, Dz)
        z_hat, _ = self.vlm.latents_from_features(feats, instr)  # policy view (B, K, Dz)
        out = {"feats": feats, "z_star": z_star, "z_hat": z_hat}
        if "frame" in self.tasks:
            tgt_t, tgt_f = self.target_features(torch.cat([obs, fut], dim=0)).split(B)
            out["target_t"], out["target_f"] = tgt_t, tgt_f
        return out

    def frame_loss(self, v: dict, z: torch.Tensor) -> torch.Tensor:
        """Per-sample MSE between predicted and target features of o_{t+n} (B,)."""
        pred = self.frame_decoder(v["feats"], z, v["target_t"])  # (B, P, D)
        return (pred.float() - v["target_f"]).pow(2).mean(dim=(1, 2))

    def point_loss(self, batch: dict, z: torch.Tensor) -> torch.Tensor:
        valid = batch.get("point_valid")  # padding mask from care.training.batching.collate_clips
        out = self.point_decoder(batch["tracks"], z, valid)
        visible = batch["visible"] if valid is None else batch["visible"] & valid
        return self.point_decoder.loss(out, batch["future_tracks"] - batch["tracks"], visible)  # (B,)

    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S), instruction list[str], tracks/future_tracks
        (B,N,2) px and visible (B,N) (point objective). Returns loss + scalars to log."""
        v = self.views(batch)
        losses = {}
        if "frame" in self.tasks:
            losses["frame"] = self.frame_loss(v, v["z_star"]).mean()
        if "point" in self.tasks:
            losses["point"] = self.point_loss(batch, v["z_star"]).mean()
        latent = (v["z_hat"].float() - v["z_star"].detach().float()).pow(2).mean()
        w = self.latent_weight()
        loss = self.uwl(losses) + w * latent
        logs = {f"loss_{k}": l.detach() for k, l in losses.items()}
        logs.update({f"log_var_{k}": s.detach().clone() for k, s in self.uwl.log_vars.items()})  # at forward time
        logs["loss_latent"] = latent.detach()
        logs["latent_weight"] = torch.tensor(w)
        return {"loss": loss, **logs}

    @torch.no_grad()
    def init_log_vars(self, batch: dict) -> dict[str, float]:
        """s_i = log(loss_i at init) (DESIGN §3); with zero-init decoders that is the
        "nothing moves" baseline. Call before training, on the same batch in every process."""
        v = self.views(batch)
        base = {}
        if "frame" in self.tasks:
            base["frame"] = float(self.frame_loss(v, v["z_star"]).mean())
        if "point" in self.tasks:
            base["point"] = float(self.point_loss(batch, v["z_star"]).mean())
        self.uwl.init_from_baselines(base)
        return base

    # --- checkpoints ---
    def save_pretrained(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG_NAME, dataclasses.asdict(self.cfg), indent=2)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = out / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "care": "CareModel"})
        tmp.replace(out / WEIGHTS_NAME)
        self.vlm.tokenizer.save_pretrained(str(out))
        for name, hf in self._hf_parts().items():  # architecture of parts loaded from local checkpoints
            (out / "hf" / name).mkdir(parents=True, exist_ok=True)
            hf.config.to_json_file(str(out / "hf" / name / "config.json"))
        return out

    def _hf_parts(self) -> dict[str, nn.Module]:
        parts = {}
        if self.cfg.siglip.path:
            parts["siglip"] = self.vlm.vision.towers["siglip"].model
        if self.cfg.dino.path:
            parts["dinov2"] = self.vlm.vision.towers["dinov2"].model
        if self.cfg.llm_path:
            parts["llm"] = self.vlm.llm
        return parts

    @classmethod
    def from_pretrained(cls, path: str | Path, cfg: ModelConfig | None = None,
                        map_location: str | torch.device = "cpu") -> "CareModel":
        """Load a `save_pretrained` folder. With `cfg`, it must describe the same architecture:
        otherwise a ConfigError names every field that differs."""
        from care.models.tokenizer import load_tokenizer

        path = Path(path)
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ConfigError(f"{path} is not a CARE checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        saved = model_config_from_dict(json.loads((path / CONFIG_NAME).read_text()))
        if cfg is not None:
            diff = config_diff(saved, cfg)
            if diff:
                raise ConfigError(
                    f"checkpoint {path} was saved with another model config; differing fields "
                    f"(checkpoint vs requested): {'; '.join(diff)}"
                )
            saved = dataclasses.replace(cfg)  # keep the caller's non-architectural choices
        # parts that came from local pretrained dirs are rebuilt from their saved configs
        build_cfg = saved
        if (path / "hf").is_dir():
            build_cfg = with_saved_hf_parts(saved, path / "hf")
        model = cls(build_cfg, load_tokenizer(path))
        model.cfg = saved
        model.vlm.cfg = saved
        model.load_weights(path / WEIGHTS_NAME, map_location)
        return model

    def load_weights(self, file: str | Path, map_location="cpu") -> None:
        """Copy a safetensors state dict in, after checking that every name and shape lines up."""
        from safetensors.torch import load_file

        state = load_file(str(file), device=str(map_location))
        check_state_fits(self, state, str(file))
        self.load_state_dict(state)


# ----------------------------------------------------------------------------------------
# config (de)serialisation helpers
# ----------------------------------------------------------------------------------------


def model_config_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"model config has fields this version of care does not know: {unknown}")
    for tower in ("siglip", "dino"):
        if isinstance(d.get(tower), dict):
            d[tower] = ViTConfig(**d[tower])
    return ModelConfig(**d)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: ModelConfig, b: ModelConfig, ignore: set[str] = NON_ARCHITECTURAL) -> list[str]:
    """'field: a != b' for every architectural field that differs."""
    fa, fb = _flatten(dataclasses.asdict(a)), _flatten(dataclasses.asdict(b))
    # a tower loaded from a path takes its sizes from that checkpoint, not from our fields
    for tower, key in (("siglip", "siglip.path"), ("dino", "dino.path")):
        if fa.get(key) or fb.get(key):
            ignore = ignore | {k for k in fa if k.startswith(tower + ".")}
    if fa.get("llm_path") or fb.get("llm_path"):  # likewise the Llama (its width is checked on load)
        ignore = ignore | {"num_layers", "num_heads", "intermediate_size", "vocab_size"}
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
    """Point the pretrained paths at the checkpoint's hf/<part> configs (weights come from
    model.safetensors, so the original directories are not needed)."""
    c = dataclasses.replace(cfg)
    if (hf_dir / "siglip").is_dir():
        c = dataclasses.replace(c, siglip=dataclasses.replace(c.siglip, path=f"config-only:{hf_dir / 'siglip'}"))
    if (hf_dir / "dinov2").is_dir():
        c = dataclasses.replace(c, dino=dataclasses.replace(c.dino, path=f"config-only:{hf_dir / 'dinov2'}"))
    if (hf_dir / "llm").is_dir():
        c = dataclasses.replace(c, llm_path=f"config-only:{hf_dir / 'llm'}")
    return c
