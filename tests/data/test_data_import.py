"""care import-videos: Something-Something v2 layout -> LeRobot v3 dataset without actions."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from care.cli import main
from care.configs import ImportVideosConfig
from care.data.import_videos import import_videos
from care.data.lerobot import LeRobotDataset
from care.errors import DatasetError
from helpers import synthetic_frames


def _write_video(path, frames, fps=12, codec=None):
    codec = codec or ("libvpx" if path.suffix == ".webm" else "libx264")
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture
def ssv2(tmp_path):
    """Three clips (two mp4, one webm), 48x40 at 12 fps, and their captions."""
    videos = tmp_path / "videos"
    videos.mkdir()
    lengths = {"10": 9, "2": 14, "33": 11}
    for vid, T in lengths.items():
        frames, _ = synthetic_frames(T, 40, seed=int(vid), width=48)
        _write_video(videos / (f"{vid}.webm" if vid == "33" else f"{vid}.mp4"), frames)
    captions = tmp_path / "labels.json"
    labels = [{"id": "2", "label": "Pushing something from left to right", "template": "x"},
              {"id": "10", "label": "Putting something on a surface"},
              {"id": "33", "label": "Pushing something from left to right"}]
    captions.write_text(json.dumps(labels))
    return videos, captions, lengths


def test_import_round_trip(tmp_path, ssv2):
    videos, captions, lengths = ssv2
    out = tmp_path / "ds"
    assert import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=out, size=32)) == 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 3 and ds.fps == 12
    assert not ds.has_actions and not ds.has_state and not ds.has_tracks
    assert ds.cameras == ["main"]
    # natural order of ids: 2, 10, 33
    assert [ds.episode_meta(e)["video_id"] for e in range(3)] == ["2", "10", "33"]
    assert ds.episode_task(0) == "Pushing something from left to right"
    assert ds.tasks() == ["Pushing something from left to right", "Putting something on a surface"]
    for e, vid in enumerate(["2", "10", "33"]):
        frames = ds.episode_frames(e)
        assert frames.shape == (lengths[vid], 32, 32, 3)
        src, _ = synthetic_frames(lengths[vid], 40, seed=int(vid), width=48)
        import cv2
        ref = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in src])
        assert np.abs(frames.astype(int) - ref).mean() < 6.0  # two lossy encodes
    assert (out / "meta" / "care_import.yaml").is_file()
    assert main(["dataset", "validate", str(out)]) == 0


def test_import_cli_and_resampling(tmp_path, ssv2, capsys):
    videos, captions, lengths = ssv2
    out = tmp_path / "ds6"
    rc = main(["import-videos", "--videos", str(videos), "--captions", str(captions), "--output-dir", str(out),
               "--size", "16", "--fps", "6"])
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.fps == 6
    assert [ds.episode_length(e) for e in range(3)] == [7, 5, 6]  # 14, 9, 11 frames at 12 fps -> 6 fps
    assert ds.episode_frames(0).shape == (7, 16, 16, 3)
    assert "imported 3 videos" in capsys.readouterr().out


def test_video_without_caption_is_an_error(tmp_path, ssv2):
    videos, captions, _ = ssv2
    frames, _ = synthetic_frames(5, 40, width=48)
    _write_video(videos / "77.mp4", frames)
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"77.mp4: no caption"):
        import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=out))
    assert not out.exists()


def test_caption_without_video_is_an_error(tmp_path, ssv2):
    videos, captions, _ = ssv2
    (videos / "33.webm").unlink()
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"labels.json: 1 caption\(s\) have no video .* ids 33"):
        import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=out))
    assert not out.exists()


def test_unreadable_video_leaves_no_output(tmp_path, ssv2, capsys):
    videos, captions, _ = ssv2
    (videos / "33.webm").write_bytes(b"\x1a\x45\xdf\xa3 not really a webm" * 10)
    out = tmp_path / "ds"
    rc = main(["import-videos", "--videos", str(videos), "--captions", str(captions), "--output-dir", str(out)])
    assert rc != 0
    assert "33.webm" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "videos"]  # no ds, no temporary


def test_malformed_captions_and_existing_output(tmp_path, ssv2):
    videos, captions, _ = ssv2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "2"}]))
    with pytest.raises(DatasetError, match='bad.json: entry 0 is not an object with "id" and "label"'):
        import_videos(ImportVideosConfig(videos=videos, captions=bad, output_dir=tmp_path / "x"))
    bad.write_text("[{")
    with pytest.raises(DatasetError, match="bad.json: malformed JSON"):
        import_videos(ImportVideosConfig(videos=videos, captions=bad, output_dir=tmp_path / "x"))
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(DatasetError, match="--overwrite"):
        import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=out))
    import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=out, size=16, overwrite=True))
    assert LeRobotDataset(out).num_episodes == 3


def test_different_sizes_need_size(tmp_path, ssv2):
    videos, captions, _ = ssv2
    frames, _ = synthetic_frames(5, 24, width=24)
    _write_video(videos / "2.mp4", frames)
    with pytest.raises(DatasetError, match="pass --size"):
        import_videos(ImportVideosConfig(videos=videos, captions=captions, output_dir=tmp_path / "o", size=None))
    assert not (tmp_path / "o").exists()


def test_import_keeps_the_original_size_unless_asked(tmp_path, capsys):
    """A 96x80 video stays 96x80 (W x H) by default; `--size` is the only way to resize, and
    `--help` says the default keeps the size."""
    videos = tmp_path / "v"
    videos.mkdir()
    frames, _ = synthetic_frames(6, 80, seed=1, width=96)
    _write_video(videos / "1.mp4", frames)
    captions = tmp_path / "labels.json"
    captions.write_text(json.dumps([{"id": "1", "label": "moving something"}]))
    assert main(["import-videos", "--videos", str(videos), "--captions", str(captions),
                 "--output-dir", str(tmp_path / "ds")]) == 0
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.episode_frames(0, "main").shape[1:] == (80, 96, 3)
    capsys.readouterr()
    assert main(["import-videos", "--help"]) == 0
    out = capsys.readouterr().out
    size_help = " ".join(out[out.index("  --size "):].split("\n  --")[0].split())
    assert "(default: null)" in size_help and "original size" in size_help
