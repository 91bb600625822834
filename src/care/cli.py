"""The `care` command: one subcommand per pipeline stage.

    care collect        --env.type metaworld --env.tasks MT10 --episodes-per-task 20 --output-dir data/mt10
    care import-videos  --videos DIR --captions labels.json --output-dir data/ssv2
    care dataset info DIR | care dataset validate DIR      (DIR: the --dataset)
    care track DIR      --tracker.type klt --grid 16
    care viz tracks DIR --episode 0 --output-dir outputs/viz
    care lam            --config configs/lam/lapa_tiny.yaml --dataset data/mt10 --output-dir runs/lapa_lam
    care pretrain       --config configs/pretrain/care_tiny.yaml --dataset data/mt10 --output-dir runs/x
                        [--method.type care|lapa|como [--method.lam runs/lapa_lam]]
    care probe          --model runs/x --dataset data/mt10 --output-dir runs/x_probe
    care label          --config configs/label/pixel_idm.yaml --dataset data/mt10 --output-dir data/mt10_pseudo
    care serve          --policy runs/x_ft --port 8000
    care finetune       --pretrained runs/x --dataset data/mt10 --output-dir runs/x_ft
    care eval           --policy runs/x_ft --env.tasks MT10 --episodes-per-task 10 --output-dir runs/x_eval
    care report         --config configs/report/paper_mt10.yaml --output-dir docs/report  [--missing]

Flags are the config dataclass fields (`care.configs`), with dots for nesting
(`--model.hidden_size=256`); dashes and underscores are interchangeable.
`--config FILE.yaml` loads a YAML config; `--preset NAME` starts from a named model preset.
Precedence: defaults < preset < YAML < flags.

Before anything loads torch or a simulator, `care` sets these environment variables unless they
are already set (`ENV_DEFAULTS`; the Makefile exports the same ones):
    OMP_WAIT_POLICY=PASSIVE   idle OpenMP threads sleep instead of spinning: spinning threads made
                              a LIBERO evaluation beside a busy torch process 2-3.4x slower
                              (benchmarks/omp_wait_policy.py, 2-core AMD EPYC)
    MUJOCO_GL=egl, PYOPENGL_PLATFORM=egl    headless rendering for the simulators
Set one yourself (e.g. `OMP_WAIT_POLICY=ACTIVE care ...`) to override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import draccus
from draccus.choice_types import ChoiceType
from draccus.utils import DraccusException
import yaml

from care import configs as C
from care.errors import CareError, CareWarning, ConfigError


# name -> (config class, "module:function", name of the positional argument or None)
COMMANDS: dict[str, tuple[type, str, str | None]] = {
    "collect": (C.CollectConfig, "care.data.collect:collect", None),
    "import-videos": (C.ImportVideosConfig, "care.data.import_videos:import_videos", None),
    "dataset info": (C.DatasetConfig, "care.data.inspect:info", "dataset"),
    "dataset validate": (C.DatasetConfig, "care.data.inspect:validate", "dataset"),
    "track": (C.TrackConfig, "care.tracking.run:track", "dataset"),
    "viz tracks": (C.VizTracksConfig, "care.tracking.viz:viz_tracks", "dataset"),
    "lam": (C.PretrainConfig, "care.training.lam:train_lam", None),
    "pretrain": (C.PretrainConfig, "care.training.pretrain:pretrain", None),
    "finetune": (C.FinetuneConfig, "care.training.finetune:finetune", None),
    "serve": (C.ServeConfig, "care.serve.server:serve", None),
    "eval": (C.EvalConfig, "care.evaluation.evaluate:evaluate", None),
    "eval compare": (C.CompareConfig, "care.evaluation.compare:compare", None),
    "probe": (C.ProbeConfig, "care.probes.run:probe", None),
    "label": (C.PseudoLabelConfig, "care.labels.run:pseudo_label", None),
    "report": (C.ReportConfig, "care.report.build:report", None),
}


# Set by `main` before torch (or mujoco) is imported, unless the user set them: the OpenMP runtime
# reads OMP_WAIT_POLICY once, when torch loads it, so setting it any later does nothing.
ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def set_environment_defaults(environ=os.environ) -> dict[str, str]:
    """Set every `ENV_DEFAULTS` variable the user has not set; returns the ones set here."""
    added = {k: v for k, v in ENV_DEFAULTS.items() if k not in environ}
    environ.update(added)
    return added


SUMMARIES = {  # `care --help`
    "collect": "record scripted-expert episodes from a simulator as a LeRobot v3 dataset",
    "import-videos": "a folder of captioned videos -> a LeRobot v3 dataset (no actions)",
    "dataset info": "what a dataset holds: episodes, tasks, cameras, actions, tracks",
    "dataset validate": "check every file of a dataset; a problem names the file",
    "track": "point tracks for a dataset's videos (KLT or CoTracker)",
    "viz tracks": "draw an episode's tracks on its video",
    "lam": "stage 1 of a two-stage method (LAPA, CoMo): the latent action model",
    "pretrain": "latent pretraining of the VLM, no action labels (CARE, LAPA, CoMo)",
    "finetune": "train the action head (+ LoRA) on a few labelled episodes",
    "serve": "a fine-tuned policy behind a websocket",
    "eval": "success rate of a policy in the simulator, rollout videos",
    "eval compare": "methods over training seeds: mean +- std per task, a bar chart",
    "probe": "how good a pretrained latent is: LP-MSE, S-PCFC, semantic accuracy",
    "report": "the paper's tables from the committed result files",
}


_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def _flag_value(args: list[str], name: str) -> str | None:
    """The value of `--<name>` (`--name=v` or `--name v`, the last one given) in raw `args`."""
    value = None
    for i, a in enumerate(args):
        key, eq, v = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if key.replace("-", "_") == name:
            value = v if eq else args[i + 1] if i + 1 < len(args) else None
    return value


def _typed_fields(config_cls: type, types: tuple[str, ...], prefix: str = "", args: list[str] = ()) -> set[str]:
    """Dotted names of the fields annotated with one of `types` (nested configs included).

    A choice field (a draccus choice registry, e.g. `env`) contributes the fields of its
    default class and, when `args` hold `--<field>.type=NAME`, those of the class named NAME.
    """
    names = set()
    for f in dataclasses.fields(config_cls):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        default = f.default_factory if callable(f.default_factory) else None
        if t in types:
            names.add(prefix + f.name)
        elif dataclasses.is_dataclass(default):
            classes = [default]
            chosen = _flag_value(list(args), f"{prefix}{f.name}.type") if issubclass(default, ChoiceType) else None
            if chosen is not None and chosen in default.get_known_choices():  # else draccus reports it
                classes.append(default.get_choice_class(chosen))
            for cls in dict.fromkeys(classes):
                names |= _typed_fields(cls, types, prefix + f.name + ".", args)
    return names


def _bool_fields(config_cls: type, args: list[str] = ()) -> set[str]:
    """Bool fields, so that a bare `--overwrite` means `--overwrite=true`."""
    return _typed_fields(config_cls, ("bool",), args=args)


def _str_fields(config_cls: type, args: list[str] = ()) -> set[str]:
    """String fields: draccus reads flag values as YAML, so `--title "MT10: x"` would become a
    mapping; their values are passed on quoted (except null/none for optional ones)."""
    return _typed_fields(config_cls, ("str", "str | None", "Optional[str]"), args=args)


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
    return _flag_value(args, "preset") or yaml_dict.get("preset")


def parse_config(config_cls: type, argv: list[str], positional: str | None = None) -> Any:
    """Build a config from defaults < preset < YAML < flags (see module docstring)."""
    args, config_path = _normalise_flags(
        list(argv), positional, _bool_fields(config_cls, argv), _str_fields(config_cls, argv)
    )
    layers: dict = {}
    yaml_dict: dict = {}
    if config_path is not None:
        if not config_path.is_file():
            raise CareError(f"config file not found: {config_path}")
        yaml_dict = yaml.safe_load(config_path.read_text()) or {}
        if not isinstance(yaml_dict, dict):
            raise CareError(f"{config_path}: expected a mapping of config fields at the top level")
    preset = _preset_name(args, yaml_dict)
    field_names = {f.name for f in dataclasses.fields(config_cls)}
    if preset is not None:
        from care.presets import preset_layer

        method_type = _flag_value(args, "method.type") or (yaml_dict.get("method") or {}).get("type")
        layers = preset_layer(preset, field_names, method_type)
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


def _resolve(target: str) -> Callable:
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def _usage() -> str:
    lines = ["usage: care <command> [--flags]", "", "commands:"]
    for name, (_, _, positional) in COMMANDS.items():
        head = f"{name} {positional.upper()}" if positional else name
        lines.append(f"  {head:24s} {SUMMARIES.get(name, '')}".rstrip())
    lines += ["", "`care <command> --help` lists a command's flags.", ""]
    lines += ["Before torch loads, care sets " + ", ".join(f"{k}={v}" for k, v in ENV_DEFAULTS.items())
              + " unless already set."]
    return "\n".join(lines)


_warning_command = ""


def _one_line_warnings(command: str) -> None:
    """care's own warnings (CareWarning) print as one sentence (`care finetune: warning: ...`), not
    Python's `file:line: UserWarning: ...` and the source line; other warnings keep their form."""
    import warnings

    global _warning_command
    _warning_command = command
    if getattr(warnings.formatwarning, "_care", False):
        return
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, CareWarning):
            return f"care {_warning_command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    formatwarning._care = True
    warnings.formatwarning = formatwarning


