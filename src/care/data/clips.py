"""Training clips from a dataset.

ClipDataset(root, frame_interval=n, action_horizon=H, clip=ClipConfig, episodes=None,
            require_tracks=False, require_actions=False)

Item t of episode e (t in [0, T-1-n] when n > 0; [0, T-1] when n == 0):
    "obs"            uint8  (3, S, S)     o_t
    "future_obs"     uint8  (3, S, S)     o_{t+n}               (n > 0)
    "instruction"    str
    "tracks"         float32 (N, 2)       pixel coords at t in the served (resized) frame
    "future_tracks"  float32 (N, 2)       at t+n                (dataset has tracks)
    "visible"        bool   (N,)          visible at t AND t+n
    "actions"        float32 (H, A)       a_t ... a_{t+H-1}, padded past the end by
                                          repeating the last action (dataset has actions)
    "action_is_pad"  bool   (H,)
    "state"          float32 (S_dim,)     observation.state at t  (dataset has state)
    "episode_index", "frame_index", "task_index"   int64

H defaults to n (the actions between o_t and o_{t+n}, for LP-MSE; 1 when n == 0).
Episodes are decoded once per worker and cached (LRU, ClipConfig.cache_episodes), already
resized, so a sample costs an array slice, never a decode; when the served episodes do not fit
the cache (ClipConfig.decode="auto"), each item instead decodes only its own frames (one seek to
the keyframe before o_t, then up to o_{t+n}), as LeRobot's loader does. `split_episodes(ds, val_per_task,
seed)` -> (train_eps, val_eps), stratified by task (env_name or task string);
`select_episodes_per_task(ds, k, seed, exclude)` picks k labelled episodes per task.

Resizing: frames that are not S x S (S = ClipConfig.image_size) are resized with
cv2.INTER_AREA (no crop: a non-square frame is squashed). Track coordinates follow the
pixel-centre convention of care.data.tracks, so x' = (x + 0.5) * S / W - 0.5.
"""

from __future__ import annotations

import warnings
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from care.configs import ClipConfig
from care.data.lerobot import LeRobotDataset
from care.errors import CareWarning, DatasetError


