"""Micro synthetic datasets for tests (no simulator): smooth moving images, exact tracks.

    from helpers import make_dataset, make_episode   # tests/ is on sys.path (conftest.py)
    root = make_dataset(tmp_path, episodes=2, T=30, size=32, with_actions=True, with_tracks=True)
"""

from __future__ import annotations

import contextlib
import json

from pathlib import Path

import numpy as np

from care.data.lerobot import Episode, LeRobotDatasetWriter

# the repository root: tests name its files (configs/..., benchmarks/...) through it, never
# relative to the working directory, so they pass from any directory
REPO_ROOT = Path(__file__).resolve().parents[1]

TASKS = ("close the drawer", "press the button from the top")
ENV_NAMES = ("drawer-close-v3", "button-press-topdown-v3")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it), for a process group's rendezvous:
    a fixed port collides with another run of the same test or anything else listening."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launched_output(out: str, tail: int = 3000) -> str:
    """What to show when a launched multi-process run failed: the lines naming each process's
    error (a Python traceback's last line, a C++ `terminate called ...`/`what():`), which the
    launcher's closing summary pushes out of a plain tail, then the tail."""
    import re

    causes = [ln for ln in out.splitlines()
              if re.search(r"terminate called|what\(\)|Error:|Exception:|error:|Traceback", ln)]
    return "\n".join(["-- error lines --", *causes[:40], "-- tail --", out[-tail:]])