def leave_process_group() -> None:
    """Under a launcher (torchrun, accelerate launch): every process meets, then each destroys its
    process group before it exits. A process that exits while its group is alive closes its gloo
    sockets under a peer that may not have finished reading them; the peer's gloo thread then
    throws and aborts the run (SIGABRT) after the work is done. The meeting is on the launcher's
    key-value store, not on gloo's sockets: when it passes, no process has gloo data in flight."""
    if "torch.distributed" not in sys.modules:  # a command that never loaded torch.distributed
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    if world > 1:
        dist.barrier()  # the last collective: this process has sent and received all it will
        try:
            store = dist.distributed_c10d._get_default_store()
            store.add("care/exit", 1)
            while int(store.add("care/exit", 0)) < world:  # until every process is past the barrier
                time.sleep(0.01)
        except RuntimeError:  # a store hosted by a process that has already left: the work is done
            pass
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    set_environment_defaults()  # first: before any command imports torch
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
    _one_line_warnings(name)
    if "-h" in rest or "--help" in rest:
        from care.cli_help import format_help

        print(format_help(name, config_cls, positional, ENV_DEFAULTS), end="")
        return 0
    try:
        cfg = parse_config(config_cls, rest, positional)
        result = _resolve(target)(cfg)
        leave_process_group()
    except CareError as e:
        print(f"care {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"care {name}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
