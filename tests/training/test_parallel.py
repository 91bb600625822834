"""care.training.parallel in one process: what is sharded, the skeleton for export, gradient
clipping, activation checkpointing, FSDP2 on a group of one, and the errors. The two-process
runs are in test_parallel_fsdp2.py."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from care.configs import ParallelConfig
from care.errors import ConfigError
from care.training.parallel import (FullyShardedDataParallel, apply_activation_checkpointing, build_strategy,
                                    clip_grad_norm_, meta_skeleton, transformer_blocks)


def _micro(seed: int = 0):
    from care.methods.care.configuration_care import CareConfig
    from care.methods.registry import model_class
    from care.models.tokenizer import build_tokenizer
    from care.presets import get_preset

    cfg, method = get_preset("micro"), CareConfig().preset("micro")
    torch.manual_seed(seed)
    model = model_class(method)(cfg, method, build_tokenizer(cfg, ["close the drawer", "press the button"]))
    g = torch.Generator().manual_seed(1)
    B, S = 4, cfg.image_size
    tracks = torch.rand(B, 6, 2, generator=g) * (S - 1)
    batch = {"obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
             "future_obs": torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g),
             "instruction": ["close the drawer"] * B, "tracks": tracks, "future_tracks": tracks + 1.0,
             "visible": torch.ones(B, 6, dtype=torch.bool)}
    model.prepare_training(batch)
    return model, batch


def _step(model, batch, opt, max_norm=1.0):
    loss = model(batch)["loss"]
    loss.backward()
    norm = clip_grad_norm_(list(model.parameters()), max_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.after_optimizer_step()
    return float(loss.detach()), float(norm)


ACC = SimpleNamespace(mixed_precision="no", device=torch.device("cpu"), is_main_process=True)


@pytest.fixture
def group_of_one():
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_blocks_are_the_transformer_layers_of_every_part():
    model, _ = _micro()
    names = {id(m): n for n, m in model.named_modules()}
    blocks = [names[id(parent[i])] for parent, i in transformer_blocks(model)]
    assert "vlm.llm.layers.0" in blocks and "vlm.llm.layers.1" in blocks
    assert "vlm.vision.towers.siglip.model.encoder.layers.0" in blocks
    assert "vlm.vision.towers.dinov2.model.encoder.layer.0" in blocks
    assert "frame_decoder.blocks.0" in blocks and "point_decoder.blocks.0" in blocks
    assert "target_encoder.towers.siglip.model.encoder.layers.0" in blocks  # the EMA copy too
    assert not any(b.startswith(a + ".") for a in blocks for b in blocks)  # none inside another


def test_skeleton_has_no_parameter_memory_and_keeps_buffers():
    model, _ = _micro()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    skel = meta_skeleton(model)
    assert all(p.device.type == "meta" for p in skel.parameters())
    assert [n for n, _ in skel.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert [p.requires_grad for p in skel.parameters()] == [p.requires_grad for p in model.parameters()]
    tower = skel.vlm.vision.towers["siglip"]
    assert tower.mean_.device.type == "cpu" and torch.equal(tower.mean_, model.vlm.vision.towers["siglip"].mean_)
    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k


def test_clip_grad_norm_of_plain_tensors_matches_torch():
    a = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    for p, q in zip(a, b):
        p.grad = torch.randn_like(p) * 3
        q.grad = p.grad.clone()
    ours = clip_grad_norm_(a, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(b, 1.0)
    torch.testing.assert_close(ours, ref)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad)


def test_activation_checkpointing_keeps_keys_and_gradients():
    model, batch = _micro()
    ref = copy.deepcopy(model)
    n = apply_activation_checkpointing(model)
    assert n == len(transformer_blocks(ref))
    assert model.state_dict().keys() == ref.state_dict().keys()  # checkpoints load either way
    model(batch)["loss"].backward()
    ref(batch)["loss"].backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_fsdp2_in_one_process_trains_and_exports_like_the_plain_model(group_of_one):
    from torch.distributed.tensor import DTensor

    model, batch = _micro()
    ref = copy.deepcopy(model)
    strategy = build_strategy(ParallelConfig(strategy="fsdp2", activation_checkpointing=True), ACC)
    assert isinstance(strategy, FullyShardedDataParallel) and dist.get_world_size() == 1
    model = strategy.apply(model)
    params = dict(model.named_parameters())
    up = next(p for n, p in params.items() if n.startswith("vlm.llm.layers.0.") and n.endswith("up_proj.weight"))
    assert isinstance(up, DTensor)
    assert not isinstance(params["uwl.log_vars.point"], DTensor)  # 0-d: replicated
    opt, opt_ref = (torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (model, ref))
    for _ in range(3):
        la, na = _step(model, batch, opt)
        lb, nb = _step(ref, batch, opt_ref)
        assert la == pytest.approx(lb, rel=1e-5) and na == pytest.approx(nb, rel=1e-4)
    out = strategy.export(model, ACC)
    assert type(out) is type(ref) and not isinstance(next(out.parameters()), DTensor)
    for (k, v), w in zip(out.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(v, w, atol=1e-5, rtol=1e-4, msg=k)


def test_wrong_checkpoints_are_refused(tmp_path, group_of_one):
    sharded = tmp_path / "step_00000002"
    (sharded / "dcp").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--parallel.strategy fsdp2"):
        build_strategy(ParallelConfig(), ACC).load_checkpoint(sharded, None)
    plain = tmp_path / "step_00000004"
    plain.mkdir()
    with pytest.raises(ConfigError, match="--parallel.strategy ddp"):
        build_strategy(ParallelConfig(strategy="fsdp2"), ACC).load_checkpoint(plain, None)


def test_the_cli_accepts_parallel_flags():
    from care.cli import parse_config
    from care.configs import FinetuneConfig, PretrainConfig

    for cls in (PretrainConfig, FinetuneConfig):
        cfg = parse_config(cls, ["--parallel.strategy", "fsdp2", "--parallel.activation-checkpointing", "true"])
        assert cfg.parallel == ParallelConfig(strategy="fsdp2", activation_checkpointing=True)
