"""Micro fine-tuning end to end: outputs, labelled episodes only, resume, errors, a 1-episode eval."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from care.cli import main, parse_config
from care.configs import ActionHeadConfig, EvalConfig, FinetuneConfig, LoRAConfig, StateInputConfig
from care.data.clips import select_episodes_per_task
from care.data.lerobot import LeRobotDataset
from care.errors import ConfigError
from care.methods.care.modeling_care import CareModel
from care.models.tokenizer import train_bpe_tokenizer
from care.policy import CarePolicy
from care.training import finetune as F
from helpers import REPO_ROOT, micro_configs


def micro_config(root, out, **kw) -> FinetuneConfig:
    cfg = parse_config(FinetuneConfig, ["--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml")])
    cfg = dataclasses.replace(cfg, dataset=root, output_dir=out, steps=8, log_every=1, save_every=0)
    return dataclasses.replace(cfg, **kw)


def read_log(out) -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if r["split"] == "train"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from helpers import make_dataset

    # 6 episodes, 2 tasks (seeds 0..5; seeds 2 and 5 are marked failed)
    return make_dataset(tmp_path_factory.mktemp("data"), episodes=6, T=16, size=32, with_tracks=False)


def test_finetune_writes_a_policy_from_labelled_episodes_only(dataset, tmp_path, monkeypatch):
    read = []
    real = LeRobotDataset.episode_actions
    monkeypatch.setattr(LeRobotDataset, "episode_actions", lambda self, ep: read.append(int(ep)) or real(self, ep))
    out = tmp_path / "run"
    cfg = micro_config(dataset, out, steps=12, episodes_per_task=1, val_every=6)
    assert F.finetune(cfg) == 0

    ds = LeRobotDataset(dataset)
    failed = [e for e in ds.episode_indices if not ds.episode_meta(e)["success"]]
    chosen = select_episodes_per_task(ds, 1, cfg.seed, exclude=failed)
    meta = json.loads((out / "policy_config.json").read_text())
    val = meta["val_episodes"]
    assert len(chosen) == 2 and len(val) == 2 and not set(val) & set(chosen + failed)  # held out, successful
    assert set(read) == set(chosen + val)  # training episodes, and validation ones for the held-out error
    names = {p.name for p in out.iterdir()}
    assert {"run_config.yaml", "config.json", "policy_config.json", "model.safetensors", "normalizer.json",
            "tokenizer.json", "train_log.jsonl", "tensorboard", "finetune_state.json"} <= names
    meta = json.loads((out / "policy_config.json").read_text())
    assert meta["train_episodes"] == chosen and meta["chunk_size"] == 2 and meta["frame_hw"] == [32, 32]
    assert meta["train_seeds"] == {ds.episode_meta(e)["env_name"]: [ds.episode_meta(e)["seed"]] for e in chosen}
    # the action bounds are the labelled episodes' percentiles
    acts = np.concatenate([real(ds, e) for e in chosen]).astype(np.float64)
    policy = CarePolicy.from_pretrained(out)
    np.testing.assert_allclose(policy.normalizer.high, np.quantile(acts, 0.99, axis=0))
    log = read_log(out)
    train_log = {k: v for k, v in log.items() if v["split"] == "train"}
    assert set(train_log) == set(range(1, 13)) and {"l1", "grad_norm", "lr", "samples_per_s"} <= set(log[1])
    # the held-out action error is logged (val_every=6, and at the end) and recorded in the policy
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val_rows] == [6, 12] and all(r["l1"] > 0 for r in val_rows)
    assert meta["val_l1"] == pytest.approx(val_rows[-1]["l1"])
    assert np.mean([log[s]["l1"] for s in (10, 11, 12)]) < np.mean([log[s]["l1"] for s in (1, 2, 3)])
    assert policy.select_action(np.zeros((32, 32, 3), np.uint8), "close the drawer").shape == (4,)


def test_resume_reproduces_the_uninterrupted_run(dataset, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    F.finetune(micro_config(dataset, full, save_every=4))
    import care.training.checkpoint as C  # the loop saves through care.training.parallel's strategy, which calls it

    real_save = C.save_checkpoint

    def save_then_die(*a, **kw):
        real_save(*a, **kw)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(C, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        F.finetune(micro_config(dataset, cut, save_every=4))
    monkeypatch.setattr(C, "save_checkpoint", real_save)
    assert (cut / "checkpoints" / "step_00000004").is_dir() and not (cut / "model.safetensors").exists()
    F.finetune(micro_config(dataset, cut, save_every=4, resume=True))
    a, b = read_log(full), read_log(cut)
    assert set(b) == set(range(1, 9))
    for step in range(5, 9):
        assert abs(a[step]["l1"] - b[step]["l1"]) <= 1e-6, step
    pa, pb = CarePolicy.from_pretrained(full), CarePolicy.from_pretrained(cut)
    for k, v in pa.model.state_dict().items():
        torch.testing.assert_close(pb.model.state_dict()[k], v, atol=1e-6, rtol=0, msg=k)

    # a finished run is not overwritten by accident
    with pytest.raises(ConfigError, match="already holds a fine-tuning run; pass --resume"):
        F.finetune(micro_config(dataset, cut, save_every=4))
    # resuming with another architecture is refused with the differing fields named
    with pytest.raises(ConfigError, match=r"another fine-tuning config: head.chunk_size: 2 \(checkpoint\) vs 3"):
        F.finetune(micro_config(dataset, cut, head=ActionHeadConfig(chunk_size=3, num_blocks=1, width=32), resume=True))


def test_from_a_pretrained_folder(dataset, tmp_path, capsys):
    mcfg, method = micro_configs()
    torch.manual_seed(1)
    pre = CareModel(mcfg, method, train_bpe_tokenizer(["close the drawer", "press the button from the top"],
                                                      mcfg.vocab_size))
    pre.save_pretrained(tmp_path / "pre")
    out = tmp_path / "ft"
    # through the command line, as a user runs it
    assert main(["finetune", "--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml"),
                 "--pretrained", str(tmp_path / "pre"),
                 "--dataset", str(dataset), "--output-dir", str(out), "--steps", "4"]) == 0
    policy = CarePolicy.from_pretrained(out)
    got, want = policy.model.vlm.state_dict(), pre.vlm.state_dict()
    # LoRA leaves what it does not target untouched: the pretrained weights were loaded
    for k in ("llm.embed_tokens.weight", "llm.norm.weight", "llm.layers.0.input_layernorm.weight", "latent_proj.weight"):
        assert torch.equal(got[k], want[k]), k
    # ... and the merged adapters changed the targeted ones
    assert not torch.equal(got["llm.layers.0.self_attn.q_proj.weight"], want["llm.layers.0.self_attn.q_proj.weight"])
    # vision trained fully (freeze_vision=False)
    vk = next(k for k in want if k.startswith("vision.") and want[k].ndim == 2)
    assert not torch.equal(got[vk], want[vk])
    with pytest.raises(ConfigError, match="already a fine-tuned policy"):
        F.finetune(micro_config(dataset, tmp_path / "ft2", pretrained=str(out)))
    # errors reach the user as one line, exit code 2
    assert main(["eval", "--policy", str(tmp_path / "pre")]) == 2
    assert "not a policy" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_micro_finetune_then_one_episode_eval(dataset, tmp_path):
    pytest.importorskip("metaworld")
    from care.evaluation.evaluate import evaluate

    out = tmp_path / "ft"
    F.finetune(micro_config(dataset, out, steps=2, lora=LoRAConfig(enabled=False)))
    ev = tmp_path / "eval"
    from care.envs.configs import MetaWorldEnvConfig

    cfg = EvalConfig(policy=out, env=MetaWorldEnvConfig(tasks="drawer-close-v3", max_steps=6), episodes_per_task=1,
                     workers=1, videos_per_task=1, output_dir=ev)
    assert evaluate(cfg) == 0
    info = json.loads((ev / "eval_info.json").read_text())
    assert {"per_task", "overall", "per_episode", "video_paths"} <= set(info)
    assert {"pc_success", "n_episodes", "avg_episode_length"} <= set(info["overall"])
    # the env's rewards, summed per episode, then averaged
    assert isinstance(info["per_episode"][0]["sum_reward"], float)
    assert info["overall"]["avg_sum_reward"] == info["per_task"][0]["avg_sum_reward"] == info["per_episode"][0]["sum_reward"]
    assert info["config"]["size"] == 32 and info["config"]["max_steps"] == 6  # size as the policy was trained
    row = info["per_task"][0]
    assert row["task"] == "drawer-close-v3" and row["n_episodes"] == 1 and row["seeds"] == [1000]
    assert 1 <= info["per_episode"][0]["length"] <= 6
    assert len(info["video_paths"]) == 1 and (ev / "videos" / "drawer-close-v3" / "episode_000.mp4").stat().st_size > 0
    assert (ev / "eval.md").read_text().count("drawer-close-v3") == 1
    assert (ev / "success.png").is_file() and (ev / "run_config.yaml").is_file()
    # evaluation seeds that the policy was trained on are refused
    with pytest.raises(ConfigError, match="overlap the policy's training episodes"):
        evaluate(dataclasses.replace(cfg, seed=0))
    # an evaluation folder is not overwritten by accident
    with pytest.raises(ConfigError, match="already holds an evaluation"):
        evaluate(cfg)
    assert evaluate(dataclasses.replace(cfg, overwrite=True)) == 0


def test_univla_head_finetunes_and_drives_an_episode(dataset, tmp_path):
    """--head.type univla through the whole command: recorded in policy_config.json, and the
    evaluation's policy loads it and acts."""
    pytest.importorskip("metaworld")
    from care.configs import ActionHeadConfig
    from care.envs.configs import MetaWorldEnvConfig
    from care.evaluation.evaluate import evaluate

    out = tmp_path / "ft"
    F.finetune(micro_config(dataset, out, steps=2, lora=LoRAConfig(enabled=False),
                            head=ActionHeadConfig(type="univla", chunk_size=2, width=32)))
    assert json.loads((out / "policy_config.json").read_text())["head"]["type"] == "univla"
    cfg = EvalConfig(policy=out, env=MetaWorldEnvConfig(tasks="drawer-close-v3", max_steps=4), episodes_per_task=1,
                     workers=1, videos_per_task=0, output_dir=tmp_path / "eval")
    assert evaluate(cfg) == 0
    assert json.loads((tmp_path / "eval" / "eval_info.json").read_text())["per_episode"][0]["length"] >= 1


