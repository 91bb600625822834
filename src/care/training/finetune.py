"""`care finetune`: a latent VLM + action head trained on a few labelled episodes (paper §2.3).
The loop is care.training.loop's; FinetuneRun is fine-tuning's step, validation and policy folder.

    care finetune --pretrained runs/care_tiny --dataset data/mt10 --episodes-per-task 5 --output-dir runs/care_tiny_ft
    care finetune --config configs/finetune/no_pretrain.yaml ...        (same architecture, from scratch)
    care finetune ... --state.enabled --state.names '[hand_x,hand_y,hand_z,gripper_opening]'   (+ proprioception)
    care finetune --config configs/finetune/label_supervised.yaml ...   (every episode's actions)
    accelerate launch --num_processes 2 --cpu -m care finetune ...      (same script, DDP over gloo)

What is trained: the policy view of the latent VLM feeds the K placeholder hidden states to a
residual-MLP action head that predicts H normalised actions (L1 loss). The LLM gets LoRA
adapters (`lora.enabled=false` trains all of it); the vision towers and projector train fully
unless `freeze_vision`. The latent projection to z and the decoders are not used.

Which data: only the `episodes_per_task` labelled episodes per task picked by
`select_episodes_per_task(dataset, k, seed)` (successful episodes only, when the dataset
records success) are trained on — their frames, instructions, actions (and states, with
`state.enabled`). The action and state bounds (q01 / q99 per dimension) come from those
episodes alone. `val_episodes_per_task` further episodes per task, never trained on, give the
held-out action error (L1, normalised) every `val_every` steps.

Writes into output_dir:
    run_config.yaml            the resolved FinetuneConfig
    finetune_state.json        what fixes the weights' shapes and the data (checked on --resume)
    checkpoints/step_*/        atomic training checkpoints (care.training.checkpoint), LoRA unmerged
    tensorboard/, train_log.jsonl   loss, grad norm, lr, samples/s, held-out L1 (val/l1)
    the policy folder          config.json, policy_config.json, model.safetensors (LoRA merged),
                               normalizer.json, tokenizer files (care.policy.folder)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data._utils.collate import default_collate

from care.configs import FinetuneConfig
from care.data.augment import augment_generator, random_shift
from care.errors import ConfigError, DatasetError
from care.io import atomic_write_json
from care.models.action_head import build_action_head, l1_action_loss
from care.models.vla import CareVLA, apply_lora, merge_lora
from care.policy.folder import POLICY_CONFIG_NAME, save_policy
from care.policy.normalize import ActionNormalizer, fit_action_normalizer
from care.training.checkpoint import latest_checkpoint
from care.training.loop import TrainingRun, train
from care.training.loop_utils import make_accelerator

STATE_NAME = "finetune_state.json"
BATCH_KEYS = ("obs", "instruction", "actions", "action_is_pad")  # nothing else reaches the model


def collate_finetune(items: list[dict], with_state: bool = False, with_wrist: bool = False) -> dict:
    """The fine-tuning batch; the state only when the policy reads it (else it is never collated)."""
    keys = BATCH_KEYS + (("state",) if with_state else ()) + (("wrist_obs",) if with_wrist else ())
    return default_collate([{k: it[k] for k in keys} for it in items])


# ----------------------------------------------------------------------------------------
# Data: the labelled episodes
# ----------------------------------------------------------------------------------------


def labelled_episodes(ds, k: int | None, seed: int, val_per_task: int = 0) -> tuple[list[int], list[int]]:
    """(training, validation) episodes: k successful episodes per task (None: all of them but the
    validation ones), chosen reproducibly by seed, and `val_per_task` more per task that are never
    trained on. With k given, the training episodes are exactly those of `select_episodes_per_task`
    (validation is chosen from what is left), so adding validation changes no training run."""
    from care.data.clips import labelled_episodes_per_task

    failed = [e for e in ds.episode_indices if ds.episode_meta(e).get("success") is False]
    if k is None:  # label-supervised: hold the validation episodes out first
        val = _validation_episodes(ds, val_per_task, seed + 1, exclude=failed)
        episodes = labelled_episodes_per_task(ds, None, seed, exclude=val)
    else:
        episodes = labelled_episodes_per_task(ds, k, seed)
        val = _validation_episodes(ds, val_per_task, seed + 1, exclude=failed + episodes)
    if not episodes:
        raise DatasetError(f"{ds.root}: no successful labelled episodes to fine-tune on")
    return episodes, val


def _validation_episodes(ds, k: int, seed: int, exclude: list[int]) -> list[int]:
    """Up to k held-out episodes per task; a task with fewer left gives what it has (no warning:
    a small dataset simply validates on less)."""
    import warnings

    from care.data.clips import select_episodes_per_task

    if k <= 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return select_episodes_per_task(ds, k, seed, exclude=exclude)


def check_actions_finite(ds, episodes: list[int]) -> None:
    """A DatasetError naming the data file, episode and frame of the first NaN/inf action among
    `episodes` (fine-tuning would otherwise stop at its first step with a diverged loss)."""
    from care.data.lerobot import DEFAULT_DATA_PATH

    for e in episodes:
        bad = ~np.isfinite(ds.episode_actions(e))
        if bad.any():
            meta = ds.episode_meta(e)
            if "data/chunk_index" in meta and "data/file_index" in meta:
                where = Path(ds.root) / (ds.info.get("data_path") or DEFAULT_DATA_PATH).format(
                    chunk_index=meta["data/chunk_index"], file_index=meta["data/file_index"])
            else:
                where = Path(ds.root)
            raise DatasetError(
                f"{where}: episode {e}: action holds NaN or inf ({int(bad.sum())} values, first at frame "
                f"{int(np.argmax(bad.any(axis=1)))}), and fine-tuning trains on this episode. Run "
                f"`care dataset validate {ds.root}` to list every such problem, then fix or re-record the data")


def train_seeds(ds, episodes: list[int]) -> dict[str, list[int]]:
    """{env_name or task: [collection seeds]} of the episodes a policy saw (for `care eval`)."""
    out: dict[str, list[int]] = {}
    for e in episodes:
        meta = ds.episode_meta(e)
        if meta.get("seed") is not None:
            out.setdefault(str(meta.get("env_name") or ds.episode_task(e)), []).append(int(meta["seed"]))
    return {k: sorted(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------
# Model: pretrained or from scratch, head, LoRA, what trains
# ----------------------------------------------------------------------------------------


def build_vlm(cfg: FinetuneConfig, instructions: list[str], out: Path, accelerator):
    """The latent VLM: from a `care pretrain` folder of any method, or built from `cfg.model` (None)."""
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import build_tokenizer, load_tokenizer

    if cfg.pretrained is not None:
        from care.methods.registry import load_pretrained_vlm

        path = Path(cfg.pretrained)
        if (path / POLICY_CONFIG_NAME).is_file():
            raise ConfigError(f"{path} is already a fine-tuned policy; --pretrained takes a `care pretrain` folder")
        return load_pretrained_vlm(path)  # the method's own parts (decoders, targets) are dropped
    if cfg.resume and (out / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(out)
    else:  # trained on the labelled episodes' instructions only; deterministic in every process
        tokenizer = build_tokenizer(cfg.model, instructions)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(out))
    return LatentVLM(cfg.model, tokenizer)


def build_policy_model(cfg: FinetuneConfig, vlm, action_dim: int, state_dim: int = 0) -> CareVLA:
    head = build_action_head(cfg.head, input_dim=vlm.hidden_size, num_latents=vlm.cfg.num_latents, action_dim=action_dim)
    model = CareVLA(vlm, head, state_dim, wrist=cfg.clip.wrist_camera is not None)
    model.requires_grad_(True)
    if cfg.lora.enabled:
        apply_lora(model, cfg.lora)  # freezes the LLM's base weights
    if vlm.cfg.freeze_vision:
        vlm.vision.requires_grad_(False)
        vlm.projector.requires_grad_(False)
    # z = latent_proj(hidden) is the pretraining target; the head reads `hidden` itself, so the
    # projection gets no gradient (and would trip DDP's unused-parameter check)
    vlm.latent_proj.requires_grad_(False)
    return model


def run_signature(cfg: FinetuneConfig, model_cfg, episodes: list[int], state_indices=None) -> dict:
    """What fixes the weights' names and shapes and the data: a resumed run must match it."""
    return {
        "pretrained": str(cfg.pretrained),
        "model": dataclasses.asdict(model_cfg),
        "head": dataclasses.asdict(cfg.head),
        "state_indices": state_indices if cfg.state.enabled else None,
        "lora": {"enabled": cfg.lora.enabled, "rank": cfg.lora.rank,
                 "target_modules": list(cfg.lora.target_modules)} if cfg.lora.enabled else {"enabled": False},
        "dataset": str(cfg.dataset),
        "episodes": episodes,
        "action_quantiles": list(cfg.action_quantiles),
        # only when set, so runs that predate the option still resume
        **({"wrist_camera": cfg.clip.wrist_camera} if cfg.clip.wrist_camera else {}),
        **({"augment_shift": cfg.augment.shift} if cfg.augment.shift else {}),
    }


