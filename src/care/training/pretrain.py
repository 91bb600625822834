"""`care pretrain`: latent pretraining by a method of the registry (`--method.type`), with Accelerate.

The loop is care.training.loop's, shared with `care lam` and `care finetune`; here is what is
pretraining's own (PretrainRun): the clips without labels, the method model's `forward` as the
step, and its hooks (care.methods.model.MethodModel: preparation, optimiser groups, per-step
updates, logged scalars, held-out diagnostics). CARE: paper §2.2.

    care pretrain --config configs/pretrain/care_tiny.yaml --dataset data/mt10 --output-dir runs/care_tiny
    accelerate launch --multi_gpu --num_processes 2 -m care pretrain ...   (DDP; over gloo on a CPU-only machine)
    torchrun --nproc-per-node 2 -m care pretrain ...                       (the same)

Writes into output_dir:
    run_config.yaml        the resolved PretrainConfig
    tokenizer files        (the BPE trained on the training episodes' instructions, or the Llama's)
    checkpoints/step_*/    atomic training checkpoints, the last `keep_checkpoints` (care.training.checkpoint)
    tensorboard/           losses, σ's, latent loss, grad norm, lr, samples/s, validation
    train_log.jsonl        the same scalars, one JSON line per log step
    val_metrics.json       held-out diagnostics (the method's `diagnostics`) at every validation
    episodes.json          the dataset(s) and the training / held-out episodes of this run
    config.json, method.json, model.safetensors   the final model (care.methods.model; + lam/ for two stages)

No action labels are read: the batches carry images, instructions and point tracks only.
With `extra_datasets` the clips of several datasets are drawn together (ConcatClips).
The method and its sizes are logged with the compute it used: clips seen and wall time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

# On a shared CPU, OpenMP threads that spin while waiting made a step 10-20x slower (measured:
# 19 s vs 1 s per tiny step with other jobs running). Sleeping waiters cost ~nothing when the
# machine is idle. Read once, when torch loads its OpenMP runtime: hence before `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from care.configs import PretrainConfig
from care.errors import ConfigError, DatasetError
from care.folders import EPISODES_NAME
from care.io import atomic_write_json
from care.training.batching import collate_clips
from care.training.checkpoint import latest_checkpoint
from care.training.loop import TrainingRun, to_device, train
from care.training.loop_utils import make_accelerator

LABEL_KEYS = ("actions", "action_is_pad", "state")  # never reach the model during pretraining


def collate_pretrain(items: list[dict]) -> dict:
    return collate_clips([{k: v for k, v in it.items() if k not in LABEL_KEYS} for it in items])


def collate_labelled(items: list[dict], labelled: set[int]) -> dict:
    """A pretraining batch whose clips of `labelled` episodes carry their actions (`actions`,
    `action_is_pad`, `action_labelled` True); every other clip's actions are zeros and
    `action_labelled` False, so no other episode's action reaches the model."""
    batch = collate_pretrain(items)
    is_labelled = torch.tensor([int(it["episode_index"]) in labelled for it in items])
    actions = torch.stack([it["actions"] for it in items]) * is_labelled[:, None, None]
    batch.update(actions=actions, action_is_pad=torch.stack([it["action_is_pad"] for it in items]),
                 action_labelled=is_labelled)
    return batch


def build_datasets(cfg: PretrainConfig, needs_tracks: bool = False):
    """(train, val) ClipDatasets on a held-out split of episodes (split_episodes, by task); with
    `cfg.extra_datasets`, ConcatClips of every dataset's split."""
    from care.data.clips import ConcatClips

    parts = [_split_dataset(cfg, root, needs_tracks) for root in [cfg.dataset, *cfg.extra_datasets]]
    if len(parts) == 1:
        return parts[0]
    vals = [v for _, v in parts if v is not None]
    return ConcatClips([t for t, _ in parts]), (ConcatClips(vals) if vals else None)


def _split_dataset(cfg: PretrainConfig, root: Path, needs_tracks: bool):
    from care.data.clips import ClipDataset, split_episodes

    m = cfg.model
    clip = cfg.clip
    if clip.image_size is None:
        clip = dataclasses.replace(clip, image_size=m.image_size)
    elif clip.image_size != m.image_size:
        raise ConfigError(
            f"clip.image_size={clip.image_size} but model.image_size={m.image_size}: point tracks are "
            "in served-frame pixels, so they must match (leave clip.image_size unset)"
        )
    full = ClipDataset(root, frame_interval=cfg.frame_interval, clip=clip)
    if needs_tracks and not full.has_tracks:
        hint = " or train on frames only with --method.objective=frame" if cfg.method.type == "care" else ""
        raise DatasetError(
            f"{root}: method {cfg.method.type!r} ({_describe(cfg.method)}) needs point tracks, and this "
            f"dataset has none (or not for every episode). Run `care track --dataset {root}` first{hint}"
        )
    train_eps, val_eps = split_episodes(full.dataset, clip.val_episodes_per_task, cfg.seed)
    train = ClipDataset(full.dataset, frame_interval=cfg.frame_interval, clip=clip, episodes=train_eps)
    val = ClipDataset(full.dataset, frame_interval=cfg.frame_interval, clip=clip, episodes=val_eps) if val_eps else None
    return train, val


