"""`care <command> --help`, written from the config dataclass itself.

draccus's own help (argparse underneath) names the program after the Python file, shows
`--config_path` and underscore spellings, prints a default only for fields that carry a
comment, and takes the comment *above* a field as its help (so section rulers such as
`# --- training loop ---` leaked in as the help of the next field). This one reads the same
dataclasses and prints what `care` accepts: the command in the usage line, `--config FILE`,
dashed flags, every field's default, and each field's help from its class's docstring
(`name: text` entries) or the comment on the field's own line, never the comment above it.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import typing
from pathlib import PurePath
from typing import Any

import yaml
from draccus.choice_types import ChoiceType
from draccus.wrappers.docstring import get_attribute_docstring

WIDTH = 100
_ENTRY = re.compile(r"^(\s*)([a-z_][a-z0-9_]*(?:\s*[,/]\s*[a-z_][a-z0-9_]*)*)(?:\s*\([^)]*\))?:\s+(.*)$")


def flag(dotted: str) -> str:
    """`clip.wrist_camera` -> `--clip.wrist-camera` (the CLI accepts both spellings)."""
    return "--" + dotted.replace("_", "-")


def _docstring_entries(cls: type) -> dict[str, str]:
    """`name: text` entries of a class docstring (Google-style `Args:` and similar sections),
    continuation lines joined. `a, b: text` documents a and b; `decoder_width/layers/heads: text`
    documents decoder_width, decoder_layers and decoder_heads."""
    doc = cls.__dict__.get("__doc__") or ""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    indent = 0
    for line in textwrap.dedent(doc).splitlines():
        m = _ENTRY.match(line)
        names = []
        if m:
            parts = re.split(r"\s*,\s*", m.group(2))
            for part in parts:
                head, *rest = part.split("/")
                names.append(head)
                stem = head.rsplit("_", 1)[0] + "_" if "_" in head else ""
                names += [stem + r for r in rest]
        if m and any(n in fields for n in names):
            indent = len(m.group(1))
            current = [m.group(3).strip()]
            for n in names:
                if n in fields:
                    entries[n] = current  # shared list: continuation lines reach every name
        elif current is not None and line.strip() and len(line) - len(line.lstrip()) > indent:
            current.append(line.strip())
        else:
            current = None
    joined = {n: " ".join(parts) for n, parts in entries.items()}
    # "steps: optimiser steps; batch_size: samples per step": one entry per field
    for n, text in list(joined.items()):
        pieces = re.split(r";\s+(?=([a-z_]+):\s)", text)
        if len(pieces) > 1 and all(p in fields for p in pieces[1::2]):
            joined[n] = pieces[0]
            for name, rest in zip(pieces[1::2], pieces[2::2]):
                if name not in entries:  # an entry of its own wins
                    joined[name] = rest.split(":", 1)[1].strip()
    return joined


def _inline_comment(cls: type, name: str) -> str:
    try:
        doc = get_attribute_docstring(cls, name)
    except Exception:  # source unavailable (a class built at run time): no comment
        return ""
    text = (doc.comment_inline or "").strip()
    return "" if text.startswith("---") or "noqa" in text else text


def _summary(cls: type) -> str:
    """The first paragraph of a class docstring."""
    doc = textwrap.dedent(cls.__dict__.get("__doc__") or "").strip()
    return doc.split("\n\n")[0].strip()


def _type_text(t: Any) -> str:
    """A type as the value a flag takes: {a,b} for a choice, [int,...] for a list, x|null."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return "|".join(_type_text(a) for a in rest) + "|null"
    if origin in (list, tuple, set) or (origin is not None and origin.__name__ in ("Sequence", "List")):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return "[" + ",".join(_type_text(a) for a in args) + "]"
        return "[" + (_type_text(args[0]) if args else "value") + ",...]"
    if origin is dict:
        return "{" + ":".join(_type_text(a) for a in args) + "}" if args else "{key:value}"
    if isinstance(t, type):
        return "path" if issubclass(t, PurePath) else t.__name__
    return str(t).replace("typing.", "")