def _as_dataset(ds) -> LeRobotDataset:
    if isinstance(ds, LeRobotDataset):
        return ds
    if isinstance(ds, ClipDataset):
        return ds.dataset
    return LeRobotDataset(Path(ds))


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size, size, 3) with cv2.INTER_AREA (no-op if already that size)."""
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def scale_tracks(tracks: np.ndarray, from_hw: tuple[int, int], size: int) -> np.ndarray:
    """Pixel coordinates (x, y) in an (H, W) frame -> in a size x size frame (pixel centres)."""
    h, w = from_hw
    if (h, w) == (size, size):
        return tracks
    scale = np.array([size / w, size / h], dtype=np.float32)
    return ((tracks + 0.5) * scale - 0.5).astype(np.float32)


class ClipDataset(Dataset):
    """Pairs (o_t, o_{t+n}) with instruction, tracks and actions; see the module docstring.

    Args:
        root: dataset folder, or an open LeRobotDataset.
        frame_interval: n, the frame offset of the future observation (0: no future frame).
        action_horizon: H, actions served per item (None: n, or 1 when n == 0).
        clip: camera, image size and cache size.
        episodes: episode indices to serve (None: all).
        require_tracks: raise unless every served episode has tracks.
        require_actions: raise unless the dataset has actions.
    """

    def __init__(
        self,
        root: Path | LeRobotDataset,
        frame_interval: int = 1,
        action_horizon: int | None = None,
        clip: ClipConfig | None = None,
        episodes: Iterable[int] | None = None,
        require_tracks: bool = False,
        require_actions: bool = False,
    ):
        if frame_interval < 0:
            raise ValueError(f"frame_interval must be >= 0, got {frame_interval}")
        self.dataset = _as_dataset(root)
        self.clip = clip or ClipConfig()
        self.n = int(frame_interval)
        self.horizon = int(action_horizon) if action_horizon is not None else max(self.n, 1)
        if self.horizon < 1:
            raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
        ds = self.dataset
        self.camera = self.clip.camera if self.clip.camera is not None else ds.cameras[0] if ds.cameras else None
        ds.camera_key(self.camera)  # DatasetError for an unknown camera or no camera at all
        self.stored_hw = ds.frame_shape(self.camera)
        self.wrist_camera = self.clip.wrist_camera
        if self.wrist_camera is not None:
            ds.camera_key(self.wrist_camera)  # DatasetError naming the dataset's cameras
            if self.wrist_camera == self.camera:
                raise DatasetError(f"{ds.root}: clip.wrist_camera is the main camera {self.camera!r}")
            if self.clip.image_size is None and ds.frame_shape(self.wrist_camera) != self.stored_hw:
                raise DatasetError(f"{ds.root}: camera {self.wrist_camera!r} is {ds.frame_shape(self.wrist_camera)}, "
                                   f"{self.camera!r} is {self.stored_hw}; set --clip.image_size to serve both")
        self.image_size = self.clip.image_size
        if self.image_size is None and self.stored_hw[0] != self.stored_hw[1]:
            raise DatasetError(
                f"{ds.root}: frames are {self.stored_hw[1]}x{self.stored_hw[0]}, not square; "
                "set --clip.image_size to serve square frames"
            )

        self.episodes = sorted(ds.episode_indices if episodes is None else (int(e) for e in episodes))
        unknown = sorted(set(self.episodes) - set(ds.episode_indices))
        if unknown:
            raise DatasetError(f"{ds.root}: episodes {unknown[:5]} are not in the dataset")

        if require_actions and not ds.has_actions:
            raise DatasetError(
                f"{ds.root}: this dataset has no actions, and actions are needed here "
                "(fine-tuning and LP-MSE need labelled episodes: use a dataset collected with actions)"
            )
        self.has_actions = ds.has_actions
        self.has_state = ds.has_state
        with_tracks = set(ds.track_store.episodes())
        missing = [e for e in self.episodes if e not in with_tracks]
        if require_tracks and missing:
            raise DatasetError(
                f"{ds.root}: {len(missing)} of {len(self.episodes)} episodes have no tracks "
                f"(first: {ds.track_store.path(missing[0])}); run `care track {ds.root}`"
            )
        self.has_tracks = bool(self.episodes) and not missing

        # item -> (episode, t)
        pairs = []
        for e in self.episodes:
            T = ds.episode_length(e)
            pairs += [(e, t) for t in range(max(T - self.n, 0))]
        self.index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(self.index) == 0:
            raise DatasetError(
                f"{ds.root}: no clips: every selected episode is shorter than frame_interval + 1 = {self.n + 1}"
            )
        # "episode": whole episodes decoded into the LRU; "frames": each item decodes its own frames
        self.decode = self.clip.decode
        if self.decode == "auto":
            self.decode = "episode" if len(self.episodes) <= self.clip.cache_episodes else "frames"
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self.decode_count = 0  # episodes (or, decode="frames", items' spans) decoded by this process

    # --- pickling for DataLoader workers: each worker starts with an empty cache ---
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["decode_count"] = 0
        return state

    def __len__(self) -> int:
        return len(self.index)

    @property
    def served_size(self) -> tuple[int, int]:
        """(H, W) of served frames."""
        return (self.image_size, self.image_size) if self.image_size else self.stored_hw

    @property
    def action_dim(self) -> int | None:
        ft = self.dataset.features.get("action")
        return int(ft["shape"][0]) if ft else None

    def instructions(self) -> list[str]:
        """Instruction of every served episode (e.g. to train a tokenizer)."""
        return [self.dataset.episode_task(e) for e in self.episodes]

    # --- the per-worker LRU cache of decoded episodes (decode="frames": of all but the frames) ---
    def _episode(self, ep: int) -> dict:
        if ep in self._cache:
            self._cache.move_to_end(ep)
            return self._cache[ep]
        ds = self.dataset
        hw = self.stored_hw
        entry = {"task": ds.episode_task(ep), "task_index": ds.episode_task_index(ep), "length": ds.episode_length(ep)}
        if self.decode == "episode":
            frames = ds.episode_frames(ep, self.camera)
            self.decode_count += 1
            hw = frames.shape[1:3]
            entry["frames"] = self._serve(frames)
            if self.wrist_camera is not None:
                wrist = ds.episode_frames(ep, self.wrist_camera)
                if len(wrist) != len(frames):
                    raise DatasetError(f"{ds.root}: episode {ep} has {len(frames)} frames of {self.camera!r} "
                                       f"but {len(wrist)} of {self.wrist_camera!r}")
                entry["wrist_frames"] = self._serve(wrist)
        if self.has_actions:
            entry["actions"] = ds.episode_actions(ep)
        if self.has_state:
            entry["state"] = ds.episode_states(ep)
        if self.has_tracks:
            tracks, visible, _ = ds.track_store.read(ep)
            if len(tracks) != entry["length"]:
                raise DatasetError(
                    f"{ds.track_store.path(ep)}: {len(tracks)} frames of tracks, the episode has "
                    f"{entry['length']}; rerun `care track {ds.root} --overwrite`"
                )
            entry["tracks"] = scale_tracks(tracks, hw, self.image_size) if self.image_size else tracks
            entry["visible"] = visible
        self._cache[ep] = entry
        while len(self._cache) > max(self.clip.cache_episodes, 1):
            self._cache.popitem(last=False)
        return entry

    def _serve(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) as decoded -> (T, 3, S, S) as served."""
        if self.image_size:
            frames = resize_frames(frames, self.image_size)
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))

    def _frames(self, e: dict, ep: int, t: int, key: str, n: int) -> list[np.ndarray]:
        """[o_t] (n == 0) or [o_t, o_{t+n}] as served, from the cache or (decode="frames") the video."""
        offsets = [0, n] if n > 0 else [0]
        if self.decode == "episode":
            return [e[key][t + k] for k in offsets]
        cam = self.camera if key == "frames" else self.wrist_camera
        span = self.dataset.episode_frames(ep, cam, start=t, stop=t + n + 1)  # one seek for both
        self.decode_count += 1
        return list(self._serve(span[offsets]))

    def __getitem__(self, i: int) -> dict:
        ep, t = (int(v) for v in self.index[i])
        e = self._episode(ep)
        T = e["length"]
        obs, *future = self._frames(e, ep, t, "frames", self.n)
        item = {
            "obs": torch.from_numpy(obs),
            "instruction": e["task"],
            "episode_index": torch.tensor(ep, dtype=torch.int64),
            "frame_index": torch.tensor(t, dtype=torch.int64),
            "task_index": torch.tensor(e["task_index"], dtype=torch.int64),
        }
        if self.wrist_camera is not None:
            item["wrist_obs"] = torch.from_numpy(self._frames(e, ep, t, "wrist_frames", 0)[0])
        if self.n > 0:
            item["future_obs"] = torch.from_numpy(future[0])
        if self.has_tracks:
            item["tracks"] = torch.from_numpy(e["tracks"][t])
            vis = e["visible"][t]
            if self.n > 0:
                item["future_tracks"] = torch.from_numpy(e["tracks"][t + self.n])
                vis = vis & e["visible"][t + self.n]
            item["visible"] = torch.from_numpy(np.ascontiguousarray(vis))
        if self.has_actions:
            steps = np.arange(t, t + self.horizon)
            item["actions"] = torch.from_numpy(e["actions"][np.minimum(steps, T - 1)])
            item["action_is_pad"] = torch.from_numpy(steps > T - 1)
        if self.has_state:
            item["state"] = torch.from_numpy(e["state"][t])
        return item


