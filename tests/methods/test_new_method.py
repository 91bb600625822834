"""A new method written by docs/DESIGN.md §11's recipe, and nothing more, runs every flag of
`care pretrain` (gradient checkpointing, validation, checkpoints) and loads for the probes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from care.configs import PretrainConfig
from care.methods.base import MethodConfig
from care.methods.registry import load_pretrained
from care.models.latent_vlm import LatentVLM
from care.methods.model import PretrainedModel
from care.training.pretrain import pretrain
from helpers import make_dataset, micro_configs


@dataclass
class RecipeConfig(MethodConfig):
    """Step 1 of the recipe: a config with the import string of its model."""

    modeling: ClassVar[str] = f"{__name__}:RecipeModel"
    weight: float = 1.0


class RecipeModel(PretrainedModel):
    """Step 2: the latent VLM plus the method's own part, and a forward; no hook overridden."""

    config_class = RecipeConfig

    def __init__(self, cfg, method: RecipeConfig, tokenizer):
        super().__init__()
        self.cfg, self.method = cfg, method
        self.vlm = LatentVLM(cfg, tokenizer)
        self.head = torch.nn.Linear(cfg.latent_dim, cfg.latent_dim)

    def forward(self, batch: dict) -> dict:
        z_star, _ = self.vlm.encode(batch["obs"], batch["instruction"], batch["future_obs"])
        z_hat, _ = self.vlm.encode(batch["obs"], batch["instruction"])
        loss = self.method.weight * (self.head(z_hat) - z_star.detach()).pow(2).mean()
        return {"loss": loss, "loss_recipe": loss.detach()}


@pytest.fixture
def registered():
    MethodConfig.register_subclass("recipe")(RecipeConfig)
    yield
    MethodConfig._choice_registry.pop("recipe", None)


def test_a_method_following_the_recipe_runs_with_gradient_checkpointing(registered, tmp_path):
    root = make_dataset(tmp_path, episodes=4, T=12, size=32, with_tracks=False)
    model, _ = micro_configs()
    cfg = PretrainConfig(dataset=root, output_dir=tmp_path / "run", model=model, method=RecipeConfig(),
                         frame_interval=2, steps=2, batch_size=4, num_workers=0, log_every=1, val_every=1,
                         val_batches=1, save_every=1, mixed_precision="fp32", gradient_checkpointing=True)
    cfg.clip.val_episodes_per_task = 1
    assert pretrain(cfg) == 0
    loaded = load_pretrained(cfg.output_dir)
    assert type(loaded) is RecipeModel
    obs = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    z = loaded.action_latent(obs, obs, ["close the drawer"] * 2)  # what `care probe` reads
    assert z.shape == (2, model.num_latents, model.latent_dim)
