"""Build a simulator from its config; the simulator itself is imported only here, on use.

    tasks = resolve_env_tasks(cfg)            # ["reach-v3", ...]; CareError on an unknown one
    env = make_env(cfg, tasks[0], tracks=True)  # a gymnasium.Env
    obs, info = env.reset(seed=0)             # obs["pixels"], obs["agent_pos"]
"""

from __future__ import annotations

from care.envs.configs import EnvConfig, LiberoEnvConfig, MetaWorldEnvConfig
from care.errors import CareError

__all__ = ["make_env", "resolve_env_tasks", "task_instruction", "env_fps", "env_names"]


def _unsupported(cfg: EnvConfig) -> CareError:
    return CareError(f"env type {cfg.type!r} has no simulator in care.envs.factory (known: metaworld, libero)")


def resolve_env_tasks(cfg: EnvConfig) -> list[str]:
    """The task names `cfg.tasks` selects (a suite expanded, names checked)."""
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import resolve_tasks

        return resolve_tasks(cfg.tasks)
    if isinstance(cfg, LiberoEnvConfig):
        from care.envs.libero import resolve_tasks

        return resolve_tasks(cfg.suite, cfg.tasks)
    raise _unsupported(cfg)


def task_instruction(cfg: EnvConfig, task: str, seed: int) -> str:
    """The instruction an episode of `task` with `seed` is given (Meta-World: a paraphrase
    chosen by the seed; LIBERO: the task's one sentence)."""
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import instruction_for

        return instruction_for(task, seed)
    if isinstance(cfg, LiberoEnvConfig):
        from care.envs.libero import task_instruction as libero_instruction

        return libero_instruction(cfg.suite, task)
    raise _unsupported(cfg)


def env_fps(cfg: EnvConfig) -> float:
    """Control rate of the simulator (frames per second of its recordings)."""
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import METAWORLD_FPS

        return METAWORLD_FPS
    if isinstance(cfg, LiberoEnvConfig):
        from care.envs.libero import LIBERO_FPS

        return LIBERO_FPS
    raise _unsupported(cfg)


def env_names(cfg: EnvConfig) -> dict:
    """{"robot_type": ..., "action": [names], "observation.state": [names]} of the simulator's
    recordings."""
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import ACTION_NAMES, STATE_NAMES

        return {"robot_type": "sawyer", "action": ACTION_NAMES, "observation.state": STATE_NAMES}
    if isinstance(cfg, LiberoEnvConfig):
        from care.envs.libero import ACTION_NAMES, STATE_NAMES

        return {"robot_type": "panda", "action": ACTION_NAMES, "observation.state": STATE_NAMES}
    raise _unsupported(cfg)


def make_env(cfg: EnvConfig, task: str, **kw):
    """The simulator `cfg` names, running `task` (one of `resolve_env_tasks(cfg)`).

    `cfg.size` / `cfg.camera` of None render the simulator's defaults; keyword arguments go to
    the env's constructor and win over the config (MetaWorldEnv: size, camera, seed,
    max_steps, tracks, points_per_body, render_mode).
    """
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import MetaWorldEnv

        cfg = cfg.with_rendering()
        kw = {"size": cfg.size, "camera": cfg.camera, "max_steps": cfg.max_steps, **kw}
        return MetaWorldEnv(task, **kw)
    if isinstance(cfg, LiberoEnvConfig):
        from care.envs.libero import LiberoEnv

        cfg = cfg.with_rendering()
        kw = {"size": cfg.size, "camera": cfg.camera, "max_steps": cfg.max_steps, "wrist": cfg.wrist,
              "num_steps_wait": cfg.num_steps_wait, **({"init_states": cfg.init_states} if cfg.init_states else {}), **kw}
        return LiberoEnv(cfg.suite, task, **kw)
    raise _unsupported(cfg)