class ConcatClips(Dataset):
    """Several ClipDatasets served as one: pretraining on several video sources (the paper's
    data rows; LeRobot's MultiLeRobotDataset does the same for its datasets).

    Clips are drawn uniformly over all parts (a part's share is its share of the clips). Items
    keep their part's fields (`episode_index` is the episode within its own dataset) minus the
    ones not every part has (tracks, actions, state), so a batch can mix parts. `instructions()`
    is the union. Every part must serve frames of one size (set --clip.image_size otherwise).
    """

    _OPTIONAL = {"has_tracks": ("tracks", "future_tracks", "visible"), "has_actions": ("actions", "action_is_pad"),
                 "has_state": ("state",)}

    def __init__(self, parts: list[ClipDataset]):
        if not parts:
            raise ValueError("ConcatClips needs at least one ClipDataset")
        sizes = {p.served_size for p in parts}
        if len(sizes) > 1:
            shown = ", ".join(f"{p.dataset.root}: {p.served_size[1]}x{p.served_size[0]}" for p in parts)
            raise DatasetError(f"the datasets serve frames of different sizes ({shown}); set --clip.image_size")
        roots = [Path(p.dataset.root).resolve() for p in parts]
        if len(set(roots)) != len(roots):
            raise DatasetError(f"a dataset is listed twice: {[str(r) for r in roots]}")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        for flag in self._OPTIONAL:
            setattr(self, flag, all(getattr(p, flag) for p in self.parts))
        self._drop = {k for flag, keys in self._OPTIONAL.items() if not getattr(self, flag) for k in keys}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def served_size(self) -> tuple[int, int]:
        return self.parts[0].served_size

    def instructions(self) -> list[str]:
        return list(dict.fromkeys(x for p in self.parts for x in p.instructions()))

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} of {len(self)}")
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        item = self.parts[k][i - int(self.offsets[k])]
        return {key: v for key, v in item.items() if key not in self._drop} if self._drop else item