def test_state_input_trains_saves_and_drives(dataset, tmp_path):
    """--state.enabled: the named state dims are normalised, projected into one token, saved with
    the policy, and demanded (by name of the key) at inference."""
    out = tmp_path / "state"
    ds = LeRobotDataset(dataset)
    all_names = list(ds.features["observation.state"]["names"])
    names = tuple(all_names[1:3])
    cfg = micro_config(dataset, out, steps=6, state=StateInputConfig(enabled=True, names=names))
    assert F.finetune(cfg) == 0
    policy = CarePolicy.from_pretrained(out)
    assert policy.state_dim == 2 and policy.state_indices == [all_names.index(n) for n in names]
    assert policy.meta["state_names"] == list(names)
    img = np.zeros((32, 32, 3), np.uint8)
    full_state = np.zeros(len(all_names), np.float32)
    a = policy.select_action({f"observation.images.{policy.camera}": img, "observation.state": full_state,
                              "task": "close the drawer"})
    assert a.shape == (4,)
    # the state changes the action (the projector is wired in)
    policy.reset()
    chunk0 = policy.predict_chunk(img[None], ["close the drawer"], full_state[None])
    moved = full_state.copy()
    moved[policy.state_indices] = 5.0
    chunk1 = policy.predict_chunk(img[None], ["close the drawer"], moved[None])
    assert not np.allclose(chunk0, chunk1)
    policy.reset()
    with pytest.raises(ValueError, match="reads a 2-d state"):
        policy.select_action(img, "close the drawer")
    with pytest.raises(ConfigError, match=r"wrist_roll.*are not state dimensions"):
        F.finetune(micro_config(dataset, tmp_path / "bad", state=StateInputConfig(enabled=True, names=("wrist_roll",))))