def episodes_record(train_ds, val_ds, frame_interval: int, stage: str) -> dict:
    """episodes.json: {"dataset", "frame_interval", "stage", "train", "val"} of the first dataset,
    and "extra": [{"dataset", "train", "val"}, ...] of the others (care.probes.episodes reads it)."""
    def parts(ds):
        return [] if ds is None else getattr(ds, "parts", [ds])

    def root(p):
        return str(Path(p.dataset.root).resolve())

    val = {root(p): [int(e) for e in p.episodes] for p in parts(val_ds)}
    recs = [{"dataset": root(p), "train": [int(e) for e in p.episodes], "val": val.get(root(p), [])}
            for p in parts(train_ds)]
    first = recs[0]
    out = {"dataset": first["dataset"], "frame_interval": int(frame_interval), "stage": stage,
           "train": first["train"], "val": first["val"]}
    if len(recs) > 1:
        out["extra"] = recs[1:]
    return out


def _describe(method) -> str:
    return f"objective={method.objective}" if hasattr(method, "objective") else method.type


def load_or_train_tokenizer(cfg: PretrainConfig, train_ds, accelerator):
    from care.models.tokenizer import build_tokenizer, load_tokenizer

    out = Path(cfg.output_dir)
    if cfg.resume and (out / "tokenizer.json").is_file():
        return load_tokenizer(out)
    tok = build_tokenizer(cfg.model, train_ds.instructions())  # deterministic: same in every process
    if accelerator.is_main_process:
        tok.save_pretrained(str(out))
    return tok


def _val_batches(val_ds, batch_size: int, num: int) -> list[list[int]]:
    """A fixed set of held-out batches, evenly spread over the held-out clips."""
    if val_ds is None or num <= 0:
        return []
    n = min(len(val_ds), batch_size * num)
    idx = np.unique(np.linspace(0, len(val_ds) - 1, n).round().astype(int)).tolist()
    return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]


def pretrain(cfg: PretrainConfig) -> int:
    from care.configs import save_config
    from care.methods.registry import model_class

    acc = make_accelerator(cfg.mixed_precision, cfg.seed)
    out = Path(cfg.output_dir)
    lam = getattr(cfg.method, "lam", None)
    if lam is not None and Path(lam).resolve() == out.resolve():
        raise ConfigError(f"--output-dir {out} is the stage-1 folder (--method.lam): stage 2 would overwrite "
                          "its model.safetensors; choose another --output-dir")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out)
    model_cls = model_class(cfg.method)
    train_ds, val_ds = build_datasets(cfg, needs_tracks=model_cls.requires_tracks(cfg.method))
    labels = action_labels(cfg, model_cls.action_labels_per_task(cfg.method))
    if labels is not None:  # the method reads a few episodes' actions: its head's sizes are the data's
        cfg.method = dataclasses.replace(cfg.method, action_dim=labels["dim"], action_horizon=cfg.frame_interval)
        if acc.is_main_process:
            save_config(cfg, out)
    tokenizer = load_or_train_tokenizer(cfg, train_ds, acc)
    acc.wait_for_everyone()
    model = model_cls(cfg.model, cfg.method, tokenizer)
    if labels is not None:
        model.set_action_normalizer(labels["normalizer"].low, labels["normalizer"].high)
    run_pretraining(cfg, model, train_ds, val_ds, acc, labelled=labels["episodes"] if labels else None)
    return 0


def action_labels(cfg: PretrainConfig, k: int) -> dict | None:
    """For a method that reads k labelled episodes per task (MethodModel.action_labels_per_task):
    exactly the episodes `care finetune --episodes-per-task k --seed <this seed>` trains on, and
    the normaliser of their actions; None when k is 0 (pretraining reads no action)."""
    if k <= 0:
        return None
    from care.data.clips import labelled_episodes_per_task
    from care.data.lerobot import LeRobotDataset
    from care.policy.normalize import fit_action_normalizer

    if cfg.extra_datasets:
        raise ConfigError("latent supervision reads the labelled episodes of --dataset alone; it does not combine "
                          "with --extra-datasets (drop them, or set the action-loss weight to 0)")
    ds = LeRobotDataset(Path(cfg.dataset))
    if not ds.has_actions:
        raise DatasetError(f"{cfg.dataset}: latent supervision needs the actions of {k} episodes per task, and this "
                           "dataset has no `action` feature (set the action-loss weight to 0)")
    episodes = labelled_episodes_per_task(ds, k, cfg.seed)
    actions = [ds.episode_actions(e) for e in episodes]
    for e, a in zip(episodes, actions):
        if not np.isfinite(a).all():
            raise DatasetError(f"{cfg.dataset}: episode {e}, frame {int(np.argwhere(~np.isfinite(a))[0, 0])}: a "
                               f"non-finite action (`care dataset validate {cfg.dataset}` lists every one)")
    return {"episodes": set(episodes), "dim": int(actions[0].shape[1]), "normalizer": fit_action_normalizer(actions)}


