"""save_pretrained / from_pretrained, config mismatches, and local pretrained weights."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from care.configs import ViTConfig
from care.errors import ConfigError
from care.methods.care.modeling_care import CareModel
from helpers import make_batch, micro_cfg, micro_configs, micro_method, tok_for


def _outputs(m: CareModel, b: dict) -> dict:
    m.eval()
    with torch.no_grad():
        z, h = m.vlm.encode(b["obs"], b["instruction"], b["future_obs"])
        zp, _ = m.vlm.encode(b["obs"], b["instruction"])
        out = m(b)
    return {"z": z, "h": h, "zp": zp, **{k: v for k, v in out.items()}}


def test_round_trip_gives_identical_outputs(tmp_path):
    cfg, method = micro_configs()
    torch.manual_seed(0)
    m = CareModel(cfg, method, tok_for(cfg))
    b = make_batch(cfg)
    m.init_log_vars(b)
    for _ in range(2):  # move away from init (EMA target, step counter, UWL)
        m.train()
        m(b)["loss"].backward()
        with torch.no_grad():
            for p in m.parameters():
                if p.grad is not None:
                    p.sub_(1e-2 * p.grad)
                    p.grad = None
        m.after_optimizer_step()
    m.save_pretrained(tmp_path / "ckpt")
    assert {"config.json", "method.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "ckpt").iterdir()}
    again = CareModel.from_pretrained(tmp_path / "ckpt")
    assert again.cfg == cfg and again.method == method and int(again.num_updates) == 2
    a, c = _outputs(m, b), _outputs(again, b)
    for k in a:
        torch.testing.assert_close(c[k], a[k], atol=0, rtol=0, msg=k)


def test_loading_into_another_config_names_the_fields(tmp_path):
    cfg, method = micro_configs()
    CareModel(cfg, method, tok_for(cfg)).save_pretrained(tmp_path / "ckpt")
    other = dataclasses.replace(cfg, hidden_size=96, num_latents=3, dino=dataclasses.replace(cfg.dino, num_layers=2))
    with pytest.raises(ConfigError) as e:
        CareModel.from_pretrained(tmp_path / "ckpt", cfg=other)
    msg = str(e.value)
    assert "hidden_size: 64 != 96" in msg and "num_latents: 2 != 3" in msg and "dino.num_layers" in msg
    assert "latent_dim" not in msg
    # non-architectural fields may differ
    ok = CareModel.from_pretrained(tmp_path / "ckpt", method=dataclasses.replace(method, latent_loss_weight=0.3))
    assert ok.method.latent_loss_weight == 0.3
    with pytest.raises(ConfigError, match="decoder_width: 32 != 64"):
        CareModel.from_pretrained(tmp_path / "ckpt", method=dataclasses.replace(method, decoder_width=64))
    with pytest.raises(ConfigError, match="not a pretrained care model"):
        CareModel.from_pretrained(tmp_path / "nothing")
    # a foreign method name in method.json is named, not guessed
    (tmp_path / "ckpt" / "method.json").write_text('{"type": "vqvae9000"}')
    with pytest.raises(ConfigError, match=r"method.json: unknown method 'vqvae9000'"):
        CareModel.from_pretrained(tmp_path / "ckpt")


def test_single_tower_models_are_a_config_change(tmp_path):
    for towers in (("dinov2",), ("siglip",)):
        cfg, method = micro_configs(vision_towers=towers)
        m = CareModel(cfg, method, tok_for(cfg))
        assert list(m.vlm.vision.towers) == list(towers)
        tower_cfg = cfg.dino if towers == ("dinov2",) else cfg.siglip
        assert m.vlm.vision.feature_dim == tower_cfg.hidden_size
        out = m(make_batch(cfg))
        assert torch.isfinite(out["loss"])
        m.save_pretrained(tmp_path / towers[0])
        again = CareModel.from_pretrained(tmp_path / towers[0])
        assert again.cfg.vision_towers == towers


def test_a_local_qwen2_loads_through_automodel(tmp_path):
    """Any causal-LM body `transformers` knows loads from a local dir (here a tiny Qwen2)."""
    from transformers import Qwen2Config, Qwen2Model

    tok = tok_for(micro_cfg())
    torch.manual_seed(0)
    Qwen2Model(Qwen2Config(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(str(tmp_path / "qwen"))
    cfg, method = micro_configs(llm_path=str(tmp_path / "qwen"), hidden_size=48, num_heads=2)
    from care.models.tokenizer import build_tokenizer

    m = CareModel(cfg, method, build_tokenizer(cfg))
    assert type(m.vlm.llm).__name__ == "Qwen2Model"
    b = make_batch(cfg)
    out = _outputs(m, b)
    m.save_pretrained(tmp_path / "care")
    shutil.rmtree(tmp_path / "qwen")  # rebuilt from hf/llm/config.json + model.safetensors
    again = CareModel.from_pretrained(tmp_path / "care")
    assert type(again.vlm.llm).__name__ == "Qwen2Model"
    out2 = _outputs(again, b)
    for k in out:
        torch.testing.assert_close(out2[k], out[k], atol=0, rtol=0, msg=k)


def test_local_pretrained_weights_path(tmp_path):
    """Tiny SigLIP (trained at 24²: interpolated positions) / DINOv2 (patch 7: resized input) /
    Llama checkpoints saved with save_pretrained load from local dirs, and a CARE checkpoint made
    from them reloads without them."""
    from transformers import Dinov2Config, Dinov2Model, LlamaConfig, LlamaModel, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                         num_attention_heads=2, image_size=24, patch_size=8)).save_pretrained(tmp_path / "siglip")
    Dinov2Model(Dinov2Config(hidden_size=24, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                             image_size=28, patch_size=7)).save_pretrained(tmp_path / "dino")
    tok = tok_for(micro_cfg())
    LlamaModel(LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=2)).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(str(tmp_path / "llama"))  # the Llama's "own" tokenizer

    cfg, method = micro_configs(siglip=ViTConfig(path=str(tmp_path / "siglip")),
                                dino=ViTConfig(path=str(tmp_path / "dino")), vision_feature_layer=-2,
                                llm_path=str(tmp_path / "llama"), hidden_size=48, num_heads=2,
                                freeze_vision=True, target_encoder="frozen")
    from care.models.tokenizer import build_tokenizer

    m = CareModel(cfg, method, build_tokenizer(cfg))
    loaded = LlamaModel.from_pretrained(str(tmp_path / "llama"))
    torch.testing.assert_close(m.vlm.llm.layers[0].mlp.up_proj.weight, loaded.layers[0].mlp.up_proj.weight)
    assert len(m.vlm.vision.towers["siglip"].blocks()) == 2  # second-to-last layer of 3
    assert m.vlm.vision.towers["dinov2"].input_size == 28  # a /7 tower sees 28² for the 4x4 grid
    assert m.vlm.vision.feature_dim == 32 + 24
    assert not hasattr(m, "target_encoder")  # frozen towers are their own targets: stored once
    assert not any(p.requires_grad for p in m.vlm.vision.parameters())

    b = make_batch(cfg)
    out = _outputs(m, b)
    m.save_pretrained(tmp_path / "care")
    for d in ("siglip", "dino", "llama"):
        shutil.rmtree(tmp_path / d)  # the checkpoint must not need them
    again = CareModel.from_pretrained(tmp_path / "care")
    out2 = _outputs(again, b)
    for k in out:
        torch.testing.assert_close(out2[k], out[k], atol=0, rtol=0, msg=k)


def test_missing_local_weights_is_a_clear_error(tmp_path):
    cfg, method = micro_configs(siglip=ViTConfig(path=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="not a local `save_pretrained` directory"):
        CareModel(cfg, method, tok_for(cfg))
