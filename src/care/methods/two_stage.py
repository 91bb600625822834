"""Stage 2 of a two-stage method (LAPA-style, CoMo-style): the latent VLM learns what a frozen
stage-1 latent action model (care.methods.lam) says about (o_t, o_{t+n}).

TwoStageModel owns what both methods share:
- loading the stage-1 folder named by `--method.lam`, after checking, before any model is built,
  that it exists and was trained with the same image size and the same stage-1 settings (else
  a ConfigError naming the differing fields and the command to run);
- holding it frozen and in eval mode, outside this module's parameters and state dict: it gets
  no gradient and no optimiser state, `.to()` moves it along, and its weights are stored once,
  in <folder>/lam (folders that also kept them as `lam.*` in model.safetensors still load);
- saving it into <folder>/lam with its run's episodes.json, so the folder loads, fine-tunes and
  probes without the original stage-1 run (the probes refuse every episode either stage trained on);
- `action_latent`: the stage-1 model's latent, what the probes read.
A subclass adds its head and loss (`forward`), and its diagnostics.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from care.configs import ModelConfig
from care.errors import ConfigError
from care.folders import EPISODES_NAME, LAM_CONFIG_NAME, LAM_DIR
from care.methods.base import TwoStageConfig
from care.methods.lam import LatentActionModel, read_lam_configs
from care.methods.model import PretrainedModel
from care.models.latent_vlm import LatentVLM
from care.models.pretrained import config_diff


class TwoStageModel(PretrainedModel):
    """Base of stage-2 models: `.vlm` (LatentVLM) and `.lam` (the frozen stage-1 model)."""

    stored_elsewhere = ("lam.",)  # older LAPA folders kept the stage-1 weights in model.safetensors too
    lam: LatentActionModel  # set with object.__setattr__: not a submodule
    # Loading the stage-1 model draws random numbers (it is built, then its weights are read), so
    # the order of the two sets the VLM's initial weights. Each method keeps the order its
    # committed runs were made with, so that they reproduce to the digit (LAPA: VLM first).
    load_stage1_first = False

    def __init__(self, cfg: ModelConfig, method: TwoStageConfig, tokenizer):
        super().__init__()
        check_stage1(method, cfg)  # before anything is built
        self.cfg = cfg
        self.method = method
        from care.methods.registry import lam_class

        if self.load_stage1_first:
            lam = lam_class(method).from_pretrained(method.lam).requires_grad_(False).eval()
        self.vlm = LatentVLM(cfg, tokenizer)
        if not self.load_stage1_first:
            lam = lam_class(method).from_pretrained(method.lam).requires_grad_(False).eval()
        object.__setattr__(self, "lam", lam)  # not a submodule: see the module docstring
        # the VLM's z projection is CARE's read-out; stage 2 reads the placeholder states (as
        # fine-tuning does), so it is frozen: no trainable parameter without a gradient (DDP)
        self.vlm.latent_proj.requires_grad_(False)
        if cfg.freeze_vision:
            self.vlm.vision.requires_grad_(False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.lam._apply(fn)  # the unregistered stage-1 model follows .to() / .cuda() / .float()
        return self

    @torch.no_grad()
    def action_latent(self, obs: torch.Tensor, future_obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """The stage-1 model's latent action (B, T, d) (LAPA: quantised code vectors; CoMo: z)."""
        return self.lam.latent(obs, future_obs)

    def save_extra(self, out: Path) -> None:
        """The stage-1 model into <out>/lam, with its run's episodes.json (TwoStageConfig.resolve_paths)."""
        dst = Path(out) / LAM_DIR
        self.lam.save_pretrained(dst)
        src = Path(self.method.lam)
        if (src / EPISODES_NAME).is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src / EPISODES_NAME, dst / EPISODES_NAME)

    def reset_loaded_parts(self, seed: int) -> None:
        """Fresh random weights for the stage-1 model (seeded): the probes' random-weights reference."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            fresh = type(self.lam)(self.lam.cfg, self.lam.method).requires_grad_(False).eval()
        object.__setattr__(self, "lam", fresh)


def check_stage1(method: TwoStageConfig, cfg: ModelConfig) -> None:
    """A ConfigError, naming the command to run, unless `method.lam` is a stage-1 folder of this
    method trained at cfg's image size with the same stage-1 settings as `method`."""
    name = method.type
    if method.lam is None:
        raise ConfigError(
            f"{name} pretraining (stage 2) learns the latent of a stage-1 model and --method.lam names none: "
            f"train one first with `care lam --method.type {name} --dataset D --output-dir runs/{name}_lam` "
            f"(configs/lam/{name}_tiny.yaml, the same --preset), then pass `--method.lam runs/{name}_lam`")
    lam_cfg, lam_method = read_lam_configs(method.lam)  # names what else the folder holds
    if type(lam_method) is not type(method):
        raise ConfigError(
            f"{method.lam} holds a {lam_method.type!r} latent action model, not a {name!r} one: --method.lam must be "
            f"a stage-1 folder of the same method. Make one with `care lam --config configs/lam/{name}_tiny.yaml "
            f"--dataset DIR --output-dir runs/{name}_lam` (or `care lam --method.type {name} ...`), then pass "
            f"--method.lam runs/{name}_lam")
    if lam_cfg.image_size != cfg.image_size:
        raise ConfigError(f"{method.lam}: the latent action model sees {lam_cfg.image_size}² frames but the VLM "
                          f"{cfg.image_size}²: pretrain both stages with the same --preset / --model.image-size")
    diff = config_diff(lam_method, dataclasses.replace(method, lam=lam_method.lam), type(method).stage2_fields)
    if diff:
        raise ConfigError(f"{method.lam}: the stage-1 model was trained with other settings (stage 1 vs requested): "
                          f"{'; '.join(diff)}. Pass the same --preset and --method.* flags as its `care lam` run "
                          f"(they are in {Path(method.lam) / LAM_CONFIG_NAME}), or train a matching stage 1 with "
                          f"`care lam --method.type {name} ...`")