def run_pretraining(cfg: PretrainConfig, model, train_ds, val_ds, acc, stage: str = "pretrain",
                    labelled: set[int] | None = None) -> dict:
    """Pretraining (stage "pretrain") or stage 1 (stage "lam") of `model` on given datasets (the
    unit tests call it with micro ones); returns the last validation's metrics. `labelled`: the
    episodes whose clips carry their actions (latent supervision; None: no clip does)."""
    return train(PretrainRun(cfg, model, train_ds, val_ds, acc, stage, labelled), acc) or {}


class PretrainRun(TrainingRun):
    """A method's model (care.methods.model.MethodModel) on clips without labels: its `forward`
    is the step, its hooks the rest; validation is its held-out `diagnostics`."""

    def __init__(self, cfg: PretrainConfig, model, train_ds, val_ds, acc, stage: str = "pretrain",
                 labelled: set[int] | None = None):
        super().__init__(cfg, model, train_ds)
        self.name, self.val_ds, self.baselines = stage, val_ds, {}
        self.labelled = labelled
        self.n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.val_index = _val_batches(val_ds, cfg.batch_size, cfg.val_batches)
        self.val_path = self.out / "val_metrics.json"
        self.history: list[dict] = []
        if acc.is_main_process:  # which episodes this model saw: the probes refuse to measure on them
            atomic_write_json(self.out / EPISODES_NAME,
                              episodes_record(train_ds, val_ds, cfg.frame_interval, stage), indent=2)

    def collate(self, items: list[dict]) -> dict:
        return collate_pretrain(items) if self.labelled is None else collate_labelled(items, self.labelled)

    def setup(self, model, first_batch) -> None:
        if first_batch is not None:  # the uncertainty weights, codebook, target statistics... (same in every process)
            self.baselines = model.prepare_training(first_batch())
        if self.cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()

    def param_groups(self) -> dict[str, dict]:
        return self.model.param_groups(self.cfg.optim)

    def checkpoint_state(self) -> dict:
        return {"baselines": self.baselines}

    def resume_state(self, state: dict, step: int) -> None:
        self.baselines = state.get("baselines", {})
        if self.val_path.is_file():
            self.history = [h for h in json.loads(self.val_path.read_text()).get("history", []) if h["step"] <= step]

    def header(self, acc) -> str:
        val = f", {len(self.val_ds)} held-out" if self.val_ds is not None else ""
        return (f"care {self.name}: method {self.cfg.method.type}, {self.n_params / 1e6:.2f}M trainable parameters, "
                f"{len(self.train_ds)} training clips{val}")

    def hint(self, ckpt_root: Path) -> str:
        return (f"The last good checkpoint is {latest_checkpoint(ckpt_root) or '(none yet)'}: resume from it "
                "with --resume after lowering --optim.lr or raising --optim.warmup-steps.")

    def step(self, model, batch: dict, step: int, acc):
        with acc.autocast():
            res = model(to_device(batch, acc.device))
        return res["loss"], res

    def after_optimizer_step(self, net) -> None:
        net.after_optimizer_step()

    def log_scalars(self, net, scalars: dict[str, float]) -> dict[str, float]:
        return net.log_scalars(scalars)

    def validate(self, net, step: int, acc) -> dict:
        if not self.val_index:
            return {}
        net.eval()
        batches = (to_device(collate_pretrain([self.val_ds[i] for i in idx]), acc.device) for idx in self.val_index)
        metrics = net.diagnostics(batches)
        net.train()
        self.log.scalars(step, metrics, prefix="val")
        self.history.append({"step": step, **metrics})
        if acc.is_main_process:  # every process validates when the weights are sharded; one writes
            atomic_write_json(self.val_path, {"baselines_at_init": self.baselines, "history": self.history,
                                              "final": self.history[-1]}, indent=2)
        brief = net.brief(metrics)
        self.log.write(f"step {step} validation: " + ", ".join(f"{k}={v:.3f}" for k, v in brief.items()))
        return metrics

    def save(self, net, step: int, metrics, acc) -> None:
        net.save_pretrained(self.out)

    def footer(self, step: int, seconds: float, acc) -> list[str]:
        cfg, out = self.cfg, self.out
        nxt = (f"pretrain the VLM on it with `care pretrain --method.type {cfg.method.type} --method.lam {out}`"
               if self.name == "lam" else f"fine-tune it with `care finetune --pretrained {out}`")
        return [f"care {self.name}: method {cfg.method.type}, {step} steps, "
                f"{step * cfg.batch_size * acc.num_processes} clips seen, {seconds / 60:.1f} min wall time",
                f"care {self.name}: model saved to {out} ({nxt})"]
