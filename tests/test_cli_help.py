"""`care <command> --help` for every command: the usage names the command, `--config` (never
draccus's `--config_path`), dashed flags, a default or "required" for every field, no section
comment as a field's help, every field draccus would accept listed, and the positional argument
where the README passes one (`care track data/ssv2`)."""

from __future__ import annotations

import re

import pytest
from draccus.argparsing import ArgumentParser

from care.cli import COMMANDS, main

_FLAG_LINE = re.compile(r"^  (?:[A-Z]+, )?(--[a-z0-9.\-_]+)\b")


def _help(command: str, capsys) -> str:
    assert main([*command.split(), "--help"]) == 0
    return capsys.readouterr().out


def _draccus_fields(config_cls) -> set[str]:
    """Every leaf field draccus parses for this config, as the dashed flag (an independent list:
    draccus's own argparse actions, without its per-group `--<group> str` config-file entries)."""
    parser = ArgumentParser(config_class=config_cls)
    flags = set()
    for action in parser.parser._actions:
        for opt in action.option_strings:
            help_text = action.help or ""
            if opt.startswith("--") and opt not in ("--config_path", "--help") and not help_text.startswith("Config file for"):
                flags.add(opt.replace("_", "-"))
    return flags


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_of_every_command(command, capsys):
    out = _help(command, capsys)
    config_cls, _, positional = COMMANDS[command]
    usage = out.splitlines()[0]
    assert usage.startswith(f"usage: care {command} "), usage
    assert "--config FILE" in out and "config_path" not in out
    assert "---" not in out, "a section comment leaked into the help"
    lines = out.splitlines()
    flags = {}
    for i, line in enumerate(lines):
        m = _FLAG_LINE.match(line)
        if m and m.group(1) not in ("--help", "--config"):
            flags[m.group(1)] = lines[i + 1] if i + 1 < len(lines) else ""
    assert flags, out
    for name, described in flags.items():
        assert "_" not in name, f"{name}: flags are shown with dashes"
        assert re.match(r"\s+\((default: .+|required)\)", described), f"{name}: no default shown: {described!r}"
    missing = _draccus_fields(config_cls) - set(flags)
    assert not missing, f"fields draccus accepts but --help does not list: {sorted(missing)}"
    if positional:
        assert usage.startswith(f"usage: care {command} {positional.upper()} ")


def test_help_shows_field_help_and_choices(capsys):
    out = _help("pretrain", capsys)
    # the help of `--steps` is its docstring entry, not the section ruler above the field
    steps = out[out.index("  --steps int"):].splitlines()[1]
    assert "optimiser steps" in steps and "training loop" not in steps
    for choice in ("--method.type {care,lapa,como}", "--method.objective {multitask,frame,point}",
                   "--mixed-precision {auto,fp32,bf16,no}", "--model.vision-towers [{siglip,dinov2},...]",
                   "--clip.wrist-camera str|null"):
        assert choice in out, choice
    assert "OMP_WAIT_POLICY=PASSIVE" in out  # the environment care sets is documented


def test_dashes_and_underscores_both_parse():
    from care import configs as C
    from care.cli import parse_config

    a = parse_config(C.FinetuneConfig, ["--clip.wrist-camera", "wrist_image", "--episodes-per-task", "3"])
    b = parse_config(C.FinetuneConfig, ["--clip.wrist_camera", "wrist_image", "--episodes_per_task", "3"])
    assert a == b and a.clip.wrist_camera == "wrist_image" and a.episodes_per_task == 3
