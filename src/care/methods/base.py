"""The method registry's base classes (config layer: imports nothing heavier than draccus)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import draccus

from care.folders import LAM_CONFIG_NAME, LAM_DIR, WEIGHTS_NAME


@dataclass
class MethodConfig(draccus.ChoiceRegistry, abc.ABC):
    """A pretraining method's own settings; the shared latent VLM is `ModelConfig`.

    Subclasses register with `@MethodConfig.register_subclass("<name>")` and name the module
    and class of their model in `modeling` ("care.methods.<name>.modeling_<name>:<Class>").
    `--method.type` picks one; without it, CARE.
    """

    modeling: ClassVar[str] = ""  # "module:Class" of the pretraining model

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @classmethod
    def default_choice_name(cls) -> str:
        return "care"

    def preset(self, name: str) -> "MethodConfig":
        """This method's settings for a named model size (`--preset`); default: unchanged."""
        return self

    def resolve_paths(self, folder) -> "MethodConfig":
        """This config as loaded from the model folder `folder` (e.g. a stage-1 model copied
        into it replaces the original path); default: unchanged."""
        return self

    # --- for checkpoints ---
    # fields that do not change the weights' names or shapes (a checkpoint loads whatever they are)
    non_architectural: ClassVar[frozenset[str]] = frozenset()


@dataclass
class TwoStageConfig(MethodConfig):
    """A method with a stage-1 latent action model (`care lam`) whose latent stage 2 learns
    (care.methods.two_stage). `lam_modeling` names the stage-1 class ("module:Class").

    Args:
        lam: the `care lam` folder whose latent stage 2 learns. Required by `care pretrain`;
            refused by `care lam`. A stage-2 folder keeps a copy in <folder>/lam (with its
            episodes.json), so it loads and probes without the original.
    """

    lam_modeling: ClassVar[str] = ""
    # fields stage 2 may set otherwise than its stage-1 run did: its own, and stage-1 training
    # schedules that leave the stage-1 model's weights as they are; any other difference is an error
    stage2_fields: ClassVar[frozenset[str]] = frozenset({"lam"})

    lam: Path | None = None

    def __post_init__(self):
        if self.lam is not None:
            self.lam = Path(self.lam)  # method.json stores it as text

    def resolve_paths(self, folder) -> "TwoStageConfig":
        """A stage-2 folder carries its stage-1 model in <folder>/lam: loading uses that copy."""
        import dataclasses

        own = Path(folder) / LAM_DIR
        if all((own / f).is_file() for f in (LAM_CONFIG_NAME, WEIGHTS_NAME)):
            return dataclasses.replace(self, lam=own)
        return self