def test_wrist_camera_trains_saves_and_drives(tmp_path):
    """--clip.wrist-camera: a second view goes through the towers beside the main one, the policy
    folder records it, inference demands it (by its key in an observation dict), and it changes
    the action; a dataset without that camera is a clear error."""
    from helpers import make_dataset

    from care.configs import ClipConfig
    from care.errors import DatasetError

    root = make_dataset(tmp_path, episodes=4, T=12, size=32, with_tracks=False, cameras=("image", "wrist_image"))
    out = tmp_path / "wrist"
    cfg = micro_config(root, out, steps=4, clip=ClipConfig(camera="image", wrist_camera="wrist_image"))
    assert F.finetune(cfg) == 0
    policy = CarePolicy.from_pretrained(out)
    assert (policy.camera, policy.wrist_camera, policy.model.has_wrist) == ("image", "wrist_image", True)
    img, wrist = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 200, np.uint8)
    obs = {"observation.images.image": img, "observation.images.wrist_image": wrist, "task": "close the drawer"}
    a = policy.select_action(obs)
    policy.reset()
    np.testing.assert_array_equal(a, policy.select_action(img, "close the drawer", wrist=wrist))
    chunk0 = policy.predict_chunk(img[None], ["close the drawer"], wrist=wrist[None])
    chunk1 = policy.predict_chunk(img[None], ["close the drawer"], wrist=255 - wrist[None])
    assert not np.allclose(chunk0, chunk1)  # the wrist view reaches the action
    policy.reset()
    with pytest.raises(ValueError, match="also reads the 'wrist_image' camera"):
        policy.select_action(img, "close the drawer")
    with pytest.raises(DatasetError, match="wrist_cam"):
        F.finetune(micro_config(root, tmp_path / "bad", clip=ClipConfig(camera="image", wrist_camera="wrist_cam")))


