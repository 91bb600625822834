"""`care collect`: roll scripted experts out in a simulator and record a LeRobot v3 dataset.

    care collect --env.tasks MT10 --episodes-per-task 20 --env.size 128 --workers 2 --seed 0 --output-dir data/mt10
    care collect --env.type libero --env.suite libero_object --episodes-per-task 50 --output-dir data/libero_object

Each episode is a deterministic function of (task, episode seed, config): the episode seed
is `cfg.seed + k` for the task's k-th episode, the task variation comes from that seed
(`MetaWorldEnv.reset(seed=...)`; LIBERO: a random placement, never one of the suite's fixed
initial states that `care eval` uses), and so do the action noise and detours. Episodes are spread
over `cfg.workers` processes but written in a fixed order by the main process, so the
dataset is the same for any number of workers.

Frames and actions are aligned as in LeRobot: row t holds the observation o_t and the action
a_t executed from it (the clipped action actually sent to the simulator, noise and detours
included). An episode ends `post_success_steps` steps after the first success, or after
`env.max_steps` steps.

The dataset is written into a temporary sibling folder and renamed onto `cfg.output_dir` at the
end, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from care.configs import CollectConfig
from care.envs.factory import env_fps, env_names, resolve_env_tasks, task_instruction

CONFIG_NAME = "care_collect.yaml"  # written to <out>/meta/


@dataclass(frozen=True)
class EpisodeSpec:
    """What to roll out: the dataset's `index`-th episode is `env_name` with `seed`."""

    index: int
    env_name: str
    seed: int


@dataclass
class CollectSummary:
    episodes: int
    frames: int
    seconds: float
    success: dict[str, list[bool]] = field(default_factory=dict)  # env_name -> per episode

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)

    def success_rate(self, env_name: str) -> float:
        s = self.success[env_name]
        return sum(s) / len(s)


def episode_specs(cfg: CollectConfig) -> list[EpisodeSpec]:
    """Task-major order: all episodes of the first task, then the next task's, ..."""
    tasks = resolve_env_tasks(cfg.env)
    specs = []
    for name in tasks:
        for k in range(cfg.episodes_per_task):
            specs.append(EpisodeSpec(len(specs), name, cfg.seed + k))
    return specs


# ----------------------------------------------------------------------------------------
# One episode
# ----------------------------------------------------------------------------------------


