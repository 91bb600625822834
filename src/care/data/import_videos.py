"""`care import-videos`: a folder of captioned videos -> a LeRobot v3 dataset (no actions).

Input, in Something-Something v2 layout:
    VIDEOS/<id>.webm | <id>.mp4 | .mkv | .mov | .avi     one clip per id
    CAPTIONS.json  [{"id": "78687", "label": "holding potato next to a bottle"}, ...]
                   (other keys, e.g. SSv2's "template" and "placeholders", are ignored)

Every video must have a caption and every caption a video: a video without a caption is an
error (its instruction would be unknown), and so is a caption without a video (the captions
file then does not describe this folder: a wrong folder or a missing download). Both name
the ids; fix the inputs rather than lose clips silently. An unreadable video is an error
naming the file. Nothing is left at `out` unless the whole import succeeds.

Each video becomes one episode: frames at their own size (or, with `--size S`, resized to S x S by
cv2.INTER_AREA; nothing is resized unless asked), resampled
to the dataset fps when a video's own rate differs, the caption as its task, its id in the
`video_id` column. No actions, no state, no tracks (`care track OUT` adds tracks).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from care.configs import ImportVideosConfig
from care.data.clips import resize_frames
from care.io import atomic_dir
from care.data.lerobot import Episode, LeRobotDatasetWriter
from care.data.video import decode_all
from care.errors import DatasetError

VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv", ".mov", ".avi")


def _natural_key(s: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def _list_names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def load_captions(path: Path) -> dict[str, str]:
    """{id: label} from a JSON list of {"id", "label"}; DatasetError names the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: captions file not found")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(items, list):
        raise DatasetError(f'{path}: expected a JSON list of {{"id": ..., "label": ...}}')
    captions: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise DatasetError(f'{path}: entry {i} is not an object with "id" and "label": {item!r:.80}')
        vid, label = str(item["id"]), str(item["label"]).strip()
        if not label:
            raise DatasetError(f"{path}: entry {i} (id {vid}) has an empty label")
        if vid in captions and captions[vid] != label:
            raise DatasetError(f"{path}: id {vid} has two different labels")
        captions[vid] = label
    if not captions:
        raise DatasetError(f"{path}: no captions")
    return captions


def find_videos(folder: Path) -> dict[str, Path]:
    """{id: path} of the video files in `folder` (id = file name without extension)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: videos folder not found")
    videos: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
            if p.stem in videos:
                raise DatasetError(f"{p}: two videos share the id {p.stem} ({videos[p.stem].name})")
            videos[p.stem] = p
    if not videos:
        raise DatasetError(f"{folder}: no videos ({', '.join(VIDEO_EXTENSIONS)})")
    return videos


def resample(frames: np.ndarray, times: np.ndarray, src_fps: float, fps: float) -> np.ndarray:
    """Frames at `fps` from frames at `times` (s): each output frame is the latest source frame
    shown at its time. Identity when the rates agree within 1%."""
    if abs(src_fps - fps) <= 0.01 * fps:
        return frames
    t = times - times[0]
    duration = t[-1] + 1.0 / src_fps
    n = max(1, int(np.ceil(duration * fps - 1e-6)))  # output frames shown before the clip ends
    idx = np.searchsorted(t, np.arange(n) / fps + 1e-6, side="right") - 1
    return frames[np.clip(idx, 0, len(frames) - 1)]


def import_videos(cfg: ImportVideosConfig) -> int:
    captions = load_captions(cfg.captions)
    videos = find_videos(cfg.videos)
    uncaptioned = sorted(set(videos) - set(captions), key=_natural_key)
    if uncaptioned:
        raise DatasetError(
            f"{videos[uncaptioned[0]]}: no caption in {cfg.captions} for {len(uncaptioned)} video(s): "
            f"{_list_names([videos[v].name for v in uncaptioned])}; add them to the captions file or "
            f"move them out of {cfg.videos}"
        )
    missing = sorted(set(captions) - set(videos), key=_natural_key)
    if missing:
        raise DatasetError(
            f"{cfg.captions}: {len(missing)} caption(s) have no video in {cfg.videos}: ids {_list_names(missing)}"
        )
    if cfg.size is not None and cfg.size < 8:
        raise DatasetError(f"--size must be >= 8 pixels, got {cfg.size}")

    ids = sorted(videos, key=_natural_key)
    frames_total = 0
    with atomic_dir(cfg.output_dir, cfg.overwrite) as tmp:
        writer = None
        shape = None
        try:
            for vid in (bar := tqdm(ids, desc="import-videos", unit="video")):
                path = videos[vid]
                frames, src_fps, times = decode_all(path)
                if writer is None:
                    fps = float(cfg.fps) if cfg.fps else src_fps
                    writer = LeRobotDatasetWriter(tmp, fps=round(fps, 3), robot_type=None)
                frames = resample(frames, times, src_fps, writer.fps)
                if cfg.size is not None:
                    frames = resize_frames(frames, cfg.size)
                if shape is None:
                    shape = frames.shape[1:3]
                elif frames.shape[1:3] != shape:
                    raise DatasetError(
                        f"{path}: frames are {frames.shape[2]}x{frames.shape[1]}, the first video's are "
                        f"{shape[1]}x{shape[0]}; pass --size to resize every video to one size"
                    )
                extra = {"video_id": vid, "source": path.name}
                writer.add_episode(Episode(frames={cfg.camera: frames}, task=captions[vid], extra=extra))
                frames_total += len(frames)
                bar.set_postfix(frames=frames_total)
        finally:
            if writer is not None:
                writer.close_videos()
        writer.finalize()
        from care.configs import save_config

        save_config(cfg, tmp / "meta", "care_import.yaml")
    print(
        f"imported {len(ids)} videos ({frames_total} frames, {writer.fps:g} fps, "
        f"{len(set(captions.values()))} distinct captions) into {cfg.output_dir}"
    )
    return 0
