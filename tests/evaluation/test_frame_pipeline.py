"""Train and eval see the same frames: for one simulator state, the image the policy's network
receives during `care eval` is the frame `care collect` stored, served by the training clips.

Guards the control loop against a flipped / rotated camera, a different resize, a different
camera or frame size between collection and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("metaworld")


def _collect(tmp_path_factory, **kw):
    from care.configs import CollectConfig
    from care.data.collect import collect
    from care.envs.configs import MetaWorldEnvConfig

    root = tmp_path_factory.mktemp(f"collect_{kw.get('pix_fmt', 'default')}") / "ds"
    collect(CollectConfig(env=MetaWorldEnvConfig(tasks="drawer-close-v3", size=64, max_steps=4), episodes_per_task=1,
                          workers=1, seed=0, output_dir=root, tracks=False, **kw))
    return root


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    return _collect(tmp_path_factory)  # the default pixel format (yuv444p)


@pytest.fixture(scope="module")
def collected_yuv420p(tmp_path_factory):
    """The same episode stored with chroma at half resolution: the control that shows the bound
    on the codec error below is tight enough to notice a loss of that size."""
    return _collect(tmp_path_factory, pix_fmt="yuv420p")


def test_policy_sees_the_stored_frame(collected, collected_yuv420p, tmp_path, monkeypatch):
    from care.configs import ActionHeadConfig, ClipConfig, EvalConfig, FinetuneConfig
    from care.data.clips import ClipDataset
    from care.data.lerobot import LeRobotDataset
    from care.evaluation.evaluate import evaluate
    from care.policy.normalize import fit_action_normalizer
    from care.models.latent_vlm import LatentVLM
    from care.presets import get_preset
    from care.models.tokenizer import train_bpe_tokenizer
    from care.models.vla import CareVLA, merge_lora
    from care.policy import preprocess_images, save_policy
    from care.training.finetune import build_policy_model

    ds = LeRobotDataset(collected)
    meta = ds.episode_meta(0)
    mcfg = get_preset("micro")  # 32² input: the 64² stored frames are resized on both sides
    vlm = LatentVLM(mcfg, train_bpe_tokenizer([ds.episode_task(0)], mcfg.vocab_size))
    model = build_policy_model(FinetuneConfig(pretrained=None, head=ActionHeadConfig(width=16)), vlm, action_dim=4)

    clip_ds = ClipDataset(ds, frame_interval=0, action_horizon=1, clip=ClipConfig(image_size=mcfg.image_size))
    policy_dir = tmp_path / "policy"
    save_policy(policy_dir, merge_lora(model), fit_action_normalizer(ds.episode_actions(0)),
                {"camera": clip_ds.camera, "frame_hw": list(clip_ds.stored_hw), "train_seeds": {}})

    seen = []
    real_forward = CareVLA.forward
    monkeypatch.setattr(CareVLA, "forward",
                        lambda self, obs, *a: seen.append(obs.clone()) or real_forward(self, obs, *a))
    from care.envs.configs import MetaWorldEnvConfig

    # env size and camera left None: rendered as the policy's training data was recorded
    evaluate(EvalConfig(policy=policy_dir, env=MetaWorldEnvConfig(tasks=meta["env_name"], max_steps=1),
                        episodes_per_task=1, seed=int(meta["seed"]), workers=1, videos_per_task=0,
                        output_dir=tmp_path / "eval"))
    assert len(seen) == 1
    live = seen[0][0]  # (3, 32, 32): what the network got from the live simulator
    stored = clip_ds[0]["obs"]  # what fine-tuning trains on for the same state
    assert live.shape == stored.shape and live.dtype == stored.dtype == torch.uint8

    # exact: the policy's preprocessing of the stored frame is the training clip, bit for bit
    decoded = ds.episode_frames(0)[:1]
    assert torch.equal(preprocess_images(decoded, mcfg.image_size)[0], stored)

    # live render vs stored: only the video codec's error, far below what a flip would cost.
    # The render is deterministic, so this *is* the codec error. Measured (drawer-close-v3,
    # seed 0, 64² stored -> 32² input, libx264 crf 18): 2.74 grey levels (mean abs) stored as
    # yuv444p, the default; 3.85 as yuv420p (chroma at half resolution); 32-41 for a flip.
    # The bound lies between the two pixel formats: a 4:2:0-sized loss fails here.
    def mad(a, b):
        return (a.float() - b.float()).abs().mean().item()

    max_err = 3.3
    err = mad(live, stored)
    print(f"live vs stored (yuv444p): {err:.3f} grey levels, bound {max_err}")
    assert err < max_err, err
    ds_420 = LeRobotDataset(collected_yuv420p)
    assert ds_420.episode_meta(0) == meta and np.array_equal(ds_420.episode_actions(0), ds.episode_actions(0))
    stored_420 = ClipDataset(ds_420, frame_interval=0, action_horizon=1, clip=ClipConfig(image_size=mcfg.image_size))
    err_420 = mad(live, stored_420[0]["obs"])
    print(f"live vs stored (yuv420p): {err_420:.3f} grey levels")
    assert err_420 > max_err, f"yuv420p's error {err_420:.3f} passes the bound {max_err}: the bound is too loose"
    for name, flipped in {"upside down": live.flip(1), "mirrored": live.flip(2), "rotated": live.flip(1, 2)}.items():
        assert mad(flipped, stored) > 5 * err, name
