"""One rollout: a policy drives a simulator until success or the step limit.

    result = run_episode(env, policy, instruction, seed, max_steps, record=True)

The policy sees exactly the frames `env.reset` / `env.step` return (`obs["pixels"]`: upright
uint8 frames at the dataset's recorded size and camera); resizing to the model's input happens
inside the policy, with the same function the training clips use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


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
    for steps in range(1, max_steps + 1):
        # the state, when the policy reads one: the full recorded vector (the policy picks its dims)
        state = obs["agent_pos"] if reads_state else None
        action = policy.select_action(image, instruction, state)
        obs, reward, terminated, truncated, info = env.step(action)
        image = obs["pixels"]
        sum_reward += float(reward)
        success = bool(info.get("is_success", False))
        if record:
            frames.append(image)
        if success or terminated or truncated:
            break
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
