"""`care eval`: roll a fine-tuned policy out in a simulator and report success per task.

    care eval --policy runs/care_tiny_ft --env.tasks MT10 --episodes-per-task 20 --seed 1000 \
              --output-dir runs/eval
    care eval --policy runs/libero_ft --env.type libero --env.suite libero_object --episodes-per-task 20

Episode i of every task resets the simulator with seed `cfg.seed + i`; those seeds must not be
among the seeds of the episodes the policy was fine-tuned on (checked from the policy folder).
LIBERO follows the published protocol (care.envs.libero): episode i starts from the suite's
fixed initial state `cfg.seed + i` (never collected from), after 10 settling steps, with the
suite's step limit; `eval_info.json` records the protocol under "config".
Rollouts run in `cfg.workers` spawned processes, each holding one copy of the policy and
`cfg.batch_size` simulators of one task that step in lockstep, with one batched policy call per
step (finished episodes drop out of the batch). Per-episode results do not depend on the batch
size or the worker count (tests/evaluation/test_eval_workers.py); a tqdm bar counts episodes.

Outputs in `cfg.output_dir`:
    eval_info.json   LeRobot-like: "per_episode", "per_task", "overall", "video_paths", "policy"
    eval.md          success per task as a Markdown table
    success.png      bar chart of success per task
    videos/<task>/episode_<i>.mp4   the first `videos_per_task` episodes of each task
    run_config.yaml  the resolved EvalConfig
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from care.configs import EvalConfig
from care.errors import ConfigError
from care.io import atomic_write_json

# --- one rollout job, and the worker that runs it ------------------------------------------


@dataclass(frozen=True)
class _Job:
    task: str
    episode: int
    seed: int
    instruction: str
    record: bool


_WORKER: dict = {}  # per-process: policy, env, settings


def _worker_init(settings: dict) -> None:
    import torch

    torch.set_num_threads(settings["threads"])
    from care.policy import CarePolicy

    _WORKER.clear()
    _WORKER.update(settings)
    _WORKER["policy"] = CarePolicy.from_pretrained(
        settings["policy_dir"],
        execution=settings["execution"],
        n_action_steps=settings["n_action_steps"],
        ensemble_decay=settings["ensemble_decay"],
        device=settings["device"],
        precision=settings["precision"],
    )
    _WORKER["envs"], _WORKER["env_name"] = [], None


def _envs_for(task: str, n: int) -> list:
    """The worker's `n` simulators for `task` (kept while the task stays the same; the previous
    task's closed)."""
    from care.envs.factory import make_env

    if _WORKER["env_name"] != task:
        for env in reversed(_WORKER["envs"]):  # the renderer's owner (the first) last
            env.close()
        _WORKER["envs"], _WORKER["env_name"] = [], task
    envs = _WORKER["envs"]
    while len(envs) < n:  # size and camera resolved by evaluate(); one renderer per task and worker
        envs.append(make_env(_WORKER["env_cfg"], task, **({"share_renderer_with": envs[0]} if envs else {})))
    return envs[:n]


def _run_group(jobs: tuple[_Job, ...]) -> list[dict]:
    """Episodes of one task, stepped in lockstep with one batched policy call per step."""
    from care.data.video import write_mp4
    from care.evaluation.rollout import run_episodes

    envs = _envs_for(jobs[0].task, len(jobs))
    results = run_episodes(envs, _WORKER["policy"], [j.instruction for j in jobs], [j.seed for j in jobs],
                           _WORKER["max_steps"], record=[j.record for j in jobs])
    out = []
    for job, res in zip(jobs, results):
        res.task, res.episode = job.task, job.episode
        if job.record and res.frames:
            path = Path(_WORKER["video_dir"]) / job.task / f"episode_{job.episode:03d}.mp4"
            write_mp4(path, np.stack(res.frames), fps=_WORKER["video_fps"])
            res.video_path = str(path)
        out.append(res.to_dict())
    return out


def _worker_close() -> None:
    for env in reversed(_WORKER.get("envs", [])):  # the renderer's owner (the first) last
        env.close()
    _WORKER.clear()


# --- aggregation ----------------------------------------------------------------------------


def aggregate(episodes: list[dict], tasks: list[str]) -> dict:
    """Per-task and overall success (%), mean episode length, mean summed reward when known."""

    def _stats(rows: list[dict]) -> dict:
        rewards = [r["sum_reward"] for r in rows if r["sum_reward"] is not None]
        return {
            "n_episodes": len(rows),
            "pc_success": 100.0 * float(np.mean([r["success"] for r in rows])) if rows else float("nan"),
            "avg_episode_length": float(np.mean([r["length"] for r in rows])) if rows else float("nan"),
            "avg_sum_reward": float(np.mean(rewards)) if rewards else None,
        }

    per_task = []
    for task in tasks:
        rows = sorted((r for r in episodes if r["task"] == task), key=lambda r: r["episode_ix"])
        per_task.append(
            {
                "task": task,
                **_stats(rows),
                "successes": [bool(r["success"]) for r in rows],
                "seeds": [r["seed"] for r in rows],
                "video_paths": [r["video_path"] for r in rows if r["video_path"]],
            }
        )
    return {"per_task": per_task, "overall": _stats(episodes)}


