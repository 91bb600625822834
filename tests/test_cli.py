"""The `care` command: flag parsing, config precedence, errors."""

from pathlib import Path

import pytest
import yaml

from care import configs as C
from care.cli import main, parse_config
from care.configs import save_config
from care.errors import ConfigError


def test_dashed_flags_and_nested_overrides():
    cfg = parse_config(C.CollectConfig, ["--episodes-per-task", "5", "--output-dir", "x", "--env.tasks=reach-v3"])
    assert cfg.episodes_per_task == 5 and cfg.output_dir == Path("x") and cfg.env.tasks == "reach-v3"
    cfg = parse_config(C.TrackConfig, ["data/d", "--grid", "8", "--tracker.window=21"], positional="dataset")
    assert cfg.dataset == Path("data/d") and cfg.grid == 8 and cfg.tracker.type == "klt" and cfg.tracker.window == 21
    # each tracker has only its own fields
    cfg = parse_config(C.TrackConfig, ["data/d", "--tracker.type", "cotracker", "--tracker.repo-dir", "/x"],
                       positional="dataset")
    assert isinstance(cfg.tracker, C.CoTrackerConfig) and cfg.tracker.repo_dir == Path("/x")
    with pytest.raises(ConfigError):
        parse_config(C.TrackConfig, ["data/d", "--tracker.type", "cotracker", "--tracker.window", "3"],
                     positional="dataset")


def test_yaml_then_flags_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 7, "batch_size": 3, "optim": {"lr": 0.5}}))
    cfg = parse_config(C.PretrainConfig, ["--config", str(path), "--batch-size", "9"])
    assert cfg.steps == 7  # from YAML
    assert cfg.batch_size == 9  # flag beats YAML
    assert cfg.optim.lr == 0.5 and cfg.optim.warmup_steps == C.OptimConfig().warmup_steps


def test_save_config_round_trip(tmp_path):
    cfg = parse_config(C.CollectConfig, ["--episodes-per-task", "3", "--action-noise", "0.1"])
    path = save_config(cfg, tmp_path)
    again = parse_config(C.CollectConfig, ["--config", str(path)])
    assert again == cfg


def test_invalid_value_is_rejected_with_the_rule():
    with pytest.raises(ConfigError, match="episodes_per_task must be >= 1"):
        parse_config(C.CollectConfig, ["--episodes-per-task", "0"])


