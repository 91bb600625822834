"""Build a simulator from its config; the simulator itself is imported only here, on use.

    tasks = resolve_env_tasks(cfg)            # ["reach-v3", ...]; CareError on an unknown one
    env = make_env(cfg, tasks[0], tracks=True)  # a gymnasium.Env
    obs, info = env.reset(seed=0)             # obs["pixels"], obs["agent_pos"]
"""

from __future__ import annotations

from care.envs.configs import EnvConfig, MetaWorldEnvConfig
from care.errors import CareError

__all__ = ["make_env", "resolve_env_tasks"]


def _unsupported(cfg: EnvConfig) -> CareError:
    return CareError(f"env type {cfg.type!r} has no simulator in care.envs.factory (known: metaworld)")


def resolve_env_tasks(cfg: EnvConfig) -> list[str]:
    """The task names `cfg.tasks` selects (a suite expanded, names checked)."""
    if isinstance(cfg, MetaWorldEnvConfig):
        from care.envs.metaworld import resolve_tasks

        return resolve_tasks(cfg.tasks)
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
    raise _unsupported(cfg)