# --- the command ----------------------------------------------------------------------------


def _jobs(cfg: EvalConfig, tasks: list[str]) -> list[_Job]:
    from care.envs.factory import task_instruction

    # Meta-World's paraphrase is chosen by the seed, exactly as `care collect` chooses it
    return [
        _Job(task, i, cfg.seed + i, task_instruction(cfg.env, task, cfg.seed + i), i < cfg.videos_per_task)
        for task in tasks
        for i in range(cfg.episodes_per_task)
    ]


def _groups(jobs: list[_Job], batch_size: int) -> list[tuple[_Job, ...]]:
    """Consecutive episodes of the same task, at most `batch_size` to a group (one lockstep batch)."""
    groups: list[list[_Job]] = []
    for job in jobs:
        if groups and groups[-1][0].task == job.task and len(groups[-1]) < batch_size:
            groups[-1].append(job)
        else:
            groups.append([job])
    return [tuple(g) for g in groups]


def _check_seeds(meta: dict, jobs: list[_Job]) -> None:
    train_seeds: dict = meta.get("train_seeds") or {}
    clashes = sorted({(j.task, j.seed) for j in jobs if j.seed in set(train_seeds.get(j.task, []))})
    if clashes:
        shown = ", ".join(f"{t} seed {s}" for t, s in clashes[:5])
        raise ConfigError(
            f"evaluation seeds overlap the policy's training episodes ({shown}{', ...' if len(clashes) > 5 else ''}); "
            "pass a --seed beyond the collection seeds (e.g. --seed 1000)"
        )


def _recorded_size(meta: dict, policy: Path, asked: int | None = None) -> int:
    """The square size the simulator renders at: the policy's frames (CarePolicy refuses others)."""
    h, w = meta["frame_hw"]
    if h != w:
        raise ConfigError(f"{policy} was trained on {w}x{h} frames; the simulators render square ones, and the "
                          "policy takes only frames of its training size")
    if asked is not None and asked != h:
        raise ConfigError(f"--env.size {asked}: {policy} was trained on {w}x{h} frames and takes only those "
                          f"(leave --env.size unset, or pass {h})")
    return int(h)


def _with_wrist(env_cfg, meta: dict, policy: Path):
    """The env config, rendering the wrist camera too when the policy reads one."""
    from dataclasses import replace

    wrist = meta.get("wrist_camera")
    if not wrist:
        return env_cfg
    if env_cfg.type != "libero" or wrist != "wrist_image":
        raise ConfigError(f"{policy} reads a second camera {wrist!r}; --env.type={env_cfg.type} renders no such "
                          "view (LIBERO's is 'wrist_image')")
    return replace(env_cfg, wrist=True)


def _libero_protocol(cfg: EvalConfig, env) -> dict:
    """What a LIBERO number depends on, written into eval_info.json (users' most common LIBERO
    complaint is a result that does not reproduce because one of these differed)."""
    from care.envs.libero import CAMERAS

    return {"benchmark": "libero", "suite": env.suite, "init_states": env.init_states,
            "init_state_indices": [cfg.seed, cfg.seed + cfg.episodes_per_task - 1],
            "num_steps_wait": env.num_steps_wait, "max_steps": env.max_steps,
            "image": "robosuite frame turned 180 degrees (img[::-1, ::-1]), as the public datasets",
            "camera": CAMERAS.get(env.camera, env.camera), "gripper": "-1 open, +1 closed",
            "success": "the environment's goal check; the episode ends at the first success"}