def _metavar(cls: type, f: dataclasses.Field) -> str:
    try:
        t = typing.get_type_hints(cls)[f.name]
    except Exception:  # an annotation that does not resolve: print it as written
        return str(f.type).replace(" ", "")
    return _type_text(t)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    value = str(value) if hasattr(value, "__fspath__") else value
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"default: {text}"


def _entry(name: str, metavar: str, default: str, help_text: str) -> list[str]:
    head = f"  {name} {metavar}".rstrip()
    body = f"({default})" + (f" {help_text}" if help_text else "")
    return [head] + textwrap.wrap(body, WIDTH, initial_indent=" " * 8, subsequent_indent=" " * 8)


def _nested(f: dataclasses.Field) -> type | None:
    factory = f.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def _fields(cls: type, prefix: str, positional: str | None, out: list[str], groups: list) -> None:
    docs = {}  # a base's entries (TrainConfig's shared fields) below the class's own
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base) and base is not cls:
            docs.update(_docstring_entries(base))
    docs.update(_docstring_entries(cls))
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        dotted = prefix + f.name
        nested = _nested(f)
        if nested is not None:
            groups.append((dotted, nested, docs.get(f.name, "")))
            continue
        help_text = docs.get(f.name) or _inline_comment(cls, f.name)
        name = flag(dotted)
        if dotted == positional:
            name = f"{positional.upper()}, {name}"
            help_text = f"the positional argument, or {flag(dotted)}. " + help_text
        out += _entry(name, _metavar(cls, f), _default(f), help_text)


def _group(title: str, summary: str, cls: type, prefix: str, out: list[str]) -> None:
    lines: list[str] = []
    groups: list = []
    _fields(cls, prefix, None, lines, groups)
    if lines:
        out += ["", title + ":"]
        out += textwrap.wrap(" ".join(summary.split()), WIDTH, initial_indent="  ", subsequent_indent="  ")
        out += lines
    for dotted, nested, doc in groups:
        _nested_group(dotted, nested, doc, out)


def _nested_group(dotted: str, cls: type, doc: str, out: list[str]) -> None:
    if issubclass(cls, ChoiceType):
        choices = cls.get_known_choices()
        default = cls.get_choice_name(cls) if cls in choices.values() else cls.default_choice_name()
        out += ["", f"{dotted}: one of {', '.join(choices)}, chosen with {flag(dotted + '.type')}"]
        out += _entry(flag(dotted + ".type"), "{" + ",".join(choices) + "}", f"default: {default}", doc)
        for name, choice in choices.items():
            _group(f"{dotted} ({flag(dotted + '.type')} {name})", _summary(choice), choice, dotted + ".", out)
    else:
        _group(dotted, doc or _summary(cls), cls, dotted + ".", out)


def usage(command: str, positional: str | None) -> str:
    pos = f" {positional.upper()}" if positional else ""
    return f"usage: care {command}{pos} [-h] [--config FILE] [--FIELD VALUE ...]"


def format_help(command: str, config_cls: type, positional: str | None, env_defaults: dict[str, str]) -> str:
    out = [usage(command, positional), "", _summary(config_cls), ""]
    out += textwrap.wrap(
        "Every field below is a flag: dots for nesting, dashes or underscores alike "
        "(--clip.wrist-camera = --clip.wrist_camera); a bool flag alone means true. "
        "Precedence: defaults < --preset < --config FILE < flags.", WIDTH)
    out += ["", "options:"]
    out += ["  -h, --help", "        show this help and exit"]
    out += _entry("--config", "FILE", "default: none", "a YAML file of these fields (nested as mappings); "
                  "a run's run_config.yaml reads back this way")
    lines: list[str] = []
    groups: list = []
    _fields(config_cls, "", positional, lines, groups)
    out += ["", f"{config_cls.__name__}:"] + lines
    for dotted, nested, doc in groups:
        _nested_group(dotted, nested, doc, out)
    env = ", ".join(f"{k}={v}" for k, v in env_defaults.items())
    out += [""] + textwrap.wrap(
        f"Environment: before torch loads, care sets {env} unless already set (idle OpenMP threads "
        "sleep instead of spinning beside other work; headless rendering).", WIDTH)
    return "\n".join(out) + "\n"