def _diff(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {_short(a)} (checkpoint) vs {_short(b)} (now)"]


def _short(v) -> str:
    s = repr(v)
    return s if len(s) < 60 else s[:57] + "..."


def check_resume(out: Path, signature: dict) -> None:
    file = out / STATE_NAME
    if not file.is_file():
        return
    saved = json.loads(file.read_text())["signature"]
    diff = _diff(saved, json.loads(json.dumps(signature)))
    if diff:
        raise ConfigError(
            f"--resume: the checkpoints in {out} were made with another fine-tuning config: "
            + "; ".join(diff[:6]) + (f" (+{len(diff) - 6} more)" if len(diff) > 6 else "")
            + ". Resume with the original config, or choose a new --output-dir."
        )


# ----------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------


def state_indices(ds, cfg: FinetuneConfig) -> list[int] | None:
    """Which dims of `observation.state` the policy reads (None: state off); errors name the dataset."""
    if not cfg.state.enabled:
        return None
    if not ds.has_state:
        raise DatasetError(f"{ds.root}: --state.enabled, but this dataset records no observation.state")
    ft = ds.features["observation.state"]
    dim = int(ft["shape"][0])
    if cfg.state.names is None:
        return list(range(dim))
    names = list(ft.get("names") or [])
    if isinstance(names, dict):  # LeRobot sometimes nests names: {"motors": [...]}
        names = next(iter(names.values()), [])
    unknown = [n for n in cfg.state.names if n not in names]
    if unknown:
        raise ConfigError(f"--state.names: {unknown} are not state dimensions of {ds.root} "
                          f"(meta/info.json names them: {names or 'nothing'})")
    return [names.index(n) for n in cfg.state.names]


def finetune(cfg: FinetuneConfig) -> int:
    from care.configs import save_config
    from care.data.clips import ClipDataset
    from care.data.lerobot import LeRobotDataset

    acc = make_accelerator(cfg.mixed_precision, cfg.seed)
    out = Path(cfg.output_dir)
    if not cfg.resume and (latest_checkpoint(out / "checkpoints") or (out / POLICY_CONFIG_NAME).is_file()):
        raise ConfigError(  # as LeRobot: never train over a finished or interrupted run by accident
            f"{out} already holds a fine-tuning run; pass --resume to continue it, "
            "or choose another --output-dir (or delete this one)"
        )
    ds = LeRobotDataset(cfg.dataset)
    if not ds.has_actions:
        raise DatasetError(f"{cfg.dataset}: this dataset has no actions; fine-tuning needs labelled episodes")
    episodes, val_episodes = labelled_episodes(ds, cfg.episodes_per_task, cfg.seed, cfg.val_episodes_per_task)
    check_actions_finite(ds, episodes + val_episodes)  # before any model is built
    instructions = [ds.episode_task(e) for e in episodes]
    s_idx = state_indices(ds, cfg)

    vlm = build_vlm(cfg, instructions, out, acc)
    model_cfg = vlm.cfg
    signature = run_signature(cfg, model_cfg, episodes, s_idx)
    if cfg.resume:
        check_resume(out, signature)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out)
        atomic_write_json(out / STATE_NAME, {"signature": signature}, indent=2)

    clip = cfg.clip
    if clip.image_size is not None and clip.image_size != model_cfg.image_size:
        raise ConfigError(
            f"clip.image_size={clip.image_size} but the model takes {model_cfg.image_size}² images: "
            "leave clip.image_size unset (frames are resized to the model's size)"
        )
    clip = dataclasses.replace(clip, image_size=model_cfg.image_size)
    H = cfg.head.chunk_size
    train_ds = ClipDataset(ds, frame_interval=0, action_horizon=H, clip=clip, episodes=episodes, require_actions=True)
    val_ds = (ClipDataset(ds, frame_interval=0, action_horizon=H, clip=clip, episodes=val_episodes,
                          require_actions=True) if val_episodes else None)
    normalizer = fit_action_normalizer([ds.episode_actions(e) for e in episodes], *cfg.action_quantiles)
    state_normalizer = None
    if s_idx is not None:
        states = [ds.episode_states(e)[:, s_idx] for e in episodes]
        if not all(np.all(np.isfinite(x)) for x in states):
            raise DatasetError(f"{cfg.dataset}: observation.state has NaN or inf in the labelled episodes")
        state_normalizer = fit_action_normalizer(states, *cfg.action_quantiles)
    model = build_policy_model(cfg, vlm, normalizer.action_dim, len(s_idx) if s_idx is not None else 0)

    meta = {
        "pretrained": str(cfg.pretrained) if cfg.pretrained is not None else None,
        "dataset": str(cfg.dataset),
        "episodes_per_task": cfg.episodes_per_task,
        "camera": train_ds.camera,
        "wrist_camera": train_ds.wrist_camera,
        "frame_hw": list(train_ds.stored_hw),  # (H, W) as recorded: `care eval` renders at this size
        "fps": ds.fps,
        "train_episodes": episodes,
        "val_episodes": val_episodes,
        "train_seeds": train_seeds(ds, episodes),
        "lora": dataclasses.asdict(cfg.lora) if cfg.lora.enabled else None,
        "state_indices": s_idx,
        "state_names": ([(ds.features["observation.state"].get("names") or [None] * (max(s_idx) + 1))[i]
                         for i in s_idx] if s_idx is not None else None),
    }
    run_finetuning(cfg, model, normalizer, train_ds, acc, meta, val_ds=val_ds, state_normalizer=state_normalizer)
    return 0


