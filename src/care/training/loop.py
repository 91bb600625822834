"""The training loop `care pretrain`, `care lam` and `care finetune` share (torchtitan's shape:
one loop, the step is what differs).

    build the model (the command)          care.training.pretrain / lam / finetune
      -> to the device
      -> setup: once, before the first step (a method's `prepare_training`, checkpointing)
      -> the parallel strategy (`--parallel.*`, care.training.parallel): activation checkpointing,
         and with fsdp2 `fully_shard` per block; before the optimiser sees the parameters
      -> optimiser (+ the run's parameter groups), schedule, resume from the latest checkpoint
         (the strategy's format: one file, or sharded DCP), the strategy's wrapper (DDP or none)
      -> steps: `run.step` gives the loss and the scalars to log; backward, clip, NaN guard
         (care.training.loop_utils.optimizer_step); scalars averaged over `log_every` steps
         (and over processes); a checkpoint every `save_every`, validation every `val_every`;
         an optional wall-clock limit
      -> the end: a last checkpoint and validation; the model gathered whole on the main process
         (`strategy.export`, every process takes part), then `run.save` writes the folder

A `TrainingRun` holds what differs: the batch, the step, validation and the folder written.
The strategy holds how the processes share the model; neither the loop nor a run branches on it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from care.configs import TrainConfig
from care.training.batching import StepBatchSampler, step_loader
from care.training.checkpoint import latest_checkpoint
from care.training.loop_utils import (RunLogger, Throughput, build_optimizer, optimizer_step, precision_name,
                                      warmup_cosine)
from care.training.parallel import build_strategy


class TrainingRun:
    """What one command's training does at each point of the loop (subclasses override)."""

    name = "train"  # the log's prefix and the progress bar's label
    progress_key = "loss"  # the logged scalar shown on the progress bar
    saves_a_copy = False  # True: `save` may change the model it is given (the loop hands it a copy)

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, train_ds):
        self.cfg, self.model, self.train_ds = cfg, model, train_ds
        self.out = Path(cfg.output_dir)
        self.log: RunLogger | None = None  # set by the loop

    def collate(self, items: list[dict]) -> dict:
        raise NotImplementedError

    def setup(self, model: torch.nn.Module, first_batch: Callable[[], dict] | None) -> None:
        """Once, on the device, before the optimiser is built; `first_batch` (the global batch of
        step 0, the same in every process) is None when resuming."""

    def param_groups(self) -> dict[str, dict]:
        """{parameter-name substring: optimiser overrides} (care.training.loop_utils.build_optimizer)."""
        return {}

    def checkpoint_state(self) -> dict:
        """JSON-able fields stored with every checkpoint (restored by `resume_state`)."""
        return {}

    def resume_state(self, state: dict, step: int) -> None:
        """After loading a checkpoint of `step`: its stored fields."""

    def header(self, acc) -> str:
        raise NotImplementedError

    def hint(self, ckpt_root: Path) -> str:
        """Advice when the loss or gradient becomes NaN/inf."""
        return "Lower --optim.lr or raise --optim.warmup-steps, then resume with --resume."

    def step(self, model: torch.nn.Module, batch: dict, step: int, acc) -> tuple[torch.Tensor, dict]:
        """One batch -> (the loss to minimise, {name: scalar tensor} to log)."""
        raise NotImplementedError

    def after_optimizer_step(self, net: torch.nn.Module) -> None:
        pass

    def log_scalars(self, net: torch.nn.Module, scalars: dict[str, float]) -> dict[str, float]:
        return scalars

    def validate(self, net: torch.nn.Module, step: int, acc):
        """Held-out metrics; the result of the last one is returned by `train`. Called on the main
        process, and on every process when the weights are sharded (each forward needs them all):
        only the main one writes files (the run's logger writes on the main one only)."""
        return None

    def save(self, net: torch.nn.Module, step: int, metrics, acc) -> None:
        """The main process writes the run's folder at the end; `net` is the trained model with
        full weights, unwrapped (a copy of it when `saves_a_copy`)."""

    def footer(self, step: int, seconds: float, acc) -> list[str]:
        return []