def test_unknown_command_and_missing_config(capsys, tmp_path):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["collect", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unknown_flag_is_a_clear_error(capsys):
    assert main(["collect", "--no-such-flag", "3"]) == 2
    assert "no_such_flag" in capsys.readouterr().err


def test_bare_bool_flag_means_true_and_positional_still_works():
    cfg = parse_config(C.TrackConfig, ["--overwrite", "data/d"], positional="dataset")
    assert cfg.overwrite is True and cfg.dataset == Path("data/d")
    cfg = parse_config(C.TrackConfig, ["data/d", "--overwrite", "false"], positional="dataset")
    assert cfg.overwrite is False
    cfg = parse_config(C.PretrainConfig, ["--resume"])
    assert cfg.resume is True


def test_string_flags_stay_text():
    """draccus reads flag values as YAML: a colon must not turn a title into a mapping."""
    from care.configs import CompareConfig

    cfg = parse_config(CompareConfig, ["--methods", '{"a": "x_s*"}', "--title", "MT10: chunk vs ensemble",
                                       "--reference=null"])
    assert cfg.title == "MT10: chunk vs ensemble" and cfg.reference is None
    cfg = parse_config(CompareConfig, ["--methods", '{"a": "x_s*"}', "--title=say \"hi\": 1", "--reference", "a"])
    assert cfg.title == 'say "hi": 1' and cfg.reference == "a"


def test_env_is_chosen_by_type():
    """`--env.type` picks the simulator (LeRobot-style); without it the default (metaworld) is used,
    its fields are set with dotted flags, and string values stay text."""
    from care.envs.configs import MetaWorldEnvConfig

    cfg = parse_config(C.CollectConfig, ["--env.type=metaworld", "--env.tasks", "reach-v3,push-v3",
                                         "--env.camera", "corner2", "--env.max-steps", "50"])  # fmt: skip
    assert type(cfg.env) is MetaWorldEnvConfig and cfg.env.type == "metaworld"
    assert (cfg.env.tasks, cfg.env.size, cfg.env.camera, cfg.env.max_steps) == ("reach-v3,push-v3", 128, "corner2", 50)
    assert parse_config(C.CollectConfig, ["--env.tasks=reach-v3,push-v3", "--env.camera=corner2",
                                          "--env.max_steps=50"]) == cfg  # fmt: skip
    # care eval: size and camera stay None ("as the policy was trained") unless given
    ev = parse_config(C.EvalConfig, ["--env.type", "metaworld", "--env.tasks", "reach-v3"])
    assert (ev.env.size, ev.env.camera, ev.env.max_steps) == (None, None, 200)
    assert parse_config(C.EvalConfig, ["--env.size=64", "--env.camera=corner3"]).env.size == 64
    assert parse_config(C.EvalConfig, ["--env.size=null"]).env.size is None


def test_unknown_env_type_is_a_clear_error(capsys):
    with pytest.raises(ConfigError, match=r"env\.type.*foo.*metaworld"):
        parse_config(C.CollectConfig, ["--env.type=foo"])
    assert main(["eval", "--env.type", "foo"]) == 2
    err = capsys.readouterr().err
    assert "foo" in err and "metaworld" in err


def test_bool_and_string_flags_inside_a_choice_field():
    """Bare bools and quoted strings work for the fields of the default choice and of the one
    `--<field>.type` names."""
    import dataclasses

    import draccus

    @dataclasses.dataclass
    class Sim(draccus.ChoiceRegistry):
        @classmethod
        def default_choice_name(cls):
            return "a"

    @Sim.register_subclass("a")
    @dataclasses.dataclass
    class SimA(Sim):
        fast: bool = False

    @Sim.register_subclass("b")
    @dataclasses.dataclass
    class SimB(Sim):
        headless: bool = False
        title: str = "x"

    @dataclasses.dataclass
    class Top:
        sim: Sim = dataclasses.field(default_factory=SimA)
        seed: int = 0

    assert parse_config(Top, ["--sim.fast", "--seed", "3"]) == Top(SimA(fast=True), 3)
    cfg = parse_config(Top, ["--sim.type", "b", "--sim.headless", "--sim.title", "MT10: x"])
    assert cfg == Top(SimB(headless=True, title="MT10: x"))


@pytest.mark.parametrize("command,choices", [
    ("pretrain", ["--method.type {care", "--method.objective {multitask,frame,point}", "{siglip,dinov2}",
                  "--mixed-precision {auto,fp32,bf16,no}"]),
    ("track", ["--tracker.type {klt,cotracker}"]),
    ("collect", ["--env.type {metaworld"]),
    ("eval", ["--execution {chunk,ensemble}"]),
])
def test_help_lists_the_choices(command, choices, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for c in choices:
        assert c in out, (command, c)


def test_preset_works_from_python_too():
    """`apply_preset(PretrainConfig(preset="base"))` builds the base model, as `--preset base` does; a
    model given explicitly wins, and the command line layers the preset under YAML and flags."""
    from care.presets import apply_preset, get_preset

    cfg = apply_preset(C.PretrainConfig(preset="base"))
    assert cfg.model == get_preset("base") and cfg.method.decoder_width == 384
    own = C.ModelConfig(hidden_size=96, num_heads=4)
    assert apply_preset(C.PretrainConfig(preset="base", model=own)).model == own
    assert apply_preset(C.FinetuneConfig(preset="micro")).model == get_preset("micro")
    flags = parse_config(C.PretrainConfig, ["--preset", "base", "--model.hidden-size", "384", "--model.num-heads", "6"])
    assert flags.model.hidden_size == 384 and flags.model.image_size == 224 and flags.method.decoder_width == 384
    with pytest.raises(ConfigError, match="preset"):
        parse_config(C.PretrainConfig, ["--preset", "huge"])


def _care_subprocess(args: list[str], **env_vars: str):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-m", "care", *args], env=env, capture_output=True, text=True, timeout=120)


def test_care_sets_omp_wait_policy_before_torch_loads(tmp_path):
    """`care` typed in a fresh shell (no Makefile exports) gets OMP_WAIT_POLICY=PASSIVE before torch
    loads its OpenMP runtime: libgomp's own report (OMP_DISPLAY_ENV) shows it did not spin-wait.
    (A user's own setting wins: test_environment_defaults_keep_the_users_values.)"""
    args = ["eval", "--policy", str(tmp_path / "none")]  # imports torch, then stops on the missing folder
    r = _care_subprocess(args, OMP_DISPLAY_ENV="VERBOSE")
    if "GOMP_SPINCOUNT" not in r.stderr:
        pytest.skip("torch's OpenMP runtime is not libgomp here: nothing reports its wait policy")
    assert "policy folder" in r.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in r.stderr and "GOMP_SPINCOUNT = '0'" in r.stderr, r.stderr


def test_environment_defaults_keep_the_users_values():
    from care.cli import ENV_DEFAULTS, set_environment_defaults

    env = {"MUJOCO_GL": "osmesa"}
    added = set_environment_defaults(env)
    assert env["MUJOCO_GL"] == "osmesa" and "MUJOCO_GL" not in added
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and added == {k: v for k, v in ENV_DEFAULTS.items() if k != "MUJOCO_GL"}


def test_the_7b_preset_sizes_every_method_as_the_pretrained_recipe():
    """`--preset prismatic-7b` gives each method the decoders of the `pretrained` preset, not the
    tiny defaults."""
    from care.presets import method_preset

    for method in ("care", "lapa", "como"):
        assert method_preset("prismatic-7b", method) == method_preset("pretrained", method), method
        assert method_preset("prismatic-7b", method) != method_preset("tiny", method), method


_LEAVER = """
import json, os, time
import torch.distributed as dist
from care.cli import leave_process_group

dist.init_process_group("gloo")
rank = int(os.environ["RANK"])
if rank == 1:
    time.sleep(1.5)  # the slower process: the other must not leave before it arrives
arrived = time.time()
leave_process_group()
print(json.dumps({"rank": rank, "arrived": arrived, "left": time.time(), "alive": dist.is_initialized()}))
"""


def test_launched_processes_leave_their_group_together(tmp_path):
    """Every `care` command run under a launcher ends in leave_process_group: no process destroys
    its group (and closes gloo's sockets) before the slowest one has arrived, and each destroys it."""
    import json
    import os
    import subprocess
    import sys

    from helpers import REPO_ROOT, free_port

    script = tmp_path / "leave.py"
    script.write_text(_LEAVER)
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1",
                                   "RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": port}) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    rows = {r["rank"]: r for r in (json.loads(o[0].strip().splitlines()[-1]) for o in outs)}
    assert rows[1]["arrived"] - rows[0]["arrived"] > 1.0  # rank 1 really came later
    assert rows[0]["left"] >= rows[1]["arrived"]  # and rank 0 waited for it
    assert not rows[0]["alive"] and not rows[1]["alive"]
