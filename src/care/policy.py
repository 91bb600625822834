"""CarePolicy: a fine-tuned CARE VLA that drives a robot (paper §2.3, DESIGN §4).

    from care.policy import CarePolicy

    policy = CarePolicy.from_pretrained("runs/care_tiny_ft")     # a `care finetune` folder
    policy.reset()                                               # at the start of every episode
    action = policy.select_action(image, "close the drawer")     # (H, W, 3) uint8 -> (A,)
    actions = policy.select_action(images, instructions)         # (B, H, W, 3), [str]*B -> (B, A)

Inside: the frame is resized to the model's input exactly as the training clips were
(`care.data.clips.resize_frames`), the policy view of the latent VLM gives the K placeholder
hidden states, the action head predicts a chunk of H normalised actions, they are mapped back
to the robot's range with the normaliser saved beside the weights, and the chunk executor
hands out one action per call ("chunk": open loop, re-plan after H; "ensemble": ACT's
temporal ensembling, re-plan every call).

A policy folder (written by `care finetune`, read by `from_pretrained`):
    config.json          the latent VLM's ModelConfig (as in a `care pretrain` folder)
    policy_config.json   the action head, chunk size, image pipeline (camera, stored frame
                         size, model input size) and the training episodes and their seeds
    model.safetensors    VLM + head weights, LoRA already merged: loading needs no `peft`
    normalizer.json      per-dimension action bounds (q01 / q99 of the labelled episodes)
    tokenizer files, hf/<part>/config.json (parts built from pretrained `transformers` dirs)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from care.data.io import atomic_write_json
from care.errors import ConfigError
from care.evaluation.chunking import ChunkExecutor
from care.evaluation.normalize import ActionNormalizer
from care.models.action_head import ActionHead, ActionHeadConfig
from care.models.care import check_state_fits

POLICY_CONFIG_NAME = "policy_config.json"
MODEL_CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------
# The network: policy view of the latent VLM + action head
# ----------------------------------------------------------------------------------------


class CareVLA(nn.Module):
    """obs uint8 (B,3,S,S) + instructions -> (B, H, A) normalised actions."""

    def __init__(self, vlm: nn.Module, head: ActionHead):
        super().__init__()
        self.vlm = vlm
        self.head = head

    def forward(self, obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        _, hidden = self.vlm.encode(obs, instructions)  # policy view: (B, K, W)
        return self.head(hidden)  # (B, H, A)


def apply_lora(model: CareVLA, lora) -> None:
    """Wrap the LLM with peft LoRA adapters (LoRAConfig: rank, alpha, dropout, target_modules);
    its base weights are frozen, the adapters trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
    )
    model.vlm.llm = get_peft_model(model.vlm.llm, config)


def has_lora(model: CareVLA) -> bool:
    from peft import PeftModel

    return isinstance(model.vlm.llm, PeftModel)


def merge_lora(model: CareVLA) -> CareVLA:
    """Fold the LoRA updates into the LLM's weights, in place (W <- W + (alpha/r)·B·A)."""
    if has_lora(model):
        model.vlm.llm = model.vlm.llm.merge_and_unload()
    return model


# ----------------------------------------------------------------------------------------
# Saving and reading policy folders
# ----------------------------------------------------------------------------------------


