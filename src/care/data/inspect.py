"""`care dataset info DIR` and `care dataset validate DIR`.

`info` prints what a dataset holds. `validate` checks every file against the metadata and
prints each problem as `<file>: <problem>`; it returns 1 if it found any, 0 otherwise:
    meta/info.json     present, well-formed, v3, not empty; totals agree with the tables
    meta/tasks.parquet, meta/episodes/*, data/*: readable, with the columns they need
    per episode        lengths agree (episodes table, data parquet, decoded video frames,
                       track files); frame_index is 0..T-1; timestamps are frame_index / fps;
                       no NaN or inf in actions or states
    videos/*           decoded frames have the size meta/info.json declares for the camera
                       (the feature's `shape`, and `info.video.width/height` when given)
    tracks/*           readable, (T, N, 2) with T the episode length and one N throughout
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from care.configs import DatasetConfig
from care.data import lerobot as L
from care.data import video as V
from care.errors import DatasetError


def _summary(ds: L.LeRobotDataset) -> list[str]:
    lines = [
        f"dataset   {ds.root}",
        f"format    LeRobot {ds.info.get('codebase_version')}, robot_type {ds.info.get('robot_type')}",
        f"episodes  {ds.num_episodes}",
        f"frames    {ds.num_frames} ({ds.num_frames / max(ds.num_episodes, 1):.1f} per episode, "
        f"{ds.num_frames / ds.fps / 60:.1f} min)",
        f"fps       {ds.fps:g}",
    ]
    # tasks as training groups them (care.data.clips.task_groups: an episode's env_name, else its
    # instruction), not instructions: a Meta-World task has several paraphrased instructions
    groups: dict[str, list[str]] = {}
    for e in ds.episode_indices:
        text = ds.episode_task(e)
        groups.setdefault(str(ds.episode_meta(e).get("env_name") or text), []).append(text)
    n_instructions = len({t for texts in groups.values() for t in texts})
    lines.append(f"tasks     {len(groups)}" + (f" ({n_instructions} instructions)" if n_instructions != len(groups) else ""))
    for key, texts in list(groups.items())[:20]:
        distinct = list(dict.fromkeys(texts))
        more = f" (+{len(distinct) - 1} paraphrases)" if len(distinct) > 1 else ""
        label = key if key == distinct[0] else f"{key}: {distinct[0]}"
        lines.append(f"          [{len(texts):4d} ep] {label}{more}")
    if len(groups) > 20:
        lines.append(f"          ... and {len(groups) - 20} more")
    for cam in ds.cameras:
        h, w = ds.frame_shape(cam)
        ft = ds.features[ds.camera_key(cam)]
        codec = (ft.get("info") or {}).get("video.codec", ft.get("dtype"))
        lines.append(f"camera    {cam}: {w}x{h} ({codec})")
    for key, has in (("action", ds.has_actions), ("observation.state", ds.has_state)):
        dim = f" ({ds.features[key]['shape'][0]} dims)" if has else ""
        lines.append(f"{'actions' if key == 'action' else 'state':9s} {'yes' if has else 'no'}{dim}")
    store = ds.track_store
    tracked = set(store.episodes()) & set(ds.episode_indices)
    if tracked:
        meta = store.meta(min(tracked))
        tracks, _, _ = store.read(min(tracked))
        lines.append(
            f"tracks    {len(tracked)}/{ds.num_episodes} episodes, method {meta.get('method', '?')}, "
            f"{tracks.shape[1]} points"
        )
    else:
        lines.append(f"tracks    no (run `care track {ds.root}`)")
    successes = [ds.episode_meta(e).get("success") for e in ds.episode_indices]
    known = [bool(s) for s in successes if s is not None]
    if known:
        lines.append(f"success   {np.mean(known):.1%} of {len(known)} episodes (expert)")
        groups: dict[str, list[bool]] = {}
        for e, s in zip(ds.episode_indices, successes):
            if s is not None:
                key = ds.episode_meta(e).get("env_name") or ds.episode_task(e)
                groups.setdefault(str(key), []).append(bool(s))
        if len(groups) > 1:
            for key, vals in sorted(groups.items()):
                lines.append(f"          {np.mean(vals):6.1%}  {key} ({len(vals)} ep)")
    return lines


def info(cfg: DatasetConfig) -> int:
    ds = L.LeRobotDataset(cfg.dataset)
    print("\n".join(_summary(ds)))
    return 0


# ----------------------------------------------------------------------------------------
# validate
# ----------------------------------------------------------------------------------------


class _Problems:
    def __init__(self):
        self.items: list[str] = []

    def add(self, path, problem: str) -> None:
        self.items.append(f"{path}: {problem}")

    def error(self, e: DatasetError) -> None:
        self.items.append(str(e))  # DatasetError messages already start with the file


def _declared_sizes(ft: dict) -> list[tuple[str, int, int]]:
    """(where, width, height) of a video feature as meta/info.json declares it: its `shape`
    ((H, W, C), or (C, H, W) when `names` says so) and its `info` block's video.width/height."""
    out = []
    shape = ft.get("shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 3:
        names = ft.get("names") or ["height", "width", "channels"]
        h, w = (shape[1], shape[2]) if names[0] in ("channel", "channels") else (shape[0], shape[1])
        out.append(("shape", int(w), int(h)))
    vi = ft.get("info") or {}
    if "video.width" in vi and "video.height" in vi:
        out.append(("info", int(vi["video.width"]), int(vi["video.height"])))
    return out


def validate(cfg: DatasetConfig) -> int:
    root = Path(cfg.dataset)
    problems = _Problems()
    _validate(root, problems)
    for p in problems.items:
        print(p)
    if problems.items:
        print(f"{root}: {len(problems.items)} problem(s) found")
        return 1
    print(f"{root}: ok")
    return 0


def _validate(root: Path, problems: _Problems) -> None:
    if not root.is_dir():
        problems.add(root, "dataset folder not found")
        return
    info_path = root / L.INFO_PATH
    try:
        info = L.load_info(root)
    except DatasetError as e:
        problems.error(e)
        return
    fps = float(info["fps"])
    try:
        tasks = L.load_tasks(root)
    except DatasetError as e:
        problems.error(e)
        tasks = None
    try:
        episodes = L.load_episodes(root)
    except DatasetError as e:
        problems.error(e)
        return
    episodes_path = root / L.EPISODES_DIR
    rows = episodes.select([c for c in episodes.column_names if not c.startswith("stats/")]).to_pylist()
    ep_ids = [int(r["episode_index"]) for r in rows]
    if int(info["total_episodes"]) != len(rows):
        problems.add(info_path, f"total_episodes is {info['total_episodes']}, the episodes table has {len(rows)} rows")
    if sorted(ep_ids) != list(range(len(ep_ids))):
        problems.add(episodes_path, "episode_index values are not 0..N-1 without gaps or repeats")
    if tasks is not None:
        if "total_tasks" in info and int(info["total_tasks"]) != len(tasks):
            problems.add(info_path, f"total_tasks is {info['total_tasks']}, {L.TASKS_PATH} has {len(tasks)}")
        known = set(tasks.values())
        for r in rows:
            for t in r.get("tasks") or []:
                if t not in known:
                    problems.add(episodes_path, f"episode {r['episode_index']}: task {t!r} is not in {L.TASKS_PATH}")
    if not (root / L.STATS_PATH).is_file():
        problems.add(root / L.STATS_PATH, "missing (per-feature statistics)")

    # data parquet files, each read once
    features = info["features"]
    vector_keys = [k for k in (L.STATE, L.ACTION) if k in features]
    per_episode: dict[int, dict] = {}
    total = 0
    for path in L._data_files(root, info, episodes):
        try:
            table = L._read_parquet(path)
        except DatasetError as e:
            problems.error(e)
            continue
        need = ["episode_index", "frame_index", "timestamp"] + vector_keys
        absent = [c for c in need if c not in table.column_names]
        if absent:
            problems.add(path, f"missing column(s) {absent}")
            continue
        total += table.num_rows
        ep_col = table.column("episode_index").to_numpy()
        fi = table.column("frame_index").to_numpy()
        ts = table.column("timestamp").to_numpy().astype(np.float64)
        arrays = {k: L._column_to_numpy(table.column(k)) for k in vector_keys}
        for e in np.unique(ep_col):
            m = ep_col == e
            d = per_episode.setdefault(int(e), {"rows": 0, "files": []})
            d["rows"] += int(m.sum())
            d["files"].append(path)
            f = np.sort(fi[m])
            if not np.array_equal(f, np.arange(len(f))):
                problems.add(path, f"episode {e}: frame_index is not 0..{len(f) - 1}")
            order = np.argsort(fi[m], kind="stable")
            bad_ts = np.abs(ts[m][order] - fi[m][order] / fps) > max(1e-3, 0.01 / fps)
            if bad_ts.any():
                k = int(np.argmax(bad_ts))
                problems.add(
                    path,
                    f"episode {e}: timestamp {ts[m][order][k]:.4f} s at frame {fi[m][order][k]} is not "
                    f"frame_index / fps = {fi[m][order][k] / fps:.4f} s",
                )
            for key, x in arrays.items():
                bad = ~np.isfinite(x[m])
                if bad.any():
                    frame = int(fi[m][np.argmax(bad.any(axis=1))])
                    problems.add(
                        path, f"episode {e}: {key} holds NaN or inf ({int(bad.sum())} values, first at frame {frame})"
                    )
    for e in sorted(set(per_episode) - set(ep_ids)):
        problems.add(per_episode[e]["files"][0], f"rows of episode {e}, which is not in the episodes table")
    if "total_frames" in info and int(info["total_frames"]) != total:
        problems.add(info_path, f"total_frames is {info['total_frames']}, the data parquet files hold {total} rows")

    # per episode: table length vs data rows vs decoded video frames vs tracks
    store = L.TrackStore(root)
    track_eps = set(store.episodes())
    video_keys = [k for k, ft in features.items() if isinstance(ft, dict) and ft.get("dtype") == "video"]
    template = info.get("video_path") or L.DEFAULT_VIDEO_PATH
    declared = {}
    for key in video_keys:
        ft = features[key]
        try:
            declared[key] = _declared_sizes(ft)
        except (TypeError, ValueError, IndexError, KeyError):
            declared[key] = []
        if not any(where == "shape" for where, _, _ in declared[key]):
            problems.add(info_path, f"{key}: shape is {ft.get('shape')!r}, not (height, width, channels)")
    size_checked: set[Path] = set()  # each video file's frame size is reported once
    n_points: dict[int, list[int]] = {}
    for r in rows:
        e = int(r["episode_index"])
        rows_in_data = per_episode.get(e, {}).get("rows", 0)
        length = r.get("length")
        if rows_in_data == 0:
            problems.add(episodes_path, f"episode {e}: no rows in the data parquet files")
        if length is not None and int(length) != rows_in_data:
            problems.add(
                per_episode.get(e, {}).get("files", [episodes_path])[0],
                f"episode {e}: {rows_in_data} rows, the episodes table says length {length}",
            )
        T = rows_in_data or int(length or 0)
        for key in video_keys:
            try:
                chunk, file = int(r[f"videos/{key}/chunk_index"]), int(r[f"videos/{key}/file_index"])
                from_ts = float(r.get(f"videos/{key}/from_timestamp") or 0.0)
                to_ts = r.get(f"videos/{key}/to_timestamp")
                to_ts = float(to_ts) if to_ts is not None else from_ts + T / fps
            except (KeyError, TypeError):
                problems.add(episodes_path, f"episode {e}: no video file indices for {key}")
                continue
            vpath = root / template.format(video_key=key, chunk_index=chunk, file_index=file)
            if abs((to_ts - from_ts) * fps - T) > 0.5:
                problems.add(
                    episodes_path,
                    f"episode {e}: {key} spans {to_ts - from_ts:.3f} s = {(to_ts - from_ts) * fps:.1f} frames, "
                    f"the episode has {T}",
                )
            try:
                frames = V.decode_span(vpath, from_ts, to_ts, fps)
            except DatasetError as err:
                problems.add(vpath, f"episode {e}: {str(err).removeprefix(f'{vpath}: ')}")
                continue
            n = len(frames)
            if n and vpath not in size_checked:
                size_checked.add(vpath)
                h, w = frames.shape[1:3]
                for where, dw, dh in declared[key]:
                    if (dw, dh) != (w, h):
                        field = f"{key} shape {features[key].get('shape')}" if where == "shape" else (
                            f"{key} info video.width/video.height")
                        problems.add(
                            vpath,
                            f"frames are {w}x{h} (width x height), {info_path} declares {dw}x{dh} ({field})",
                        )
            if n != T:
                problems.add(
                    vpath,
                    f"episode {e}: decoded {n} frames in [{from_ts:.3f}, {to_ts:.3f}) s, the data parquet has "
                    f"{T} (truncated or corrupt video, or lengths that disagree)",
                )
        if e in track_eps:
            try:
                tracks, visible, _ = store.read(e)
            except DatasetError as err:
                problems.error(err)
                continue
            if len(tracks) != T:
                problems.add(store.path(e), f"{len(tracks)} frames of tracks, the episode has {T}")
            if not np.isfinite(tracks[visible]).all():
                problems.add(store.path(e), "NaN or inf coordinates at visible points")
            n_points.setdefault(tracks.shape[1], []).append(e)
    for e in sorted(track_eps - set(ep_ids)):
        problems.add(store.path(e), f"tracks for episode {e}, which is not in the dataset")
    if len(n_points) > 1:
        desc = ", ".join(f"{n} points in {len(eps)} episode(s)" for n, eps in sorted(n_points.items()))
        problems.add(store.dir, f"episodes have different numbers of tracked points ({desc})")
    if track_eps and len(track_eps & set(ep_ids)) < len(ep_ids):
        missing = sorted(set(ep_ids) - track_eps)
        problems.add(
            store.dir, f"{len(missing)} episode(s) have no tracks (first: {missing[0]}); run `care track {root}`"
        )
