"""Stage 1 of two-stage methods: a separate latent action model (LAM) on frame pairs.

LAPA-style and CoMo-style pretraining first train a model that reads (o_t, o_{t+n}) and
outputs a latent action (LAPA: quantised codes; CoMo: a continuous Q-former latent), then
train the VLM's policy view to predict that latent (stage 2, care.methods.two_stage). CARE has
no stage 1: its latent model *is* the VLM's inverse view.

    care lam --method.type lapa --dataset D --output-dir runs/lapa_lam     (care.training.lam)

A LAM folder:
    lam_config.json      {"model": ModelConfig (image size, sizes), "method": the method's config}
    model.safetensors    the LAM's weights
    episodes.json        the run's training / held-out episodes
    run_config.yaml, checkpoints/, tensorboard/, train_log.jsonl, val_metrics.json (the run)

Subclasses implement `forward(batch) -> {"loss", scalars}`, `latent(obs, future_obs)` (the
latent action, (B, T, d), used by the probes), and `targets(obs, future_obs)` (what stage 2
predicts); the training loop's hooks are care.methods.model.MethodModel's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from care.configs import ModelConfig
from care.errors import ConfigError
from care.folders import LAM_CONFIG_NAME, METHOD_NAME, WEIGHTS_NAME
from care.io import atomic_write_json
from care.methods.base import MethodConfig
from care.methods.model import MethodModel, method_config_from_dict, method_config_to_dict
from care.models.pretrained import load_weights, model_config_from_dict, save_weights


class LatentActionModel(MethodModel):
    """Base of stage-1 latent action models (see module docstring)."""

    def __init__(self, cfg: ModelConfig, method: MethodConfig):
        super().__init__()
        self.cfg = cfg
        self.method = method

    # --- what stage 2 and the probes call ---
    def latent(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) x2 -> the latent action (B, T, d) (LAPA: quantised code vectors)."""
        raise NotImplementedError

    def targets(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """What stage 2 learns to predict from o_t alone (LAPA: code indices (B, T) long)."""
        raise NotImplementedError

    # --- folders ---
    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / LAM_CONFIG_NAME, {"model": dataclasses.asdict(self.cfg),
                                                  "method": method_config_to_dict(self.method)}, indent=2)
        save_weights(self, out / WEIGHTS_NAME, type(self).__name__)
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "LatentActionModel":
        """Load a `care lam` folder (its class must be `cls`, or any when called on the base)."""
        from care.methods.registry import lam_class

        cfg, method = read_lam_configs(path)
        klass = lam_class(method) if cls is LatentActionModel else cls
        if lam_class(method) is not klass:
            want = next((name for name, mc in MethodConfig.get_known_choices().items()
                         if getattr(mc, "lam_modeling", "").endswith(f":{cls.__name__}")), cls.__name__)
            raise ConfigError(
                f"{path} holds a {method.type!r} latent action model, not a {want!r} one: --method.lam must be a "
                f"stage-1 folder of the same method. Make one with `care lam --config configs/lam/{want}_tiny.yaml "
                f"--dataset DIR --output-dir runs/{want}_lam` (or `care lam --method.type {want} ...`), then pass "
                f"--method.lam runs/{want}_lam")
        model = klass(cfg, method)
        load_weights(model, Path(path) / WEIGHTS_NAME, map_location)
        return model.eval()


def read_lam_configs(path: str | Path) -> tuple[ModelConfig, MethodConfig]:
    path = Path(path)
    file = path / LAM_CONFIG_NAME
    if not file.is_file() or not (path / WEIGHTS_NAME).is_file():
        hint = " (it is a stage-2 / CARE model folder)" if (path / METHOD_NAME).is_file() else ""
        raise ConfigError(f"{path} is not a latent action model folder (needs {LAM_CONFIG_NAME} and "
                          f"{WEIGHTS_NAME}; make one with `care lam`){hint}")
    try:
        raw = json.loads(file.read_text())
        return model_config_from_dict(raw["model"]), method_config_from_dict(raw["method"], str(file))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{file}: malformed ({e})") from e
