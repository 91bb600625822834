"""`care lam`: stage 1 of two-stage methods, a latent action model on frame pairs (no actions read).

    care lam --method.type lapa --dataset data/mt10 --output-dir runs/lapa_lam [--preset tiny] [--steps N]
    care pretrain --method.type lapa --method.lam runs/lapa_lam --dataset data/mt10 --output-dir runs/lapa

The same loop, flags, resume, logging and checkpoints as `care pretrain` (care.training.pretrain):
the config is a PretrainConfig; the model is the method's stage-1 class (`lam_modeling`).
The folder it writes is described in care.methods.lam.
"""

from __future__ import annotations

from pathlib import Path

from care.configs import PretrainConfig
from care.training.pretrain import build_datasets, run_pretraining
from care.training.loop_utils import make_accelerator


def train_lam(cfg: PretrainConfig) -> int:
    from care.configs import save_config
    from care.errors import ConfigError
    from care.methods.registry import lam_class

    model_cls = lam_class(cfg.method)  # a clear error for single-stage methods, before any work
    if getattr(cfg.method, "lam", None) is not None:
        raise ConfigError(f"--method.lam ({cfg.method.lam}) names the stage-1 model that stage 2 reads; "
                          "`care lam` trains that model: drop --method.lam here, and pass it to `care pretrain`")
    acc = make_accelerator(cfg.mixed_precision, cfg.seed)
    out = Path(cfg.output_dir)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out)
    train_ds, val_ds = build_datasets(cfg, needs_tracks=model_cls.requires_tracks(cfg.method))
    model = model_cls(cfg.model, cfg.method)
    run_pretraining(cfg, model, train_ds, val_ds, acc, stage="lam")
    return 0
