"""Every block of README.md pastes and runs, so the README cannot drift from the code.

`test_readme_blocks_run_in_order` (slow) extracts every ```bash and ```python block, shrinks its
budgets by the rule below, and runs the blocks in order in a temporary folder (`configs/` and
`results/` linked in, `care` on the PATH), failing on the first block that errors.
A block after `<!-- readme-test: skip (reason) -->` is not run (it needs hours, GPUs, a robot
or a server that runs until stopped); the fast tests check every `care` command of every block,
run or not: its subcommand exists and each of its flags is one `care <command> --help` lists.

The budget rule, applied to each `care <command>` line (nothing else is changed):
    every command       --env.tasks MT10 -> drawer-close-v3,reach-v3 (2 tasks); --workers N -> 1;
                        --config configs/<stage>/<x>_tiny.yaml -> <x>_micro.yaml; --preset tiny -> micro
    collect             --episodes-per-task N -> 4; --env.size N -> 32
    pretrain, lam       + --steps 20 --val-every 10 --save-every 0; pretrain also
                        + --clip.val-episodes-per-task 2 (the probe needs 2 held-out episodes per task)
    finetune            --episodes-per-task N -> 2; without --config: + --config configs/finetune/care_micro.yaml;
                        + --steps 20 --save-every 0
    eval                --episodes-per-task N -> 1; + --env.max-steps 20 --videos-per-task 1
    probe               + --epochs 20 --semantic-epochs 5 --max-clips 4
    label               + --episodes-per-task 2 --idm.steps 20 --idm.image-size 32
and the folder `my_videos/` the tour imports (two 64x48 clips and labels.json) is made first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from helpers import REPO_ROOT, synthetic_frames

README = REPO_ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+?)\)\s*-->")
# sections whose blocks other documents own the running of: the multi-process launches need
# several GPUs or processes for hours (tests/training/test_multiprocess.py runs them at micro scale)
SKIP_SECTIONS: dict[str, str] = {}  # section title -> reason, for a whole section without markers

TWO_TASKS = "drawer-close-v3,reach-v3"
REPLACE = {  # command -> {flag: new value}; "*" applies to every command
    "*": {"--env.tasks": TWO_TASKS, "--workers": "1", "--preset": lambda v: "micro" if v == "tiny" else v,
          "--config": lambda v: v.replace("_tiny.yaml", "_micro.yaml")},
    "collect": {"--episodes-per-task": "4", "--env.size": "32"},
    "finetune": {"--episodes-per-task": "2"},
    "eval": {"--episodes-per-task": "1"},
}
APPEND = {
    "pretrain": ["--steps", "20", "--val-every", "10", "--save-every", "0", "--clip.val-episodes-per-task", "2"],
    "lam": ["--steps", "20", "--val-every", "10", "--save-every", "0"],
    "finetune": ["--steps", "20", "--save-every", "0"],
    "eval": ["--env.max-steps", "20", "--videos-per-task", "1"],
    "probe": ["--epochs", "20", "--semantic-epochs", "5", "--max-clips", "4"],
    "label": ["--episodes-per-task", "2", "--idm.steps", "20", "--idm.image-size", "32"],
}
DEFAULT_CONFIG = {"finetune": "configs/finetune/care_micro.yaml"}


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    section: str
    skip: str | None  # the reason, for a block not run


def readme_blocks() -> list[Block]:
    blocks, section, pending_skip = [], "", None
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        m = SKIP.search(line)
        if m:
            pending_skip = m.group(1)
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            lang = fence.group(1)
            if lang in ("bash", "sh", "python"):
                skip = pending_skip or SKIP_SECTIONS.get(section)
                blocks.append(Block(i + 1, lang, "\n".join(lines[i + 1:end]), section, skip))
            pending_skip = None
            i = end
        elif line.strip() and not m:
            pending_skip = None  # a marker applies to the block right after it
        i += 1
    return blocks


def shell_commands(text: str) -> list[list[str]]:
    """The commands of a shell block as token lists: `\\`-continued lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [tokens for line in joined.splitlines() if (tokens := shlex.split(line, comments=True))]


def care_command(tokens: list[str]) -> tuple[str, list[str]] | None:
    """(subcommand, its arguments) of `care ...`, `python -m care ...`, `accelerate launch ... -m care ...`."""
    from care.cli import COMMANDS

    if tokens[0] == "care":
        rest = tokens[1:]
    elif "-m" in tokens and tokens.index("-m") + 1 < len(tokens) and tokens[tokens.index("-m") + 1] == "care":
        rest = tokens[tokens.index("-m") + 2:]
    else:
        return None
    if not rest or rest[0].startswith("-"):
        return "", rest
    name = " ".join(rest[:2]) if " ".join(rest[:2]) in COMMANDS else rest[0]
    return name, rest[len(name.split()):]


def shrink(name: str, args: list[str]) -> list[str]:
    """The budget rule of the module docstring."""
    rules = {**REPLACE["*"], **REPLACE.get(name, {})}
    out, i = [], 0
    while i < len(args):
        a = args[i]
        key, eq, value = a.partition("=")
        if key in rules and (eq or i + 1 < len(args)):
            if not eq:
                value = args[i + 1]
                i += 1
            rule = rules[key]
            out += [key, rule(value) if callable(rule) else rule]
        else:
            out.append(a)
        i += 1
    if name in DEFAULT_CONFIG and "--config" not in out:
        out = ["--config", DEFAULT_CONFIG[name], *out]
    return out + APPEND.get(name, [])


# --- fast: every care command of every block, run or not, against --help ---


