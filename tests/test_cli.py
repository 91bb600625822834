"""The `care` command: flag parsing, config precedence, errors."""

from pathlib import Path

import pytest
import yaml

from care import configs as C
from care.cli import main, parse_config, save_config
from care.errors import ConfigError


def test_dashed_flags_and_nested_overrides():
    cfg = parse_config(C.CollectConfig, ["--episodes-per-task", "5", "--out", "x", "--tasks=reach-v3"])
    assert cfg.episodes_per_task == 5 and cfg.out == Path("x") and cfg.tasks == "reach-v3"
    cfg = parse_config(C.TrackConfig, ["data/d", "--grid", "8", "--klt.window=21"], positional="root")
    assert cfg.root == Path("data/d") and cfg.grid == 8 and cfg.klt.window == 21


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
    cfg = parse_config(C.TrackConfig, ["--overwrite", "data/d"], positional="root")
    assert cfg.overwrite is True and cfg.root == Path("data/d")
    cfg = parse_config(C.TrackConfig, ["data/d", "--overwrite", "false"], positional="root")
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
