"""Which simulator, and how it renders: a draccus choice registry, as LeRobot's `EnvConfig`.

    care collect --env.type=metaworld --env.tasks=MT10 --env.size=128
    care collect --env.tasks=reach-v3          # --env.type defaults to metaworld

A config file names the simulator with `type:` (`env: {type: metaworld, tasks: MT10}`), and
every saved config writes it. A new simulator is a subclass registered under its name, plus
its branch in `care.envs.factory` (which builds the env and lists the tasks).

This module sits at the config layer: it imports no simulator (no mujoco, no metaworld).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import ClassVar

import draccus

__all__ = ["EnvConfig", "MetaWorldEnvConfig"]


@dataclass
class EnvConfig(draccus.ChoiceRegistry, abc.ABC):
    """Fields shared by every simulator.

    Args:
        tasks: the simulator's task selection (a suite name or a comma-separated list).
        size: square image side in pixels. None: the command decides — `care collect` renders
            at the simulator's `default_size`, `care eval` at the size the policy's training
            data was recorded with.
        camera: the simulator camera rendered. None: as `size` (`default_camera` for
            `care collect`, the policy's training camera for `care eval`).
        max_steps: step limit of an episode (the env reports `truncated` there).
    """

    tasks: str = ""
    size: int | None = None
    camera: str | None = None
    max_steps: int = 200

    default_size: ClassVar[int]  # what size=None renders when no policy decides
    default_camera: ClassVar[str]

    @property
    def type(self) -> str:
        """The registered name of this config's simulator ("metaworld")."""
        return self.get_choice_name(self.__class__)

    @classmethod
    def default_choice_name(cls) -> str:
        return "metaworld"  # so `--env.tasks=...` works without `--env.type`

    def __post_init__(self):
        if self.size is not None and self.size < 16:
            raise ValueError(f"env.size must be >= 16 pixels, got {self.size}")
        if self.max_steps < 1:
            raise ValueError(f"env.max_steps must be >= 1, got {self.max_steps}")

    def with_rendering(self, size: int | None = None, camera: str | None = None) -> EnvConfig:
        """A copy whose `size` and `camera` are set: this config's own where given, else the
        arguments, else the simulator's defaults."""
        size = self.size if self.size is not None else size if size is not None else self.default_size
        camera = self.camera if self.camera is not None else camera if camera is not None else self.default_camera
        return replace(self, size=int(size), camera=camera)


@EnvConfig.register_subclass("metaworld")
@dataclass
class MetaWorldEnvConfig(EnvConfig):
    """Meta-World v3 (`care.envs.metaworld.MetaWorldEnv`).

    Args:
        tasks: a suite name ("MT10", "MT50") or a comma-separated list of env names
            ("drawer-close-v3,reach-v3"; the "-v3" may be left out).
        size, camera, max_steps: as in EnvConfig; a size of None renders 128² and a camera of
            None is "corner" (turned upright on capture), unless a policy decides (`care eval`).
    """

    tasks: str = "MT10"

    default_size: ClassVar[int] = 128
    default_camera: ClassVar[str] = "corner"
