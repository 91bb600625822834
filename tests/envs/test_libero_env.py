"""LiberoEnv: the published evaluation protocol (initial states, settling steps, step limits,
image orientation, gripper sign), checked against LIBERO's own env and renderer; seeded random
placements; ground-truth tracks checked against MuJoCo's segmentation; LIBERO-PRO suites."""

import numpy as np
import pytest

import care.envs.camera  # noqa: F401  (first: it defaults MUJOCO_GL to egl before mujoco loads)

pytest.importorskip("libero.libero")
import mujoco  # noqa: E402

from care.envs import libero as L  # noqa: E402
from care.errors import CareError  # noqa: E402

SUITE = "libero_object"
SIZE = 128


@pytest.fixture(scope="module")
def task():
    return L.resolve_tasks(SUITE)[0]


@pytest.fixture(scope="module")
def env(task):
    e = L.LiberoEnv(SUITE, task, size=SIZE, tracks=True, init_states="fixed", max_steps=40)
    yield e
    e.close()


def _reference_protocol_frame(task_index: int, init_state: int) -> tuple[np.ndarray, dict]:
    """The agent-view frame LIBERO's own env renders at the protocol's first policy step, turned
    as OpenVLA's evaluation and the public datasets turn it (img[::-1, ::-1])."""
    from libero.libero.envs import OffScreenRenderEnv

    s = L._suite(SUITE)
    ref = OffScreenRenderEnv(bddl_file_name=s.get_task_bddl_file_path(task_index), camera_heights=SIZE,
                             camera_widths=SIZE)
    try:
        ref.seed(0)
        ref.reset()
        ref.set_init_state(s.get_task_init_states(task_index)[init_state])
        for _ in range(L.NUM_STEPS_WAIT):
            obs, _, _, _ = ref.step([0, 0, 0, 0, 0, 0, -1])
        return obs["agentview_image"][::-1, ::-1].astype(np.float64), obs
    finally:
        ref.close()


def test_protocol_frame_and_state_match_libero(env):
    """Initial state 3 after the 10 settling steps: the same robot state as LIBERO's env, and
    our fast render is LIBERO's frame turned by 180 degrees (up to multisampling and shadows);
    any other turn or flip is far off."""
    obs, info = env.reset(seed=3)
    assert info == {"is_success": False, "seed": 3} and env.t == 0
    ref_img, ref = _reference_protocol_frame(0, 3)
    np.testing.assert_allclose(obs["agent_pos"][:3], ref["robot0_eef_pos"], atol=1e-6)
    np.testing.assert_allclose(obs["agent_pos"][6:], ref["robot0_gripper_qpos"], atol=1e-6)
    ours = obs["pixels"].astype(np.float64)
    err = {name: np.abs(ours - img).mean() for name, img in
           {"protocol": ref_img, "upright": ref_img[:, ::-1], "raw": ref_img[::-1, ::-1], "flipud": ref_img[::-1]}.items()}
    assert err["protocol"] < 5.0, err
    assert min(v for k, v in err.items() if k != "protocol") > 4 * err["protocol"], err


def test_step_contract_and_step_limit(env, task):
    assert env.max_steps == 40 and env.instruction == "pick up the alphabet soup and place it in the basket"
    assert env.observation_space["agent_pos"].shape == (8,) and env.action_space.shape == (7,)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    r = env._raw
    np.testing.assert_allclose(env.state, np.r_[r["robot0_eef_pos"], L.quat_xyzw_to_axis_angle(r["robot0_eef_quat"]),
                                                r["robot0_gripper_qpos"]], rtol=1e-6)
    for t in range(1, env.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert env.observation_space.contains(obs) and reward == 0.0
        assert terminated is False and truncated is (t == env.max_steps) and info["is_success"] is False
        np.testing.assert_array_equal(env.render(), obs["pixels"])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))
    with pytest.raises(CareError, match="50 initial states"):
        env.reset(seed=50)


def test_action_frame_and_gripper_sign(env):
    """+x moves the end effector along world +x by about 0.05 m x action per step at most;
    +1 closes the gripper, -1 opens it (the public datasets' sign)."""
    env.reset(seed=1)
    p0 = env.state[:3].copy()
    for _ in range(5):
        env.step([1, 0, 0, 0, 0, 0, -1])
    dp = env.state[:3] - p0
    assert 0.03 < dp[0] < 0.25 and abs(dp[1]) < 0.02 and abs(dp[2]) < 0.02, dp
    opened = env.state[6] - env.state[7]
    for _ in range(12):
        env.step([0, 0, 0, 0, 0, 0, 1])
    closed = env.state[6] - env.state[7]
    for _ in range(12):
        env.step([0, 0, 0, 0, 0, 0, -1])
    assert closed < 0.3 * opened and env.state[6] - env.state[7] > 0.9 * opened, (opened, closed)


def test_random_placements_are_a_function_of_the_seed(task):
    with L.LiberoEnv(SUITE, task, size=32, init_states="random") as e:
        def basket(seed):
            e.reset(seed=seed)
            return e._raw["basket_1_pos"].copy()

        a, b = basket(0), basket(1)
        for _ in range(5):  # an episode does not depend on the ones before it (the gripper's state)
            e.step([0.5, 0.2, 0, 0, 0, 0, 1])
        np.testing.assert_array_equal(basket(0), a)
        assert np.abs(a - b).max() > 1e-3
        assert e.num_init_states == 0


