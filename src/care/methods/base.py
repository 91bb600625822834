"""The method registry's base class (config layer: imports nothing heavier than draccus)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import draccus


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
