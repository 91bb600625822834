"""Which episodes a probe may measure on: those of the dataset that no stage of the model saw.

Every pretraining run writes `<run>/episodes.json` (care.training.pretrain):

    {"dataset": "/abs/path", "frame_interval": n, "stage": "pretrain" | "lam",
     "train": [episode indices trained on], "val": [held-out episode indices],
     "extra": [{"dataset": ..., "train": [...], "val": [...]}, ...]}   (pretraining on several datasets)

A two-stage method (LAPA-style, CoMo-style) has a second one: its stage-1 run's, reached
through the stage-2 folder's copy `<run>/lam/episodes.json` or the stage-1 folder that
method.json names in "lam". An episode is *trained on* when a stage's `dataset` is the
probed dataset and the episode is in that stage's "train" list; everything else of the
dataset is held out (for the pretraining dataset: its "val" episodes).

The held-out episodes are then split by task into probe-train (fits the probes: z-score
statistics, action bounds, the linear layer, the classifier) and probe-test (scores them),
with a per-task permutation that depends only on (seed, task name): the same split for every
method probed on the same dataset with the same seed.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from care.errors import ConfigError
from care.folders import EPISODES_NAME, LAM_DIR, METHOD_NAME


@dataclass
class StageEpisodes:
    """One training stage's record: where it came from and what it trained on."""

    source: Path  # the episodes.json file
    stage: str
    dataset: Path
    frame_interval: int
    train: list[int]
    val: list[int]


@dataclass
class HeldOut:
    """The model's stages and the dataset's episodes none of them trained on."""

    stages: list[StageEpisodes]
    frame_interval: int  # n: the (stage-2) run's frame interval
    trained: dict[int, list[str]]  # episode -> the stages that trained on it (this dataset only)
    held_out: list[int]
    warnings: list[str] = field(default_factory=list)  # what may make the numbers wrong
    notes: list[str] = field(default_factory=list)  # what to know about them


def _read_stage(file: Path) -> list[StageEpisodes]:
    """One StageEpisodes per dataset the stage trained on (its "dataset", then its "extra" ones)."""
    try:
        d = json.loads(Path(file).read_text())
        stage, n = str(d.get("stage", "pretrain")), int(d["frame_interval"])
        return [StageEpisodes(source=Path(file), stage=stage, dataset=Path(r["dataset"]), frame_interval=n,
                              train=[int(e) for e in r["train"]], val=[int(e) for e in r.get("val", [])])
                for r in [d, *d.get("extra", [])]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{file}: malformed episodes file ({e}); it should hold "
                          '{"dataset", "frame_interval", "train": [...], "val": [...]}') from e


def stage1_files(run: Path) -> list[Path]:
    """The stage-1 episodes.json files reachable from a stage-2 folder (none for CARE)."""
    run = Path(run)
    candidates = [run / LAM_DIR / EPISODES_NAME]
    method_file = run / METHOD_NAME
    if method_file.is_file():
        try:
            lam = json.loads(method_file.read_text()).get("lam")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            lam = None
        if lam:
            lam = Path(lam).expanduser()
            candidates += [lam / EPISODES_NAME] if lam.is_absolute() else [lam / EPISODES_NAME, run / lam / EPISODES_NAME]
    seen, out = set(), []
    for c in candidates:
        if c.is_file() and c.resolve() not in seen:
            seen.add(c.resolve())
            out.append(c)
    return out


