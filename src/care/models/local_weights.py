"""Loading `transformers` parts (SigLIP, DINOv2, any AutoModel LLM) from local directories only.

care never fetches from a hub: a path must be a folder written by `save_pretrained`.
A path "config-only:DIR" builds the part from DIR/config.json with fresh weights; CARE
checkpoints use it, since their own model.safetensors holds every weight.
"""

from __future__ import annotations

from pathlib import Path

from care.errors import ConfigError
from care.models.attention import ATTN_IMPLEMENTATION

CONFIG_ONLY = "config-only:"


def load_hf_model(model_cls, path: str, what: str):
    """`model_cls` is a `transformers` model class or an auto class (AutoModel: the folder's
    config.json names the architecture, so a Llama, Qwen2 or Mistral dir all load)."""
    if path.startswith(CONFIG_ONLY):
        folder = path[len(CONFIG_ONLY):]
        if hasattr(model_cls, "from_config"):  # an auto class
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(folder)
            config._attn_implementation = ATTN_IMPLEMENTATION
            return model_cls.from_config(config, attn_implementation=ATTN_IMPLEMENTATION)
        config = model_cls.config_class.from_pretrained(folder)
        config._attn_implementation = ATTN_IMPLEMENTATION
        return model_cls(config)
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ConfigError(
            f"{what} weights: {p} is not a local `save_pretrained` directory (no config.json). "
            "care never downloads weights: point the path at a folder saved with save_pretrained."
        )
    return model_cls.from_pretrained(str(p), attn_implementation=ATTN_IMPLEMENTATION)
