"""care.envs.configs / care.envs.factory: the simulator chosen by name, its task list, and
what a size or camera left None means."""

import dataclasses
import subprocess
import sys

import pytest

from care.envs.configs import EnvConfig, MetaWorldEnvConfig
from care.envs.factory import make_env, resolve_env_tasks
from care.envs.metaworld import MT10
from care.errors import CareError


def test_metaworld_is_the_default_choice():
    cfg = MetaWorldEnvConfig()
    assert cfg.type == "metaworld" and EnvConfig.default_choice_name() == "metaworld"
    assert EnvConfig.get_choice_class("metaworld") is MetaWorldEnvConfig
    assert (cfg.tasks, cfg.size, cfg.camera, cfg.max_steps) == ("MT10", None, None, 200)
    # None: the simulator's defaults, unless the caller (care eval: the policy) decides
    assert cfg.with_rendering() == MetaWorldEnvConfig(size=128, camera="corner")
    assert cfg.with_rendering(size=64, camera="corner2") == MetaWorldEnvConfig(size=64, camera="corner2")
    assert MetaWorldEnvConfig(size=96).with_rendering(size=64) == MetaWorldEnvConfig(size=96, camera="corner")
    with pytest.raises(ValueError, match="env.size"):
        MetaWorldEnvConfig(size=8)
    with pytest.raises(ValueError, match="env.max_steps"):
        MetaWorldEnvConfig(max_steps=0)


def test_resolve_env_tasks():
    assert resolve_env_tasks(MetaWorldEnvConfig()) == MT10
    assert resolve_env_tasks(MetaWorldEnvConfig(tasks="reach,drawer-close-v3")) == ["reach-v3", "drawer-close-v3"]
    with pytest.raises(CareError, match="not-a-task"):
        resolve_env_tasks(MetaWorldEnvConfig(tasks="reach-v3,not-a-task"))


def test_a_type_without_a_simulator_is_refused():
    @dataclasses.dataclass
    class ToyEnvConfig(EnvConfig):
        pass

    EnvConfig.register_subclass("toy", ToyEnvConfig)
    try:
        cfg = ToyEnvConfig(tasks="x")
        assert cfg.type == "toy"
        for call in (lambda: resolve_env_tasks(cfg), lambda: make_env(cfg, "x")):
            with pytest.raises(CareError, match="'toy' has no simulator"):
                call()
    finally:
        EnvConfig.get_known_choices().pop("toy")


def test_config_layer_imports_no_simulator():
    code = (
        "import sys, care.envs.configs, care.envs.factory, care.configs; "
        "print(sorted({'mujoco', 'metaworld', 'gymnasium'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_libero_config_resolves_the_protocol_step_limit():
    from care.envs.configs import LiberoEnvConfig

    assert EnvConfig.get_choice_class("libero") is LiberoEnvConfig
    cfg = LiberoEnvConfig(suite="libero_spatial")
    assert cfg.type == "libero" and cfg.max_steps == 220 and cfg.num_steps_wait == 10
    assert LiberoEnvConfig(suite="libero_10_swap").max_steps == 520
    assert LiberoEnvConfig(suite="libero_goal", max_steps=50).max_steps == 50
    assert cfg.with_rendering() == LiberoEnvConfig(suite="libero_spatial", size=128, camera="image")
    with pytest.raises(CareError, match="unknown LIBERO suite 'libero_nope'"):
        LiberoEnvConfig(suite="libero_nope")


def test_libero_from_the_command_line():
    """`--env.type libero --env.suite ...` parses, and the eval seed defaults to initial state 0."""
    import draccus

    from care.configs import CollectConfig, EvalConfig

    args = ["--env.type", "libero", "--env.suite", "libero_object", "--env.tasks", "0,1", "--env.wrist", "true"]
    c = draccus.parse(CollectConfig, args=args)
    assert (c.env.type, c.env.suite, c.env.tasks, c.env.wrist, c.env.max_steps, c.env.size) == (
        "libero", "libero_object", "0,1", True, 280, 128)
    from care.envs.configs import LiberoEnvConfig

    with pytest.raises(ValueError, match="fixed initial states are the evaluation episodes"):
        CollectConfig(env=LiberoEnvConfig(init_states="fixed"))
    e = draccus.parse(EvalConfig, args=["--env.type", "libero"])
    assert e.seed == 0 and draccus.parse(EvalConfig, args=[]).seed == 1000
