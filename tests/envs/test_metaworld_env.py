"""MetaWorldEnv: the gymnasium API, upright images, seeded determinism, the expert, and
ground-truth tracks checked against MuJoCo's own renderer (segmentation), not against our
projection code."""

import numpy as np
import pytest

import care.envs.camera  # noqa: F401  (first: it defaults MUJOCO_GL to egl before mujoco loads)

pytest.importorskip("metaworld")
import mujoco  # noqa: E402

from care.envs.metaworld import MetaWorldEnv  # noqa: E402
from care.envs.points import BodyPoints  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def env():
    e = MetaWorldEnv("reach-v3", size=SIZE, tracks=True, points_per_body=8, max_steps=40)
    yield e
    e.close()


def _segmentation(env, opt=None, size=SIZE):
    """(H, W, 2) [objid, objtype] from mujoco.Renderer, in care's upright orientation."""
    r = mujoco.Renderer(env.model, size, size)
    try:
        r.enable_segmentation_rendering()
        r.update_scene(env.data, camera=env.camera, scene_option=opt)
        return r.render()[::-1, ::-1]  # the documented 180-degree turn of the "corner" camera
    finally:
        r.close()


def _rollout(env, seed, steps=25):
    obs, _ = env.reset(seed=seed)
    frames, actions, rewards = [obs["pixels"]], [], []
    for _ in range(steps):
        a = env.expert_action()
        obs, reward, _, _, _ = env.step(a)
        frames.append(obs["pixels"])
        actions.append(a)
        rewards.append(reward)
    return np.stack(frames), np.stack(actions), env.state, np.array(rewards)


def test_image_upright_and_matches_mujoco(env):
    img = env.reset(seed=0)[0]["pixels"]
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    r = mujoco.Renderer(env.model, SIZE, SIZE)
    r.update_scene(env.data, camera="corner")
    raw = r.render()
    r.close()
    assert np.abs(img.astype(int) - raw[::-1, ::-1].astype(int)).max() <= 2
    # the table top fills the lower half of an upright image
    seg = _segmentation(env)
    table = env.model.body("tablelink").id
    is_table = (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM) & (env.model.geom_bodyid[np.maximum(seg[..., 0], 0)] == table)
    rows = np.nonzero(is_table)[0]
    assert rows.size > 0.1 * SIZE * SIZE and rows.mean() > 0.55 * SIZE
    # and world "up" points up in the image
    (x_hi, y_hi), (x_lo, y_lo) = env.project(np.array([[0, 0.6, 0.5], [0, 0.6, 0.0]]))[0]
    assert y_hi < y_lo


def test_same_seed_same_episode_different_seed_not(env):
    a = _rollout(env, 5)
    _rollout(env, 8, steps=40)  # history must not leak into the next episode
    b = _rollout(env, 5)
    fresh = MetaWorldEnv("reach-v3", size=SIZE, max_steps=40)
    try:
        c = _rollout(fresh, 5)
    finally:
        fresh.close()
    for x, y in ((a, b), (a, c)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    d = _rollout(env, 6)
    assert not np.array_equal(a[2], d[2])  # another seed, another goal


def test_step_contract(env):
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs) and info["is_success"] is False and info["seed"] == 1
    assert env.state.shape == (39,) and env.state.dtype == np.float32
    np.testing.assert_array_equal(obs["agent_pos"], env.state)
    assert np.abs(env.state[-3:]).sum() > 0  # the goal is observed (multi-task setting)
    a = env.expert_action()
    assert a.shape == (4,) and a.dtype == np.float32  # may exceed [-1, 1]: step clips it
    for t in range(1, env.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(a)
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and np.isfinite(reward)
        assert terminated is False and truncated is (t == env.max_steps)
        assert isinstance(info["is_success"], bool) and info["is_success"] == bool(info["success"])
        np.testing.assert_array_equal(env.render(), obs["pixels"])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(a)


@pytest.mark.filterwarnings("ignore:.*infinity:UserWarning", "ignore:.*not having a spec:UserWarning")
def test_gymnasium_api():
    import gymnasium
    from gymnasium import spaces
    from gymnasium.utils.env_checker import check_env

    with MetaWorldEnv("drawer-close-v3", size=SIZE, max_steps=20) as e:
        assert isinstance(e, gymnasium.Env)
        assert e.observation_space == spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
                "agent_pos": spaces.Box(-np.inf, np.inf, (39,), np.float32),
            }
        )
        assert e.action_space == spaces.Box(-1, 1, (4,), np.float32)
        assert e.metadata == {"render_modes": ["rgb_array"], "render_fps": 80} and e.render_mode == "rgb_array"
        check_env(e)  # warnings (unbounded state space, no spec) are fine; an error fails the test
        # check_env's seeded resets and steps must leave seeded episodes as they were
        obs, _ = e.reset(seed=4)
        first = obs["pixels"].copy()
        e.reset(seed=5)
        np.testing.assert_array_equal(e.reset(seed=4)[0]["pixels"], first)


