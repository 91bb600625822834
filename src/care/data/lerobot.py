"""LeRobot v3 datasets: write and read.

Layout (codebase_version "v3.0", as huggingface/lerobot writes it):
    meta/info.json                       fps, features, path templates, totals
    meta/tasks.parquet                   task string (pandas index "task") -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode (length, tasks, data and
                                         video file indices, from/to timestamps, stats; plus
                                         care columns: `success`, `env_name`, `seed`, ...)
    meta/stats.json                      per-feature min/max/mean/std/count (+ q01/q99 for
                                         action and observation.state)
    data/chunk-000/file-000.parquet      one row per frame: observation.state, action (opt.),
                                         episode_index, frame_index, timestamp, task_index, index
    videos/observation.images.<cam>/chunk-000/file-000.mp4   several episodes per file
    tracks/episode_000000.safetensors    care extension (see care.data.tracks)

A data or video file rolls over to the next file index (and, past `chunks_size` files, the
next chunk) once it passes its size limit; an episode never straddles two files.

The reader takes any v3 dataset a user brings: any camera names (`observation.images.*`,
or another video/image feature), state and action optional, image features stored in the
parquet files as well as videos. All data parquet files are read once, in `__init__`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from care.data import video as V
from care.io import atomic_write_json, read_json
from care.data.tracks import TrackStore
from care.errors import DatasetError

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000  # files per chunk folder
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 500
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
DEFAULT_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"

IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"
INDEX_FEATURES = {  # LeRobot's DEFAULT_FEATURES
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILE_FEATURES = (ACTION, STATE)  # fine-tuning normalises these by 1st/99th percentiles


@dataclass
class Episode:
    """One episode in memory, as produced by a collector or an importer.

    frames: {camera: uint8 (T, H, W, 3)}; state: float32 (T, S) or None;
    action: float32 (T, A) or None (a video-only dataset); task: the instruction string;
    extra: per-episode metadata stored as columns of the episodes table
    (e.g. {"success": True, "env_name": "drawer-close-v3", "seed": 3}).
    tracks: float32 (T, N, 2) pixel (x, y) or None; visible: bool (T, N) or None.
    track_meta: metadata of the track file (default {"method": "groundtruth"}).
    """

    frames: dict[str, np.ndarray]
    task: str
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    extra: dict | None = None
    tracks: np.ndarray | None = None
    visible: np.ndarray | None = None
    track_meta: dict | None = None

    @property
    def length(self) -> int:
        return len(next(iter(self.frames.values())))


# ----------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's update_chunk_file_indices."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def _fixed_list(arr: np.ndarray) -> pa.Array:
    """(T, D) float32 -> fixed_size_list<float>[D] (what HF datasets' Sequence(length=D) writes)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def _column_to_numpy(col: pa.ChunkedArray | pa.Array, dtype=np.float32) -> np.ndarray:
    """A parquet column of vectors (list / fixed-size list) or scalars -> (rows, D) array."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        flat = arr.flatten()
        while pa.types.is_list(flat.type) or pa.types.is_fixed_size_list(flat.type):
            flat = flat.flatten()  # nested (e.g. (1, D) arrays)
        values = flat.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        return values.reshape(n, -1) if n else values.reshape(0, 0)
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(n, 1)


def _stats(x: np.ndarray) -> dict:
    """min/max/mean/std/count over axis 0 of (T, D), as lists (LeRobot's episode stats)."""
    x = np.asarray(x, dtype=np.float64)
    return {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [int(len(x))],
    }


def _image_stats(frames: np.ndarray, max_frames: int = 16, max_side: int = 64) -> dict:
    """Per-channel stats of frames in [0, 1], shape (3, 1, 1), from a subsample (as LeRobot)."""
    step_t = max(1, len(frames) // max_frames)
    step_s = max(1, max(frames.shape[1:3]) // max_side)
    sample = frames[::step_t, ::step_s, ::step_s].reshape(-1, 3).astype(np.float64) / 255.0
    s = _stats(sample)
    out = {k: [[[v]] for v in s[k]] for k in ("min", "max", "mean", "std")}
    out["count"] = [int(len(frames[::step_t]))]
    return out


def _aggregate(per_episode: list[dict]) -> dict:
    """Pool episode stats: min of mins, max of maxes, count-weighted mean, pooled variance."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    mins = np.stack([np.asarray(s["min"], np.float64) for s in per_episode])
    maxs = np.stack([np.asarray(s["max"], np.float64) for s in per_episode])
    means = np.stack([np.asarray(s["mean"], np.float64) for s in per_episode])
    stds = np.stack([np.asarray(s["std"], np.float64) for s in per_episode])
    w = (counts / counts.sum()).reshape(-1, *([1] * (means.ndim - 1)))
    mean = (w * means).sum(0)
    var = (w * (stds**2 + (means - mean) ** 2)).sum(0)
    return {
        "min": mins.min(0).tolist(),
        "max": maxs.max(0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(var).tolist(),
        "count": [int(counts.sum())],
    }


def _quantiles(x: np.ndarray) -> dict:
    return {"q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist()}


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: unreadable parquet file ({e})") from e


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------


class LeRobotDatasetWriter:
    """Append episodes, then `finalize()`. Writes into `root` (the caller passes a temporary
    folder and renames it when done; see care.io.atomic_dir).

    Args:
        root: dataset folder (created).
        fps: frame rate of every episode.
        robot_type: stored in info.json (e.g. "sawyer").
        crf: x264 constant rate factor (lower = better quality, bigger files).
        gop: keyframe interval in frames (every episode also starts on a keyframe).
        codec: PyAV encoder name ("libx264"; "libsvtav1" is LeRobot's default but slower).
        names: optional per-dimension names, e.g. {"action": ["dx", "dy", "dz", "grip"]}.
        data_file_size_mb / video_file_size_mb: roll to a new file past these sizes.
        chunks_size: files per chunk folder.
    """

    def __init__(
        self,
        root: Path,
        fps: float,
        robot_type: str | None = None,
        crf: int = V.DEFAULT_CRF,
        *,
        gop: int = V.DEFAULT_GOP,
        codec: str = V.DEFAULT_CODEC,
        pix_fmt: str = "yuv420p",
        names: dict[str, list[str]] | None = None,
        data_file_size_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_file_size_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        chunks_size: int = DEFAULT_CHUNK_SIZE,
    ):
        self.root = Path(root)
        self.fps = int(fps) if float(fps).is_integer() else float(fps)
        self.robot_type = robot_type
        self.video_kw = {"crf": crf, "gop": gop, "codec": codec, "pix_fmt": pix_fmt}
        self.names = dict(names or {})
        self.data_file_size_mb = data_file_size_mb
        self.video_file_size_mb = video_file_size_mb
        self.chunks_size = chunks_size
        self.root.mkdir(parents=True, exist_ok=True)
        self.tracks = TrackStore(self.root)

        self._schema: dict | None = None  # set by the first episode: cameras and shapes
        self._tasks: dict[str, int] = {}
        self._episodes: list[dict] = []
        self._num_frames = 0
        # video writers per camera: (writer, chunk, file)
        self._videos: dict[str, tuple[V.VideoWriter, int, int]] = {}
        self._video_info: dict[str, dict] = {}
        # data rows of the current data file
        self._data_idx = (0, 0)
        self._data_buf: list[dict] = []
        self._data_bytes = 0
        # everything kept for stats.json quantiles
        self._all: dict[str, list[np.ndarray]] = {ACTION: [], STATE: []}
        self._finalized = False

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    # --- checks ---
    def _check(self, ep: Episode) -> int:
        if not ep.frames:
            raise ValueError("an episode needs at least one camera in `frames`")
        lengths = {cam: len(f) for cam, f in ep.frames.items()}
        T = next(iter(lengths.values()))
        if T < 1 or len(set(lengths.values())) != 1:
            raise ValueError(f"every camera needs the same, non-zero number of frames; got {lengths}")
        for cam, f in ep.frames.items():
            if "/" in cam:
                raise ValueError(f"camera name {cam!r} must not contain '/'")
            if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
                raise ValueError(f"frames[{cam!r}] must be uint8 (T, H, W, 3), got {f.dtype} {f.shape}")
        for key, x in ((STATE, ep.state), (ACTION, ep.action)):
            if x is not None:
                if x.ndim != 2 or len(x) != T:
                    raise ValueError(f"{key} must be (T={T}, D), got {x.shape}")
                if not np.isfinite(x).all():
                    raise ValueError(f"{key} of episode {self.num_episodes} holds NaN or inf")
        if ep.tracks is not None:
            if ep.tracks.ndim != 3 or ep.tracks.shape[0] != T or ep.tracks.shape[2] != 2:
                raise ValueError(f"tracks must be (T={T}, N, 2), got {ep.tracks.shape}")
            if ep.visible is not None and ep.visible.shape != ep.tracks.shape[:2]:
                raise ValueError(f"visible must be {ep.tracks.shape[:2]}, got {ep.visible.shape}")
        schema = {
            "cameras": {cam: f.shape[1:3] for cam, f in ep.frames.items()},
            STATE: None if ep.state is None else ep.state.shape[1],
            ACTION: None if ep.action is None else ep.action.shape[1],
            "tracks": ep.tracks is not None,
        }
        if self._schema is None:
            self._schema = schema
        elif schema != self._schema:
            raise ValueError(
                f"episode {self.num_episodes} does not match the first episode: {schema} vs {self._schema}"
            )
        reserved = {"episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index"}
        for k in (ep.extra or {}):
            if k in reserved or "/" in k:
                raise ValueError(f"extra column {k!r} clashes with LeRobot's episode columns")
        return T

    # --- writing ---
    def add_episode(self, ep: Episode) -> int:
        """Encode frames, buffer rows; returns the episode index."""
        if self._finalized:
            raise RuntimeError("add_episode after finalize")
        T = self._check(ep)
        idx = self.num_episodes
        task_index = self._tasks.setdefault(ep.task, len(self._tasks))
        row: dict = {"episode_index": idx, "tasks": [ep.task], "length": T}

        # frames -> the current video file of each camera
        stats: dict[str, dict] = {}
        for cam, frames in ep.frames.items():
            key = IMAGE_PREFIX + cam
            writer, chunk, file = self._video_writer(cam, frames)
            from_ts, to_ts = writer.append(frames)
            row[f"videos/{key}/chunk_index"] = chunk
            row[f"videos/{key}/file_index"] = file
            row[f"videos/{key}/from_timestamp"] = from_ts
            row[f"videos/{key}/to_timestamp"] = to_ts
            stats[key] = _image_stats(frames)

        # numeric rows -> the current data file
        columns = {
            "timestamp": (np.arange(T) / self.fps).astype(np.float32),
            "frame_index": np.arange(T, dtype=np.int64),
            "episode_index": np.full(T, idx, dtype=np.int64),
            "index": np.arange(self._num_frames, self._num_frames + T, dtype=np.int64),
            "task_index": np.full(T, task_index, dtype=np.int64),
        }
        for key, x in ((STATE, ep.state), (ACTION, ep.action)):
            if x is not None:
                columns[key] = np.asarray(x, dtype=np.float32)
                self._all[key].append(columns[key])
        nbytes = sum(c.nbytes for c in columns.values())
        if self._data_buf and (self._data_bytes + nbytes) / 2**20 > self.data_file_size_mb:
            self._flush_data()
            self._data_idx = _next_file(*self._data_idx, self.chunks_size)
        self._data_buf.append(columns)
        self._data_bytes += nbytes
        row["data/chunk_index"], row["data/file_index"] = self._data_idx
        row["dataset_from_index"] = self._num_frames
        row["dataset_to_index"] = self._num_frames + T
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        for key, x in columns.items():
            stats[key] = _stats(x.reshape(T, -1))
        for key, s in stats.items():
            for name, v in s.items():
                row[f"stats/{key}/{name}"] = v
        for k, v in (ep.extra or {}).items():
            row[k] = v.item() if isinstance(v, np.generic) else v

        if ep.tracks is not None:
            visible = ep.visible if ep.visible is not None else np.ones(ep.tracks.shape[:2], bool)
            self.tracks.write(idx, ep.tracks, visible, ep.track_meta or {"method": "groundtruth"})

        self._episodes.append(row)
        self._num_frames += T
        return idx

    def _video_writer(self, cam: str, frames: np.ndarray) -> tuple[V.VideoWriter, int, int]:
        key = IMAGE_PREFIX + cam
        if cam in self._videos:
            writer, chunk, file = self._videos[cam]
            if writer.size_bytes / 2**20 < self.video_file_size_mb:
                return writer, chunk, file
            writer.close()
            chunk, file = _next_file(chunk, file, self.chunks_size)
        else:
            chunk, file = 0, 0
        path = self.root / DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        writer = V.VideoWriter(path, self.fps, frames.shape[2], frames.shape[1], **self.video_kw)
        self._videos[cam] = (writer, chunk, file)
        self._video_info[cam] = writer.info()
        return writer, chunk, file

    def _flush_data(self) -> None:
        if not self._data_buf:
            return
        keys = list(self._data_buf[0])
        cols = {k: np.concatenate([b[k] for b in self._data_buf]) for k in keys}
        arrays = {k: (_fixed_list(v) if v.ndim == 2 else pa.array(v)) for k, v in cols.items()}
        order = [k for k in (STATE, ACTION) if k in arrays] + list(INDEX_FEATURES)
        table = pa.table({k: arrays[k] for k in order})
        chunk, file = self._data_idx
        path = self.root / DEFAULT_DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        self._data_buf, self._data_bytes = [], 0

    def close_videos(self) -> None:
        for writer, _, _ in self._videos.values():
            writer.close()

    def finalize(self) -> None:
        """Write parquet files, stats.json, info.json (info.json last)."""
        if self._finalized:
            return
        self.close_videos()
        if not self._episodes:
            raise DatasetError(f"{self.root}: no episodes were added; an empty dataset is not written")
        self._flush_data()
        import pandas as pd  # pandas writes the task strings as the index, as LeRobot does

        # meta/tasks.parquet
        tasks = pd.DataFrame({"task_index": list(self._tasks.values())}, index=pd.Index(list(self._tasks), name="task"))
        (self.root / TASKS_PATH).parent.mkdir(parents=True, exist_ok=True)
        tasks.to_parquet(self.root / TASKS_PATH)

        # meta/episodes/chunk-000/file-000.parquet (extra columns may be missing in some rows)
        all_keys: list[str] = []
        for row in self._episodes:
            all_keys += [k for k in row if k not in all_keys]
        table = pa.table({k: pa.array([row.get(k) for row in self._episodes]) for k in all_keys})
        path = self.root / DEFAULT_EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

        # meta/stats.json
        stat_keys = sorted({k.split("/")[1] for k in all_keys if k.startswith("stats/")})
        stats = {}
        for key in stat_keys:
            per_ep = [
                {n: row[f"stats/{key}/{n}"] for n in ("min", "max", "mean", "std", "count")}
                for row in self._episodes
            ]
            stats[key] = _aggregate(per_ep)
            if key in QUANTILE_FEATURES and self._all[key]:
                stats[key].update(_quantiles(np.concatenate(self._all[key])))
        atomic_write_json(self.root / STATS_PATH, stats)

        # meta/info.json
        atomic_write_json(self.root / INFO_PATH, self._info())
        self._finalized = True

    def _info(self) -> dict:
        features: dict = {}
        for key in (STATE, ACTION):
            dim = self._schema[key]
            if dim is not None:
                prefix = "state" if key == STATE else "action"
                names = self.names.get(key) or [f"{prefix}_{i}" for i in range(dim)]
                features[key] = {"dtype": "float32", "shape": [dim], "names": list(names)}
        for cam, (h, w) in self._schema["cameras"].items():
            features[IMAGE_PREFIX + cam] = {
                "dtype": "video",
                "shape": [int(h), int(w), 3],
                "names": ["height", "width", "channels"],
                "info": self._video_info[cam],
            }
        features.update({k: dict(v) for k, v in INDEX_FEATURES.items()})
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": self.num_episodes,
            "total_frames": self._num_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_file_size_mb,
            "video_files_size_in_mb": self.video_file_size_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{self.num_episodes}"},
            "data_path": DEFAULT_DATA_PATH,
            "video_path": DEFAULT_VIDEO_PATH,
            "features": features,
        }


# ----------------------------------------------------------------------------------------
# Reading: one loader per metadata file, shared by LeRobotDataset and `care dataset validate`
# ----------------------------------------------------------------------------------------


def load_info(root: Path) -> dict:
    """meta/info.json, checked for the keys the reader needs; DatasetError names the file."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise DatasetError(f"{path}: not found; {root} is not a LeRobot dataset")
    info = read_json(path)
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: malformed, expected a JSON object")
    missing = [k for k in ("codebase_version", "fps", "features", "total_episodes", "data_path") if k not in info]
    if missing:
        raise DatasetError(f"{path}: malformed, missing {', '.join(missing)}")
    version = str(info["codebase_version"])
    if not version.startswith("v3"):
        raise DatasetError(
            f"{path}: codebase_version {version}; care reads LeRobot v3 datasets "
            "(convert with lerobot's convert_dataset_v21_to_v30)"
        )
    if not isinstance(info["features"], dict) or not info["features"]:
        raise DatasetError(f"{path}: malformed, 'features' must be a non-empty mapping")
    try:
        if float(info["fps"]) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: malformed, fps must be a positive number, got {info['fps']!r}") from None
    if int(info["total_episodes"]) == 0:
        raise DatasetError(f"{path}: empty dataset (total_episodes is 0)")
    return info


def load_tasks(root: Path) -> dict[int, str]:
    """meta/tasks.parquet -> {task_index: task}; the task is the pandas index or a column."""
    path = Path(root) / TASKS_PATH
    table = _read_parquet(path)
    names = table.column_names
    key = "task" if "task" in names else "__index_level_0__" if "__index_level_0__" in names else None
    if key is None or "task_index" not in names:
        raise DatasetError(f"{path}: expected a 'task' index or column and a 'task_index' column, found {names}")
    tasks = table.column(key).to_pylist()
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(), tasks)}


def load_episodes(root: Path) -> pa.Table:
    """All of meta/episodes/*/*.parquet, concatenated and sorted by episode_index."""
    folder = Path(root) / EPISODES_DIR
    paths = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not paths:
        raise DatasetError(f"{folder}: no episode metadata files (chunk-*/file-*.parquet)")
    tables = [_read_parquet(p) for p in paths]
    for p, t in zip(paths, tables):
        if "episode_index" not in t.column_names:
            raise DatasetError(f"{p}: missing the 'episode_index' column")
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as e:
        raise DatasetError(f"{folder}: episode metadata files disagree in their columns ({e})") from e
    if table.num_rows == 0:
        raise DatasetError(f"{paths[0]}: empty dataset (no episodes)")
    return table.sort_by("episode_index")


def _data_files(root: Path, info: dict, episodes: pa.Table) -> list[Path]:
    """Data parquet files referenced by the episodes table (or all under data/ if it has no indices)."""
    names = episodes.column_names
    if "data/chunk_index" in names and "data/file_index" in names:
        chunks = episodes.column("data/chunk_index").to_pylist()
        pairs = sorted(set(zip(chunks, episodes.column("data/file_index").to_pylist())))
        template = info.get("data_path") or DEFAULT_DATA_PATH
        return [Path(root) / template.format(chunk_index=c, file_index=f) for c, f in pairs]
    return sorted((Path(root) / "data").glob("chunk-*/file-*.parquet"))


# ----------------------------------------------------------------------------------------
# The reader
# ----------------------------------------------------------------------------------------


class LeRobotDataset:
    """Read a LeRobot v3 dataset (ours or a user's).

    Episodes are addressed by their `episode_index`. Numeric columns of every data parquet
    file are loaded once into memory; frames are decoded on request, one episode's span at
    a time (`episode_frames`).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder not found")
        self.info = load_info(self.root)
        self.fps = float(self.info["fps"])
        self.features: dict = self.info["features"]
        self._tasks = load_tasks(self.root)
        table = load_episodes(self.root)
        self._episode_rows = table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
        self.episode_indices: list[int] = [int(r["episode_index"]) for r in self._episode_rows]
        self._row_of = {ep: i for i, ep in enumerate(self.episode_indices)}
        if len(self._row_of) != len(self.episode_indices):
            raise DatasetError(f"{self.root / EPISODES_DIR}: duplicate episode_index values")

        # cameras: `observation.images.<cam>` -> "<cam>"; any other video/image feature by its key
        self._video_keys: dict[str, str] = {}
        self._image_keys: dict[str, str] = {}
        for key, ft in self.features.items():
            if isinstance(ft, dict) and ft.get("dtype") in ("video", "image"):
                cam = key[len(IMAGE_PREFIX):] if key.startswith(IMAGE_PREFIX) else key
                (self._video_keys if ft["dtype"] == "video" else self._image_keys)[cam] = key
        self.cameras: list[str] = list(self._video_keys) + list(self._image_keys)
        self.has_actions = ACTION in self.features
        self.has_state = STATE in self.features
        self._load_data(table)
        self._stats: dict | None = None

    # --- loading the data parquet files, once ---
    def _load_data(self, episodes: pa.Table) -> None:
        wanted = ["episode_index", "frame_index", "timestamp", "index", "task_index"]
        wanted += [k for k in (STATE, ACTION) if k in self.features] + list(self._image_keys.values())
        tables = []
        for path in _data_files(self.root, self.info, episodes):
            t = _read_parquet(path)
            missing = [c for c in wanted if c not in t.column_names and c not in ("index", "timestamp", "task_index")]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing} declared in meta/info.json")
            tables.append(t.select([c for c in wanted if c in t.column_names]))
        if not tables:
            raise DatasetError(f"{self.root / 'data'}: no data parquet files")
        data = pa.concat_tables(tables, promote_options="permissive")
        ep = data.column("episode_index").to_numpy().astype(np.int64)
        fi = data.column("frame_index").to_numpy().astype(np.int64)
        order = np.lexsort((fi, ep))  # rows of an episode together, in frame order
        if not np.array_equal(order, np.arange(len(order))):  # already so in files written by LeRobot or us
            data = data.take(pa.array(order))
        self._ep_col = ep[order]
        self._frame_index = fi[order]
        self._timestamp = (
            data.column("timestamp").to_numpy().astype(np.float64) if "timestamp" in data.column_names
            else self._frame_index / self.fps
        )
        self._task_col = (
            data.column("task_index").to_numpy().astype(np.int64) if "task_index" in data.column_names else None
        )
        self._arrays = {k: _column_to_numpy(data.column(k)) for k in (STATE, ACTION) if k in data.column_names}
        self._images = {cam: data.column(key) for cam, key in self._image_keys.items()}
        starts = np.searchsorted(self._ep_col, self.episode_indices, side="left")
        ends = np.searchsorted(self._ep_col, self.episode_indices, side="right")
        self._span = {e: (int(s), int(t)) for e, s, t in zip(self.episode_indices, starts, ends)}
        self.num_frames = int(len(self._ep_col))
        for e in self.episode_indices:
            s, t = self._span[e]
            if t == s:
                raise DatasetError(f"{self.root}: episode {e} has no rows in the data parquet files")

    # --- metadata ---
    @property
    def num_episodes(self) -> int:
        return len(self.episode_indices)

    def _row(self, ep: int) -> dict:
        try:
            return self._episode_rows[self._row_of[int(ep)]]
        except KeyError:
            raise IndexError(f"episode {ep} is not in {self.root} (it has {self.num_episodes} episodes)") from None

    def episode_meta(self, ep: int) -> dict:
        """The episodes-table row without its stats columns (incl. success, env_name)."""
        return dict(self._row(ep))

    def episode_length(self, ep: int) -> int:
        """Frames of the episode in the data parquet files."""
        s = self._slice(ep)
        return s.stop - s.start

    def episode_task(self, ep: int) -> str:
        row = self._row(ep)
        tasks = row.get("tasks")
        if tasks:
            return str(tasks[0]) if isinstance(tasks, (list, tuple)) else str(tasks)
        if self._task_col is not None:
            return self._tasks.get(int(self._task_col[self._span[int(ep)][0]]), "")
        return ""

    def episode_task_index(self, ep: int) -> int:
        if self._task_col is not None:
            return int(self._task_col[self._span[int(ep)][0]])
        inverse = {t: i for i, t in self._tasks.items()}
        return inverse.get(self.episode_task(ep), -1)

    def tasks(self) -> list[str]:
        """Task strings in task_index order."""
        return [self._tasks[i] for i in sorted(self._tasks)]

    def frame_shape(self, camera: str | None = None) -> tuple[int, int]:
        """(H, W) of a camera as meta/info.json declares it."""
        key = self.camera_key(camera)
        ft = self.features[key]
        shape = list(ft.get("shape", []))
        names = ft.get("names") or ["height", "width", "channels"]
        if len(shape) == 3 and names[0] in ("channel", "channels"):  # (C, H, W)
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])

    def camera_key(self, camera: str | None = None) -> str:
        """The feature key of a camera (None: the first camera)."""
        if not self.cameras:
            raise DatasetError(f"{self.root / INFO_PATH}: the dataset has no video or image feature")
        cam = self.cameras[0] if camera is None else camera
        key = self._video_keys.get(cam) or self._image_keys.get(cam)
        if key is None:
            raise DatasetError(f"{self.root}: no camera {cam!r}; cameras are {self.cameras}")
        return key

    @property
    def track_store(self) -> TrackStore:
        return TrackStore(self.root)

    @property
    def has_tracks(self) -> bool:
        """True when every episode has a track file."""
        return set(self.episode_indices) <= set(self.track_store.episodes())

    # --- arrays ---
    def _slice(self, ep: int) -> slice:
        self._row(ep)
        s, t = self._span[int(ep)]
        return slice(s, t)

    def episode_actions(self, ep: int) -> np.ndarray:
        """float32 (T, A)."""
        if not self.has_actions:
            raise DatasetError(
                f"{self.root}: this dataset has no actions ('action' is not a feature in {INFO_PATH})"
            )
        return self._arrays[ACTION][self._slice(ep)].copy()

    def episode_states(self, ep: int) -> np.ndarray:
        """float32 (T, S)."""
        if not self.has_state:
            raise DatasetError(f"{self.root}: this dataset has no '{STATE}' feature")
        return self._arrays[STATE][self._slice(ep)].copy()

    def video_path(self, ep: int, camera: str | None = None) -> Path:
        key = self.camera_key(camera)
        row = self._row(ep)
        template = self.info.get("video_path") or DEFAULT_VIDEO_PATH
        try:
            chunk, file = row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]
        except KeyError:
            raise DatasetError(
                f"{self.root / EPISODES_DIR}: no 'videos/{key}/chunk_index|file_index' columns"
            ) from None
        return self.root / template.format(video_key=key, chunk_index=int(chunk), file_index=int(file))

    def video_span(self, ep: int, camera: str | None = None) -> tuple[float, float]:
        """(from_timestamp, to_timestamp) of the episode in its video file, seconds."""
        key = self.camera_key(camera)
        row = self._row(ep)
        from_ts = row.get(f"videos/{key}/from_timestamp")
        to_ts = row.get(f"videos/{key}/to_timestamp")
        if from_ts is None:
            from_ts = 0.0
        if to_ts is None:
            to_ts = float(from_ts) + self.episode_length(ep) / self.fps
        return float(from_ts), float(to_ts)

    def episode_frames(self, ep: int, camera: str | None = None, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 (stop - start, H, W, 3): frames [start, stop) of the episode (default: all of it).

        Decodes only that span (a seek to the keyframe before it), never the file from 0: the
        frame at index k is the one at from_timestamp + timestamp[k] in the episode's video.
        """
        key = self.camera_key(camera)
        cam = self.cameras[0] if camera is None else camera
        T = self.episode_length(ep)
        stop = T if stop is None else int(stop)
        if not 0 <= start < stop <= T:
            raise IndexError(f"{self.root}: frames [{start}, {stop}) of episode {ep}, which has {T}")
        if cam in self._image_keys:
            return self._decode_images(ep, cam, start, stop)
        path = self.video_path(ep, cam)
        from_ts, to_ts = self.video_span(ep, cam)
        if (start, stop) != (0, T):
            ts = self._timestamp[self._slice(ep)]
            rel = ts - ts[0]
            from_ts, to_ts = from_ts + float(rel[start]), (from_ts + float(rel[stop]) if stop < T else to_ts)
        frames = V.decode_span(path, from_ts, to_ts, self.fps)
        if len(frames) != stop - start:
            what = f"episode {ep}" if (start, stop) == (0, T) else f"frames [{start}, {stop}) of episode {ep}"
            raise DatasetError(
                f"{path}: decoded {len(frames)} frames for {what} "
                f"([{from_ts:.3f}, {to_ts:.3f}) s of {key}), the data parquet has {stop - start}: truncated or corrupt video"
            )
        return frames

    def _decode_images(self, ep: int, cam: str, start: int, stop: int) -> np.ndarray:
        import cv2

        col = self._images[cam].slice(self._slice(ep).start + start, stop - start).to_pylist()
        out = []
        for i, cell in enumerate(col, start):
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            img = None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise DatasetError(f"{self.root}: episode {ep} frame {i} of {self._image_keys[cam]}: undecodable image")
            out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        return np.stack(out)

    @property
    def stats(self) -> dict:
        """meta/stats.json as {feature: {stat: np.ndarray}}; q01/q99 of action and state are
        computed from the data when the file lacks them (users' datasets)."""
        if self._stats is None:
            path = self.root / STATS_PATH
            raw = read_json(path) if path.is_file() else {}
            stats = {
                k: {n: np.asarray(v, dtype=np.float64) for n, v in d.items()}
                for k, d in raw.items()
                if isinstance(d, dict)
            }
            for key, x in self._arrays.items():
                s = stats.setdefault(key, {})
                if "min" not in s:
                    s.update({n: np.asarray(v) for n, v in _stats(x).items()})
                if "q01" not in s or "q99" not in s:
                    s.update({n: np.asarray(v) for n, v in _quantiles(x).items()})
            self._stats = stats
        return self._stats

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, "
            f"fps={self.fps:g}, cameras={self.cameras}, actions={self.has_actions}, state={self.has_state})"
        )