def test_augmented_training_sees_shifted_images_and_resume_names_the_shift(dataset, tmp_path):
    from care.configs import AugmentConfig

    plain, aug = tmp_path / "plain", tmp_path / "aug"
    F.finetune(micro_config(dataset, plain))
    F.finetune(micro_config(dataset, aug, augment=AugmentConfig(shift=4), save_every=4))
    a, b = read_log(plain), read_log(aug)
    assert a[1]["l1"] != b[1]["l1"]  # the same weights and batch, other pixels
    assert all(np.isfinite(b[s]["l1"]) for s in b)
    with pytest.raises(ConfigError, match=r"augment_shift: 4 \(checkpoint\) vs None"):
        F.finetune(micro_config(dataset, aug, resume=True))


def test_nan_actions_are_named_before_the_first_step(tmp_path):
    """A NaN in a labelled episode's actions is a dataset error naming the file, episode and frame,
    with `care dataset validate` as the advice: not a diverged loss and "lower --optim.lr"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from care.errors import DatasetError
    from helpers import make_dataset

    root = make_dataset(tmp_path, episodes=6, T=12, size=32, with_tracks=False)
    cfg = micro_config(root, tmp_path / "ft")
    ds = LeRobotDataset(root)
    ep = F.labelled_episodes(ds, cfg.episodes_per_task, cfg.seed, cfg.val_episodes_per_task)[0][-1]
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = np.asarray(table.column("action").combine_chunks().flatten()).reshape(-1, 4).copy()
    rows = np.flatnonzero(table.column("episode_index").to_numpy() == ep)
    actions[rows[5], 2] = np.nan
    i = table.column_names.index("action")
    pq.write_table(table.set_column(i, "action", pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), 4)), path)
    with pytest.raises(DatasetError) as e:
        F.finetune(cfg)
    msg = str(e.value)
    assert str(path) in msg and f"episode {ep}" in msg and "frame 5" in msg and "care dataset validate" in msg
    assert "--optim.lr" not in msg
    assert not (cfg.output_dir / "train_log.jsonl").exists()  # stopped before training started