def _select_state(batch: dict, meta: dict, state_normalizer, device):
    """The normalised state inputs of a batch (None when the policy reads no state)."""
    if state_normalizer is None:
        return None
    s = batch["state"][:, meta["state_indices"]].to(device)
    return state_normalizer.normalize(s).float()  # (B, S) in [-1, 1]


def _wrist(batch: dict, device):
    """The wrist frames of a batch (None when the policy reads one camera)."""
    return batch["wrist_obs"].to(device) if "wrist_obs" in batch else None


@torch.no_grad()
def held_out_l1(net, val_ds, normalizer, meta, state_normalizer, batch_size: int, device, num_batches: int = 8) -> float:
    """Mean L1 (normalised actions) on fixed held-out batches spread over the validation episodes."""
    n = min(len(val_ds), batch_size * num_batches)
    idx = np.unique(np.linspace(0, len(val_ds) - 1, n).round().astype(int)).tolist()
    was_training = net.training
    net.eval()
    total, count = 0.0, 0
    for i in range(0, len(idx), batch_size):
        batch = collate_finetune([val_ds[j] for j in idx[i:i + batch_size]], with_state=state_normalizer is not None,
                                 with_wrist=net.has_wrist)
        obs = batch["obs"].to(device)
        target = normalizer.normalize(batch["actions"].to(device))
        pred = net(obs, batch["instruction"], _select_state(batch, meta, state_normalizer, device), _wrist(batch, device))
        total += float(l1_action_loss(pred.float(), target, batch["action_is_pad"].to(device))) * len(obs)
        count += len(obs)
    net.train(was_training)
    return total / max(count, 1)


