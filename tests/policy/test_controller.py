"""CarePolicy: batched / unbatched actions, the chunk queue, resizing, LoRA merge, bad folders."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from care.configs import ActionHeadConfig, FinetuneConfig, LoRAConfig
from care.data.clips import resize_frames
from care.errors import ConfigError
from care.methods.care.configuration_care import CareConfig
from care.methods.care.modeling_care import CareModel
from care.presets import get_preset
from care.models.tokenizer import train_bpe_tokenizer
from care.models.vla import has_lora, merge_lora
from care.policy import CarePolicy, save_policy
from care.training.finetune import build_policy_model
from helpers import INSTR, META, images, micro_model, normalizer


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy")
    save_policy(out, merge_lora(micro_model()), normalizer(), META)
    return out


def test_unbatched_and_batched_agree(policy_dir):
    policy = CarePolicy.from_pretrained(policy_dir)
    imgs = images(2)
    batched = policy.select_action(imgs, INSTR)
    assert batched.shape == (2, 4) and batched.dtype == np.float32
    for i in range(2):
        policy.reset()
        one = policy.select_action(imgs[i], INSTR[i])
        assert one.shape == (4,)
        np.testing.assert_allclose(one, batched[i], atol=1e-5)
    norm = policy.normalizer
    assert np.all(batched >= norm.low - 1e-6) and np.all(batched <= norm.high + 1e-6)
    assert np.all(batched[:, 3] == norm.low[3])  # the zero-width dim un-normalises to its constant
    with pytest.raises(ValueError, match="without reset"):
        policy.select_action(imgs, INSTR)  # batch of 2 after a batch of 1
    with pytest.raises(ValueError, match="instruction"):
        policy.select_action(imgs[0], INSTR)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_batched_forward_equals_batch_one_bit_for_bit(precision, tmp_path):
    """What lockstep evaluation relies on: every row of a batch is exactly its batch-1 action
    (not just close): with and without a state token, in fp32 and under bf16 autocast."""
    from care.models.precision import autocast

    model = micro_model()
    state_model = build_policy_model(FinetuneConfig(pretrained=None, head=ActionHeadConfig(chunk_size=3, width=32),
                                                    lora=LoRAConfig(enabled=False)),
                                     copy.deepcopy(model.vlm), action_dim=4, state_dim=5).eval()
    imgs = torch.from_numpy(images(5, size=32).transpose(0, 3, 1, 2).copy())
    instr = [INSTR[i % 2] for i in range(5)]
    states = torch.randn(5, 5)
    with torch.no_grad(), autocast(precision):
        for net, st in ((model, None), (state_model, states)):
            full = net(imgs, instr, st)
            for B in (1, 2, 4):
                torch.testing.assert_close(net(imgs[:B], instr[:B], None if st is None else st[:B]), full[:B],
                                           rtol=0, atol=0)
    # the state model is a real one: its state token changes the actions
    with torch.no_grad():
        assert not torch.equal(state_model(imgs, instr, states), state_model(imgs, instr, states + 1))


def test_bf16_inference_is_close_to_fp32_and_repeatable(policy_dir):
    fp32 = CarePolicy.from_pretrained(policy_dir)
    bf16 = CarePolicy.from_pretrained(policy_dir, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert CarePolicy.from_pretrained(policy_dir, precision="auto").precision == "fp32"  # tests: no native bf16
    imgs = images(3)
    a, b = fp32.predict_chunk(imgs, INSTR + INSTR[:1]), bf16.predict_chunk(imgs, INSTR + INSTR[:1])
    span = fp32.normalizer.high - fp32.normalizer.low
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # it did compute in bf16
    assert np.all(np.abs(a - b) <= 0.05 * span + 1e-6)
    np.testing.assert_array_equal(b, bf16.predict_chunk(imgs, INSTR + INSTR[:1]))
    with pytest.raises(ValueError, match="precision must be one of"):
        CarePolicy.from_pretrained(policy_dir, precision="int8")


def test_keep_drops_finished_rows_and_the_rest_go_on(policy_dir):
    for execution in ("chunk", "ensemble"):
        policy = CarePolicy.from_pretrained(policy_dir, execution=execution)
        imgs = images(3)
        first = policy.select_action(imgs, [INSTR[0], INSTR[1], INSTR[0]])
        policy.keep([0, 2])  # row 1 finished
        second = policy.select_action(imgs[[0, 2]], [INSTR[0], INSTR[0]])
        for i, row in ((0, 0), (1, 2)):  # each survivor's actions are those it gets alone
            alone = CarePolicy.from_pretrained(policy_dir, execution=execution)
            a1 = alone.select_action(imgs[row], [INSTR[0], INSTR[1], INSTR[0]][row])
            a2 = alone.select_action(imgs[row], [INSTR[0], INSTR[1], INSTR[0]][row])
            np.testing.assert_array_equal(first[row], a1)
            np.testing.assert_array_equal(second[i], a2)
        with pytest.raises(ValueError, match="subset of 0..1"):
            policy.keep([2])
        policy.reset()
        with pytest.raises(RuntimeError, match="before the first"):
            policy.keep([0])


def test_chunk_queue_plans_every_H_calls_and_ensemble_every_call(policy_dir):
    for execution, expected_calls in (("chunk", 3), ("ensemble", 7)):
        policy = CarePolicy.from_pretrained(policy_dir, execution=execution)
        calls = []
        forward = policy.model.forward
        policy.model.forward = lambda *a: calls.append(1) or forward(*a)
        img = images(1)[0]
        chunk = policy.predict_chunk(img[None], INSTR[:1])[0]  # (H=3, A): what the queue holds
        calls.clear()
        policy.reset()
        out = [policy.select_action(img, INSTR[0]) for _ in range(7)]
        assert len(calls) == expected_calls, execution
        if execution == "chunk":  # same image: each chunk is the same, executed in order
            for t in range(7):
                np.testing.assert_allclose(out[t], chunk[t % 3], atol=1e-5)
        else:  # same prediction every step: blending identical predictions changes nothing
            np.testing.assert_allclose(out[0], chunk[0], atol=1e-5)
            w = np.exp(-0.1 * np.arange(3))
            np.testing.assert_allclose(out[4], (w * chunk[::-1, :].T).sum(-1) / w.sum(), atol=1e-5)


def test_images_are_resized_like_the_training_clips(policy_dir):
    policy = CarePolicy.from_pretrained(policy_dir)
    seen = []
    forward = policy.model.forward
    policy.model.forward = lambda obs, *a: seen.append(obs.clone()) or forward(obs, *a)
    img = images(1, size=48)[0]
    policy.select_action(img, INSTR[0])
    assert seen[0].shape == (1, 3, 32, 32) and seen[0].dtype == torch.uint8
    expected = torch.from_numpy(resize_frames(img[None], 32).transpose(0, 3, 1, 2).copy())
    assert torch.equal(seen[0], expected)
    with pytest.raises(ValueError, match="uint8"):
        policy.select_action(img.astype(np.float32), INSTR[0])


def test_lora_merge_gives_the_same_actions(tmp_path):
    model = micro_model(lora=True)
    assert has_lora(model)
    obs = torch.from_numpy(images(3, size=32).transpose(0, 3, 1, 2).copy())
    instr = [INSTR[0], INSTR[1], INSTR[0]]
    with torch.no_grad():
        unmerged = model(obs, instr)
        merged_model = merge_lora(copy.deepcopy(model))
        assert not has_lora(merged_model)
        merged = merged_model(obs, instr)
    assert (unmerged - model.head(model.vlm.encode(obs, instr)[1])).abs().max() == 0
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)
    # the adapters do matter: without them the actions differ
    with torch.no_grad(), model.vlm.llm.disable_adapter():
        assert (model(obs, instr) - unmerged).abs().max() > 1e-3
    # and the saved, merged policy reproduces the unmerged training model
    norm = normalizer()
    save_policy(tmp_path, merged_model, norm, {**META, "frame_hw": [32, 32]})  # the frames it is fed
    policy = CarePolicy.from_pretrained(tmp_path)
    got = policy.predict_chunk(obs.permute(0, 2, 3, 1).numpy(), instr)
    np.testing.assert_allclose(got, norm.unnormalize(unmerged.numpy().astype(np.float64)), atol=1e-5)


def test_bad_folders_error_clearly(tmp_path, policy_dir):
    with pytest.raises(ConfigError, match="not found"):
        CarePolicy.from_pretrained(tmp_path / "missing")
    # a pretraining checkpoint is not a policy
    mcfg = get_preset("micro")
    CareModel(mcfg, CareConfig().preset("micro"), train_bpe_tokenizer(INSTR, mcfg.vocab_size)).save_pretrained(
        tmp_path / "pre")
    with pytest.raises(ConfigError, match="not a policy.*care finetune --pretrained"):
        CarePolicy.from_pretrained(tmp_path / "pre")
    # weights from a run with another config (chunk size 5 vs 3)
    other = tmp_path / "other"
    save_policy(other, merge_lora(micro_model(chunk_size=5)), normalizer(), META)
    mixed = tmp_path / "mixed"
    import shutil

    shutil.copytree(policy_dir, mixed)
    shutil.copy(other / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(ConfigError, match=r"does not fit.*head\.out_proj.*re-run `care finetune`"):
        CarePolicy.from_pretrained(mixed)
    # a head that does not fit the VLM it sits on
    meta = json.loads((policy_dir / "policy_config.json").read_text())
    meta["head"]["input_dim"] += 1
    shutil.copytree(policy_dir, tmp_path / "mixed2")
    (tmp_path / "mixed2" / "policy_config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="mixes files of two runs"):
        CarePolicy.from_pretrained(tmp_path / "mixed2")


def test_needs_frame_says_when_the_image_is_read(policy_dir):
    """"chunk": the network runs every H calls; between plans the image is not read, so None is
    accepted and gives the same queued action; at a plan step None is an error."""
    img = images(1)[0]
    ref = CarePolicy.from_pretrained(policy_dir)
    ref.reset()
    expected = [ref.select_action(img, INSTR[0]) for _ in range(7)]
    policy = CarePolicy.from_pretrained(policy_dir)
    policy.reset()
    got, needs = [], []
    for _ in range(7):
        needs.append(policy.needs_frame())
        got.append(policy.select_action(img if needs[-1] else None, INSTR[0]))
    assert needs == [True, False, False, True, False, False, True]  # H = 3
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert got[1].shape == (4,)  # unbatched in, unbatched out
    policy.select_action(None, INSTR[0]), policy.select_action(None, INSTR[0])  # steps 8, 9: queued
    with pytest.raises(ValueError, match="needs the frame"):
        policy.select_action(None, INSTR[0])  # step 10 plans
    policy.reset()
    with pytest.raises(ValueError, match="needs the frame"):
        policy.select_action(None, INSTR[0])  # the first step always plans
    batched = CarePolicy.from_pretrained(policy_dir)
    batched.reset()
    batched.select_action(images(2), INSTR)
    assert batched.select_action(None, INSTR).shape == (2, 4)
    ens = CarePolicy.from_pretrained(policy_dir, execution="ensemble")
    ens.reset()
    ens.select_action(img, INSTR[0])
    assert ens.needs_frame()  # temporal ensembling plans at every step