def synthetic_frames(T: int, size: int, seed: int = 0, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (T, H, W, 3) smooth images of a pattern drifting by a per-frame shift, and the
    float (T, 2) shift (x, y) in pixels. Smooth so that the codec error is small."""
    H, W = size, width or size
    rng = np.random.default_rng(seed)
    vel = rng.uniform(-0.6, 0.6, size=2)
    shift = np.arange(T)[:, None] * vel[None, :]  # (T, 2)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.7, 1.1, size=3)  # a tint: colour varies slowly, as in rendered scenes
    frames = np.empty((T, H, W, 3), np.uint8)
    for t in range(T):
        x, y = xx - shift[t, 0], yy - shift[t, 1]
        v = 0.5 + 0.3 * np.sin(2 * np.pi * (x / (W * 0.9) + y / (H * 1.4)) + phase)
        v = v + 0.1 * np.cos(2 * np.pi * (y / (H * 0.7) - x / (W * 2.3)))
        frames[t] = np.clip(v[..., None] * gain * 255, 0, 255).astype(np.uint8)
    return frames, shift


def make_episode(
    T: int = 30,
    size: int = 32,
    seed: int = 0,
    task_id: int = 0,
    with_actions: bool = True,
    with_state: bool = True,
    with_tracks: bool = True,
    points: int = 6,
    cameras: tuple[str, ...] = ("corner",),
    action_dim: int = 4,
    state_dim: int = 5,
) -> Episode:
    rng = np.random.default_rng(1000 + seed)
    frames, shift = synthetic_frames(T, size, seed)
    base = rng.uniform(2, size - 3, size=(points, 2))
    tracks = (base[None] + shift[:, None, :]).astype(np.float32)  # (T, N, 2)
    visible = rng.random((T, points)) > 0.2
    return Episode(
        frames={cam: frames for cam in cameras},
        task=TASKS[task_id % len(TASKS)],
        state=rng.normal(size=(T, state_dim)).astype(np.float32) if with_state else None,
        action=rng.uniform(-1, 1, size=(T, action_dim)).astype(np.float32) if with_actions else None,
        extra={"success": bool(seed % 3 != 2), "env_name": ENV_NAMES[task_id % len(ENV_NAMES)], "seed": int(seed)},
        tracks=tracks if with_tracks else None,
        visible=visible if with_tracks else None,
    )


def make_episodes(episodes: int = 2, T: int | list[int] = 30, size: int = 32, tasks: int = 2, **kw) -> list[Episode]:
    lengths = T if isinstance(T, list) else [T] * episodes
    return [make_episode(T=lengths[i], size=size, seed=i, task_id=i % tasks, **kw) for i in range(episodes)]


def make_dataset(
    tmp_path: Path,
    episodes: int = 2,
    T: int | list[int] = 30,
    size: int = 32,
    with_actions: bool = True,
    with_tracks: bool = True,
    with_state: bool = True,
    tasks: int = 2,
    name: str = "ds",
    fps: int = 10,
    writer_kw: dict | None = None,
    **episode_kw,
) -> Path:
    """Write a micro dataset under tmp_path/name and return its root."""
    root = Path(tmp_path) / name
    writer = LeRobotDatasetWriter(root, fps=fps, robot_type="synthetic", **(writer_kw or {}))
    flags = {"with_actions": with_actions, "with_tracks": with_tracks, "with_state": with_state}
    for ep in make_episodes(episodes, T, size, tasks, **flags, **episode_kw):
        writer.add_episode(ep)
    writer.finalize()
    return root


def micro_configs(**kw):
    """(ModelConfig, CareConfig) of the micro preset; each keyword goes to the config that has
    the field (the latent VLM's or CARE's own)."""
    import dataclasses

    from care.methods.care.configuration_care import CareConfig
    from care.presets import get_preset

    model, method = get_preset("micro"), CareConfig().preset("micro")
    mk = {k: v for k, v in kw.items() if k in {f.name for f in dataclasses.fields(model)}}
    ck = {k: v for k, v in kw.items() if k not in mk}
    return dataclasses.replace(model, **mk), dataclasses.replace(method, **ck)


# a micro policy (tests/policy, tests/serve, tests/evaluation): 48x48 frames of the corner camera
INSTR = ["close the drawer", "press the button from the top"]
META = {"camera": "corner", "frame_hw": [48, 48], "train_seeds": {}, "pretrained": None}


def micro_model(chunk_size=3, lora=True, seed=0):
    """A micro CareVLA (4-d actions) whose LoRA and head weights are moved off their init."""
    import torch

    from care.configs import ActionHeadConfig, FinetuneConfig, LoRAConfig
    from care.models.latent_vlm import LatentVLM
    from care.models.tokenizer import train_bpe_tokenizer
    from care.presets import get_preset
    from care.training.finetune import build_policy_model

    torch.manual_seed(seed)
    mcfg = get_preset("micro")
    vlm = LatentVLM(mcfg, train_bpe_tokenizer(INSTR, mcfg.vocab_size))
    cfg = FinetuneConfig(pretrained=None, head=ActionHeadConfig(chunk_size=chunk_size, width=32),
                         lora=LoRAConfig(enabled=lora, rank=4, alpha=8))
    model = build_policy_model(cfg, vlm, action_dim=4)
    with torch.no_grad():  # move every weight off its init so LoRA's B != 0 and the head is not ~0
        for n, p in model.named_parameters():
            if "lora_B" in n or n.startswith("head.out_proj"):
                p.normal_(0, 0.3)
    return model.eval()


def normalizer():
    from care.policy.normalize import fit_action_normalizer

    rng = np.random.default_rng(0)
    return fit_action_normalizer(rng.uniform(-1, 1, size=(500, 4)) * np.array([1.0, 0.5, 2.0, 0.0]))


def images(B=2, size=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(B, size, size, 3), dtype=np.uint8)


@contextlib.contextmanager
def one_thread():
    """torch on one thread inside the block: micro tensors gain nothing from a second thread, and
    on a shared CPU spinning OpenMP threads made micro tests 10-20x slower; results that depend on
    the thread count (float sums) are then the same in every run."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# micro model tests (tests/models, tests/methods): configs, tokenizer and a random pretraining batch
MODEL_INSTR = ["close the drawer", "press the button from the top", "open the window"]  # the model tests' batches


def micro_cfg(**kw):
    return micro_configs(**kw)[0]


def micro_method(**kw):
    return micro_configs(**kw)[1]


def tok_for(cfg):
    from care.models.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(MODEL_INSTR, cfg.vocab_size)


def make_batch(cfg, B=3, N=5, seed=0):
    """A pretraining batch of random frames and tracks for the micro model tests."""
    import torch

    g = torch.Generator().manual_seed(seed)
    S = cfg.image_size
    tracks = torch.rand(B, N, 2, generator=g) * (S - 1)
    return {
        "obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
        "future_obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
        "instruction": [MODEL_INSTR[i % len(MODEL_INSTR)] for i in range(B)],
        "tracks": tracks,
        "future_tracks": tracks + torch.randn(B, N, 2, generator=g) * 2,
        "visible": torch.rand(B, N, generator=g) > 0.2,
    }


def eval_info(successes: dict[str, list[bool]], seed0=1000, max_steps=200) -> dict:
    """A `care eval` eval_info.json: task -> the successes of its episodes (env seeds seed0+)."""
    per_task = [{"task": t, "pc_success": 100.0 * sum(s) / len(s), "successes": s, "n_episodes": len(s),
                 "seeds": list(range(seed0, seed0 + len(s)))} for t, s in successes.items()]
    all_ = [x for s in successes.values() for x in s]
    return {"per_task": per_task, "overall": {"pc_success": 100.0 * sum(all_) / len(all_), "n_episodes": len(all_)},
            "config": {"max_steps": max_steps}}


def write_result(root, run: str, seed: int, name: str, obj) -> Path:
    """<root>/<run>/s<seed>/<name>: `obj` as JSON, or as is if text (a committed result file of
    `care report`)."""
    d = Path(root) / run / f"s{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return d / name
