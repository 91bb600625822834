"""`care probe`: LP-MSE, S-PCFC and semantic accuracy of a pretrained model's latent action
(paper §3, Tab. 2 and Tab. 3; docs/DESIGN.md §6).

    care probe --model runs/care_tiny --dataset data/mt10 --output-dir runs/care_tiny_probe
    care probe --model runs/como --dataset data/shared --output-dir runs/como_probe_shared

Writes into output_dir: probe.json (every number, its references and settings), probe.md (the
tables), latents.png (a PCA of held-out latents by task and by motion direction), and
run_config.yaml. An existing probe.json is not replaced without --overwrite.

Per held-out episode (care.probes.episodes: no stage of the model trained on it), with n the
run's frame interval and z(a -> b) = model.action_latent(obs=o_a, future_obs=o_b, instruction):

- LP-MSE: clips t in [0, T-1-n] (at most `max_clips`, evenly spaced); features z(t -> t+n)
  flattened, z-scored with probe-train statistics; targets a_t ... a_{t+n-1} concatenated,
  each normalised to [-1, 1] with the q01/q99 of the probe-train episodes' actions
  (care.policy.normalize); one linear layer, full-batch Adam (metrics.linear_probe); the
  held-out MSE on probe-test. References: the probe-train mean target; the same probe on the
  latents of a same-config model with random weights; on the state change s_{t+n} - s_t.
- S-PCFC: clips t in [n, T-1-n] of every held-out episode; mean cos(z(t-n -> t), z(t+n -> t)).
  References: "centred" (both latents minus the mean latent of these clips, so a large
  offset shared by all latents does not count as similarity), "target only" (a synthetic
  latent z(a -> b) = the 8x8 downsampled frame b: 1 by construction), "state change"
  (z(a -> b) = s_b - s_a: what an exact motion code scores, about -1 for smooth motion).
- Semantic accuracy: frames t_k = min(k·n, T-1), k = 0..9; the classifier reads (a) frame
  t_0, (b) it 10 times, (c) the 10 frames, (d) frame t_0 + the 9 latents z(t_k -> t_{k+1}),
  computed with an empty instruction (the VLM-based latents would otherwise be handed the
  task's name). Frames are the 8x8 downsampled image (192 numbers); a GRU classifier trained
  on probe-train episodes, accuracy on probe-test (metrics.sequence_accuracy). An episode
  shorter than 9n + 1 frames repeats its last frame (counted in probe.json `clips.semantic_clamped`);
  `semantic_chance` is the share of probe-test's most frequent task.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from care.configs import ProbeConfig
from care.errors import ConfigError, DatasetError
from care.io import atomic_write_json
from care.probes import metrics as M
from care.probes.episodes import held_out_episodes, split_probe
from care.probes.latents import frame_features, latent_actions, load_model, random_init_model, resize
from care.probes.report import plot_latents, write_markdown

PROBE_NAME = "probe.json"
SEMANTIC_STEPS = 10  # the initial frame + 9 frames / latents (paper Tab. 3)
SEMANTIC_HIDDEN = 64  # GRU width of the task classifier
SEMANTIC_INSTRUCTION = ""  # what the latent model is told in the semantic probe: nothing


def _even(ts: list[int], k: int) -> list[int]:
    """At most k of `ts`, evenly spaced (all when k == 0 or there are fewer)."""
    if k <= 0 or len(ts) <= k:
        return list(ts)
    return [ts[i] for i in np.round(np.linspace(0, len(ts) - 1, k)).astype(int)]


def _task_of(ds, ep: int) -> str:
    return str(ds.episode_meta(ep).get("env_name") or ds.episode_task(ep))


def extract_episode(ds, ep: int, n: int, model, rand, cfg: ProbeConfig) -> dict:
    """Everything the probes need from one episode (latents, targets, frame codes)."""
    frames_raw = ds.episode_frames(ep, cfg.camera)  # (T, H, W, 3)
    actions = ds.episode_actions(ep)
    state = ds.episode_states(ep) if ds.has_state else None
    T = min(len(frames_raw), len(actions))
    size = int(model.cfg.image_size)
    frames = torch.from_numpy(np.ascontiguousarray(resize(frames_raw[:T], size).transpose(0, 3, 1, 2)))
    instruction = ds.episode_task(ep)
    lp_t = _even(list(range(0, T - n)), cfg.max_clips)
    pc_t = _even(list(range(n, T - n)), cfg.max_clips)
    sem_t = [min(k * n, T - 1) for k in range(SEMANTIC_STEPS)]
    pairs = [(t, t + n) for t in lp_t] + [(t - n, t) for t in pc_t] + [(t + n, t) for t in pc_t]
    z = latent_actions(model, frames, pairs, instruction, cfg.batch_size)
    z_sem = latent_actions(model, frames, list(zip(sem_t[:-1], sem_t[1:])), SEMANTIC_INSTRUCTION, cfg.batch_size)
    z_rand = latent_actions(rand, frames, pairs[:len(lp_t)], instruction, cfg.batch_size)
    feats = frame_features(frames_raw[:T])
    a, p = len(lp_t), len(pc_t)
    rec = {
        "episode": ep, "task": _task_of(ds, ep), "length": T,
        "lp_z": z[:a], "lp_z_random": z_rand,
        "lp_actions": np.stack([actions[t:t + n] for t in lp_t]) if a else np.zeros((0, n, actions.shape[1])),
        "lp_motion": np.stack([actions[t:t + n, :3].sum(0) for t in lp_t]) if a else np.zeros((0, 3)),
        "pc_prev": z[a:a + p], "pc_next": z[a + p:],
        "pc_target_prev": np.stack([feats[t] for t in pc_t]) if p else np.zeros((0, feats.shape[1])),  # z(t-n -> t) := frame t
        "pc_target_next": np.stack([feats[t] for t in pc_t]) if p else np.zeros((0, feats.shape[1])),  # z(t+n -> t) := frame t
        "sem_frames": feats[sem_t], "sem_latents": z_sem.reshape(len(z_sem), -1),
        "sem_clamped": (SEMANTIC_STEPS - 1) * n > T - 1,
    }
    if state is not None:
        rec["lp_state"] = np.stack([state[t + n] - state[t] for t in lp_t]) if a else np.zeros((0, state.shape[1]))
        rec["pc_state_prev"] = np.stack([state[t] - state[t - n] for t in pc_t]) if p else np.zeros((0, state.shape[1]))
        rec["pc_state_next"] = np.stack([state[t] - state[t + n] for t in pc_t]) if p else np.zeros((0, state.shape[1]))
    return rec


def _cat(recs: list[dict], key: str) -> np.ndarray:
    parts = [r[key] for r in recs if len(r[key])]
    return np.concatenate(parts) if parts else np.zeros((0,))


def compute(recs: list[dict], train_eps: set[int], test_eps: set[int], cfg: ProbeConfig, has_state: bool) -> dict:
    """The metrics from the episodes' records (see the module docstring)."""
    from care.policy.normalize import fit_action_normalizer

    tr = [r for r in recs if r["episode"] in train_eps]
    te = [r for r in recs if r["episode"] in test_eps]
    out: dict = {}
    # --- LP-MSE ---
    if not _cat(tr, "lp_z").size or not _cat(te, "lp_z").size:
        raise DatasetError("no LP-MSE clips: probe-train or probe-test episodes are all shorter than n + 1 frames")
    act_tr, act_te = _cat(tr, "lp_actions"), _cat(te, "lp_actions")  # (N, n, A)
    norm = fit_action_normalizer(act_tr.reshape(-1, act_tr.shape[-1]))  # q01/q99 of probe-train actions
    y_tr = norm.normalize(act_tr).reshape(len(act_tr), -1)  # (N, n*A) in [-1, 1]
    y_te = norm.normalize(act_te).reshape(len(act_te), -1)
    lp = dict(epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed)
    fit = M.linear_probe(_cat(tr, "lp_z"), y_tr, _cat(te, "lp_z"), y_te, **lp)
    out["lp_mse"] = fit["mse"]
    out["lp_mse_train"] = fit["train_mse"]
    out["lp_mse_mean_action"] = M.mean_prediction_mse(y_tr, y_te)
    out["lp_mse_random_init"] = M.linear_probe(_cat(tr, "lp_z_random"), y_tr, _cat(te, "lp_z_random"), y_te, **lp)["mse"]
    out["lp_mse_state_change"] = (M.linear_probe(_cat(tr, "lp_state"), y_tr, _cat(te, "lp_state"), y_te, **lp)["mse"]
                                  if has_state else None)
    out["clips"] = {"lp_probe_train": int(len(y_tr)), "lp_probe_test": int(len(y_te))}
    dim = M.flat(_cat(tr, "lp_z")).shape[1]
    out["warnings"] = []
    if len(y_tr) < 4 * dim:  # an unregularised linear probe with few samples per feature measures over-fitting
        out["warnings"].append(
            f"the linear probe fits {len(y_tr)} probe-train clips with {dim} latent features (< 4 per feature): "
            "LP-MSE and its random-weights reference mostly measure over-fitting; probe more held-out episodes "
            "(e.g. a dataset collected for probing) or raise --max-clips (0: every clip)")
    # --- S-PCFC, over every held-out episode (nothing is fitted) ---
    prev, nxt = _cat(recs, "pc_prev"), _cat(recs, "pc_next")
    if len(prev):
        out["s_pcfc"] = M.s_pcfc(prev, nxt)
        centre = np.concatenate([M.flat(prev), M.flat(nxt)]).mean(axis=0)
        out["s_pcfc_centered"] = M.s_pcfc(M.flat(prev) - centre, M.flat(nxt) - centre)
        out["s_pcfc_target_only"] = M.s_pcfc(_cat(recs, "pc_target_prev"), _cat(recs, "pc_target_next"))
        out["s_pcfc_state_change"] = (M.s_pcfc(_cat(recs, "pc_state_prev"), _cat(recs, "pc_state_next"))
                                      if has_state else None)
    else:
        out.update(s_pcfc=None, s_pcfc_centered=None, s_pcfc_target_only=None, s_pcfc_state_change=None)
    out["clips"]["s_pcfc"] = int(len(prev))
    # --- semantic accuracy ---
    sem = [r for r in recs if r["episode"] in train_eps | test_eps]
    classes = sorted({r["task"] for r in sem if r["episode"] in train_eps})
    sem = [r for r in sem if r["task"] in classes]
    keys = list(M.SEMANTIC_ROWS)
    if len(classes) < 2 or not any(r["episode"] in test_eps for r in sem):
        out.update({k: None for k in keys}, semantic_chance=None)
    else:
        is_tr = np.array([r["episode"] in train_eps for r in sem])
        labels = np.array([classes.index(r["task"]) for r in sem])
        rows = M.semantic_rows(np.stack([r["sem_frames"] for r in sem]), np.stack([r["sem_latents"] for r in sem]), is_tr)
        for k in keys:
            x = rows[k]
            out[k] = M.sequence_accuracy(x[is_tr], labels[is_tr], x[~is_tr], labels[~is_tr], epochs=cfg.semantic_epochs,
                                         lr=cfg.semantic_lr, seed=cfg.seed, hidden=SEMANTIC_HIDDEN)
        out["semantic_chance"] = float(np.bincount(labels[~is_tr]).max() / (~is_tr).sum())  # the majority class
    out["semantic_classes"] = classes
    out["clips"].update(semantic_probe_train=int(sum(r["episode"] in train_eps for r in sem)),
                        semantic_probe_test=int(sum(r["episode"] in test_eps for r in sem)),
                        semantic_clamped=int(sum(r["sem_clamped"] for r in sem)))
    return out


