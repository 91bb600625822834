"""The reusable training pieces: data order, collate, checkpoints, optimiser groups, schedule."""

from __future__ import annotations


import pytest
import torch

from care.configs import OptimConfig
from care.training.batching import StepBatchSampler, collate_clips
from care.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from care.training.loop_utils import build_optimizer, warmup_cosine


def test_step_sampler_is_a_function_of_seed_and_step():
    s = StepBatchSampler(10, batch_size=4, seed=3, num_steps=6)
    batches = list(s)
    assert len(batches) == 6 and all(len(b) == 4 for b in batches)
    flat = sum(batches[:5], [])  # 20 positions = 2 epochs: each item twice
    assert sorted(flat) == sorted(list(range(10)) * 2)
    # resuming at step 3 yields exactly the batches 3.. of the full run
    assert list(StepBatchSampler(10, 4, seed=3, start_step=3, num_steps=3)) == batches[3:]
    # 2 processes x 2 = 1 process x 4, shard by shard
    r0 = list(StepBatchSampler(10, 2, num_processes=2, process_index=0, seed=3, num_steps=6))
    r1 = list(StepBatchSampler(10, 2, num_processes=2, process_index=1, seed=3, num_steps=6))
    assert [a + b for a, b in zip(r0, r1)] == batches
    assert list(StepBatchSampler(10, 4, seed=4, num_steps=6)) != batches


def test_collate_pads_point_counts():
    def item(n):
        return {"obs": torch.zeros(3, 4, 4, dtype=torch.uint8), "instruction": "x", "tracks": torch.ones(n, 2),
                "future_tracks": torch.ones(n, 2) * 2, "visible": torch.ones(n, dtype=torch.bool)}

    b = collate_clips([item(3), item(5)])
    assert b["tracks"].shape == (2, 5, 2) and b["future_tracks"].shape == (2, 5, 2)
    assert b["point_valid"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert b["visible"][0, 3:].sum() == 0 and b["instruction"] == ["x", "x"]
    assert "point_valid" not in collate_clips([{"obs": torch.zeros(1), "instruction": "y"}])


def test_checkpoints_are_complete_resumable_and_pruned(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = warmup_cosine(opt, 2, 10)
    for step in range(1, 5):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        save_checkpoint(tmp_path, step, model, opt, sched, {"note": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    (tmp_path / ".tmp-step_00000005").mkdir()  # a save killed half-way is invisible
    (tmp_path / "step_00000009").mkdir()  # no state.json: incomplete
    assert latest_checkpoint(tmp_path).name == "step_00000004"

    expected_next = torch.rand(3)  # RNG state is restored
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    sched2 = warmup_cosine(opt2, 2, 10)
    state = load_checkpoint(latest_checkpoint(tmp_path), model2, opt2, sched2)
    assert state == {"step": 4, "note": 4}
    assert torch.equal(torch.rand(3), expected_next)
    assert torch.equal(model2.weight, model.weight)
    assert sched2.last_epoch == sched.last_epoch and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_checkpoints_of_older_versions_load_and_misfits_are_named(tmp_path):
    """A checkpoint holding weights the model now keeps elsewhere (LAPA's `lam.*`) resumes; one of
    another architecture is a ConfigError naming the tensor and the advice."""
    from safetensors.torch import load_file, save_file

    from care.errors import ConfigError

    class Stage2(torch.nn.Linear):
        stored_elsewhere = ("lam.",)

    model = Stage2(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = warmup_cosine(opt, 2, 10)
    path = save_checkpoint(tmp_path, 1, model, opt, sched)
    weights = load_file(str(path / "model.safetensors"))
    save_file({**weights, "lam.codebook": torch.zeros(4, 2)}, str(path / "model.safetensors"))
    fresh = Stage2(3, 2)
    assert load_checkpoint(path, fresh, hint="Resume with the config that made it.")["step"] == 1
    assert torch.equal(fresh.weight, model.weight)
    with pytest.raises(ConfigError, match=r"weight: \(2, 3\) vs \(5, 3\).*Resume with the config"):
        load_checkpoint(path, Stage2(3, 5), hint="Resume with the config that made it.")


def test_optimizer_groups_and_schedule():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.log_vars = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.zeros(()))})
            self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)

    opt = build_optimizer(M(), OptimConfig(lr=1e-3, weight_decay=0.1), {"log_vars": 1e-2})
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["decay"]["weight_decay"] == 0.1 and len(groups["decay"]["params"]) == 1  # fc.weight only
    assert groups["no_decay"]["weight_decay"] == 0.0 and len(groups["no_decay"]["params"]) == 3
    assert groups["log_vars"]["lr"] == 1e-2 and groups["log_vars"]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == 5  # the frozen layer is left out

    sched = warmup_cosine(opt, warmup_steps=4, total_steps=20, min_ratio=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3 / 4) and lrs[3] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] == pytest.approx(1e-4, rel=0.1)


def test_checkpoint_rng_state_round_trips_without_unpickling(tmp_path):
    """RNG states are saved in a form torch.load(weights_only=True) accepts, and restored exactly."""
    import random

    import numpy as np
    import torch

    from care.training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint(tmp_path, 7, model, opt, sched)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = load_checkpoint(path, model, opt, sched)
    assert state["step"] == 7
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