def run_finetuning(cfg: FinetuneConfig, model: CareVLA, normalizer: ActionNormalizer, train_ds, acc,
                   meta: dict, val_ds=None, state_normalizer: ActionNormalizer | None = None) -> float:
    """The loop (the tests call it on micro datasets); returns the last logged loss."""
    run = FinetuneRun(cfg, model, normalizer, train_ds, meta, val_ds, state_normalizer)
    train(run, acc)
    return run.last_loss


class FinetuneRun(TrainingRun):
    """The policy (CareVLA) on labelled clips: the step is the L1 loss of the normalised action
    chunk; validation the held-out L1; the folder the policy (LoRA merged)."""

    name = "finetune"
    progress_key = "l1"
    saves_a_copy = True  # LoRA is merged into the saved copy; the training model keeps its adapters

    def __init__(self, cfg: FinetuneConfig, model: CareVLA, normalizer: ActionNormalizer, train_ds, meta: dict,
                 val_ds=None, state_normalizer: ActionNormalizer | None = None):
        super().__init__(cfg, model, train_ds)
        self.normalizer, self.meta, self.val_ds, self.state_normalizer = normalizer, meta, val_ds, state_normalizer
        self.last_loss = float("nan")

    def collate(self, items: list[dict]) -> dict:
        return collate_finetune(items, with_state=self.state_normalizer is not None, with_wrist=self.model.has_wrist)

    def header(self, acc) -> str:
        cfg, meta, net = self.cfg, self.meta, self.model
        n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in net.parameters())
        return (f"care finetune: {n_train / 1e6:.2f}M of {n_all / 1e6:.2f}M parameters trainable"
                f"{' (LoRA on the LLM)' if cfg.lora.enabled else ''}, {len(meta['train_episodes'])} labelled episodes, "
                f"{len(self.train_ds)} samples, chunk {cfg.head.chunk_size}"
                + (f", state {meta.get('state_names')}" if self.state_normalizer is not None else "")
                + (f", random shift ±{cfg.augment.shift} px" if cfg.augment.shift else "")
                + f", {len(meta.get('val_episodes') or [])} held-out episodes")

    def step(self, model, batch: dict, step: int, acc):
        cfg = self.cfg
        obs, wrist = batch["obs"].to(acc.device), _wrist(batch, acc.device)
        if cfg.augment.shift:
            g = augment_generator(cfg.seed * 1000 + acc.process_index, step)
            obs = random_shift(obs, cfg.augment.shift, g)
            wrist = None if wrist is None else random_shift(wrist, cfg.augment.shift, g)
        target = self.normalizer.normalize(batch["actions"].to(acc.device))  # (B, H, A) in [-1, 1]
        state = _select_state(batch, self.meta, self.state_normalizer, acc.device)
        with acc.autocast():
            pred = model(obs, batch["instruction"], state, wrist)  # (B, H, A)
        loss = l1_action_loss(pred.float(), target, batch["action_is_pad"].to(acc.device))
        return loss, {"l1": loss}

    def log_scalars(self, net, scalars: dict[str, float]) -> dict[str, float]:
        self.last_loss = scalars["l1"]
        return scalars

    def validate(self, net, step: int, acc) -> float | None:
        if self.val_ds is None:
            return None
        with acc.autocast():
            l1 = held_out_l1(net, self.val_ds, self.normalizer, self.meta, self.state_normalizer, self.cfg.batch_size,
                             acc.device)
        self.log.scalars(step, {"l1": l1}, prefix="val")
        self.log.write(f"step {step} validation: held-out l1={l1:.4f}")
        return l1

    def save(self, net, step: int, val_l1, acc) -> None:
        deploy = merge_lora(net.cpu().eval())  # a copy (saves_a_copy): the training model keeps its adapters
        save_policy(self.out, deploy, self.normalizer,
                    {**self.meta, "steps": step, "final_l1": self.last_loss, "val_l1": val_l1}, self.state_normalizer)
        self.log.write(f"care finetune: policy saved to {self.out} (load it with CarePolicy.from_pretrained)")
