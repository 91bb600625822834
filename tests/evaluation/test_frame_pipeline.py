"""Train and eval see the same frames: for one simulator state, the image the policy's network
receives during `care eval` is the frame `care collect` stored, served by the training clips.

Guards the control loop against a flipped / rotated camera, a different resize, a different
camera or frame size between collection and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("metaworld")


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    from care.configs import CollectConfig
    from care.data.collect import collect

    root = tmp_path_factory.mktemp("collect") / "ds"
    collect(CollectConfig(tasks="drawer-close-v3", episodes_per_task=1, size=64, workers=1, seed=0, out=root,
                          max_steps=4, tracks=False))
    return root


def test_policy_sees_the_stored_frame(collected, tmp_path, monkeypatch):
    from care.configs import ClipConfig, EvalConfig, FinetuneConfig
    from care.data.clips import ClipDataset
    from care.data.lerobot import LeRobotDataset
    from care.evaluation.evaluate import evaluate
    from care.evaluation.normalize import fit_action_normalizer
    from care.models.latent_vlm import LatentVLM
    from care.models.presets import get_preset
    from care.models.tokenizer import train_bpe_tokenizer
    from care.policy import CareVLA, merge_lora, preprocess_images, save_policy
    from care.training.finetune import build_policy_model

    ds = LeRobotDataset(collected)
    meta = ds.episode_meta(0)
    mcfg = get_preset("micro")  # 32² input: the 64² stored frames are resized on both sides
    vlm = LatentVLM(mcfg, train_bpe_tokenizer([ds.episode_task(0)], mcfg.vocab_size))
    model = build_policy_model(FinetuneConfig(pretrained="none", head_width=16), vlm, action_dim=4)

    clip_ds = ClipDataset(ds, frame_interval=0, action_horizon=1, clip=ClipConfig(image_size=mcfg.image_size))
    policy_dir = tmp_path / "policy"
    save_policy(policy_dir, merge_lora(model), fit_action_normalizer(ds.episode_actions(0)),
                {"camera": clip_ds.camera, "frame_hw": list(clip_ds.stored_hw), "train_seeds": {}})

    seen = []
    real_forward = CareVLA.forward
    monkeypatch.setattr(CareVLA, "forward", lambda self, obs, instr: seen.append(obs.clone()) or real_forward(self, obs, instr))
    evaluate(EvalConfig(policy=policy_dir, tasks=meta["env_name"], episodes_per_task=1, seed=int(meta["seed"]),
                        max_steps=1, workers=1, videos_per_task=0, output_dir=tmp_path / "eval"))
    assert len(seen) == 1
    live = seen[0][0]  # (3, 32, 32): what the network got from the live simulator
    stored = clip_ds[0]["obs"]  # what fine-tuning trains on for the same state
    assert live.shape == stored.shape and live.dtype == stored.dtype == torch.uint8

    # exact: the policy's preprocessing of the stored frame is the training clip, bit for bit
    decoded = ds.episode_frames(0)[:1]
    assert torch.equal(preprocess_images(decoded, mcfg.image_size)[0], stored)

    # live render vs stored: only the video codec's error, far below what a flip would cost.
    # (The render is deterministic, so this *is* the codec error: ~3.8 grey levels at 64² -> 32²,
    # mostly yuv420p's halved chroma resolution; flips cost 30-40.)
    def mad(a, b):
        return (a.float() - b.float()).abs().mean().item()

    err = mad(live, stored)
    assert err < 6.0, err
    for name, flipped in {"upside down": live.flip(1), "mirrored": live.flip(2), "rotated": live.flip(1, 2)}.items():
        assert mad(flipped, stored) > 5 * err, name