def _segmentation(env, size):
    """(H, W) body id of the geom MuJoCo draws at each pixel (-1: none), in our orientation."""
    r = mujoco.Renderer(env.model, size, size)
    try:
        opt = mujoco.MjvOption()
        opt.geomgroup[:] = [int(g in L.GEOM_GROUPS) for g in range(len(opt.geomgroup))]
        r.enable_segmentation_rendering()
        r.update_scene(env.data, camera=L.CAMERAS[env.camera], scene_option=opt)
        seg = r.render()[:, ::-1]  # the upright view mirrored left-right, as the env's frames
    finally:
        r.close()
    return np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, env.model.geom_bodyid[np.maximum(seg[..., 0], 0)], -1)


def test_visible_track_points_lie_on_their_body(env):
    """Each point the depth test calls visible is drawn, by MuJoCo, as part of its own body;
    the tracked bodies are the fingers and every object that can move."""
    assert env.track_bodies[:2] == ["gripper0_leftfinger", "gripper0_rightfinger"]
    assert {"alphabet_soup_1_main", "basket_1_main"} <= set(env.track_bodies)
    env.reset(seed=0)
    hits = total = 0
    for t in range(3):
        env.step([0, 0, -0.5, 0, 0, 0, -1])
        xy, vis = env.project_points()
        assert xy.shape == (env.num_points, 2) and 0 < vis.sum() < len(vis)
        body = _segmentation(env, SIZE)
        for k in np.nonzero(vis)[0]:
            c, r = np.rint(xy[k]).astype(int)
            total += 1
            hits += (body[max(r - 1, 0): r + 2, max(c - 1, 0): c + 2] == env.points.body[k]).any()
    assert total > 30 and hits / total > 0.9, (hits, total)


def test_suites_tasks_and_instructions():
    assert L.suite_max_steps("libero_spatial") == 220 and L.suite_max_steps("libero_10_swap") == 520
    names = L.resolve_tasks("libero_spatial")
    assert len(names) == 10 and L.resolve_tasks("libero_spatial", "3,0") == [names[3], names[0]]
    assert L.resolve_tasks("libero_spatial", names[5]) == [names[5]]
    with pytest.raises(CareError, match="unknown libero_spatial task"):
        L.resolve_tasks("libero_spatial", "12")
    with pytest.raises(CareError, match="unknown LIBERO suite"):
        L.resolve_tasks("libero_nope")
    base = L.task_instruction("libero_object", L.resolve_tasks("libero_object")[0])
    # LIBERO-PRO: the changed language and the changed goal live only in the BDDL
    lan = L.task_instruction("libero_object_lan", L.resolve_tasks("libero_object_lan")[0])
    new_goal = L.task_instruction("libero_object_task", L.resolve_tasks("libero_object_task")[0])
    assert lan != base and "soup" in lan
    assert "cream cheese" in new_goal and "soup" not in new_goal


def test_quaternion_to_axis_angle():
    from scipy.spatial.transform import Rotation

    for q in Rotation.random(5, random_state=1).as_quat():  # (x, y, z, w)
        q = q if q[3] >= 0 else -q
        np.testing.assert_allclose(L.quat_xyzw_to_axis_angle(q), Rotation.from_quat(q).as_rotvec(), atol=1e-9)
    assert np.array_equal(L.quat_xyzw_to_axis_angle([0, 0, 0, 1.0]), np.zeros(3))


def test_random_placements_on_a_fixture_land_on_it():
    """Scenes with fixtures rebuild the model at a random-placement reset (a soft reset put the
    bowl "on the stove" 40 cm away from the stove); the renderer follows the new model."""
    task = L.resolve_tasks("libero_spatial")[7]  # pick up the black bowl on the stove ...
    with L.LiberoEnv("libero_spatial", task, size=32, init_states="random", tracks=True) as e:
        m = e.model
        for seed in (0, 1):
            obs, _ = e.reset(seed=seed)
            m, d = e.model, e.data
            root = lambda g: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.body_rootid[m.geom_bodyid[g]])  # noqa: E731
            touching = {frozenset((root(c.geom1), root(c.geom2))) for c in d.contact[:d.ncon]}
            assert frozenset(("akita_black_bowl_1_main", "flat_stove_1_main")) in touching, touching
            assert e.view.model is e.model and obs["pixels"].std() > 10  # a picture of the new scene
            xy, vis = e.project_points()
            assert vis.any()


def test_fixtures_stand_where_the_env_seed_puts_them():
    """Building the model places the fixtures from numpy's global generator: the env seeds it, so
    a fixed-initial-state episode is the same in any process, whatever ran there before."""
    task = L.resolve_tasks("libero_spatial")[0]
    scenes = []
    for before in (1, 2):
        np.random.seed(before)
        with L.LiberoEnv("libero_spatial", task, size=32, init_states="fixed") as e:
            e.reset(seed=0)
            scenes.append((e.model.body_pos.copy(), e.state))
    np.testing.assert_array_equal(scenes[0][0], scenes[1][0])
    np.testing.assert_array_equal(scenes[0][1], scenes[1][1])