def test_unseeded_resets_are_reproducible_and_differ():
    """reset() without a seed draws the episode seed from the env's generator: the same
    sequence after the same seeded reset (or construction seed), another episode each time,
    and the episode is the one a reset with the drawn seed gives."""

    def unseeded(e, n=3):
        return [e.reset()[1]["seed"] for _ in range(n)]

    with MetaWorldEnv("reach-v3", size=16, seed=11) as e:
        first = unseeded(e)  # from the construction seed
        e.reset(seed=3)
        a = unseeded(e)
        e.reset(seed=3)
        b = unseeded(e)
        e.reset(seed=4)
        c = unseeded(e)
        e.reset(seed=3)
        obs, info = e.reset()
        np.testing.assert_array_equal(e.reset(seed=info["seed"])[0]["agent_pos"], obs["agent_pos"])
    with MetaWorldEnv("reach-v3", size=16, seed=11) as e:
        assert unseeded(e) == first
    assert a == b and len(set(a)) == 3 and a != c


def test_expert_solves_reach():
    with MetaWorldEnv("reach-v3", size=SIZE, max_steps=150) as e:
        e.reset(seed=3)
        success = truncated = False
        rewards = []
        while not (success or truncated):
            _, reward, _, truncated, info = e.step(e.expert_action())
            success = info["is_success"]
            rewards.append(reward)
        assert success and sum(rewards) > 0


def test_gripper_point_track_matches_rendered_site(env):
    """A point fixed on the hand, at the end-effector site, follows that site as MuJoCo draws it."""
    m = env.model
    site = m.site("endEffector").id
    point = BodyPoints(np.array([m.site_bodyid[site]]), m.site_pos[site][None].astype(np.float64))
    m.site_size[site] = 0.012  # make the site a visible marker for MuJoCo's renderer
    m.site_rgba[site] = (1, 0, 1, 1)
    opt = mujoco.MjvOption()
    opt.geomgroup[:] = 0  # only the marker is drawn: its pixels are the site, unoccluded
    opt.sitegroup[:] = 0
    opt.sitegroup[m.site_group[site]] = 1
    env.reset(seed=2)
    checked = 0
    for t in range(30):
        env.step(env.expert_action())
        if t % 6:
            continue
        xy, _ = env.project(point.world(env.data))
        seg = _segmentation(env, opt, size=128)  # a 64² render would make the marker ~2 px wide
        ys, xs = np.nonzero((seg[..., 1] == mujoco.mjtObj.mjOBJ_SITE) & (seg[..., 0] == site))
        assert len(xs) > 3
        centroid = np.array([xs.mean(), ys.mean()]) * SIZE / 128 + (SIZE / 128 - 1) / 2  # 128² px -> 64² px
        assert np.abs(xy[0] - centroid).max() < 2.0, (xy[0], centroid)
        checked += 1
    assert checked == 5