def train(run: TrainingRun, acc):
    """The loop (module docstring); returns the last validation's result."""
    cfg, model, train_ds = run.cfg, run.model, run.train_ds
    out = Path(cfg.output_dir)
    ckpt_root = out / "checkpoints"
    sampler_kw = dict(num_items=len(train_ds), batch_size=cfg.batch_size, num_processes=acc.num_processes,
                      process_index=acc.process_index, seed=cfg.seed)

    start = 0
    ckpt = latest_checkpoint(ckpt_root) if cfg.resume else None
    if cfg.resume and ckpt is None and acc.is_main_process:
        print(f"care {run.name}: --resume: no checkpoint under {ckpt_root}, starting from step 0")
    strategy = build_strategy(cfg.parallel, acc)
    model = model.to(acc.device)

    def first_batch() -> dict:
        return to_device(run.collate([train_ds[i] for i in StepBatchSampler(**sampler_kw).global_batch(0)]),
                         acc.device)

    run.setup(model, first_batch if ckpt is None else None)
    # sharding across processes (and activation checkpointing): on the device, after the setup
    # (which runs the whole model once), before the optimiser sees the parameters
    model = strategy.apply(model)
    optimizer = build_optimizer(model, cfg.optim, run.param_groups())
    scheduler = warmup_cosine(optimizer, cfg.optim.warmup_steps, cfg.steps, cfg.optim.min_lr_ratio)
    if ckpt is not None:
        state = strategy.load_checkpoint(ckpt, model, optimizer, scheduler, acc,
                                         hint="Resume with the config that made it, or choose a new --output-dir.")
        start = int(state["step"])
        run.resume_state(state, start)
    ddp_model, optimizer = strategy.prepare(acc, model, optimizer)  # acc.prepare (DDP), or as is (fsdp2)
    net = acc.unwrap_model(ddp_model)

    loader = step_loader(train_ds, sampler_kw, start, cfg.steps, cfg.num_workers, run.collate)
    log = run.log = RunLogger(out, cfg.steps, start, enabled=acc.is_main_process, desc=run.name)
    log.write(run.header(acc) + f", {acc.num_processes} process(es), global batch "
              f"{cfg.batch_size * acc.num_processes}, {precision_name(acc)}"
              + (f", resumed at step {start}" if start else ""))

    def checkpoint(step: int) -> None:
        strategy.save_checkpoint(ckpt_root, step, net, optimizer, scheduler, run.checkpoint_state(), acc,
                                 cfg.keep_checkpoints)

    validates = acc.is_main_process or strategy.every_rank_validates

    def validate(step: int):
        return run.validate(net, step, acc) if validates else None

    t_start = time.perf_counter()
    hint = run.hint(ckpt_root)
    window: dict[str, float] = {}
    n_window = 0
    speed = Throughput()
    step = start
    ddp_model.train()
    for step, batch in zip(range(start, cfg.steps), loader):
        loss, scalars = run.step(ddp_model, batch, step, acc)
        gnorm = optimizer_step(acc, ddp_model, loss, optimizer, scheduler, step, cfg.optim.grad_clip, hint)
        run.after_optimizer_step(net)
        speed.add(cfg.batch_size * acc.num_processes)

        for k, v in scalars.items():
            window[k] = window.get(k, 0.0) + float(v.detach())
        window["grad_norm"] = window.get("grad_norm", 0.0) + float(gnorm)
        n_window += 1
        done = step + 1
        if done % max(cfg.log_every, 1) == 0 or done == cfg.steps:
            keys = sorted(window)
            vals = torch.tensor([window[k] / n_window for k in keys], dtype=torch.float64, device=acc.device)
            if acc.num_processes > 1:
                vals = acc.reduce(vals, reduction="mean")
            logged = run.log_scalars(net, dict(zip(keys, vals.tolist())))
            logged["lr"] = scheduler.get_last_lr()[0]
            logged["samples_per_s"] = speed.rate()
            log.scalars(done, logged)
            log.progress(0, **{run.progress_key: logged[run.progress_key]})
            window, n_window = {}, 0
        log.progress(1)
        if cfg.save_every and done % cfg.save_every == 0 and done < cfg.steps:
            speed.pause(lambda: checkpoint(done))
            hint = run.hint(ckpt_root)
        if cfg.val_every and done % cfg.val_every == 0 and done < cfg.steps:
            speed.pause(lambda: validate(done))
            acc.wait_for_everyone()
        if cfg.time_limit_minutes is not None and done < cfg.steps:
            over = torch.tensor(float(time.perf_counter() - t_start > 60 * cfg.time_limit_minutes), device=acc.device)
            if acc.num_processes > 1:
                over = acc.reduce(over, reduction="sum")
            if over.item() > 0:
                log.write(f"care {run.name}: time limit of {cfg.time_limit_minutes} min reached at step "
                          f"{done}/{cfg.steps}")
                break

    # the end: a last checkpoint, validation, and the run's folder
    final_step = max(step + 1, start) if cfg.steps > start else start
    if cfg.save_every and final_step > start:
        checkpoint(final_step)
    metrics = validate(final_step)
    final = strategy.export(net, acc, private=run.saves_a_copy)  # every process; None but on the main one
    if acc.is_main_process:
        run.save(final, final_step, metrics, acc)
    acc.wait_for_everyone()
    for line in run.footer(final_step, time.perf_counter() - t_start, acc):
        log.write(line)
    log.close()
    return metrics


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
