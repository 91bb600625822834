"""`care label`: pseudo-labels from an inverse-dynamics model, then fine-tune on every episode.

    care label --config configs/label/pixel_idm.yaml --dataset data/mt10 --seed 0 --output-dir data/mt10_pseudo_s0
    care finetune --config configs/finetune/pseudo_labels.yaml --dataset data/mt10_pseudo_s0 --seed 0 ...

1. The labelled episodes: exactly the k per task that `care finetune --episodes-per-task k --seed s`
   trains on (successful episodes, `select_episodes_per_task`). Only their actions train the IDM.
2. The IDM (care.labels.idm) learns (o_t, o_{t+n}) -> a_t..a_{t+n-1} in the fine-tuning's
   normalised units, from pixels or from a pretrained model's frozen latent z(o_t, o_{t+n}).
3. Every other episode is labelled: each action is the mean of the n chunks that cover it.
4. The held-out action error (L1, normalised and raw, against predicting the labelled mean) is
   measured on the other episodes' recorded actions where the dataset has them: read only to
   report, never to train.
5. The copy is written (care.labels.write) with `action_is_inferred` per frame and
   `meta/pseudo_labels.json`.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from care.configs import PseudoLabelConfig, save_config
from care.data.clips import labelled_episodes_per_task
from care.data.lerobot import LeRobotDataset
from care.errors import ConfigError, DatasetError
from care.io import read_json
from care.labels import idm as I
from care.labels.write import RECORD_NAME, write_pseudo_labelled
from care.policy.normalize import fit_action_normalizer

DEFAULT_PIXEL_INTERVAL = 4


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1:3] != (size, size):
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))  # (T, 3, S, S) uint8


class Features:
    """What the IDM reads for each chunk of an episode: frame pairs (pixels) or latents."""

    def __init__(self, cfg: PseudoLabelConfig, ds: LeRobotDataset):
        self.cfg, self.ds = cfg, ds
        self.model = None
        if cfg.idm.type == "latent":
            from care.methods.registry import load_pretrained

            run = Path(cfg.idm.pretrained)
            n = int(read_json(run / "episodes.json")["frame_interval"])
            if cfg.idm.frame_interval not in (None, n):
                raise ConfigError(f"{run}: its latent reads (o_t, o_t+{n}); --idm.frame-interval "
                                  f"{cfg.idm.frame_interval} cannot change that (leave it unset)")
            self.model = load_pretrained(run).to(cfg.device).eval()
            self.horizon, self.size = n, int(self.model.cfg.image_size)
        else:
            self.horizon, self.size = cfg.idm.frame_interval or DEFAULT_PIXEL_INTERVAL, cfg.idm.image_size

    def episode(self, ep: int) -> tuple[torch.Tensor, ...]:
        frames = _resize(self.ds.episode_frames(ep, self.cfg.camera), self.size)
        pairs = I.chunk_starts(len(frames), self.horizon)
        src = torch.from_numpy(frames[[p[0] for p in pairs]])
        tgt = torch.from_numpy(frames[[p[1] for p in pairs]])
        if self.model is None:
            return src, tgt
        instr = self.ds.episode_task(ep)
        with torch.no_grad():
            z = torch.cat([self.model.action_latent(src[i:i + 64].to(self.cfg.device), tgt[i:i + 64].to(self.cfg.device),
                                                    [instr] * len(src[i:i + 64])).float().cpu()
                           for i in range(0, len(src), 64)])
        return (z.reshape(len(z), -1),)


def _errors(pred: np.ndarray, true: np.ndarray, mean_pred: np.ndarray, norm) -> dict:
    """L1 of the inferred actions against the recorded ones (normalised units and raw), and of
    predicting the labelled episodes' mean action (the number to beat)."""
    pn, tn, mn = norm.normalize(pred), norm.normalize(true), norm.normalize(np.broadcast_to(mean_pred, true.shape))
    return {
        "l1": float(np.abs(pn - tn).mean()), "l1_mean_action": float(np.abs(mn - tn).mean()),
        "l1_raw_per_dim": np.abs(pred - true).mean(0).round(6).tolist(), "frames": int(len(true)),
    }