def _help_flags(name: str) -> set[str]:
    from care.cli import COMMANDS, ENV_DEFAULTS
    from care.cli_help import format_help

    cls, _, positional = COMMANDS[name]
    text = format_help(name, cls, positional, ENV_DEFAULTS)
    return set(re.findall(r"^  (?:[A-Z]+, )?(--[a-z0-9.\-]+)", text, re.M)) | {"--help", "-h"}


def test_readme_commands_use_flags_that_exist():
    from care.cli import COMMANDS

    checked = 0
    for block in readme_blocks():
        if block.lang == "python":
            continue
        for tokens in shell_commands(block.text):
            where = f"README.md:{block.line} ({block.section}): {shlex.join(tokens)}"
            assert not any(t.startswith("[") and "--" in t for t in tokens), \
                f"{where}: optional flags in [...] do not paste; write them as a comment or a second command"
            cmd = care_command(tokens)
            if cmd is None:
                continue
            name, args = cmd
            if name == "":
                assert set(args) <= {"--help", "-h"}, where
                continue
            assert name in COMMANDS, f"{where}: no command `care {name}`"
            valid = _help_flags(name)
            for a in args:
                if a.startswith("--"):
                    flag = a.split("=", 1)[0].replace("_", "-")
                    assert flag in valid, f"{where}: `care {name} --help` lists no {flag}"
            checked += 1
    assert checked >= 20, checked


def test_two_stage_recipes_read_their_own_stage_1():
    """Each `care pretrain --config configs/pretrain/<m>_*.yaml --method.lam DIR` reads a DIR that a
    `care lam --config configs/lam/<m>_*.yaml` block wrote (CoMo's stage 2 on LAPA's stage 1 fails)."""
    lam_of: dict[str, str] = {}
    pairs = 0
    for block in readme_blocks():
        if block.lang == "python":
            continue
        for tokens in shell_commands(block.text):
            cmd = care_command(tokens)
            if cmd is None or cmd[0] not in ("lam", "pretrain"):
                continue
            name, args = cmd
            opts = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
            method = Path(opts.get("--config", "care_")).name.split("_")[0]
            if name == "lam":
                lam_of[opts["--output-dir"]] = method
            elif "--method.lam" in opts:
                assert lam_of.get(opts["--method.lam"]) == method, \
                    f"README.md:{block.line}: {method} stage 2 reads {opts['--method.lam']}, a {lam_of.get(opts['--method.lam'])} stage 1"
                pairs += 1
    assert pairs >= 2


def test_readme_names_the_micro_configs_and_how_to_get_care_on_the_path():
    text = README.read_text()
    first_screen = text[:text.index("## A quick tour")]
    assert "source .venv/bin/activate" in first_screen and ".venv/bin/care" in first_screen
    assert "make demo" in first_screen and "make test" in first_screen
    for path in sorted(REPO_ROOT.glob("configs/*/*_micro.yaml")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        stage, name = rel.split("/")[1], path.stem.split("_")[0]
        assert rel in text or f"configs/{stage}/{{" in text and name in text, f"README does not mention {rel}"


def test_shrink_rule():
    assert shrink("collect", ["--env.tasks", "MT10", "--episodes-per-task", "20", "--workers=2"]) == [
        "--env.tasks", TWO_TASKS, "--episodes-per-task", "4", "--workers", "1"]
    assert shrink("finetune", ["--pretrained", "runs/x"])[:2] == ["--config", "configs/finetune/care_micro.yaml"]
    assert shrink("pretrain", ["--config", "configs/pretrain/care_tiny.yaml"])[:2] == [
        "--config", "configs/pretrain/care_micro.yaml"]


# --- slow: run them ---


def _write_videos(folder: Path) -> None:
    import av

    folder.mkdir()
    for vid, seed in (("1", 1), ("2", 2)):
        frames, _ = synthetic_frames(12, 48, seed=seed, width=64)
        with av.open(str(folder / f"{vid}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
            for i, img in enumerate(frames):
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts, f.time_base = i, Fraction(1, 10)
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    (folder / "labels.json").write_text(json.dumps([{"id": "1", "label": "pushing something left"},
                                                    {"id": "2", "label": "lifting something up"}]))


def _run(cmd: list[str] | str, cwd: Path, env: dict, where: str, shell: bool = False) -> None:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=shell, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"{where} failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")


@pytest.mark.slow
def test_readme_blocks_run_in_order(tmp_path):
    pytest.importorskip("metaworld")  # the tour collects Meta-World episodes
    work = tmp_path / "work"
    work.mkdir()
    for name in ("configs", "results"):
        (work / name).symlink_to(REPO_ROOT / name)
    _write_videos(work / "my_videos")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "care").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m care \"$@\"\n")
    (bin_dir / "care").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    ran = 0
    for block in readme_blocks():
        if block.skip:
            continue
        where = f"README.md:{block.line} ({block.section})"
        if block.lang == "python":
            _run([sys.executable, "-c", textwrap.dedent(block.text)], work, env, where)
        else:
            lines = []
            for tokens in shell_commands(block.text):
                cmd = care_command(tokens)
                if cmd is not None and tokens[0] == "care":
                    name, args = cmd
                    tokens = ["care", *name.split(), *shrink(name, args)]
                lines.append(shlex.join(tokens))
            _run("set -e\n" + "\n".join(lines), work, env, f"{where}:\n" + "\n".join(lines), shell=True)
        ran += 1
    assert ran >= 6
    # what the README says each run writes
    for run in ("runs/care_tiny", "runs/lapa_lam", "runs/como", "runs/care_tiny_ft", "runs/eval",
                "runs/care_tiny_probe"):
        assert (work / run / "run_config.yaml").is_file(), run
    assert (work / "data/mt10/meta/care_collect.yaml").is_file()
    assert (work / "data/mine/meta/care_import.yaml").is_file()