def has_stage1(run: Path) -> bool:
    """Whether the folder is a stage-2 model (method.json names a "lam", or it holds lam/)."""
    run = Path(run)
    if (run / LAM_DIR).is_dir():
        return True
    try:
        return bool(json.loads((run / METHOD_NAME).read_text()).get("lam"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def held_out_episodes(run: Path, dataset: Path, dataset_episodes: list[int],
                      requested: list[int] | None = None) -> HeldOut:
    """The episodes of `dataset` no stage of the model in `run` trained on (see module doc).

    `requested` (the user's `--episodes`) must be among them: a ConfigError names every
    requested episode a stage trained on, and any the dataset does not have.
    """
    run, dataset = Path(run), Path(dataset)
    own = run / EPISODES_NAME
    if not own.is_file():
        raise ConfigError(
            f"{own} not found: the probe cannot tell which episodes {run} was trained on, so it will not "
            "measure anything (a metric on training episodes is no held-out number). Runs of `care pretrain` "
            "write it; for an older run, write it by hand: "
            '{"dataset": "<the pretraining dataset>", "frame_interval": n, "train": [its training episodes], "val": []}')
    files = [own, *stage1_files(run)]
    stages = [s for f in files for s in _read_stage(f)]
    if has_stage1(run) and len(files) == 1:
        raise ConfigError(
            f"{run} is a two-stage model but its stage-1 run's {EPISODES_NAME} was not found (looked in "
            f"{run / LAM_DIR} and the folder method.json names in \"lam\"), so the probe cannot tell which "
            "episodes stage 1 trained on and will not measure anything. Copy the stage-1 run's "
            f"{EPISODES_NAME} to {run / LAM_DIR / EPISODES_NAME} (stage-2 folders written by this care "
            "version carry it)")
    warnings = []
    n = stages[0].frame_interval
    for s in stages[1:]:
        if s.frame_interval != n:
            warnings.append(f"stage {s.stage!r} ({s.source}) used frame_interval {s.frame_interval}, the model "
                            f"{n}: the probes use n = {n}")
    target = dataset.resolve()
    trained: dict[int, list[str]] = {}
    for s in stages:
        if s.dataset.resolve() == target:
            for e in s.train:
                trained.setdefault(e, []).append(f"{s.stage} ({s.source})")
    notes = []
    if not any(s.dataset.resolve() == target for s in stages):
        notes.append(f"{dataset} is not the dataset any stage was trained on "
                        f"({', '.join(sorted({str(s.dataset) for s in stages}))}): all its episodes are held out")
    available = sorted(int(e) for e in dataset_episodes)
    if requested is not None:
        unknown = sorted(set(requested) - set(available))
        if unknown:
            raise ConfigError(f"{dataset}: episodes {unknown} are not in the dataset")
        seen = sorted(e for e in requested if e in trained)
        if seen:
            by = sorted({st for e in seen for st in trained[e]})
            raise ConfigError(
                f"episodes {seen} were trained on by the model ({'; '.join(by)}): probing them measures "
                f"memorisation, not the latent. Held-out episodes of {dataset}: "
                f"{_short([e for e in available if e not in trained])}")
        chosen = sorted(requested)
    else:
        chosen = [e for e in available if e not in trained]
    if not chosen:
        raise ConfigError(f"{dataset}: every episode was trained on by the model; probe a dataset with held-out "
                          "episodes (pretrain with clip.val_episodes_per_task >= 1, or collect a probe dataset)")
    return HeldOut(stages=stages, frame_interval=n, trained=trained, held_out=chosen, warnings=warnings, notes=notes)


def _short(xs: list[int], k: int = 20) -> str:
    return str(xs) if len(xs) <= k else f"{xs[:k]} ... ({len(xs)} in all)"


def split_probe(groups: dict[str, list[int]], test_fraction: float, seed: int) -> tuple[list[int], list[int], list[str]]:
    """(probe_train, probe_test, notes): per task, round(test_fraction * k) episodes (at least one,
    at most k - 1) to probe-test, chosen by a permutation seeded by (seed, task name) only.
    A task with a single episode goes to probe-train (the classifier must see every task)."""
    train, test, notes = [], [], []
    for key in sorted(groups):
        eps = sorted(groups[key])
        rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
        perm = [eps[i] for i in rng.permutation(len(eps))]
        if len(perm) < 2:
            notes.append(f"task {key!r} has {len(perm)} held-out episode: probe-train only")
            train += perm
            continue
        k = min(max(int(math.floor(test_fraction * len(perm) + 0.5)), 1), len(perm) - 1)
        test += perm[:k]
        train += perm[k:]
    return sorted(train), sorted(test), notes