def pseudo_label(cfg: PseudoLabelConfig) -> int:
    start = time.time()
    src, out = Path(cfg.dataset), Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"{out}: already exists; pass --overwrite to replace it")
    ds = LeRobotDataset(src)
    if not ds.has_actions:
        raise DatasetError(f"{src}: no `action` feature, so no episode to learn the inverse dynamics from")
    labelled = labelled_episodes_per_task(ds, cfg.episodes_per_task, cfg.seed)  # as care finetune's
    others = [e for e in ds.episode_indices if e not in set(labelled)]
    if not others:
        raise ConfigError(f"{src}: every episode is among the {cfg.episodes_per_task} labelled per task; "
                          "nothing is left to pseudo-label")
    feats = Features(cfg, ds)
    print(f"care label: {cfg.idm.type} IDM, n = {feats.horizon}, {len(labelled)} labelled episodes of {src} "
          f"(seed {cfg.seed}), {len(others)} to label")

    actions = {e: ds.episode_actions(e) for e in ds.episode_indices}
    for e in labelled:
        if not np.isfinite(actions[e]).all():
            bad = int(np.argwhere(~np.isfinite(actions[e]))[0, 0])
            raise DatasetError(f"{src}: episode {e}, frame {bad}: a non-finite action "
                               f"(`care dataset validate {src}` lists every one)")
    norm = fit_action_normalizer([actions[e] for e in labelled])
    x_train = [feats.episode(e) for e in labelled]
    inputs = tuple(torch.cat([x[i] for x in x_train]) for i in range(len(x_train[0])))
    targets = torch.from_numpy(np.concatenate([I.chunk_targets(norm.normalize(actions[e]), feats.horizon)
                                               for e in labelled])).float()
    A = targets.shape[-1]
    torch.manual_seed(cfg.seed)
    if cfg.idm.type == "latent":
        model = I.LatentIDM(inputs[0].shape[1], A, feats.horizon, hidden=cfg.idm.hidden)
        model.set_standardisation(inputs[0])
    else:
        model = I.PixelIDM(A, feats.horizon, width=cfg.idm.width, hidden=cfg.idm.hidden)
    model = model.to(cfg.device)
    inputs = tuple(x.to(cfg.device) for x in inputs)
    targets = targets.to(cfg.device)

    def progress(step, loss):
        if step % 500 == 0 or step == cfg.idm.steps:
            rate = step / max(time.time() - t0, 1e-9)
            print(f"care label: step {step}/{cfg.idm.steps} L1 {loss:.4f} ({rate:.1f} steps/s, "
                  f"ETA {(cfg.idm.steps - step) / max(rate, 1e-9):.0f} s)")

    t0 = time.time()
    augment = I.shift_pairs(cfg.idm.shift) if cfg.idm.shift else None
    losses = I.fit(model, inputs, targets, cfg.idm.steps, cfg.idm.batch_size, cfg.idm.lr, cfg.idm.weight_decay,
                   cfg.seed, progress, augment=augment)
    train_s = time.time() - t0

    def label(x: tuple[torch.Tensor, ...], T: int) -> np.ndarray:
        """An episode's (T, A) actions: the mean of the n predicted chunks that cover each one."""
        chunks = I.predict(model, tuple(t.to(cfg.device) for t in x)).cpu().numpy().astype(np.float64)
        return I.average_chunks(norm.unnormalize(chunks))[:T]

    inferred, trues, preds = {}, [], []
    for i, e in enumerate(others):
        inferred[e] = label(feats.episode(e), len(actions[e]))
        if np.isfinite(actions[e]).all():
            trues.append(actions[e])
            preds.append(inferred[e])
        if (i + 1) % 20 == 0:
            print(f"care label: labelled {i + 1}/{len(others)} episodes ({time.time() - start:.0f} s)")
    mean_action = np.concatenate([actions[e] for e in labelled]).mean(0)
    # the labelled episodes' inputs were decoded once, for training: read them again from memory
    train_pred = np.concatenate([label(x, len(actions[e])) for x, e in zip(x_train, labelled)])
    record = {
        "source": str(src), "seed": cfg.seed, "episodes_per_task": cfg.episodes_per_task,
        "labelled_episodes": labelled, "inferred_episodes": sorted(inferred),
        "idm": {"type": cfg.idm.type, "pretrained": str(cfg.idm.pretrained) if cfg.idm.pretrained else None,
                "frame_interval": feats.horizon, "shift": cfg.idm.shift, "steps": cfg.idm.steps, "train_loss_every_50": losses,
                "train_s": round(train_s, 1), "parameters": sum(p.numel() for p in model.parameters())},
        "error_train": _errors(train_pred, np.concatenate([actions[e] for e in labelled]), mean_action, norm),
        # the inferred episodes' recorded actions, read only here, to say how good the labels are
        "error_held_out": _errors(np.concatenate(preds), np.concatenate(trues), mean_action, norm) if trues else None,
    }
    write_pseudo_labelled(src, out, inferred, record, overwrite=cfg.overwrite)
    save_config(cfg, out / "meta")
    held = record["error_held_out"]
    msg = (f"held-out L1 {held['l1']:.3f} (predicting the mean action: {held['l1_mean_action']:.3f})"
           if held else "no recorded actions to measure it on")
    print(f"care label: wrote {out} ({len(inferred)} episodes inferred) in {time.time() - start:.0f} s; IDM {msg}; "
          f"see {out / RECORD_NAME}")
    return 0
