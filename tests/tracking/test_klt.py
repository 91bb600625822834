"""KLT on synthetic frames whose motion is known exactly."""

import cv2
import numpy as np
import pytest

from care.configs import KLTConfig
from care.errors import CareError
from care.tracking.grid import grid_points, inside_image
from care.tracking.klt import track_klt

S = 96  # frame side


def texture(seed: int = 0, side: int = 320) -> np.ndarray:
    """Smooth random RGB texture: every patch has gradients in both directions."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (side, side, 3)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def warp(img: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Render `img` through the 2x3 affine A (source -> frame coordinates) into an S x S frame."""
    return cv2.warpAffine(img, A.astype(np.float32), (S, S), flags=cv2.INTER_LINEAR)


def translating(T: int, d: tuple[float, float], seed: int = 0) -> np.ndarray:
    """(T, S, S, 3): content moves by d = (dx, dy) px per frame."""
    tex = texture(seed)
    return np.stack([warp(tex, np.array([[1, 0, -100 + t * d[0]], [0, 1, -100 + t * d[1]]])) for t in range(T)])


@pytest.mark.parametrize("d", [(1.0, 0.0), (1.5, -0.75), (-2.25, 1.25)])
def test_recovers_translation(d):
    T = 8
    frames = translating(T, d)
    q = grid_points(8, S, S)
    tracks, visible = track_klt(frames, q)
    assert tracks.shape == (T, 64, 2) and visible.shape == (T, 64) and tracks.dtype == np.float32
    truth = q[None] + np.arange(T)[:, None, None] * np.float32(d)  # (T, N, 2)
    err = np.linalg.norm(tracks - truth, axis=-1)
    # points whose true path keeps half a window (7 px) from the border are all kept and accurate
    inside = ((truth >= 7) & (truth <= S - 1 - 7)).all(-1).all(0)
    assert inside.sum() >= 30
    assert visible[:, inside].all()
    assert err[:, inside].max() < 0.5, err[:, inside].max()
    # nearer the border the window sees border pixels that do not move: less accurate, still close
    assert err[visible].max() < 1.5


def test_recovers_affine_motion():
    """Rotation by 0.6 deg and 0.6% zoom per frame about the frame centre."""
    T, tex = 8, texture(1)
    c = np.array([(S - 1) / 2, (S - 1) / 2])
    base = np.array([[1, 0, -100], [0, 1, -100], [0, 0, 1.0]])
    frames, rel = [], []
    for t in range(T):
        R = np.vstack([cv2.getRotationMatrix2D(tuple(c), 0.6 * t, 1 + 0.006 * t), [0, 0, 1]])  # frame 0 -> frame t
        frames.append(warp(tex, (R @ base)[:2]))
        rel.append(R[:2])
    frames = np.stack(frames)
    q = grid_points(8, S, S)
    tracks, visible = track_klt(frames, q)
    truth = np.stack([q @ A[:, :2].T + A[:, 2] for A in rel]).astype(np.float32)  # (T, N, 2)
    err = np.linalg.norm(tracks - truth, axis=-1)
    inside = ((truth >= 7) & (truth <= S - 1 - 7)).all(-1).all(0)
    assert inside.sum() >= 30 and visible[:, inside].all()
    assert err[:, inside].max() < 0.5, err[:, inside].max()


def test_point_leaving_the_image_is_invisible_and_stays_put():
    T = 12
    frames = translating(T, (3.0, 0.0))
    q = np.array([[S - 8.0, 40.0], [20.0, 40.0], [-3.0, 10.0]], dtype=np.float32)  # near right edge, middle, outside
    tracks, visible = track_klt(frames, q)
    assert not visible[:, 2].any()  # starts outside: never visible
    assert visible[:, 1].all()
    # the right-hand point reaches x = S-8+3t > S-1 at t = 3: lost there, and for good
    assert visible[:3, 0].all() and not visible[3:, 0].any()
    np.testing.assert_allclose(tracks[3:, 0], np.broadcast_to(tracks[2, 0], (T - 3, 2)))  # last accepted position
    assert inside_image(tracks[:, 0], S, S).all()


def occluded(square: str) -> tuple[np.ndarray, np.ndarray]:
    """Translating frames; from frame 5 on, a 30 px square covers the first query point's patch."""
    T = 10
    frames = translating(T, (1.0, 0.5)).copy()
    target = np.array([48.0, 48.0])
    x0, y0 = (target + 5 * np.array([1.0, 0.5]) - 15).astype(int)
    if square == "flat":
        frames[5:, y0 : y0 + 30, x0 : x0 + 30] = 128
    else:  # a static object with a texture of its own
        frames[5:, y0 : y0 + 30, x0 : x0 + 30] = texture(7)[50:80, 50:80]
    q = np.array([target, [10.0, 10.0], [80.0, 12.0]], dtype=np.float32)
    return frames, q


@pytest.mark.parametrize("square", ["flat", "textured"])
def test_occluded_point_is_lost_for_good(square):
    frames, q = occluded(square)
    tracks, visible = track_klt(frames, q)
    assert visible[:5, 0].all() and not visible[5:, 0].any()
    np.testing.assert_allclose(tracks[5:, 0], np.broadcast_to(tracks[4, 0], (5, 2)))  # keeps its last position
    assert visible[:, 1:].all()  # far from the square: unaffected


def test_forward_backward_threshold_is_what_catches_the_textured_occluder():
    frames, q = occluded("textured")
    _, visible = track_klt(frames, q, KLTConfig(fb_threshold=float("inf")))
    assert visible[:, 0].all()  # without the check LK happily follows the occluder's texture
    _, visible = track_klt(frames, q, KLTConfig(fb_threshold=1.0))
    assert not visible[5:, 0].any()


def test_grayscale_input_and_single_frame():
    frames = translating(3, (1.0, 1.0))
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    q = grid_points(4, S, S)
    a, va = track_klt(frames, q)
    b, vb = track_klt(gray, q)
    np.testing.assert_allclose(a, b)
    np.testing.assert_array_equal(va, vb)
    t1, v1 = track_klt(frames[:1], q)
    assert t1.shape == (1, 16, 2) and v1.all()


def test_grid_points_and_bad_grid():
    q = grid_points(16, 128, 128)
    assert q.shape == (256, 2)
    np.testing.assert_allclose(q[:16, 0], 3.5 + 8 * np.arange(16))  # cell centres, row-major
    np.testing.assert_allclose(q[::16, 1], 3.5 + 8 * np.arange(16))
    with pytest.raises(CareError, match="larger than the image of clip.mp4"):
        grid_points(200, 128, 128, source="clip.mp4")
    with pytest.raises(CareError, match="frames"):
        track_klt(np.zeros((4, 8, 8, 2), np.uint8), q)