# ----------------------------------------------------------------------------------------
# Episode selection
# ----------------------------------------------------------------------------------------


def task_groups(ds) -> dict[str, list[int]]:
    """{task key: episode indices}; the key is the episode's env_name when present, else its task."""
    ds = _as_dataset(ds)
    groups: dict[str, list[int]] = {}
    for e in ds.episode_indices:
        key = ds.episode_meta(e).get("env_name") or ds.episode_task(e)
        groups.setdefault(str(key), []).append(e)
    return groups


def _permuted(key: str, episodes: list[int], seed: int) -> list[int]:
    """A per-task permutation that depends on (seed, task) only, not on the other tasks."""
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
    return [episodes[i] for i in rng.permutation(len(episodes))]


def split_episodes(ds, val_per_task: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, val) episode indices, `val_per_task` held out per task, chosen by seed.

    A task keeps at least one training episode: with k episodes it gives at most k - 1 to
    validation.
    """
    if val_per_task < 0:
        raise ValueError(f"val_per_task must be >= 0, got {val_per_task}")
    train, val = [], []
    for key, eps in task_groups(ds).items():
        perm = _permuted(key, eps, seed)
        n_val = min(val_per_task, len(perm) - 1)
        val += perm[:n_val]
        train += perm[n_val:]
    return sorted(train), sorted(val)


def labelled_episodes_per_task(ds, k: int | None, seed: int, exclude: Iterable[int] = ()) -> list[int]:
    """The labelled episodes of a few-label run: k successful episodes per task (None: all), chosen
    by seed (`select_episodes_per_task`; failed episodes, when the dataset records success, are
    never picked). `care finetune`, `care label` and CARE's latent supervision all read these."""
    failed = [e for e in ds.episode_indices if ds.episode_meta(e).get("success") is False]
    return select_episodes_per_task(ds, k, seed, exclude=[*failed, *exclude])


def select_episodes_per_task(ds, k: int | None, seed: int = 0, exclude: Iterable[int] = ()) -> list[int]:
    """k episodes per task (None: all), reproducible for a seed; `exclude` (e.g. the val split)
    is never picked. Picks are nested: the k=5 pick is contained in the k=10 pick."""
    excluded = set(int(e) for e in exclude)
    chosen, short = [], {}
    for key, eps in task_groups(ds).items():
        eps = [e for e in eps if e not in excluded]
        perm = _permuted(key, eps, seed)
        if k is not None and len(perm) < k:
            short[key] = len(perm)
        chosen += perm if k is None else perm[:k]
    if short:  # one sentence for all tasks (the CLI prints it as "care <command>: warning: ...")
        few = ", ".join(f"{n} of {key}" for key, n in short.items())
        warnings.warn(f"{k} episodes per task asked, only {few} available: using all of them", CareWarning,
                      stacklevel=2)
    return sorted(chosen)
