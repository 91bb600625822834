"""Which simulator, and how it renders: a draccus choice registry, as LeRobot's `EnvConfig`.

    care collect --env.type=metaworld --env.tasks=MT10 --env.size=128
    care collect --env.tasks=reach-v3          # --env.type defaults to metaworld
    care collect --env.type=libero --env.suite=libero_object

A config file names the simulator with `type:` (`env: {type: metaworld, tasks: MT10}`), and
every saved config writes it. A new simulator is a subclass registered under its name, plus
its branch in `care.envs.factory` (which builds the env and lists the tasks).

This module sits at the config layer: it imports no simulator (no mujoco, no metaworld).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import draccus

from care.errors import CareError

__all__ = ["EnvConfig", "MetaWorldEnvConfig", "LiberoEnvConfig", "LIBERO_MAX_STEPS", "LIBERO_SUITES"]


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


# LIBERO's suites and the protocol's step limits: here, so that configs resolve them without
# importing the simulator (care.envs.libero re-exports them)
LIBERO_MAX_STEPS = {  # policy steps per episode (OpenVLA's max_steps; longest training demo + margin)
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
# LIBERO-PRO's perturbed suites: `<base>_<kind>` for the four 10-task suites
LIBERO_PRO_KINDS = {
    "swap": "objects' positions swapped",
    "lan": "instruction paraphrased",
    "object": "objects replaced by others",
    "task": "a different goal in the same scene",
}
LIBERO_SUITES = list(LIBERO_MAX_STEPS) + [f"{b}_{k}" for b in ("libero_spatial", "libero_object", "libero_goal",
                                                               "libero_10") for k in LIBERO_PRO_KINDS]


def check_libero_suite(suite: str) -> str:
    if suite not in LIBERO_SUITES:
        raise CareError(f"unknown LIBERO suite {suite!r}; use one of: {', '.join(LIBERO_SUITES)}")
    return suite


def libero_max_steps(suite: str) -> int:
    """The protocol's step limit of `suite` (a LIBERO-PRO variant: its base suite's)."""
    check_libero_suite(suite)
    base = next(b for b in LIBERO_MAX_STEPS if suite == b or suite.startswith(b + "_"))
    return LIBERO_MAX_STEPS[base]


@EnvConfig.register_subclass("libero")
@dataclass
class LiberoEnvConfig(EnvConfig):
    """LIBERO (`care.envs.libero.LiberoEnv`; needs the `libero` extra), with the published
    evaluation protocol (docstring of care.envs.libero; README "LIBERO").

    Args:
        suite: libero_spatial | libero_object | libero_goal | libero_10 | libero_90, or a
            LIBERO-PRO variant of the first four: `<suite>_swap` (positions swapped), `_lan`
            (instruction paraphrased), `_object` (objects replaced), `_task` (another goal).
        tasks: "" for every task of the suite, or comma-separated task names or indices ("0,3").
        size: square image side (None: 128 for `care collect`, the policy's for `care eval`).
        camera: "image" (agent view) or "wrist_image" (the public datasets' keys).
        max_steps: policy steps per episode; None: the suite's protocol limit (220 spatial,
            280 object, 300 goal, 520 libero_10, 400 libero_90), set when the config is built.
        init_states: "random" (placements sampled from the episode seed) or "fixed" (the
            suite's 50 initial states per task, episode seed = state index); None: `care collect`
            samples random placements, `care eval` uses the fixed states (the protocol).
        wrist: also record / render the wrist camera ("wrist_image").
        num_steps_wait: settling steps after each reset, not counted (the protocol's 10).
    """

    suite: str = "libero_object"
    tasks: str = ""
    max_steps: int | None = None
    init_states: Literal["random", "fixed"] | None = None
    wrist: bool = False
    num_steps_wait: int = 10

    default_size: ClassVar[int] = 128
    default_camera: ClassVar[str] = "image"

    def __post_init__(self):
        check_libero_suite(self.suite)
        if self.max_steps is None:
            self.max_steps = libero_max_steps(self.suite)
        if self.num_steps_wait < 0:
            raise ValueError(f"env.num_steps_wait must be >= 0, got {self.num_steps_wait}")
        super().__post_init__()
