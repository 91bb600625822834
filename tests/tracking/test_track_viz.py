"""`care viz tracks`: an mp4 with one frame per episode frame, and a PNG strip beside it."""

import av
import cv2
import numpy as np
import pytest

from care.cli import main
from care.configs import VizTracksConfig
from care.errors import CareError, DatasetError
from care.tracking.viz import draw_tracks, viz_tracks


def video_frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_viz_writes_mp4_and_png_strip(make_dataset, tmp_path):
    root = make_dataset(episodes=2, T=[12, 9], size=32, with_tracks=False)
    assert main(["track", str(root), "--grid", "4"]) == 0
    out = tmp_path / "viz" / "tracks_episode_000001.mp4"
    assert main(["viz", "tracks", str(root), "--episode", "1", "--output-dir", str(out.parent), "--scale", "4"]) == 0
    frames = video_frames(out)
    assert len(frames) == 9 and frames[0].shape == (128, 128, 3)
    strip = cv2.imread(str(out.with_suffix(".png")))
    assert strip is not None and strip.shape[0] == 128
    assert strip.shape[1] == 6 * 128 + 5 * 4  # 6 frames side by side, 4 px apart


def test_viz_draws_ground_truth_tracks_with_hollow_invisible_points(make_dataset, tmp_path):
    root = make_dataset(episodes=1, T=7, size=32, with_tracks=True)  # helper's tracks: ~20% invisible
    res = viz_tracks(VizTracksConfig(dataset=root, episode=0, output_dir=tmp_path / "gt", strip_frames=3, scale=2))
    assert res["frames"] == 7 and len(video_frames(res["video"])) == 7
    assert cv2.imread(str(res["strip"])).shape == (64, 3 * 64 + 2 * 4, 3)


def test_drawing_marks_visible_and_invisible_points_differently():
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    tracks = np.array([[[4.0, 4.0], [11.0, 11.0]]] * 2, np.float32)  # (T=2, N=2, 2)
    visible = np.array([[True, True], [True, False]])
    img = draw_tracks(frames, tracks, visible, tail=2, scale=8)[1]  # (128, 128, 3)
    def centre(x, y):
        return img[int(y * 8 + 3.5), int(x * 8 + 3.5)].max()
    assert centre(4, 4) > 100  # filled dot
    assert centre(11, 11) == 0  # hollow ring: its centre stays dark
    assert img[int(11 * 8 + 3.5), int(11 * 8 + 3.5) + 8].max() > 50  # ... its rim is drawn


def test_viz_errors(make_dataset, tmp_path):
    root = make_dataset(episodes=1, T=5, size=32, with_tracks=False)
    with pytest.raises(DatasetError, match="run `care track"):
        viz_tracks(VizTracksConfig(dataset=root, episode=0, output_dir=tmp_path / "x"))
    with pytest.raises(CareError, match="no episode 3"):
        viz_tracks(VizTracksConfig(dataset=root, episode=3, output_dir=tmp_path / "x"))