def test_visible_points_lie_on_their_body():
    """Each point the depth test calls visible is drawn, by MuJoCo, as part of its own body."""
    size = 128
    with MetaWorldEnv("drawer-close-v3", size=size, tracks=True, points_per_body=16) as e:
        e.reset(seed=0)
        hits = total = 0
        for t in range(40):
            e.step(e.expert_action())
            if t % 10:
                continue
            xy, vis = e.project_points()
            assert 0 < vis.sum() < len(vis)  # surfaces facing away are hidden
            seg = _segmentation(e, size=size)
            body = np.where(
                seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, e.model.geom_bodyid[np.maximum(seg[..., 0], 0)], -1
            )
            for k in np.nonzero(vis)[0]:
                c, r = np.rint(xy[k]).astype(int)
                total += 1
                hits += (body[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] == e.points.body[k]).any()
        assert total > 50 and hits / total > 0.95


def test_tracked_bodies(env):
    assert env.track_bodies == ["hand", "rightpad", "leftpad", "obj"]
    assert env.num_points == 4 * 8
    xy, vis = env.project_points()
    assert xy.shape == (env.num_points, 2) and xy.dtype == np.float32 and vis.dtype == bool


def test_occluded_behind_and_outside_points_are_invisible(env):
    env.reset(seed=0)
    cam_pos = env.data.cam_xpos[env.view.cam_id]
    forward = -env.data.cam_xmat[env.view.cam_id].reshape(3, 3)[:, 2]  # the camera looks along -z
    pts = np.array(
        [
            cam_pos + 0.1 * forward,  # just in front of the lens: nothing in between
            cam_pos - 0.5 * forward,  # behind the camera
            [0.0, 0.6, -0.2],  # under the table top
            cam_pos + 1.0 * forward + 5.0 * np.cross(forward, [0, 0, 1]),  # far outside the view
        ]
    )
    xy, depth = env.project(pts)
    vis = env.view.visibility(xy, depth, env.view.render(env.data, depth=True)[1])
    assert vis.tolist() == [True, False, False, False]
    np.testing.assert_allclose(xy[0], [(SIZE - 1) / 2] * 2, atol=1e-3)  # the optical axis hits the centre


@pytest.mark.parametrize("task", ["drawer-open-v3", "door-open-v3"])  # tasks that move model bodies at reset
def test_a_shared_renderer_renders_what_an_own_one_does(task):
    """Lockstep evaluation gives the envs of a batch one renderer: the frames and the tracks'
    visibility must be those of an env with its own, whatever the owner's episode is."""
    from care.errors import CareError

    owner = MetaWorldEnv(task, size=SIZE, tracks=True)
    shared = MetaWorldEnv(task, size=SIZE, tracks=True, share_renderer_with=owner)
    own = MetaWorldEnv(task, size=SIZE, tracks=True)
    assert shared.view is owner.view and own.view is not owner.view
    rng = np.random.default_rng(0)
    owner.reset(seed=5)
    a, b = shared.reset(seed=1000)[0], own.reset(seed=1000)[0]
    assert np.array_equal(a["pixels"], b["pixels"])
    for _ in range(12):
        act = rng.uniform(-1, 1, 4).astype(np.float32)
        owner.step(-act)
        a, b = shared.step(act)[0], own.step(act)[0]
        assert np.array_equal(a["pixels"], b["pixels"])
    (xa, va), (xb, vb) = shared.project_points(), own.project_points()
    assert np.array_equal(xa, xb) and np.array_equal(va, vb)
    with pytest.raises(CareError, match="cannot render"):
        MetaWorldEnv("reach-v3", size=SIZE, share_renderer_with=owner)
    shared.close()  # a sharer leaves the renderer to its owner
    assert owner.render() is not None
    for e in (own, owner):
        e.close()