def settings(cfg: ProbeConfig, n: int) -> dict:
    """How every number was made: what must agree for two probe.json files to be compared."""
    return {
        "frame_interval": n,
        "probe_split": f"per task, {cfg.probe_test_fraction} of the held-out episodes to probe-test (>= 1 each side), "
                       "permutation seeded by (seed, task name)",
        "max_clips_per_episode": cfg.max_clips,
        "batch_size": cfg.batch_size,
        "camera": cfg.camera,
        "lp": {"model": "one linear layer (weights + bias) on z-scored, flattened z(o_t -> o_t+n)",
               "targets": "a_t..a_t+n-1 concatenated, q01/q99 of probe-train actions -> [-1, 1]",
               "optimizer": "Adam, full batch, lr cosine-decayed to 0", "epochs": cfg.epochs, "lr": cfg.lr,
               "random_init": "same method and configs, fresh weights from the seed (stage-1 model too)"},
        "s_pcfc": {"clips": "t in [n, T-1-n]", "latents": "raw, flattened",
                   "target_only": "z(a -> b) := frame b downsampled to 8x8x3 (INTER_AREA), flattened"},
        "semantic": {"frames": "t_k = min(k*n, T-1), k = 0..9",
                     "frame_features": "8x8x3 INTER_AREA downsample in [0, 1], z-scored (probe-train)",
                     "latents": "z(o_t_k -> o_t_k+1), k = 0..8, flattened, z-scored (probe-train), empty instruction",
                     "classifier": f"GRU({SEMANTIC_HIDDEN}) over the steps, last state -> linear -> task",
                     "optimizer": "Adam, full batch, cross-entropy", "epochs": cfg.semantic_epochs, "lr": cfg.semantic_lr},
        "seed": cfg.seed,
    }


