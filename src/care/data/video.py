"""Video files: encode episodes into shared mp4 files, decode one episode's time span.

LeRobot v3 stores many episodes in one mp4 per camera; an episode is the span
[from_timestamp, to_timestamp) of that file (seconds), given by the episodes table.

Encoding (`VideoWriter`): libx264, yuv420p, CRF 18 by default, a keyframe every `gop`
frames and a forced keyframe at the first frame of every episode, so that decoding an
episode seeks straight to its first frame and never decodes the file from its start.
Odd frame sizes cannot be chroma-subsampled; they are written as yuv444p instead.

Decoding (`decode_span`): seek to the keyframe at or before `from_ts`, decode forward, keep
the frames whose presentation time falls in [from_ts, to_ts) (half a frame of tolerance,
so users' files with rounded timestamps still read), stop at `to_ts`.

Every failure to open or decode is a DatasetError whose message starts with the file.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from care.errors import DatasetError

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # visually lossless on rendered frames; mean abs error ~1 grey level
DEFAULT_GOP = 10  # keyframe interval: a seek decodes at most gop-1 frames it throws away

# frames decoded by this process, kept or thrown away (tests check that seeking works)
DECODE_STATS = {"frames": 0, "spans": 0}


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """One mp4 file that episodes are appended to, one after the other.

    `append(frames)` returns (from_timestamp, to_timestamp) of the appended span in
    seconds, as the episodes table records it. `close()` flushes the encoder; until then
    the file is incomplete.
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        width: int,
        height: int,
        codec: str = DEFAULT_CODEC,
        crf: int = DEFAULT_CRF,
        gop: int = DEFAULT_GOP,
        pix_fmt: str = "yuv420p",
        preset: str = "veryfast",  # ~1800 frames/s at 128x128 on one core; "medium" is ~25% smaller, ~35% slower
    ):
        self.path = Path(path)
        self.fps = fps
        self.width, self.height = int(width), int(height)
        if pix_fmt == "yuv420p" and (self.width % 2 or self.height % 2):
            pix_fmt = "yuv444p"  # 4:2:0 needs even sides
        self.pix_fmt = pix_fmt
        self.codec = codec
        self.frames_written = 0
        self._bytes = self._packets = 0  # muxed so far
        self._rate = _fps_fraction(fps)
        self._time_base = 1 / self._rate
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = {"crf": str(crf), "g": str(gop)}
        if codec == "libx264":
            options["preset"] = preset
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(codec, rate=self._rate, options=options)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = pix_fmt
        self._closed = False

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode uint8 (T, H, W, 3) RGB frames; the first one becomes a keyframe."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        if frames.shape[1:3] != (self.height, self.width):
            raise ValueError(
                f"{self.path}: frames are {frames.shape[2]}x{frames.shape[1]}, "
                f"the file holds {self.width}x{self.height}"
            )
        start = self.frames_written
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = start + i
            frame.time_base = self._time_base
            if i == 0:
                frame.pict_type = PictureType.I  # episode starts on a keyframe: exact seeks
            self._mux(self._stream.encode(frame))
        self.frames_written += len(frames)
        return float(start * self._time_base), float(self.frames_written * self._time_base)

    @property
    def size_bytes(self) -> int:
        """Estimated file size: bytes muxed so far, plus the frames the encoder still holds
        (its lookahead) at the average size of those muxed, or ~1/50 of raw if none yet."""
        pending = self.frames_written - self._packets
        per_frame = self._bytes / self._packets if self._packets else self.width * self.height * 3 / 50
        return int(self._bytes + pending * per_frame)

    def _mux(self, packets) -> None:
        for packet in packets:
            if packet.size:
                self._bytes += packet.size
                self._packets += 1
            self._container.mux(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._mux(self._stream.encode())  # flush delayed frames
        self._container.close()
        self._closed = True

    def info(self) -> dict:
        """The `info` block of a video feature in meta/info.json (LeRobot's keys)."""
        return {
            "video.height": self.height,
            "video.width": self.width,
            "video.codec": "h264" if self.codec == "libx264" else self.codec.removeprefix("lib"),
            "video.pix_fmt": self.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": self.fps,
            "video.channels": 3,
            "has_audio": False,
        }

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(path: Path, frames: np.ndarray, fps: float, crf: int = 20, pix_fmt: str = "yuv420p") -> Path:
    """One clip to its own file (rollout videos, track visualisations), atomically.

    yuv420p by default, so every player opens it; odd sides are padded by one edge pixel
    (4:2:0 needs even ones). The one mp4 writer of care besides the dataset writer above.
    """
    from care.io import atomic_write_with

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    if pix_fmt == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")

    def write(tmp: Path) -> None:
        with VideoWriter(tmp, fps, frames.shape[2], frames.shape[1], crf=crf, pix_fmt=pix_fmt,
                         gop=250, preset="medium") as w:
            w.append(frames)

    atomic_write_with(Path(path), write)
    return Path(path)


def read_mp4(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a whole mp4 (tests and inspection)."""
    return decode_all(path)[0]


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise DatasetError(f"{path}: unreadable video ({e})") from e
    if not container.streams.video:
        container.close()
        raise DatasetError(f"{path}: no video stream")
    return container


def probe(path: Path) -> dict:
    """width, height, fps, frames (as the container says; may be 0 if unknown), codec, pix_fmt."""
    container = _open(path)
    try:
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        return {
            "width": s.codec_context.width,
            "height": s.codec_context.height,
            "fps": float(rate) if rate else None,
            "frames": int(s.frames or 0),
            "codec": s.codec_context.name,
            "pix_fmt": s.codec_context.pix_fmt,
        }
    finally:
        container.close()


def decode_span(path: Path, from_ts: float, to_ts: float, fps: float) -> np.ndarray:
    """uint8 (T, H, W, 3): the frames whose time is in [from_ts, to_ts), T ~ (to-from)*fps.

    Seeks to the keyframe at or before `from_ts` (never decodes the file from its start
    for a later episode). Returns fewer frames than expected if the file is truncated;
    the caller compares with the episode length. The file stays open for the next span
    (`_cached_open`): opening a file of thousands of episodes parses its whole index.
    """
    path = Path(path)
    tol = 0.5 / fps
    container = _cached_open(path)
    stream = container.streams.video[0]
    tb = stream.time_base
    # seek back further if the keyframe found starts after from_ts (odd user files)
    for back in (0.0, 1.0, 10.0, None):
        target = None if back is None else from_ts - back
        try:
            frames, first_time = _decode_from(container, stream, tb, target, from_ts - tol, to_ts - tol)
        except av.FFmpegError as e:
            _forget(path)
            raise DatasetError(
                f"{path}: corrupt video, decoding [{from_ts:.3f}, {to_ts:.3f}) s failed ({e})"
            ) from e
        if first_time is None or first_time <= from_ts + tol or target is None or target <= 0:
            break
    return frames


# Open files are kept per thread (a container is not to be shared by threads) and per process
# (a DataLoader worker forked from a parent that had files open opens its own). A forked worker
# that freed the parent's threaded swscale context hung forever (FFmpeg's threads do not survive
# a fork); as a precaution against the same with a decoder, kept files decode on one thread and
# the child never touches (so never frees) what it inherited.
_LOCAL = threading.local()
_INHERITED: list = []  # files open in the parent at fork time, never touched by the child
OPEN_FILES = 4  # open containers kept per thread: a loader reads one dataset's few files


def _open_files() -> OrderedDict:
    if getattr(_LOCAL, "pid", None) != os.getpid():
        if getattr(_LOCAL, "files", None):
            _INHERITED.append(_LOCAL.files)
        _LOCAL.pid, _LOCAL.files = os.getpid(), OrderedDict()
    return _LOCAL.files


def _cached_open(path: Path):
    """`_open`, kept open for the next call while the file is unchanged (size and mtime)."""
    try:
        st = path.stat()
    except OSError:
        raise DatasetError(f"{path}: video file not found") from None
    files = _open_files()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in files:
        files.move_to_end(key)
        return files[key]
    _forget(path)
    files[key] = container = _open(path)
    container.streams.video[0].codec_context.thread_count = 1  # see above; bit-exact either way
    while len(files) > OPEN_FILES:
        files.popitem(last=False)[1].close()
    return container


def _forget(path: Path) -> None:
    files = _open_files()
    for key in [k for k in files if k[0] == str(path)]:
        files.pop(key).close()


def _rgb(frame) -> np.ndarray:
    """uint8 (H, W, 3). On one thread: `frame.to_ndarray(format="rgb24")` lets swscale start a
    pool of threads for every frame (~5 ms at 128², more than decoding it); same pixels."""
    return frame.reformat(format="rgb24", threads=1).to_ndarray()


def _decode_from(container, stream, tb, target, lo, hi):
    """Decode from a seek to `target` seconds (None or <= 0: the start); keep times in [lo, hi)."""
    offset = int(target / tb) if target is not None and target > 0 and tb is not None else 0
    container.seek(offset, stream=stream, backward=True, any_frame=False)
    out, first_time = [], None
    DECODE_STATS["spans"] += 1
    for i, frame in enumerate(container.decode(stream)):
        DECODE_STATS["frames"] += 1
        t = frame.time if frame.time is not None else i * float(tb or 0)
        if first_time is None:
            first_time = t
        if t >= hi:
            break
        if t >= lo:
            out.append(_rgb(frame))
    if not out:
        return np.zeros((0, stream.codec_context.height or 0, stream.codec_context.width or 0, 3), np.uint8), first_time
    return np.stack(out), first_time


def decode_all(path: Path) -> tuple[np.ndarray, float, np.ndarray]:
    """Every frame of a file: uint8 (T, H, W, 3), the stream's fps, and each frame's time (s).

    For importing users' videos (any container PyAV reads: mp4, webm, ...).
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames, times = [], []
        try:
            for i, frame in enumerate(container.decode(stream)):
                frames.append(_rgb(frame))
                times.append(frame.time if frame.time is not None else len(times) / float(rate or 1))
        except av.FFmpegError as e:
            raise DatasetError(f"{path}: corrupt video, decoding failed after {len(frames)} frames ({e})") from e
    finally:
        container.close()
    if not frames:
        raise DatasetError(f"{path}: the video has no decodable frames")
    fps = float(rate) if rate else (len(times) - 1) / max(times[-1] - times[0], 1e-6)
    return np.stack(frames), fps, np.asarray(times, dtype=np.float64)
