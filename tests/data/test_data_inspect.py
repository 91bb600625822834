"""care dataset info / validate: every bad input gives a non-zero exit naming the file."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from care.cli import main
from care.data.tracks import TrackStore


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from helpers import make_dataset

    return make_dataset(tmp_path_factory.mktemp("inspect"), episodes=3, T=[15, 10, 12], size=32)


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(good, dst)
    return dst


def _validate(root, capsys):
    rc = main(["dataset", "validate", str(root)])
    return rc, capsys.readouterr()


def test_info_prints_the_summary(good, capsys):
    assert main(["dataset", "info", str(good)]) == 0
    out = capsys.readouterr().out
    assert "episodes  3" in out and "frames    37" in out and "fps       10" in out
    assert "tasks     2" in out and "close the drawer" in out
    assert "corner: 32x32" in out
    assert "actions   yes (4 dims)" in out and "state     yes (5 dims)" in out
    assert "tracks    3/3 episodes, method groundtruth, 6 points" in out
    assert "success   66.7% of 3 episodes" in out


def test_info_on_a_video_only_dataset(tmp_path, capsys):
    from helpers import make_dataset

    root = make_dataset(tmp_path, episodes=1, T=5, size=16, with_actions=False, with_state=False, with_tracks=False)
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "actions   no" in out and "tracks    no (run `care track" in out


def test_validate_passes_on_a_good_dataset(good, capsys):
    rc, cap = _validate(good, capsys)
    assert rc == 0, cap.out
    assert cap.out.strip().endswith(": ok")


def test_truncated_video(copy, capsys):
    path = copy / "videos/observation.images.corner/chunk-000/file-000.mp4"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and "file-000.mp4: " in cap.out


def test_unreadable_video(copy, capsys):
    path = copy / "videos/observation.images.corner/chunk-000/file-000.mp4"
    path.write_bytes(b"garbage" * 50)
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and f"{path}: episode 0: unreadable video" in cap.out


def test_corrupt_video_data(copy, capsys):
    path = copy / "videos/observation.images.corner/chunk-000/file-000.mp4"
    data = bytearray(path.read_bytes())
    data[len(data) // 4 : len(data) // 2] = bytes(len(data) // 2 - len(data) // 4)
    path.write_bytes(bytes(data))
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and f"{path}: episode " in cap.out


def test_length_mismatch_parquet_vs_video(copy, capsys):
    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 35), path)  # episode 2 loses 2 frames
    rc, cap = _validate(copy, capsys)
    assert rc != 0
    assert f"{path}: episode 2: 10 rows, the episodes table says length 12" in cap.out
    assert "file-000.mp4: episode 2: decoded 12 frames" in cap.out
    assert "total_frames is 37" in cap.out


def test_nan_actions(copy, capsys):
    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = np.asarray(table.column("action").combine_chunks().flatten()).reshape(-1, 4).copy()
    actions[20, 1] = np.nan
    i = table.column_names.index("action")
    table = table.set_column(i, "action", pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), 4))
    pq.write_table(table, path)
    rc, cap = _validate(copy, capsys)
    assert rc != 0
    assert f"{path}: episode 1: action holds NaN or inf (1 values, first at frame 5)" in cap.out


def test_empty_dataset(copy, capsys):
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "total_episodes": 0}))
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and f"{info_path}: empty dataset" in cap.out
    # `care dataset info` reports it through the CLI's error path (exit 2, message on stderr)
    assert main(["dataset", "info", str(copy)]) == 2
    assert "empty dataset" in capsys.readouterr().err


def test_missing_and_malformed_metadata(copy, capsys):
    (copy / "meta/info.json").write_text("{")
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and "info.json: malformed JSON" in cap.out
    (copy / "meta/info.json").unlink()
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and "info.json: not found" in cap.out
    rc, cap = _validate(copy / "nope", capsys)
    assert rc != 0 and "nope: dataset folder not found" in cap.out


def test_unreadable_parquet_and_bad_timestamps(copy, capsys):
    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    ts = table.column("timestamp").to_numpy().copy()
    ts[3] += 0.05
    pq.write_table(table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(ts)), path)
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and f"{path}: episode 0: timestamp 0.3500 s at frame 3" in cap.out
    tasks = copy / "meta/tasks.parquet"
    tasks.write_bytes(b"PAR1 nope")
    rc, cap = _validate(copy, capsys)
    assert rc != 0 and f"{tasks}: unreadable parquet" in cap.out


def test_bad_tracks(copy, capsys):
    store = TrackStore(copy)
    tracks, visible, meta = store.read(1)
    store.write(1, tracks[:-2], visible[:-2], meta)
    store.write(7, tracks, visible, meta)
    rc, cap = _validate(copy, capsys)
    assert rc != 0
    assert f"{store.path(1)}: 8 frames of tracks, the episode has 10" in cap.out
    assert f"{store.path(7)}: tracks for episode 7, which is not in the dataset" in cap.out


@pytest.mark.parametrize("shape, names", [([48, 40, 3], None), ([3, 24, 32], ["channels", "height", "width"])])
def test_video_frame_size_disagrees_with_info(copy, capsys, shape, names):
    """meta/info.json declares another frame size than the video files hold: the loaders would
    train on frames of the wrong size (or fail later, far from the cause)."""
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    ft = info["features"]["observation.images.corner"]
    ft["shape"] = shape
    if names:
        ft["names"] = names
    info_path.write_text(json.dumps(info))
    declared = f"{shape[1]}x{shape[0]}" if not names else f"{shape[2]}x{shape[1]}"  # width x height
    rc, cap = _validate(copy, capsys)
    assert rc != 0
    path = copy / "videos/observation.images.corner/chunk-000/file-000.mp4"
    lines = [line for line in cap.out.splitlines() if line.startswith(f"{path}: ")]
    assert len(lines) == 1, cap.out  # one problem per file, not one per episode in it
    assert f"frames are 32x32 (width x height), {info_path} declares {declared}" in lines[0], lines[0]
    assert "observation.images.corner" in lines[0]


def test_video_frame_size_in_the_info_block(copy, capsys):
    """The feature's `info` block (video.width / video.height) disagrees with the decoded frames."""
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.corner"]["info"]["video.width"] = 64
    info_path.write_text(json.dumps(info))
    rc, cap = _validate(copy, capsys)
    path = copy / "videos/observation.images.corner/chunk-000/file-000.mp4"
    assert rc != 0 and f"{path}: frames are 32x32 (width x height), {info_path} declares 64x32" in cap.out


def test_malformed_video_shape_in_info(copy, capsys):
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.corner"]["shape"] = [32, 32]
    info_path.write_text(json.dumps(info))
    rc, cap = _validate(copy, capsys)
    assert rc != 0
    assert f"{info_path}: observation.images.corner: shape is [32, 32], not (height, width, channels)" in cap.out


def test_info_counts_tasks_not_instruction_paraphrases(tmp_path, capsys):
    """Collected Meta-World episodes carry paraphrased instructions of one task (env_name): a
    2-task dataset with 4 instructions reports 2 tasks, as training groups them."""
    from helpers import make_episode

    from care.data.lerobot import LeRobotDatasetWriter

    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10)
    texts = ["close the drawer", "shut the drawer", "press the button", "push the button down"]
    for i, text in enumerate(texts):
        ep = make_episode(T=8, size=16, seed=i, task_id=i // 2)
        ep.task = text
        writer.add_episode(ep)
    writer.finalize()
    assert main(["dataset", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "tasks     2 (4 instructions)" in out, out
    assert "[   2 ep] drawer-close-v3: close the drawer (+1 paraphrases)" in out, out