def probe(cfg: ProbeConfig) -> int:
    from care.configs import save_config
    from care.data.clips import task_groups
    from care.data.lerobot import LeRobotDataset

    out = Path(cfg.output_dir)
    if (out / PROBE_NAME).exists() and not cfg.overwrite:
        raise ConfigError(f"{out / PROBE_NAME} already exists; pass --overwrite to replace it")
    start = time.time()
    ds = LeRobotDataset(Path(cfg.dataset))
    if not ds.has_actions:
        raise DatasetError(f"{cfg.dataset}: this dataset has no actions, and LP-MSE needs them "
                           "(probe a dataset collected with actions, e.g. `care collect --env.tasks SHARED`)")
    held = held_out_episodes(cfg.model, cfg.dataset, ds.episode_indices, cfg.episodes)
    for w in held.warnings:
        print(f"care probe: warning: {w}")
    n = held.frame_interval
    keep = set(held.held_out)
    groups = {k: [e for e in eps if e in keep] for k, eps in task_groups(ds).items()}
    train_eps, test_eps, split_notes = split_probe({k: v for k, v in groups.items() if v}, cfg.probe_test_fraction,
                                                   cfg.seed)
    notes = held.notes + split_notes
    for note in notes:
        print(f"care probe: note: {note}")
    if not test_eps:
        per_task = max((len(v) for v in groups.values()), default=0)
        too_few = (f"{cfg.dataset}: {len(held.held_out)} held-out episode(s), at most {per_task} per task, too few "
                   "for a probe-train / probe-test split (a task needs >= 2)")
        if held.trained:  # the dataset the model trained on: its held-out episodes are the validation split
            raise ConfigError(
                f"{too_few}. They are the pretraining's validation episodes (`clip.val_episodes_per_task` of "
                f"{cfg.model}/run_config.yaml), so collecting more episodes does not add any: pretrain again with "
                "`--clip.val-episodes-per-task 2` (or more), or probe a dataset the model never trained on "
                "(`care collect` it with another `--seed`, then `care probe --dataset` it)")
        raise ConfigError(f"{too_few}: collect the probe dataset with more episodes per task "
                          "(`care collect --episodes-per-task 4` or more)")

    model = load_model(cfg.model, cfg.device)
    rand = random_init_model(cfg.model, cfg.seed, cfg.device)
    method = model.method.type
    print(f"care probe: {method} model {cfg.model}, {len(train_eps)} probe-train + {len(test_eps)} probe-test "
          f"held-out episodes of {cfg.dataset}, n = {n}")
    recs = []
    for i, ep in enumerate(train_eps + test_eps):
        recs.append(extract_episode(ds, ep, n, model, rand, cfg))
        if (i + 1) % 10 == 0:
            print(f"care probe: latents of {i + 1}/{len(train_eps) + len(test_eps)} episodes ({time.time() - start:.0f} s)")
    results = compute(recs, set(train_eps), set(test_eps), cfg, ds.has_state)
    warnings = held.warnings + results.pop("warnings")
    for w in warnings[len(held.warnings):]:
        print(f"care probe: warning: {w}")

    info = {
        "lp_mse": results.pop("lp_mse"), "s_pcfc": results.pop("s_pcfc"),
        "semantic_accuracy": results.pop("semantic_accuracy"), **results,
        "method": method, "model": str(Path(cfg.model).resolve()), "dataset": str(Path(cfg.dataset).resolve()),
        "frame_interval": n,
        "latent_shape": list(recs[0]["lp_z"].shape[1:]) if len(recs[0]["lp_z"]) else None,
        "episodes": {"probe_train": train_eps, "probe_test": test_eps,
                     "excluded_trained_on": sorted(e for e in held.trained if e in set(ds.episode_indices)),
                     "stage_files": list(dict.fromkeys(str(s.source) for s in held.stages))},
        "tasks": {k: {"probe_train": sum(e in set(train_eps) for e in v), "probe_test": sum(e in set(test_eps) for e in v)}
                  for k, v in sorted(groups.items()) if v},
        "settings": settings(cfg, n), "seed": cfg.seed,
        "warnings": warnings, "notes": notes,
        "seconds": round(time.time() - start, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    lat = np.concatenate([M.flat(r["lp_z"]) for r in recs if len(r["lp_z"])])
    proj, ratio = M.pca_2d(lat)
    tasks = [r["task"] for r in recs for _ in range(len(r["lp_z"]))]
    plot_latents(proj, ratio, tasks, _cat(recs, "lp_motion"), out / "latents.png",
                 title=f"{method} latents z(o_t -> o_t+{n}), held-out episodes of {Path(cfg.dataset).name}")
    write_markdown(info, out / "probe.md")
    atomic_write_json(out / PROBE_NAME, info, indent=2)  # last: its presence means the folder is complete
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"care probe: LP-MSE {fmt(info['lp_mse'])} (mean action {fmt(info['lp_mse_mean_action'])}, random weights "
          f"{fmt(info['lp_mse_random_init'])}), S-PCFC {fmt(info['s_pcfc'])}, semantic accuracy "
          f"{fmt(info['semantic_accuracy'])} (initial frame {fmt(info['semantic_initial'])}); written to {out}")
    return 0


__all__ = ["probe", "compute", "extract_episode", "settings", "PROBE_NAME"]
