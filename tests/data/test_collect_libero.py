"""LIBERO end to end on a micro scale: `care collect` with the scripted expert records what was
executed (replaying it reproduces the episode exactly), a policy fine-tunes on it with the
usual command, and `care eval` runs the published protocol from the suite's initial states.
A dataset in the public LeRobot LIBERO layout (written here from LIBERO's own env) drives our
env the same way: its first frame is our first frame, its actions succeed in our env."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import care.envs.camera  # noqa: F401  (first: it defaults MUJOCO_GL to egl before mujoco loads)

pytest.importorskip("libero.libero")

from care.configs import CollectConfig  # noqa: E402
from care.data.collect import collect_dataset  # noqa: E402
from care.data.lerobot import LeRobotDataset  # noqa: E402
from care.envs import libero as L  # noqa: E402
from care.envs.configs import LiberoEnvConfig  # noqa: E402

SIZE = 64
SUITE = "libero_object"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("libero") / "ds"
    cfg = CollectConfig(env=LiberoEnvConfig(suite=SUITE, tasks="0", size=SIZE, wrist=True), episodes_per_task=1,
                        workers=1, seed=7, post_success_steps=2, action_noise=0.1, detour_prob=0.02, output_dir=out)
    summary = collect_dataset(cfg)
    return cfg, summary, LeRobotDataset(out)


@pytest.mark.slow
def test_collect_records_what_was_executed(collected):
    cfg, summary, ds = collected
    task = L.resolve_tasks(SUITE)[0]
    assert summary.success == {task: [True]}
    info = ds.info
    assert info["fps"] == L.LIBERO_FPS and info["robot_type"] == "panda"
    assert info["features"]["action"]["names"] == L.ACTION_NAMES
    assert info["features"]["observation.state"]["names"] == L.STATE_NAMES
    assert sorted(k for k in info["features"] if k.startswith("observation.images.")) == [
        "observation.images.image", "observation.images.wrist_image"]
    meta = ds.episode_meta(0)
    assert (meta["env_name"], meta["seed"], meta["success"]) == (task, 7, True)
    assert ds.episode_task(0) == "pick up the alphabet soup and place it in the basket"
    actions, states = ds.episode_actions(0), ds.episode_states(0)
    assert actions.shape[1] == 7 and states.shape[1] == 8 and len(actions) < L.MAX_STEPS[SUITE]
    assert ds.has_tracks and ds.track_store.read(0)[0].shape[0] == len(actions)
    # the recorded actions, replayed from the recorded seed, give the recorded states and success
    with L.LiberoEnv(SUITE, task, size=SIZE, init_states="random") as env:
        obs, _ = env.reset(seed=7)
        replay_states, success = [obs["agent_pos"]], []
        for a in actions:
            obs, _, _, _, info = env.step(a)
            replay_states.append(obs["agent_pos"])
            success.append(info["is_success"])
    np.testing.assert_array_equal(np.stack(replay_states[:-1]), states)
    assert success[-1] and success.index(True) == meta["success_step"]
    frames = ds.episode_frames(0, "image")
    assert frames.shape == (len(actions), SIZE, SIZE, 3)


@pytest.mark.slow
def test_finetune_and_eval_with_the_protocol(collected, tmp_path):
    from helpers import REPO_ROOT

    from care.cli import parse_config
    from care.configs import EvalConfig, FinetuneConfig
    from care.evaluation.evaluate import evaluate
    from care.training.finetune import finetune

    from care.configs import ClipConfig

    _, _, ds = collected
    cfg = parse_config(FinetuneConfig, ["--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml")])
    finetune(dataclasses.replace(cfg, dataset=ds.root, output_dir=tmp_path / "ft", steps=2, save_every=0,
                                 episodes_per_task=1, val_episodes_per_task=0,
                                 clip=ClipConfig(wrist_camera="wrist_image")))  # both views, as LIBERO policies
    ev = EvalConfig(policy=tmp_path / "ft", env=LiberoEnvConfig(suite=SUITE, tasks="0", max_steps=4),
                    episodes_per_task=2, seed=None, videos_per_task=1, workers=1, output_dir=tmp_path / "ev")
    assert ev.seed == 0
    evaluate(ev)
    info = json.loads((tmp_path / "ev" / "eval_info.json").read_text())
    proto = info["config"]["protocol"]
    assert proto["suite"] == SUITE and proto["init_states"] == "fixed" and proto["num_steps_wait"] == 10
    assert proto["init_state_indices"] == [0, 1] and proto["max_steps"] == 4 and proto["camera"] == "agentview"
    assert [r["seed"] for r in info["per_episode"]] == [0, 1] and all(r["length"] == 4 for r in info["per_episode"])
    assert info["config"]["camera"] == "image" and info["config"]["size"] == SIZE
    assert info["policy"]["wrist_camera"] == "wrist_image"  # the env rendered the wrist view for it
    with pytest.raises(Exception, match="50 fixed initial states"):
        evaluate(dataclasses.replace(ev, seed=45, episodes_per_task=10, output_dir=tmp_path / "ev2"))


@pytest.mark.slow
def test_a_public_layout_dataset_drives_our_env(tmp_path):
    """The public LeRobot LIBERO datasets: `observation.images.image` / `wrist_image` (LIBERO's
    frames turned by 180 degrees), an 8-d state (eef position, axis-angle, finger joints), 7-d
    actions with -1 = open, no care columns. Written here from LIBERO's own env and renderer, with
    our expert's actions: our env, reset to the same initial state, shows the dataset's first
    frame, and replaying the dataset's actions in it succeeds."""
    from libero.libero.envs import OffScreenRenderEnv

    from care.data.lerobot import Episode, LeRobotDatasetWriter
    from care.envs.libero_expert import LiberoExpert

    s = L._suite(SUITE)
    init = s.get_task_init_states(0)[4]
    env = OffScreenRenderEnv(bddl_file_name=s.get_task_bddl_file_path(0), camera_heights=SIZE, camera_widths=SIZE)
    try:
        env.seed(0)
        env.reset()
        obs = env.set_init_state(init)
        for _ in range(L.NUM_STEPS_WAIT):
            obs, _, _, _ = env.step(L.DUMMY_ACTION)
        expert = LiberoExpert(env)
        expert.reset()
        frames, wrist, states, actions = [], [], [], []
        for _ in range(L.MAX_STEPS[SUITE]):
            frames.append(obs["agentview_image"][::-1, ::-1])
            wrist.append(obs["robot0_eye_in_hand_image"][::-1, ::-1])
            states.append(np.r_[obs["robot0_eef_pos"], L.quat_xyzw_to_axis_angle(obs["robot0_eef_quat"]),
                                obs["robot0_gripper_qpos"]])
            actions.append(expert(obs))
            obs, _, done, _ = env.step(actions[-1])
            if done:
                break
        assert done
    finally:
        env.close()
    w = LeRobotDatasetWriter(tmp_path / "public", fps=10, robot_type="panda")
    w.add_episode(Episode(frames={"image": np.stack(frames), "wrist_image": np.stack(wrist)},
                          task=s.get_task(0).language, state=np.stack(states).astype(np.float32),
                          action=np.stack(actions).astype(np.float32)))
    w.finalize()
    ds = LeRobotDataset(tmp_path / "public")
    assert ds.camera_key() == "observation.images.image" and ds.episode_meta(0).get("success") is None

    with L.LiberoEnv(SUITE, L.resolve_tasks(SUITE)[0], size=SIZE, init_states="fixed") as ours:
        first, _ = ours.reset(seed=4)
        stored = ds.episode_frames(0, "image").astype(np.float64)
        assert np.abs(first["pixels"] - stored[0]).mean() < 6.0  # MSAA, shadows and the video codec
        assert np.abs(first["pixels"] - stored[0][:, ::-1]).mean() > 15.0
        np.testing.assert_allclose(first["agent_pos"], ds.episode_states(0)[0], atol=1e-5)
        success = False
        for a in ds.episode_actions(0):
            _, _, _, _, info = ours.step(a)
            success = success or info["is_success"]
        assert success
