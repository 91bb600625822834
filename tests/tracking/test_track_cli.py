"""`care track DIR`: fills the track store, skips what is done, fails clearly on bad input."""

import json

import numpy as np
import pytest

from care.cli import main
from care.configs import TrackConfig
from care.data.tracks import TrackStore
from care.errors import DatasetError
from care.tracking import run as track_run



@pytest.fixture
def video_only(make_dataset):
    """3 episodes of different lengths, 32x32, no tracks (as a user's videos would be)."""
    return make_dataset(episodes=3, T=[10, 12, 9], size=32, with_tracks=False, with_actions=False)


def mtimes(root):
    return {p.name: p.stat().st_mtime_ns for p in (root / "tracks").iterdir()}


def test_track_writes_every_episode_then_skips_then_overwrites(video_only, capsys):
    assert main(["track", str(video_only), "--grid", "4"]) == 0
    store = TrackStore(video_only)
    assert store.episodes() == [0, 1, 2]
    for ep, T in enumerate([10, 12, 9]):
        tracks, visible, meta = store.read(ep)
        assert tracks.shape == (T, 16, 2) and visible.shape == (T, 16)
        assert visible[0].all()  # every grid point starts inside the image
        assert meta["method"] == "klt" and meta["grid"] == "4" and meta["camera"] == "corner"
        assert json.loads(meta["params"])["fb_threshold"] == 1.0
    before = mtimes(video_only)
    capsys.readouterr()

    assert main(["track", str(video_only), "--grid", "4"]) == 0  # nothing to do
    assert "3 of 3 episodes already have tracks" in capsys.readouterr().out
    assert mtimes(video_only) == before

    assert main(["track", str(video_only), "--grid", "2", "--overwrite=true", "--tracker.window", "9"]) == 0
    assert mtimes(video_only).keys() == before.keys()
    tracks, _, meta = store.read(1)
    assert tracks.shape == (12, 4, 2) and meta["grid"] == "2"
    assert json.loads(meta["params"])["window"] == 9


def test_only_missing_episodes_are_tracked(video_only):
    (video_only / "tracks").mkdir()
    TrackStore(video_only).write(1, np.zeros((12, 1, 2)), np.ones((12, 1), bool), {"method": "mine"})
    result = track_run.track(TrackConfig(dataset=video_only, grid=4))
    assert result == {"written": [0, 2], "skipped": [1]}
    assert TrackStore(video_only).read(1)[2]["method"] == "mine"


def test_ground_truth_is_kept_unless_overwrite(make_dataset, capsys):
    root = make_dataset(episodes=2, T=8, with_tracks=True)
    assert track_run.track(TrackConfig(dataset=root, grid=4))["written"] == []
    track_run.track(TrackConfig(dataset=root, grid=4, overwrite=True))
    assert "replaces the simulator's ground-truth tracks" in capsys.readouterr().out
    assert TrackStore(root).read(0)[2]["method"] == "klt"


def test_grid_larger_than_image_names_the_video(video_only, capsys):
    assert main(["track", str(video_only), "--grid", "40"]) == 2
    err = capsys.readouterr().err
    assert "grid 40x40 is larger than the image" in err and "file-000.mp4" in err and "32x32" in err
    assert not (video_only / "tracks").exists()


def test_dataset_without_videos(video_only):
    info_path = video_only / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"] = {k: v for k, v in info["features"].items() if v.get("dtype") not in ("video", "image")}
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="no videos"):
        track_run.track(TrackConfig(dataset=video_only))


def test_unreadable_video_names_the_file(video_only, capsys):
    video = next((video_only / "videos").rglob("*.mp4"))
    video.write_bytes(b"not a video at all" * 10)
    assert main(["track", str(video_only), "--grid", "4"]) == 2
    err = capsys.readouterr().err
    assert str(video) in err
    assert not (video_only / "tracks").exists() or TrackStore(video_only).episodes() == []


def test_not_a_dataset(tmp_path, capsys):
    assert main(["track", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_interrupted_run_keeps_finished_episodes_and_no_partial_file(video_only, monkeypatch):
    from care.tracking import klt

    real, calls = klt.track_klt, []

    def flaky(frames, queries, cfg=None):
        calls.append(len(frames))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(frames, queries, cfg)

    monkeypatch.setattr(klt, "track_klt", flaky)
    assert main(["track", str(video_only), "--grid", "4"]) == 130
    assert TrackStore(video_only).episodes() == [0]
    assert [p.name for p in (video_only / "tracks").iterdir()] == ["episode_000000.safetensors"]  # no temp files
    monkeypatch.setattr(klt, "track_klt", real)
    assert track_run.track(TrackConfig(dataset=video_only, grid=4)) == {"written": [1, 2], "skipped": [0]}


def test_track_with_cotracker_from_a_local_hub_repo(video_only, fake_cotracker):
    args = ["track", str(video_only), "--tracker.type", "cotracker", "--grid", "4",
            "--tracker.repo_dir", str(fake_cotracker.repo), "--tracker.checkpoint", str(fake_cotracker.checkpoint)]
    assert main(args) == 0
    tracks, visible, meta = TrackStore(video_only).read(1)
    assert tracks.shape == (12, 16, 2) and meta["method"] == "cotracker"
    np.testing.assert_allclose(tracks[5] - tracks[0], np.broadcast_to(5 * np.float32(fake_cotracker.shift), (16, 2)), atol=1e-5)


def test_cotracker_without_paths_says_what_to_provide(video_only, capsys):
    assert main(["track", str(video_only), "--tracker.type", "cotracker"]) == 2
    assert "--tracker.repo_dir" in capsys.readouterr().err