def evaluate(cfg: EvalConfig) -> int:
    from care.configs import save_config
    from care.envs.factory import resolve_env_tasks
    from care.evaluation.report import plot_success, write_markdown
    from care.policy import read_policy_meta

    from dataclasses import replace

    meta = read_policy_meta(cfg.policy)
    if cfg.env.type == "libero" and cfg.env.init_states is None:
        cfg.env = replace(cfg.env, init_states="fixed")  # the protocol's episodes  # fails early, with a clear message, on a bad folder
    tasks = resolve_env_tasks(cfg.env)
    H = int(meta["chunk_size"])
    size = _recorded_size(meta, cfg.policy, cfg.env.size)  # before anything is written
    if cfg.n_action_steps is not None and not 1 <= cfg.n_action_steps <= H:
        raise ConfigError(f"--n-action-steps={cfg.n_action_steps}, but {cfg.policy} predicts chunks of {H}: use 1..{H}")
    jobs = _jobs(cfg, tasks)
    if cfg.env.type == "libero" and cfg.env.init_states == "fixed":
        if cfg.seed < 0 or cfg.seed + cfg.episodes_per_task > 50:
            raise ConfigError(f"LIBERO has 50 fixed initial states per task (0-49): --seed {cfg.seed} with "
                              f"--episodes-per-task {cfg.episodes_per_task} asks for states up to "
                              f"{cfg.seed + cfg.episodes_per_task - 1}")
    else:  # LIBERO's fixed initial states are never collected from: nothing to clash
        _check_seeds(meta, jobs)
    unseen = [t for t in tasks if meta.get("train_seeds") and t not in meta["train_seeds"]]
    if unseen:
        print(f"care eval: note: {cfg.policy} saw no labelled episode of {', '.join(unseen)}")
    out = Path(cfg.output_dir)
    if (out / "eval_info.json").is_file() and not cfg.overwrite:
        raise ConfigError(  # as `care finetune`: never write over a finished evaluation by accident
            f"{out} already holds an evaluation (eval_info.json); choose another --output-dir, "
            "or pass --overwrite to replace it"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)

    groups = _groups(jobs, cfg.batch_size)  # one lockstep batch each
    workers = min(cfg.workers, len(groups))
    settings = {
        "policy_dir": str(cfg.policy),
        "execution": cfg.execution,
        "n_action_steps": cfg.n_action_steps,
        "ensemble_decay": cfg.ensemble_decay,
        "device": cfg.device,
        "precision": cfg.precision,
        # env.size / env.camera of None: as the policy's training data was recorded
        "env_cfg": _with_wrist(cfg.env.with_rendering(
            size=size, camera=cfg.env.camera or meta["camera"]
        ), meta, cfg.policy),
        "max_steps": cfg.env.max_steps,
        "video_dir": str(out / "videos"),
        "video_fps": cfg.video_fps,
        "threads": max(1, (os.cpu_count() or 1) // workers),
    }
    os.environ.setdefault("MUJOCO_GL", "egl")  # inherited by spawned workers
    t0 = time.perf_counter()
    results: list[dict] = []
    bar = tqdm(total=len(jobs), desc="eval", unit="ep", dynamic_ncols=True)

    def done(rows: list[dict]) -> None:
        results.extend(rows)
        bar.update(len(rows))
        bar.set_postfix(success=f"{100 * np.mean([r['success'] for r in results]):.0f}%")

    if workers == 1:
        _worker_init(settings)
        try:
            for group in groups:
                done(_run_group(group))
        finally:
            _worker_close()
    else:
        ctx = mp.get_context("spawn")  # fork + MuJoCo/EGL + torch threads do not mix
        # a worker's consecutive groups of a task reuse its simulators: hand out a task's groups
        # together (split between workers only when there are fewer tasks than workers)
        per_task = -(-cfg.episodes_per_task // cfg.batch_size)
        chunk = per_task if len(tasks) >= workers else max(1, per_task // workers)
        with ctx.Pool(workers, initializer=_worker_init, initargs=(settings,)) as pool:
            for rows in pool.imap_unordered(_run_group, groups, chunksize=chunk):
                done(rows)
    bar.close()
    eval_s = time.perf_counter() - t0

    info = aggregate(results, tasks)
    info["overall"].update({"eval_s": round(eval_s, 2), "eval_ep_s": round(eval_s / max(1, len(jobs)), 3),
                            "episodes_per_min": round(60 * len(jobs) / max(eval_s, 1e-9), 2)})
    info["per_episode"] = sorted(results, key=lambda r: (tasks.index(r["task"]), r["episode_ix"]))
    info["video_paths"] = [p for row in info["per_task"] for p in row["video_paths"]]
    info["policy"] = {"path": str(cfg.policy), **{k: meta.get(k) for k in ("chunk_size", "pretrained", "episodes_per_task", "state_names", "wrist_camera")}}
    info["config"] = {
        "execution": cfg.execution,
        "n_action_steps": cfg.n_action_steps,
        "ensemble_decay": cfg.ensemble_decay,
        "batch_size": cfg.batch_size,
        "workers": workers,
        "precision": cfg.precision,
        "max_steps": cfg.env.max_steps,
        "seed": cfg.seed,
        "episodes_per_task": cfg.episodes_per_task,
        "size": settings["env_cfg"].size,
        "camera": settings["env_cfg"].camera,
    }
    if cfg.env.type == "libero":
        info["config"]["protocol"] = _libero_protocol(cfg, settings["env_cfg"])
    atomic_write_json(out / "eval_info.json", info, indent=2)
    title = f"Success rate — {cfg.policy} ({cfg.episodes_per_task} episodes per task, seeds {cfg.seed}+)"
    write_markdown(info, out / "eval.md", title=title)
    plot_success(info, out / "success.png", title=str(cfg.policy))

    from care.evaluation.report import markdown_table

    print(markdown_table(info))
    print(f"eval: {len(jobs)} episodes in {eval_s:.1f}s; results in {out}/eval_info.json, videos in {out}/videos")
    return 0