class BehaviourDiversity:
    """Perturbs the expert so that videos are not all the one motion it makes in a state.

    Gaussian noise (std `action_noise`) on every action dimension, and, with probability
    `detour_prob` per step (before the first success), a detour: `detour_steps` steps in a
    random direction at a random speed, the gripper command left to the expert. Draws come
    from a generator seeded by (task, episode seed) and only when the option is on, so with
    both options off the actions are the expert's exactly.
    """

    def __init__(self, cfg: CollectConfig, env_name: str, seed: int):
        self.noise = float(cfg.action_noise)
        self.detour_prob = float(cfg.detour_prob)
        self.detour_steps = int(cfg.detour_steps)
        self.rng = np.random.default_rng([int(seed), zlib.crc32(env_name.encode())])
        self._left = 0
        self._dir = np.zeros(3)

    def __call__(self, expert: np.ndarray, succeeded: bool) -> np.ndarray:
        a = np.asarray(expert, np.float64).copy()
        if self._left == 0 and not succeeded and self.detour_prob > 0 and self.detour_steps > 0:
            if self.rng.random() < self.detour_prob:
                d = self.rng.normal(size=3)
                self._dir = d / (np.linalg.norm(d) + 1e-9) * self.rng.uniform(0.5, 1.0)
                self._left = self.detour_steps
        if self._left > 0:
            a[:3] = self._dir
            self._left -= 1
        if self.noise > 0:
            a += self.rng.normal(0.0, self.noise, size=a.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def rollout(env, spec: EpisodeSpec, cfg: CollectConfig):
    """Run one episode on `env` (made by care.envs.factory for spec.env_name) -> care.data.lerobot.Episode."""
    from care.data.lerobot import Episode

    diversity = BehaviourDiversity(cfg, spec.env_name, spec.seed)
    obs, _ = env.reset(seed=spec.seed)
    frames, wrist, states, actions, tracks, visible = [], [], [], [], [], []
    instruction = task_instruction(cfg.env, spec.env_name, spec.seed)
    first_success = -1
    for t in range(cfg.env.max_steps):
        frames.append(obs["pixels"])
        if "wrist_pixels" in obs:
            wrist.append(obs["wrist_pixels"])
        states.append(env.state)
        if cfg.tracks:
            xy, vis = env.project_points()
            tracks.append(xy)
            visible.append(vis)
        action = diversity(env.expert_action(), succeeded=first_success >= 0)
        obs, _reward, _terminated, _truncated, info = env.step(action)
        actions.append(action)
        if info["is_success"] and first_success < 0:
            first_success = t
        if first_success >= 0 and t - first_success >= cfg.post_success_steps:
            break
    return Episode(
        frames={cfg.env.camera: np.stack(frames), **({"wrist_image": np.stack(wrist)} if wrist else {})},
        task=instruction,
        state=np.stack(states).astype(np.float32),
        action=np.stack(actions).astype(np.float32),
        extra={
            "success": first_success >= 0,
            "env_name": spec.env_name,
            "seed": spec.seed,
            "success_step": first_success,  # index of the action that first succeeded; -1: none
        },
        tracks=np.stack(tracks).astype(np.float32) if cfg.tracks else None,
        visible=np.stack(visible) if cfg.tracks else None,
        track_meta={
            "method": "groundtruth",
            "bodies": ",".join(env.track_bodies),
            "points_per_body": cfg.points_per_body,
        }
        if cfg.tracks
        else None,
    )


# ----------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------


class EpisodeRunner:
    """Rolls episodes out, keeping a few environments alive between episodes of a task."""

    def __init__(self, cfg: CollectConfig, max_envs: int = 3):
        self.cfg = cfg
        self.max_envs = max_envs
        self._envs: OrderedDict[str, object] = OrderedDict()

    def env(self, name: str):
        from care.envs.factory import make_env

        if name in self._envs:
            self._envs.move_to_end(name)
            return self._envs[name]
        while len(self._envs) >= self.max_envs:
            _, old = self._envs.popitem(last=False)
            old.close()
        c = self.cfg
        env = make_env(c.env, name, tracks=c.tracks, points_per_body=c.points_per_body)
        self._envs[name] = env
        return env

    def __call__(self, spec: EpisodeSpec):
        return spec, rollout(self.env(spec.env_name), spec, self.cfg)

    def close(self) -> None:
        while self._envs:
            self._envs.popitem()[1].close()


_RUNNER: EpisodeRunner | None = None  # one per worker process


def _init_worker(cfg: CollectConfig) -> None:
    global _RUNNER
    # Mesa's software rasteriser (llvmpipe) otherwise starts one thread per core in every
    # worker; at 128² the threads mostly wait on each other (measured: ~100 -> ~128 frames/s
    # on 2 busy cores). Parallelism comes from the workers. Read when the first GL context
    # of the process is made; a value set by the user wins.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    _RUNNER = EpisodeRunner(cfg)


def _run_in_worker(spec: EpisodeSpec):
    return _RUNNER(spec)


def _episodes(cfg: CollectConfig, specs: list[EpisodeSpec]):
    """Yield (spec, Episode) in `specs` order, rolled out by `cfg.workers` processes."""
    if cfg.workers == 1 or len(specs) == 1:
        _init_worker(cfg)
        try:
            for spec in specs:
                yield _run_in_worker(spec)
        finally:
            _RUNNER.close()
        return
    ctx = mp.get_context("spawn")  # fork + an OpenGL context is not safe
    with ctx.Pool(min(cfg.workers, len(specs)), initializer=_init_worker, initargs=(cfg,)) as pool:
        # imap keeps the order; chunksize 1 balances episodes of unequal length
        yield from pool.imap(_run_in_worker, specs, chunksize=1)


# ----------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------


def collect_dataset(cfg: CollectConfig) -> CollectSummary:
    """Collect the dataset `cfg` describes into `cfg.output_dir`; -> what was collected."""
    from tqdm import tqdm

    from care.configs import save_config
    from care.io import atomic_dir
    from care.data.lerobot import LeRobotDatasetWriter

    specs = episode_specs(cfg)  # unknown task names fail here, before anything is written
    summary = CollectSummary(episodes=0, frames=0, seconds=0.0)
    start = time.perf_counter()
    with atomic_dir(cfg.output_dir, overwrite=cfg.overwrite) as tmp:
        names = env_names(cfg.env)
        writer = LeRobotDatasetWriter(
            tmp,
            fps=env_fps(cfg.env),
            robot_type=names.pop("robot_type"),
            pix_fmt=cfg.pix_fmt,
            names=names,
        )
        bar = tqdm(total=len(specs), unit="ep", desc="collect", dynamic_ncols=True, file=sys.stderr)
        try:
            for spec, ep in _episodes(cfg, specs):
                writer.add_episode(ep)
                summary.episodes += 1
                summary.frames += ep.length
                summary.success.setdefault(spec.env_name, []).append(bool(ep.extra["success"]))
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"{summary.frames / elapsed:.0f} frames/s, {spec.env_name}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        writer.finalize()
        save_config(cfg, tmp / "meta", CONFIG_NAME)
    summary.seconds = time.perf_counter() - start
    return summary


def format_summary(cfg: CollectConfig, s: CollectSummary) -> str:
    width = max(len(n) for n in s.success)
    lines = [
        f"collected {s.episodes} episodes, {s.frames} frames in {s.seconds:.1f} s "
        f"({s.fps:.0f} frames/s with {cfg.workers} worker(s), {s.fps / cfg.workers:.0f} per worker) -> {cfg.output_dir}",
        f"{'task':<{width}}  episodes  success ({_behaviour(cfg)})",
    ]
    for name, flags in s.success.items():
        lines.append(f"{name:<{width}}  {len(flags):>8}  {100 * s.success_rate(name):>6.0f}%")
    total = [f for flags in s.success.values() for f in flags]
    lines.append(f"{'all':<{width}}  {len(total):>8}  {100 * sum(total) / len(total):>6.0f}%")
    return "\n".join(lines)


def _behaviour(cfg: CollectConfig) -> str:
    parts = ["expert"]
    if cfg.action_noise > 0:
        parts.append(f"noise {cfg.action_noise:g}")
    if cfg.detour_prob > 0 and cfg.detour_steps > 0:
        parts.append(f"detours p={cfg.detour_prob:g} x{cfg.detour_steps}")
    return " + ".join(parts)


def collect(cfg: CollectConfig) -> int:
    """`care collect` entry point: collect, print the summary; -> exit status 0."""
    summary = collect_dataset(cfg)
    print(format_summary(cfg, summary))
    return 0
