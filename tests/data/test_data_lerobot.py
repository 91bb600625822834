"""care.data.lerobot: the v3 layout written, read back exactly, and users' variants read."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from care.data.lerobot import Episode, LeRobotDataset, LeRobotDatasetWriter
from care.errors import DatasetError
from helpers import make_dataset, make_episodes


def test_round_trip_is_exact_for_actions_states_and_metadata(tmp_path):
    lengths = [30, 17, 25]
    root = make_dataset(tmp_path, episodes=3, T=lengths, size=32)
    eps = make_episodes(3, lengths, 32)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.num_frames == sum(lengths) and ds.fps == 10
    assert ds.cameras == ["corner"] and ds.has_actions and ds.has_state and ds.has_tracks
    assert ds.tasks() == ["close the drawer", "press the button from the top"]
    for i, ep in enumerate(eps):
        assert ds.episode_length(i) == lengths[i]
        assert ds.episode_task(i) == ep.task
        np.testing.assert_array_equal(ds.episode_actions(i), ep.action)
        np.testing.assert_array_equal(ds.episode_states(i), ep.state)
        assert ds.episode_actions(i).dtype == np.float32
        meta = ds.episode_meta(i)
        assert meta["success"] == ep.extra["success"] and meta["env_name"] == ep.extra["env_name"]
        assert meta["seed"] == i
        frames = ds.episode_frames(i)
        assert frames.shape == (lengths[i], 32, 32, 3)
        assert np.abs(frames.astype(int) - ep.frames["corner"]).mean() < 3.0
        tracks, visible, tmeta = ds.track_store.read(i)
        np.testing.assert_array_equal(tracks, ep.tracks)
        np.testing.assert_array_equal(visible, ep.visible)
        assert tmeta["method"] == "groundtruth"


def test_layout_follows_lerobot_v3(tmp_path):
    root = make_dataset(tmp_path, episodes=2, T=[12, 8], size=32)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    for k in ("robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
              "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path"):
        assert k in info
    assert info["total_episodes"] == 2 and info["total_frames"] == 20 and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:2"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    cam = info["features"]["observation.images.corner"]
    assert cam["dtype"] == "video" and cam["shape"] == [32, 32, 3]
    assert cam["names"] == ["height", "width", "channels"]
    assert {"video.height", "video.width", "video.codec", "video.pix_fmt", "video.fps", "video.channels",
            "has_audio"} <= set(cam["info"])
    assert info["features"]["action"]["shape"] == [4] and info["features"]["observation.state"]["shape"] == [5]

    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert tasks.index.name == "task" and list(tasks["task_index"]) == [0, 1]
    assert tasks.loc["close the drawer", "task_index"] == 0

    ep = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    key = "videos/observation.images.corner"
    assert ep[1]["tasks"] == ["press the button from the top"] and ep[1]["length"] == 8
    assert (ep[1]["dataset_from_index"], ep[1]["dataset_to_index"]) == (12, 20)
    assert (ep[1][f"{key}/from_timestamp"], ep[1][f"{key}/to_timestamp"]) == pytest.approx((1.2, 2.0))
    assert ep[1]["data/chunk_index"] == 0 and ep[1][f"{key}/file_index"] == 0
    assert ep[0]["meta/episodes/chunk_index"] == 0
    for stat in ("min", "max", "mean", "std", "count"):
        assert f"stats/action/{stat}" in ep[0]
    assert np.asarray(ep[0]["stats/observation.images.corner/mean"]).shape == (3, 1, 1)

    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {"observation.state", "action", "timestamp", "frame_index",
                                      "episode_index", "index", "task_index"}
    assert data.column("index").to_pylist() == list(range(20))
    assert data.column("timestamp").to_pylist()[12:14] == pytest.approx([0.0, 0.1])

    stats = json.loads((root / "meta/stats.json").read_text())
    assert {"q01", "q99", "min", "max", "mean", "std", "count"} <= set(stats["action"])
    assert {"q01", "q99"} <= set(stats["observation.state"])
    actions = np.concatenate([e.action for e in make_episodes(2, [12, 8], 32)])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-5)
    assert stats["action"]["count"] == [20]


def test_files_roll_over_past_size_limits(tmp_path):
    # limits so small that every episode starts a new data file and video file
    root = make_dataset(tmp_path, episodes=3, T=[10, 12, 9], size=32,
                        writer_kw={"data_file_size_mb": 1e-4, "video_file_size_mb": 1e-4})
    assert sorted(p.name for p in (root / "data/chunk-000").iterdir()) == [f"file-00{i}.parquet" for i in range(3)]
    vids = root / "videos/observation.images.corner/chunk-000"
    assert sorted(p.name for p in vids.iterdir()) == [f"file-00{i}.mp4" for i in range(3)]
    ds = LeRobotDataset(root)
    eps = make_episodes(3, [10, 12, 9], 32)
    for i in range(3):
        assert ds.episode_meta(i)["data/file_index"] == i
        assert ds.video_span(i) == (0.0, pytest.approx(len(eps[i].action) / 10))
        np.testing.assert_array_equal(ds.episode_actions(i), eps[i].action)
        assert len(ds.episode_frames(i)) == len(eps[i].action)


def test_chunks_roll_after_chunks_size_files(tmp_path):
    root = make_dataset(tmp_path, episodes=3, T=5, size=16,
                        writer_kw={"data_file_size_mb": 1e-5, "video_file_size_mb": 1e-5, "chunks_size": 2})
    assert (root / "data/chunk-001/file-000.parquet").is_file()
    ds = LeRobotDataset(root)
    assert ds.episode_meta(2)["data/chunk_index"] == 1
    assert len(ds.episode_frames(2)) == 5


def test_video_only_dataset(tmp_path):
    root = make_dataset(tmp_path, episodes=2, T=10, with_actions=False, with_state=False, with_tracks=False)
    ds = LeRobotDataset(root)
    assert not ds.has_actions and not ds.has_state and not ds.has_tracks
    assert "action" not in json.loads((root / "meta/info.json").read_text())["features"]
    with pytest.raises(DatasetError, match="no actions"):
        ds.episode_actions(0)
    assert len(ds.episode_frames(1)) == 10


def test_reads_users_variants(tmp_path):
    """A user's dataset: other camera names, two cameras, no state, task as a column, and
    unnamed parquet columns we do not know."""
    w = LeRobotDatasetWriter(tmp_path / "user", fps=10)
    for ep in make_episodes(2, [8, 6], 32, with_state=False, with_tracks=False, cameras=("wrist", "top")):
        w.add_episode(ep)
    w.finalize()
    root = tmp_path / "user"
    # tasks.parquet with the task as a plain column (not the pandas index)
    pq.write_table(pa.table({"task_index": [0, 1], "task": ["close the drawer", "press the button from the top"]}),
                   root / "meta/tasks.parquet")
    # an extra column in the data file, as users' robots record
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.append_column("observation.effort", pa.array(np.zeros(14, np.float32))), path)
    ds = LeRobotDataset(root)
    assert ds.cameras == ["wrist", "top"] and not ds.has_state and ds.has_actions
    assert ds.tasks() == ["close the drawer", "press the button from the top"]
    assert ds.episode_frames(1, "top").shape == (6, 32, 32, 3)
    with pytest.raises(DatasetError, match="no camera 'side'"):
        ds.episode_frames(0, "side")


def test_missing_or_malformed_info_and_empty_dataset(tmp_path):
    root = make_dataset(tmp_path, episodes=1, T=5, size=16)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text("{ broken")
    with pytest.raises(DatasetError, match="info.json: malformed"):
        LeRobotDataset(root)
    info_path.write_text(json.dumps({k: v for k, v in info.items() if k != "features"}))
    with pytest.raises(DatasetError, match="info.json: malformed, missing features"):
        LeRobotDataset(root)
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="v2.1"):
        LeRobotDataset(root)
    info_path.write_text(json.dumps({**info, "total_episodes": 0}))
    with pytest.raises(DatasetError, match="info.json: empty dataset"):
        LeRobotDataset(root)
    info_path.unlink()
    with pytest.raises(DatasetError, match="info.json: not found"):
        LeRobotDataset(root)
    with pytest.raises(DatasetError, match="no episodes were added"):
        LeRobotDatasetWriter(tmp_path / "empty", fps=10).finalize()


def test_episode_table_without_rows_is_empty(tmp_path):
    root = make_dataset(tmp_path, episodes=1, T=5, size=16)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(DatasetError, match="file-000.parquet: empty dataset"):
        LeRobotDataset(root)


def test_length_mismatch_between_parquet_and_video_names_the_video(tmp_path):
    root = make_dataset(tmp_path, episodes=2, T=10, size=16)
    # drop the last 3 rows of episode 1 from the data file: parquet says 7, video holds 10
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 17), path)
    ds = LeRobotDataset(root)
    assert ds.episode_length(1) == 7
    with pytest.raises(DatasetError, match=r"file-000.mp4: decoded 10 frames for episode 1 .* parquet has 7"):
        ds.episode_frames(1)


def test_writer_rejects_bad_episodes(tmp_path):
    w = LeRobotDatasetWriter(tmp_path / "w", fps=10)
    ep = make_episodes(1, 6, 16)[0]
    bad = Episode(frames=ep.frames, task="x", action=np.full((6, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        w.add_episode(bad)
    with pytest.raises(ValueError, match="same, non-zero number of frames"):
        w.add_episode(Episode(frames={"a": ep.frames["corner"], "b": ep.frames["corner"][:3]}, task="x"))
    w.add_episode(ep)
    with pytest.raises(ValueError, match="does not match the first episode"):
        w.add_episode(make_episodes(1, 6, 16, with_actions=False)[0])
    w.finalize()
    assert LeRobotDataset(tmp_path / "w").num_episodes == 1


def test_reading_loads_data_once(tmp_path, monkeypatch):
    root = make_dataset(tmp_path, episodes=3, T=8, size=16)
    calls = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    ds = LeRobotDataset(root)
    n = len(calls)
    for i in range(3):
        ds.episode_actions(i), ds.episode_states(i), ds.episode_task(i), ds.episode_meta(i)
    assert len(calls) == n
    assert sum("/data/chunk-" in str(c) for c in calls) == 1


def test_reads_image_features_stored_in_parquet(tmp_path):
    """LeRobot's `image` dtype: PNG bytes in a struct{bytes, path} column of the data file."""
    import cv2

    root = make_dataset(tmp_path, episodes=2, T=[5, 4], size=16, with_tracks=False)
    eps = make_episodes(2, [5, 4], 16)
    frames = np.concatenate([e.frames["corner"] for e in eps])
    pngs = [cv2.imencode(".png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
    path = root / "data/chunk-000/file-000.parquet"
    column = pa.array([{"bytes": b, "path": None} for b in pngs],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pq.read_table(path).append_column("observation.images.png", column), path)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.images.png"] = {"dtype": "image", "shape": [16, 16, 3],
                                                 "names": ["height", "width", "channels"]}
    (root / "meta/info.json").write_text(json.dumps(info))
    ds = LeRobotDataset(root)
    assert ds.cameras == ["corner", "png"]
    np.testing.assert_array_equal(ds.episode_frames(1, "png"), eps[1].frames["corner"])  # lossless
    np.testing.assert_array_equal(ds.episode_frames(1, "png", start=1, stop=3), eps[1].frames["corner"][1:3])


def test_a_span_of_frames_decodes_exactly_those_frames_of_the_episode(tmp_path):
    from care.data import video as V

    root = make_dataset(tmp_path, episodes=3, T=[25, 31, 22], size=32)
    ds = LeRobotDataset(root)
    whole = ds.episode_frames(1)
    for start, stop in [(0, 1), (0, 31), (7, 16), (10, 11), (23, 31), (30, 31)]:
        before = V.DECODE_STATS["frames"]
        np.testing.assert_array_equal(ds.episode_frames(1, start=start, stop=stop), whole[start:stop])
        assert V.DECODE_STATS["frames"] - before <= (stop - start) + 9 + 1  # from the keyframe before
    for start, stop in [(-1, 3), (5, 5), (20, 32)]:
        with pytest.raises(IndexError, match=rf"frames \[{start}, {stop}\) of episode 1, which has 31"):
            ds.episode_frames(1, start=start, stop=stop)