def save_policy(out_dir: str | Path, model: CareVLA, normalizer: ActionNormalizer, meta: dict) -> Path:
    """Write a policy folder. `model` must have its LoRA merged (see merge_lora)."""
    from safetensors.torch import save_file

    if has_lora(model):
        raise ValueError("save_policy needs a merged model: call merge_lora(copy) first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.vlm.cfg
    atomic_write_json(out / MODEL_CONFIG_NAME, dataclasses.asdict(cfg), indent=2)
    meta = {"format_version": FORMAT_VERSION, "head": model.head.config.to_dict(), **meta}
    meta.setdefault("chunk_size", model.head.config.chunk_size)
    meta.setdefault("action_dim", model.head.config.action_dim)
    meta.setdefault("image_size", cfg.image_size)
    atomic_write_json(out / POLICY_CONFIG_NAME, meta, indent=2)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "care": "CarePolicy"})
    os.replace(tmp, out / WEIGHTS_NAME)
    normalizer.save(out)
    model.vlm.tokenizer.save_pretrained(str(out))
    parts = {}
    if cfg.siglip.path:
        parts["siglip"] = model.vlm.vision.towers["siglip"].model
    if cfg.dino.path:
        parts["dinov2"] = model.vlm.vision.towers["dinov2"].model
    if cfg.llm_path:
        parts["llm"] = model.vlm.llm
    for name, hf in parts.items():  # the CareModel convention: rebuild without the original dirs
        (out / "hf" / name).mkdir(parents=True, exist_ok=True)
        hf.config.to_json_file(str(out / "hf" / name / "config.json"))
    return out


def read_policy_meta(path: str | Path) -> dict:
    """policy_config.json of a policy folder; a clear ConfigError for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"policy folder {path} not found (make one with `care finetune --output-dir {path}`)")
    file = path / POLICY_CONFIG_NAME
    if not file.is_file():
        if (path / MODEL_CONFIG_NAME).is_file():
            raise ConfigError(
                f"{path} is a pretrained model (`care pretrain`), not a policy: it has no action head. "
                f"Fine-tune it first: care finetune --pretrained {path} --output-dir {path}_ft"
            )
        raise ConfigError(f"{path} is not a policy folder (no {POLICY_CONFIG_NAME}); run `care finetune` to make one")
    meta = json.loads(file.read_text())
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{file}: policy format {meta['format_version']} is newer than this care ({FORMAT_VERSION})")
    return meta


def load_policy_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[CareVLA, ActionNormalizer, dict]:
    """(model, normaliser, meta) of a policy folder, every tensor checked before loading."""
    from safetensors.torch import load_file

    from care.models.care import model_config_from_dict, with_saved_hf_parts
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import load_tokenizer

    path = Path(path)
    meta = read_policy_meta(path)
    for name in (MODEL_CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise ConfigError(f"{path}: policy folder is incomplete, {name} is missing (re-run `care finetune`)")
    saved = model_config_from_dict(json.loads((path / MODEL_CONFIG_NAME).read_text()))
    build = with_saved_hf_parts(saved, path / "hf") if (path / "hf").is_dir() else saved
    vlm = LatentVLM(build, load_tokenizer(path))
    vlm.cfg = saved
    head_cfg = ActionHeadConfig(**meta["head"])
    if head_cfg.input_dim != vlm.hidden_size or head_cfg.num_latents != saved.num_latents:
        raise ConfigError(
            f"{path / POLICY_CONFIG_NAME}: the action head reads ({head_cfg.num_latents}, {head_cfg.input_dim}) "
            f"hidden states but {path / MODEL_CONFIG_NAME} describes a VLM with ({saved.num_latents}, "
            f"{vlm.hidden_size}): the folder mixes files of two runs; re-run `care finetune`"
        )
    model = CareVLA(vlm, ActionHead(head_cfg))
    state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
    check_state_fits(model, state, str(path / WEIGHTS_NAME),
                     hint="The weights were saved with another config than the folder's config.json / "
                          f"{POLICY_CONFIG_NAME} (or by a care version whose model defaults differ); "
                          "re-run `care finetune` into a clean folder.")
    model.load_state_dict(state)
    normalizer = ActionNormalizer.load(path)
    if normalizer.action_dim != head_cfg.action_dim:
        raise ConfigError(
            f"{path}: normalizer.json has {normalizer.action_dim} action dims, the head predicts {head_cfg.action_dim}"
        )
    return model.eval(), normalizer, meta


# ----------------------------------------------------------------------------------------
# The controller-side object
# ----------------------------------------------------------------------------------------


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images (B, H, W, 3) or one (H, W, 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (0-255, as the simulator renders them), got {images.dtype}")
    return images


def preprocess_images(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames -> uint8 (B, 3, size, size), resized exactly as the training
    clips are (care.data.clips.resize_frames: cv2.INTER_AREA; a no-op at the stored size)."""
    from care.data.clips import resize_frames

    images = _check_images(images)
    frames = resize_frames(images, size)
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))  # (B, 3, S, S)


