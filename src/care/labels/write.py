"""Write a pseudo-labelled copy of a LeRobot v3 dataset.

    write_pseudo_labelled(src, dst, actions={ep: (T, A) float32}, record={...})

The copy shares the source's videos and tracks (hard links where the file system allows, else
copies) and rewrites what labels change: the data parquet files (`action` of every episode in
`actions`, and a per-frame bool `action_is_inferred`), the episodes table (its `stats/action/*`
columns and a per-episode `action_inferred`), `meta/stats.json` (action) and `meta/info.json`
(the new feature); `meta/pseudo_labels.json` records where the labels came from. The folder
appears whole or not at all (`care.io.atomic_dir`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from care.data import lerobot as L
from care.errors import DatasetError
from care.io import atomic_dir, atomic_write_json, read_json

INFERRED = "action_is_inferred"  # per frame: the action was inferred, not recorded
EPISODE_INFERRED = "action_inferred"  # per episode (episodes table)
RECORD_NAME = "meta/pseudo_labels.json"


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file of src under dst (copy where linking is refused)."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def write_pseudo_labelled(src: Path, dst: Path, actions: dict[int, np.ndarray], record: dict,
                          overwrite: bool = False) -> Path:
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise DatasetError(f"{dst}: the pseudo-labelled dataset must be a new folder, not the source dataset")
    ds = L.LeRobotDataset(src)
    if not ds.has_actions:
        raise DatasetError(f"{src}: has no `action` feature; the pseudo-labelled copy keeps the source's "
                           "action shape, so label a dataset with actions (or add an `action` feature first)")
    action_dim = int(ds.features[L.ACTION]["shape"][0])
    for ep, a in actions.items():
        if ep not in ds._row_of:
            raise DatasetError(f"{src}: no episode {ep} to pseudo-label")
        if a.shape != (ds.episode_length(ep), action_dim):
            raise DatasetError(f"{src}: episode {ep} has {ds.episode_length(ep)} frames of {action_dim}-d actions, "
                               f"the labels are {a.shape}")
        if not np.isfinite(a).all():
            raise DatasetError(f"{src}: the inferred actions of episode {ep} are not all finite")
    info = L.load_info(src)
    episodes = L.load_episodes(src)
    with atomic_dir(dst, overwrite=overwrite) as tmp:
        for sub in ("videos", "tracks", "images"):
            if (src / sub).is_dir():
                _link_tree(src / sub, tmp / sub)
        shutil.copytree(src / "meta", tmp / "meta")
        # data: the new actions and the per-frame flag, file by file
        per_episode_actions: dict[int, np.ndarray] = {}
        for path in L._data_files(src, info, episodes):
            t = L._read_parquet(path)
            ep_col = t.column("episode_index").to_numpy().astype(np.int64)
            fi = t.column("frame_index").to_numpy().astype(np.int64)
            old = L._column_to_numpy(t.column(L.ACTION))
            new = old.copy()
            flag = np.zeros(len(t), bool)
            for ep in np.unique(ep_col):
                rows = np.nonzero(ep_col == ep)[0]
                if int(ep) in actions:
                    new[rows] = actions[int(ep)][fi[rows]]
                    flag[rows] = True
                per_episode_actions[int(ep)] = new[rows][np.argsort(fi[rows])]
            t = _with_column(t, L.ACTION, L._fixed_list(new.astype(np.float32)))
            t = _with_column(t, INFERRED, pa.array(flag))
            out = tmp / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, out)
        # episodes table: action stats of the relabelled episodes, and which they are
        ep_ids = [int(e) for e in episodes.column("episode_index").to_pylist()]
        for stat in ("min", "max", "mean", "std", "count"):
            col = f"stats/{L.ACTION}/{stat}"
            if col in episodes.column_names:
                values = [L._stats(per_episode_actions[e])[stat] for e in ep_ids]
                episodes = _with_column(episodes, col, pa.array(values, type=episodes.schema.field(col).type))
        episodes = _with_column(episodes, EPISODE_INFERRED, pa.array([e in actions for e in ep_ids]))
        for f in sorted((tmp / L.EPISODES_DIR).rglob("*.parquet")):
            f.unlink()
        out = tmp / L.DEFAULT_EPISODES_PATH.format(chunk_index=0, file_index=0)
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(episodes, out)
        # stats.json and info.json
        every = np.concatenate([per_episode_actions[e] for e in ep_ids])
        stats = read_json(src / L.STATS_PATH) if (src / L.STATS_PATH).is_file() else {}
        stats[L.ACTION] = {**L._stats(every), **L._quantiles(every)}
        atomic_write_json(tmp / L.STATS_PATH, stats)
        info = dict(info)
        info["features"] = {**info["features"], INFERRED: {"dtype": "bool", "shape": [1], "names": None}}
        atomic_write_json(tmp / L.INFO_PATH, info)
        atomic_write_json(tmp / RECORD_NAME, record, indent=2)
    return dst
