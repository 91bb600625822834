"""Rollouts: a policy drives simulators until success or the step limit.

    result = run_episode(env, policy, instruction, seed, max_steps, record=True)
    results = run_episodes(envs, policy, instructions, seeds, max_steps, record=[True, False])

`run_episodes` steps several environments in lockstep with one batched policy call per step;
an environment that finishes drops out of the batch (`policy.keep`), the others go on. Each
episode is the one `run_episode` gives for the same seed: the policy is batch-invariant (each
row of a batched forward equals the batch-1 forward, tests/evaluation/test_rollout.py) and the
chunk schedule of every member starts at step 0.

The policy sees exactly the frames `env.reset` / `env.step` return (`obs["pixels"]`: upright
uint8 frames at the dataset's recorded size and camera); resizing to the model's input happens
inside the policy, with the same function the training clips use.

Frames nobody reads are not rendered: between two chunk plans (`policy.needs_frame()` False)
and when the episode is not recorded, the env steps with `render_on_step = False` (care's envs;
others always render) and the policy gets image None. Rendering is most of a step's cost
(LIBERO: ~2/3), and the episode is the same (tests/evaluation/test_rollout.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


def _render_next(env, need: bool) -> None:
    """Tell a care env whether its next step must render (an env without the switch always does)."""
    env = getattr(env, "unwrapped", env)
    if hasattr(env, "render_on_step"):
        env.render_on_step = need


class RenderEveryStep:
    """`env` without its render switch: a rollout on it renders every step, as before the
    switch existed (benchmarks/eval_frames.py and the tests compare the two)."""

    def __init__(self, env):
        self.wrapped, self.env_name = env, getattr(env, "env_name", "")

    def reset(self, **kw):
        return self.wrapped.reset(**kw)

    def step(self, action):
        return self.wrapped.step(action)


def _needs_frame(policy) -> bool:
    return bool(getattr(policy, "needs_frame", lambda: True)())


@dataclass
class EpisodeResult:
    task: str
    episode: int  # index within the task
    seed: int
    instruction: str
    success: bool
    length: int  # env steps taken (the step of first success, or max_steps)
    sum_reward: float | None = None  # the env's rewards summed over the steps taken
    wall_s: float = 0.0
    video_path: str | None = None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)  # only when recorded

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "episode_ix": self.episode,
            "seed": self.seed,
            "instruction": self.instruction,
            "success": self.success,
            "length": self.length,
            "sum_reward": self.sum_reward,
            "wall_s": round(self.wall_s, 3),
            "video_path": self.video_path,
        }


def run_episode(env, policy, instruction: str, seed: int, max_steps: int, record: bool = False) -> EpisodeResult:
    """Reset `env` with `seed`, then step `policy`'s actions until success, the env's end of
    the episode (terminated or truncated) or `max_steps`.

    `env` is a gymnasium env as care.envs.metaworld.MetaWorldEnv: observations hold the frame
    under "pixels", step infos say `is_success`. `policy` follows care.policy.CarePolicy.
    """
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    image = obs["pixels"]
    policy.reset()
    frames = [image] if record else []
    success, steps, sum_reward = False, 0, 0.0
    reads_state = getattr(policy, "state_dim", 0) > 0
    reads_wrist = getattr(policy, "wrist_camera", None) is not None
    try:
        for steps in range(1, max_steps + 1):
            # the state, when the policy reads one: the full recorded vector (the policy picks its dims)
            state = obs["agent_pos"] if reads_state else None
            action = (policy.select_action(image, instruction, state, wrist=obs.get("wrist_pixels")) if reads_wrist
                      else policy.select_action(image, instruction, state))
            _render_next(env, record or _needs_frame(policy))
            obs, reward, terminated, truncated, info = env.step(action)
            image = obs["pixels"]
            sum_reward += float(reward)
            success = bool(info.get("is_success", False))
            if record:
                frames.append(image)
            if success or terminated or truncated:
                break
    finally:
        _render_next(env, True)
    return EpisodeResult(
        task=getattr(env, "env_name", ""),
        episode=-1,
        seed=seed,
        instruction=instruction,
        success=bool(success),
        length=steps,
        sum_reward=sum_reward,
        wall_s=time.perf_counter() - t0,
        frames=frames,
    )


def run_episodes(envs: list, policy, instructions: list[str], seeds: list[int], max_steps: int,
                 record: list[bool] | None = None) -> list[EpisodeResult]:
    """Reset envs[i] with seeds[i] and step them all in lockstep: one batched `select_action`
    per step over the environments still running; each stops at its first success, its env's end
    of episode or `max_steps`. Returns one EpisodeResult per environment, in order (wall_s is the
    batch's time shared out evenly: the environments ran together)."""
    n = len(envs)
    if not (n == len(instructions) == len(seeds)) or n == 0:
        raise ValueError(f"need as many envs, instructions and seeds (>= 1): {n}, {len(instructions)}, {len(seeds)}")
    record = list(record) if record is not None else [False] * n
    t0 = time.perf_counter()
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    policy.reset()
    frames = [[o["pixels"]] if rec else [] for o, rec in zip(obs, record)]
    success, length, sum_reward = [False] * n, [0] * n, [0.0] * n
    reads_state = getattr(policy, "state_dim", 0) > 0
    reads_wrist = getattr(policy, "wrist_camera", None) is not None
    live = list(range(n))  # environments still running, in batch-row order

    def stack(key):  # the live envs' frames, or None on a step between plans (not rendered)
        xs = [obs[i].get(key) for i in live]
        return np.stack(xs) if all(x is not None for x in xs) else None

    try:
        for step in range(1, max_steps + 1):
            images = stack("pixels")
            state = np.stack([obs[i]["agent_pos"] for i in live]) if reads_state else None
            if reads_wrist:
                actions = policy.select_action(images, [instructions[i] for i in live], state,
                                               wrist=stack("wrist_pixels"))  # (B, A)
            else:
                actions = policy.select_action(images, [instructions[i] for i in live], state)  # (B, A)
            need = _needs_frame(policy)
            still = []
            for row, i in enumerate(live):
                _render_next(envs[i], need or record[i])
                obs[i], reward, terminated, truncated, info = envs[i].step(actions[row])
                sum_reward[i] += float(reward)
                success[i] = bool(info.get("is_success", False))
                length[i] = step
                if record[i]:
                    frames[i].append(obs[i]["pixels"])
                if not (success[i] or terminated or truncated):
                    still.append(row)
            if not still:
                break
            if len(still) < len(live):
                policy.keep(still)
                live = [live[row] for row in still]
    finally:
        for env in envs:
            _render_next(env, True)
    wall = (time.perf_counter() - t0) / n
    return [
        EpisodeResult(task=getattr(envs[i], "env_name", ""), episode=-1, seed=seeds[i], instruction=instructions[i],
                      success=success[i], length=length[i], sum_reward=sum_reward[i], wall_s=wall, frames=frames[i])
        for i in range(n)
    ]
