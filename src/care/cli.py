"""The `care` command: one subcommand per pipeline stage.

    care collect        --suite metaworld --tasks MT10 --episodes-per-task 20 --out data/mt10
    care import-videos  --videos DIR --captions labels.json --out data/ssv2
    care dataset info DIR | care dataset validate DIR
    care track DIR      --method klt --grid 16
    care viz tracks DIR --episode 0 --out tracks.mp4
    care pretrain       --config configs/pretrain/care_tiny.yaml --dataset data/mt10 --output-dir runs/x
    care finetune       --pretrained runs/x --dataset data/mt10 --output-dir runs/x_ft
    care eval           --policy runs/x_ft --tasks MT10 --episodes-per-task 10

Flags are the config dataclass fields (`care.configs`), with dots for nesting
(`--model.hidden_size=256`); dashes and underscores are interchangeable.
`--config FILE.yaml` loads a YAML config; `--preset NAME` starts from a named model preset.
Precedence: defaults < preset < YAML < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import draccus
from draccus.utils import DraccusException
import yaml

from care import configs as C
from care.errors import CareError, ConfigError


# name -> (config class, "module:function", name of the positional argument or None)
COMMANDS: dict[str, tuple[type, str, str | None]] = {
    "collect": (C.CollectConfig, "care.data.collect:collect", None),
    "import-videos": (C.ImportVideosConfig, "care.data.import_videos:import_videos", None),
    "dataset info": (C.DatasetConfig, "care.data.inspect:info", "root"),
    "dataset validate": (C.DatasetConfig, "care.data.inspect:validate", "root"),
    "track": (C.TrackConfig, "care.tracking.run:track", "root"),
    "viz tracks": (C.VizTracksConfig, "care.tracking.viz:viz_tracks", "root"),
    "pretrain": (C.PretrainConfig, "care.training.pretrain:pretrain", None),
    "finetune": (C.FinetuneConfig, "care.training.finetune:finetune", None),
    "eval": (C.EvalConfig, "care.evaluation.evaluate:evaluate", None),
    "eval compare": (C.CompareConfig, "care.evaluation.compare:compare", None),
}


_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def _typed_fields(config_cls: type, types: tuple[str, ...], prefix: str = "") -> set[str]:
    """Dotted names of the fields annotated with one of `types` (nested configs included)."""
    names = set()
    for f in dataclasses.fields(config_cls):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if t in types:
            names.add(prefix + f.name)
        elif dataclasses.is_dataclass(f.default_factory if callable(f.default_factory) else None):
            names |= _typed_fields(f.default_factory, types, prefix + f.name + ".")
    return names


def _bool_fields(config_cls: type) -> set[str]:
    """Bool fields, so that a bare `--overwrite` means `--overwrite=true`."""
    return _typed_fields(config_cls, ("bool",))


def _str_fields(config_cls: type) -> set[str]:
    """String fields: draccus reads flag values as YAML, so `--title "MT10: x"` would become a
    mapping; their values are passed on quoted (except null/none for optional ones)."""
    return _typed_fields(config_cls, ("str", "str | None", "Optional[str]"))


def _normalise_flags(
    args: list[str], positional: str | None, bools: set[str] = frozenset(), strs: set[str] = frozenset()
) -> tuple[list[str], Path | None]:
    """`--output-dir x` -> `--output_dir x`; bare `--flag` -> `--flag=true` for bool fields;
    string values quoted for YAML; pull out `--config`; map a positional to a flag."""
    out, config_path, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            name = name.replace("-", "_")
            if name in strs and not eq and i + 1 < len(args):
                value, eq = args[i + 1], "="
                i += 1
            if name in strs and eq and value.lower() not in ("null", "none", "~"):
                value = json.dumps(value)  # a JSON string is a YAML string: "a: b" stays text
            if name in ("config", "config_path"):
                if eq:
                    config_path = Path(value)
                else:
                    if i + 1 >= len(args):
                        raise CareError("--config needs a YAML file path")
                    config_path = Path(args[i + 1])
                    i += 1
            elif not eq and name in bools:
                if i + 1 < len(args) and args[i + 1].lower() in _BOOL_WORDS:
                    out.append(f"--{name}={args[i + 1]}")
                    i += 1
                else:
                    out.append(f"--{name}=true")
            else:
                out.append(f"--{name}{eq}{value}" if eq else f"--{name}")
        elif positional is not None and not (out and out[-1].startswith("--") and "=" not in out[-1]):
            # a bare token that is not the value of the flag before it: the positional argument
            out.append(f"--{positional}={a}")
        else:
            out.append(a)
        i += 1
    return out, config_path


def _deep_merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _preset_name(args: list[str], yaml_dict: dict) -> str | None:
    for i, a in enumerate(args):
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
        if a == "--preset" and i + 1 < len(args):
            return args[i + 1]
    return yaml_dict.get("preset")


def parse_config(config_cls: type, argv: list[str], positional: str | None = None) -> Any:
    """Build a config from defaults < preset < YAML < flags (see module docstring)."""
    args, config_path = _normalise_flags(list(argv), positional, _bool_fields(config_cls), _str_fields(config_cls))
    layers: dict = {}
    yaml_dict: dict = {}
    if config_path is not None:
        if not config_path.is_file():
            raise CareError(f"config file not found: {config_path}")
        yaml_dict = yaml.safe_load(config_path.read_text()) or {}
        if not isinstance(yaml_dict, dict):
            raise CareError(f"{config_path}: expected a mapping of config fields at the top level")
    preset = _preset_name(args, yaml_dict)
    if preset is not None and "model" in {f.name for f in dataclasses.fields(config_cls)}:
        from care.models.presets import get_preset  # lazy: keeps `care collect` light

        layers = {"model": yaml.safe_load(draccus.dump(get_preset(preset)))}
    layers = _deep_merge(layers, yaml_dict)
    with tempfile.TemporaryDirectory() as tmp:
        path = None
        if layers:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(layers, sort_keys=False))  # keep the order of mappings (methods)
        try:
            return draccus.parse(config_class=config_cls, config_path=path, args=args, exit_on_error=False)
        except argparse.ArgumentError as e:
            raise ConfigError(str(e)) from e
        except DraccusException as e:
            # draccus hides the validation message of __post_init__ behind its own; surface it
            root = e
            while root.__cause__ is not None or root.__context__ is not None:
                root = root.__cause__ or root.__context__
            detail = f": {root}" if root is not e else ""
            raise ConfigError(f"{config_cls.__name__}: {e}{detail}") from e


def save_config(cfg: Any, out_dir: Path, name: str = "config.yaml") -> Path:
    """Write the resolved config next to a run's outputs (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        draccus.dump(cfg, f)
    os.replace(tmp, path)
    return path


def _resolve(target: str) -> Callable:
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def _usage() -> str:
    lines = ["usage: care <command> [--flags]", "", "commands:"]
    lines += [f"  {name}" for name in COMMANDS]
    lines += ["", "`care <command> --help` lists a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0]
    rest = argv[1:]
    if rest and f"{name} {rest[0]}" in COMMANDS:  # two-word commands first ("eval compare")
        name, rest = f"{name} {rest[0]}", rest[1:]
    if name not in COMMANDS:
        print(f"care: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    config_cls, target, positional = COMMANDS[name]
    try:
        cfg = parse_config(config_cls, rest, positional)
        result = _resolve(target)(cfg)
    except CareError as e:
        print(f"care {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"care {name}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
