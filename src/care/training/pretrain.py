"""`care pretrain`: latent pretraining by a method of the registry (`--method.type`), with Accelerate.

The loop is the same for every method; the method's model (care.methods.<name>.modeling_<name>)
supplies the loss (`forward`), its preparation, optimiser groups, per-step updates and held-out
diagnostics (the interface of care.models.pretrained.PretrainedModel). CARE: paper §2.2.

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
    config.json, method.json, model.safetensors   the final model (care.models.pretrained)

No action labels are read: the batches carry images, instructions and point tracks only.
With `extra_datasets` the clips of several datasets are drawn together (ConcatClips).
The method and its sizes are logged with the compute it used: clips seen and wall time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

# On a shared CPU, OpenMP threads that spin while waiting made a step 10-20x slower (measured:
# 19 s vs 1 s per tiny step with other jobs running). Sleeping waiters cost ~nothing when the
# machine is idle. Read once, when torch loads its OpenMP runtime: hence before `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from care.configs import PretrainConfig
from care.errors import ConfigError, DatasetError
from care.io import atomic_write_json
from care.training.batching import StepBatchSampler, collate_clips, step_loader
from care.training.checkpoint import latest_checkpoint
from care.training.parallel import build_strategy  # [parallel hook]
from care.training.loop_utils import (RunLogger, Throughput, build_optimizer, make_accelerator,
                                      optimizer_step, precision_name, warmup_cosine)

LABEL_KEYS = ("actions", "action_is_pad", "state")  # never reach the model during pretraining
EPISODES_NAME = "episodes.json"  # the run's training / held-out episodes


def collate_pretrain(items: list[dict]) -> dict:
    return collate_clips([{k: v for k, v in it.items() if k not in LABEL_KEYS} for it in items])


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


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


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
    tokenizer = load_or_train_tokenizer(cfg, train_ds, acc)
    acc.wait_for_everyone()
    model = model_cls(cfg.model, cfg.method, tokenizer)
    run_pretraining(cfg, model, train_ds, val_ds, acc)
    return 0


def run_pretraining(cfg: PretrainConfig, model, train_ds, val_ds, acc, stage: str = "pretrain") -> dict:
    """The loop, on given datasets (the unit tests call it with micro ones)."""
    out = Path(cfg.output_dir)
    ckpt_root = out / "checkpoints"
    sampler_kw = dict(num_items=len(train_ds), batch_size=cfg.batch_size, num_processes=acc.num_processes,
                      process_index=acc.process_index, seed=cfg.seed)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    strategy = build_strategy(cfg.parallel, acc)  # [parallel hook] ddp | fsdp2 (care.training.parallel)

    # resume, or initialise the uncertainty weights on the first global batch (same in every process)
    start, baselines = 0, {}
    ckpt = latest_checkpoint(ckpt_root) if cfg.resume else None
    if cfg.resume and ckpt is None and acc.is_main_process:
        print(f"care pretrain: --resume: no checkpoint under {ckpt_root}, starting from step 0")
    model = model.to(acc.device)
    if ckpt is None:
        calib = collate_pretrain([train_ds[i] for i in StepBatchSampler(**sampler_kw).global_batch(0)])
        baselines = model.prepare_training(_to_device(calib, acc.device))
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model = strategy.apply(model)  # [parallel hook] shard (fsdp2) before the optimiser sees the parameters
    optimizer = build_optimizer(model, cfg.optim, model.param_groups(cfg.optim))
    scheduler = warmup_cosine(optimizer, cfg.optim.warmup_steps, cfg.steps, cfg.optim.min_lr_ratio)
    if ckpt is not None:
        state = strategy.load_checkpoint(ckpt, model, optimizer, scheduler, acc)  # [parallel hook]
        start, baselines = int(state["step"]), state.get("baselines", {})
    ddp_model, optimizer = strategy.prepare(acc, model, optimizer)  # [parallel hook] acc.prepare for ddp
    net = acc.unwrap_model(ddp_model)

    loader = step_loader(train_ds, sampler_kw, start, cfg.steps, cfg.num_workers, collate_pretrain)
    validates = acc.is_main_process or strategy.every_rank_validates  # [parallel hook] sharded: all ranks
    val_index = _val_batches(val_ds, cfg.batch_size, cfg.val_batches) if validates else []
    val_path = out / "val_metrics.json"
    history = []
    if start and val_path.is_file():
        history = [h for h in json.loads(val_path.read_text()).get("history", []) if h["step"] <= start]

    if acc.is_main_process:  # which episodes this model saw: the probes refuse to measure on them
        atomic_write_json(out / EPISODES_NAME, episodes_record(train_ds, val_ds, cfg.frame_interval, stage), indent=2)
    log = RunLogger(out, cfg.steps, start, enabled=acc.is_main_process, desc=stage)
    log.write(f"care {stage}: method {cfg.method.type}, {n_params / 1e6:.2f}M trainable parameters, {len(train_ds)} training clips"
              f"{f', {len(val_ds)} held-out' if val_ds is not None else ''}, {acc.num_processes} process(es), "
              f"global batch {cfg.batch_size * acc.num_processes}, {precision_name(acc)}"
              + (f", resumed at step {start}" if start else ""))
    hint = (f"The last good checkpoint is {latest_checkpoint(ckpt_root) or '(none yet)'}: resume from it "
            "with --resume after lowering --optim.lr or raising --optim.warmup-steps.")

    def validate(step: int) -> dict:
        if not validates or not val_index:  # [parallel hook]
            return {}
        net.eval()
        batches = (_to_device(collate_pretrain([val_ds[i] for i in idx]), acc.device) for idx in val_index)
        metrics = net.diagnostics(batches)
        net.train()
        log.scalars(step, metrics, prefix="val")
        history.append({"step": step, **metrics})
        if acc.is_main_process:  # [parallel hook] every rank validates under fsdp2; one writes
            atomic_write_json(val_path, {"baselines_at_init": baselines, "history": history, "final": history[-1]},
                              indent=2)
        brief = net.brief(metrics)
        log.write(f"step {step} validation: " + ", ".join(f"{k}={v:.3f}" for k, v in brief.items()))
        return metrics

    t_start = time.perf_counter()
    window: dict[str, float] = {}
    n_window = 0
    speed = Throughput()
    step = start
    ddp_model.train()
    for step, batch in zip(range(start, cfg.steps), loader):
        batch = _to_device(batch, acc.device)
        with acc.autocast():
            res = ddp_model(batch)
        loss = res["loss"]
        gnorm = optimizer_step(acc, ddp_model, loss, optimizer, scheduler, step, cfg.optim.grad_clip, hint)
        net.after_optimizer_step()
        speed.add(cfg.batch_size * acc.num_processes)

        for k, v in res.items():
            window[k] = window.get(k, 0.0) + float(v.detach())
        window["grad_norm"] = window.get("grad_norm", 0.0) + float(gnorm)
        n_window += 1
        done = step + 1
        if done % max(cfg.log_every, 1) == 0 or done == cfg.steps:
            keys = sorted(window)
            vals = torch.tensor([window[k] / n_window for k in keys], dtype=torch.float64, device=acc.device)
            if acc.num_processes > 1:
                vals = acc.reduce(vals, reduction="mean")
            scalars = dict(zip(keys, vals.tolist()))
            for k in [k for k in scalars if k.startswith("log_var_")]:
                scalars["sigma_" + k[len("log_var_"):]] = math.exp(0.5 * scalars[k])
            scalars["lr"] = scheduler.get_last_lr()[0]
            scalars["samples_per_s"] = speed.rate()
            log.scalars(done, scalars)
            log.progress(0, loss=scalars["loss"])
            window, n_window = {}, 0
        log.progress(1)
        if cfg.save_every and done % cfg.save_every == 0 and done < cfg.steps:
            speed.pause(lambda: strategy.save_checkpoint(ckpt_root, done, net, optimizer, scheduler,  # [parallel hook]
                                                         {"baselines": baselines}, acc, cfg.keep_checkpoints))
            hint = (f"The last good checkpoint is {latest_checkpoint(ckpt_root)}: resume from it with --resume "
                    "after lowering --optim.lr or raising --optim.warmup-steps.")
        if cfg.val_every and done % cfg.val_every == 0 and done < cfg.steps:
            speed.pause(lambda: validate(done))
            acc.wait_for_everyone()
        if cfg.time_limit_minutes is not None and done < cfg.steps:
            over = torch.tensor(float(time.perf_counter() - t_start > 60 * cfg.time_limit_minutes), device=acc.device)
            if acc.num_processes > 1:
                over = acc.reduce(over, reduction="sum")
            if over.item() > 0:
                log.write(f"care {stage}: time limit of {cfg.time_limit_minutes} min reached at step {done}/{cfg.steps}")
                break

    # the end: a last checkpoint, validation, and the model as a save_pretrained folder
    final_step = max(step + 1, start) if cfg.steps > start else start
    if cfg.save_every and final_step > start:
        strategy.save_checkpoint(ckpt_root, final_step, net, optimizer, scheduler, {"baselines": baselines}, acc,
                                 cfg.keep_checkpoints)  # [parallel hook]
    metrics = validate(final_step)
    final = strategy.export(net, acc)  # [parallel hook] every rank; the full model on the main one
    if acc.is_main_process:
        final.save_pretrained(out)
    acc.wait_for_everyone()
    log.write(f"care {stage}: method {cfg.method.type}, {final_step} steps, "
              f"{final_step * cfg.batch_size * acc.num_processes} clips seen, "
              f"{(time.perf_counter() - t_start) / 60:.1f} min wall time")
    nxt = (f"pretrain the VLM on it with `care pretrain --method.type {cfg.method.type} --method.lam {out}`"
           if stage == "lam" else f"fine-tune it with `care finetune --pretrained {out}`")
    log.write(f"care {stage}: model saved to {out} ({nxt})")
    log.close()
    return metrics
