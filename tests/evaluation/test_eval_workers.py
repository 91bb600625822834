"""`care eval` gives the same episodes in spawned workers as in-process, and in lockstep batches
of any size as one at a time."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("metaworld")


@pytest.mark.slow
def test_spawned_workers_match_in_process(tmp_path):
    from helpers import REPO_ROOT, make_dataset

    from care.cli import parse_config
    from care.configs import EvalConfig, FinetuneConfig
    from care.envs.configs import MetaWorldEnvConfig
    from care.evaluation.evaluate import evaluate
    from care.training.finetune import finetune

    root = make_dataset(tmp_path, episodes=4, T=16, size=32, with_tracks=False)
    cfg = parse_config(FinetuneConfig, ["--config", str(REPO_ROOT / "configs/finetune/care_micro.yaml")])
    finetune(dataclasses.replace(cfg, dataset=root, output_dir=tmp_path / "ft", steps=2, save_every=0))
    ev = EvalConfig(policy=tmp_path / "ft", env=MetaWorldEnvConfig(tasks="drawer-close-v3,reach-v3", max_steps=8),
                    episodes_per_task=3, videos_per_task=1, execution="ensemble", output_dir=tmp_path / "w1",
                    workers=1, batch_size=1)
    evaluate(ev)
    evaluate(dataclasses.replace(ev, workers=2, batch_size=2, output_dir=tmp_path / "w2"))
    evaluate(dataclasses.replace(ev, workers=1, batch_size=3, output_dir=tmp_path / "b3"))
    a, b, c = (json.loads((tmp_path / d / "eval_info.json").read_text()) for d in ("w1", "w2", "b3"))
    keys = ("task", "episode_ix", "seed", "instruction", "success", "length", "sum_reward")
    rows = [[{k: r[k] for k in keys} for r in x["per_episode"]] for x in (a, b, c)]
    assert rows[0] == rows[1] == rows[2]
    assert len(b["video_paths"]) == 2 and a["overall"]["n_episodes"] == b["overall"]["n_episodes"] == 6
    assert (c["config"]["batch_size"], c["config"]["workers"]) == (3, 1)
    # the policy takes only frames of its training size (CarePolicy.frame_hw): another --env.size is
    # refused before anything is written, naming the size
    from care.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--env.size 64: .* trained on 32x32 frames"):
        evaluate(dataclasses.replace(ev, env=dataclasses.replace(ev.env, size=64), output_dir=tmp_path / "s64"))
    assert not (tmp_path / "s64").exists()