class CarePolicy:
    """A fine-tuned CARE policy with its normaliser and chunk queue (see module docstring).

    Args:
        model: the merged network (CareVLA).
        normalizer: action bounds saved with it.
        meta: policy_config.json.
        execution: "chunk" (open loop: run the chunk, then re-plan) or "ensemble" (re-plan
            every call, blend overlapping chunks with exp(-k·i) weights; ACT).
        n_action_steps: ("chunk") actions executed from each chunk; None: all H.
        ensemble_decay: k of "ensemble".
        device: where the network runs.
    """

    def __init__(self, model: CareVLA, normalizer: ActionNormalizer, meta: dict, execution: str = "chunk",
                 n_action_steps: int | None = None, ensemble_decay: float = 0.1, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.normalizer = normalizer
        self.meta = meta
        self.device = torch.device(device)
        self.executor = ChunkExecutor(self.chunk_size, execution, ensemble_decay, n_action_steps)
        self._batch: int | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, execution: str = "chunk", n_action_steps: int | None = None,
                        ensemble_decay: float = 0.1, device: str | torch.device = "cpu") -> "CarePolicy":
        model, normalizer, meta = load_policy_model(path)
        return cls(model, normalizer, meta, execution, n_action_steps, ensemble_decay, device)

    # --- what the policy expects ---
    @property
    def image_size(self) -> int:
        return int(self.model.vlm.cfg.image_size)

    @property
    def chunk_size(self) -> int:
        return int(self.model.head.config.chunk_size)

    @property
    def action_dim(self) -> int:
        return int(self.model.head.config.action_dim)

    def reset(self) -> None:
        """Forget queued actions: call at the start of every episode."""
        self.executor.reset()
        self._batch = None

    @torch.no_grad()
    def predict_chunk(self, images: np.ndarray, instructions: list[str]) -> np.ndarray:
        """(B, H, W, 3) uint8 + B instructions -> (B, chunk_size, A) actions in the robot's range.
        Stateless: no queue involved."""
        obs = preprocess_images(images, self.image_size).to(self.device)
        if len(instructions) != obs.shape[0]:
            raise ValueError(f"{obs.shape[0]} images but {len(instructions)} instructions")
        pred = self.model(obs, list(instructions)).float()  # (B, H, A) in [-1, 1]
        return self.normalizer.unnormalize(pred.cpu().numpy().astype(np.float64)).astype(np.float32)

    def select_action(self, image: np.ndarray, instruction: str | list[str]) -> np.ndarray:
        """The action to execute now: (H, W, 3), str -> (A,); (B, H, W, 3), [str]*B -> (B, A).

        Runs the network only when the queue needs a new chunk ("chunk": every H calls;
        "ensemble": every call). A batch must keep its size until `reset()`.
        """
        single = np.ndim(image) == 3
        images = _check_images(np.asarray(image)[None] if single else image)
        instructions = [instruction] if isinstance(instruction, str) else list(instruction)
        if len(instructions) != len(images):
            raise ValueError(f"{len(images)} image(s) but {len(instructions)} instruction(s)")
        if self._batch is not None and self._batch != len(images):
            raise ValueError(f"batch size changed from {self._batch} to {len(images)} without reset()")
        self._batch = len(images)
        if self.executor.needs_plan():
            self.executor.add_chunk(self.predict_chunk(images, instructions))
        action = self.executor.next_action()  # (B, A)
        return action[0] if single else action
