"""Meta-World v3 with care's conventions: upright images, fast rendering, seeded task
variation, scripted experts and ground-truth point tracks.

    TASK_SUITES["MT10"], TASK_SUITES["MT50"]      lists of env names
    TASK_SUITES["MT40"]                           MT50 without MT10's tasks (video of other tasks only)
    TASK_SUITES["SHARED"]                         tasks sharing a scene, for the semantic probe
    resolve_tasks("MT10" | "reach-v3,push-v3")    -> list of env names (CareError if unknown)
    INSTRUCTIONS[env_name]                        several natural-language paraphrases

    env = MetaWorldEnv("drawer-close-v3", size=128, tracks=True)   # a gymnasium.Env
    obs, info = env.reset(seed=3)     # obs["pixels"] uint8 (H, W, 3) upright, obs["agent_pos"] (39,)
    obs, reward, terminated, truncated, info = env.step(env.expert_action())
    info["is_success"]                            # bool, every step; success does not end it
    env.state                                     # float32 (39,), as obs["agent_pos"]
    xy, visible = env.project_points()            # (N, 2) pixels, (N,) bool
    env.close()

`metaworld`, `mujoco` (and `gymnasium`, when missing) are imported when an env is built, so the
task lists and the instructions are usable without the `sim` extra.
"""

from __future__ import annotations

import warnings

import numpy as np

from care.envs.base import SimEnv, stable_seed  # (sets MUJOCO_GL before mujoco is imported)
from care.envs.instructions import INSTRUCTIONS, instruction_for, instructions_for
from care.errors import CareError

__all__ = [
    "TASK_SUITES",
    "METAWORLD_FPS",
    "ACTION_NAMES",
    "STATE_NAMES",
    "INSTRUCTIONS",
    "MetaWorldEnv",
    "resolve_tasks",
    "instruction_for",
    "instructions_for",
]

MT10 = [
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
]

# Meta-World v3's 50 tasks (metaworld.env_dict.ALL_V3_ENVIRONMENTS), listed here so that task
# names resolve without importing the simulator.
MT50 = [
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3",
    "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
    "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "drawer-close-v3", "drawer-open-v3", "faucet-close-v3",
    "faucet-open-v3", "hammer-v3", "hand-insert-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "pick-place-wall-v3", "plate-slide-back-side-v3", "plate-slide-back-v3",
    "plate-slide-side-v3", "plate-slide-v3", "push-back-v3", "push-v3", "push-wall-v3",
    "reach-v3", "reach-wall-v3", "shelf-place-v3", "soccer-v3", "stick-pull-v3",
    "stick-push-v3", "sweep-into-v3", "sweep-v3", "window-close-v3", "window-open-v3",
]  # fmt: skip

# Tasks that share a scene file, in groups, for the semantic probe (`care probe`, paper Tab. 3;
# docs/DESIGN.md §6): in MT10 every task has its own scene and the first frame alone names it;
# here it mostly does not. Picked among Meta-World v3's 13 shared-scene groups where the scripted
# expert solved 10/10 seeds (within 200 steps) and the initial frames of a group's tasks differ
# about as much across tasks as across seeds of one task (mean |difference| in grey levels at
# 64², 5 seeds: coffee 2.2 vs 1.9, drawer 1.1 vs 0.9, faucet 0.34 vs 0.30, handle 1.6 vs 1.8,
# handle-side 1.1 vs 1.1). Left out: door-open/-close (the door starts open or shut: 10.4 vs 1.7,
# the first frame gives it away), plate-slide/-back (2.1 vs 0.9), window-open/-close (3.0 vs 2.1).
# Initial states can still differ within a group (a drawer starts open or closed): row (a) of
# the probe, the initial frame alone, measures how much; read the other rows against it.
SHARED = [
    "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",  # sawyer_coffee.xml
    "drawer-open-v3", "drawer-close-v3",  # sawyer_drawer.xml
    "faucet-open-v3", "faucet-close-v3",  # sawyer_faucet.xml
    "handle-press-v3", "handle-pull-v3",  # sawyer_handle_press.xml
    "handle-press-side-v3", "handle-pull-side-v3",  # sawyer_handle_press_sideways.xml
]  # fmt: skip

# the other 40: pretraining video with no episode of the target tasks (the paper's data rows ask
# this of human video)
MT40 = [t for t in MT50 if t not in MT10]

TASK_SUITES: dict[str, list[str]] = {"MT10": MT10, "MT40": MT40, "MT50": MT50, "SHARED": SHARED}

ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
STATE_NAMES = (
    ["hand_x", "hand_y", "hand_z", "gripper_opening"]
    + [f"object_{i}" for i in range(14)]
    + ["prev_hand_x", "prev_hand_y", "prev_hand_z", "prev_gripper_opening"]
    + [f"prev_object_{i}" for i in range(14)]
    + ["goal_x", "goal_y", "goal_z"]
)  # the 39-d MT observation, as recorded by `care collect`

# Meta-World's control rate: 5 MuJoCo substeps of 2.5 ms per step (checked in MetaWorldEnv).
METAWORLD_FPS = 80.0

# Bodies of the robot that carry track points: the hand and the two finger pads.
ROBOT_TRACK_BODIES = ("hand", "rightpad", "leftpad")


def resolve_tasks(spec: str) -> list[str]:
    """A suite name ("MT10", "MT50", any case) or a comma-separated list of env names.

    Names may omit the "-v3" suffix. Unknown names raise CareError listing the valid ones.
    """
    spec = (spec or "").strip()
    if spec.upper() in TASK_SUITES:
        return list(TASK_SUITES[spec.upper()])
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise CareError(f"no tasks given; use a suite ({', '.join(TASK_SUITES)}) or env names like 'reach-v3'")
    out, unknown = [], []
    for n in names:
        full = n if n in MT50 else f"{n}-v3"
        if full in MT50:
            if full not in out:
                out.append(full)
        else:
            unknown.append(n)
    if unknown:
        raise CareError(
            f"unknown Meta-World task(s): {', '.join(unknown)}. "
            f"Use a suite ({', '.join(TASK_SUITES)}) or a comma-separated list of: {', '.join(MT50)}"
        )
    return out


class MetaWorldEnv(SimEnv):
    """One Meta-World v3 task, rendered from one camera, as a `gymnasium.Env`.

    Args:
        env_name: a Meta-World v3 env name ("drawer-close-v3").
        size: square image side in pixels.
        camera: model camera; a camera whose image would be upside down ("corner", "corner2",
            ...) is turned by 180 degrees, images and track coordinates alike.
        seed: seeds the generator that draws the episode seed of a `reset()` without one
            (a seeded reset re-seeds it, as in gymnasium).
        max_steps: `truncated` becomes True at this many steps; stepping further is an error.
        tracks: keep a depth image from each render so `project_points()` is free.
        points_per_body: track points sampled on each tracked body (robot hand and finger
            pads, and the task's movable object bodies).
        render_mode: "rgb_array" (`render()` returns the current frame) or None.
        share_renderer_with: another env of the same task, size and camera whose renderer
            this one uses (it is freed when that env closes: close that one last).

    Observations are {"pixels": uint8 (size, size, 3) upright, "agent_pos": float32 (39,)
    Meta-World state}, actions float32 (4,) in [-1, 1] (clipped), rewards Meta-World's own.
    Success does not end an episode (the caller decides, see care.data.collect):
    `terminated` is always False, `info["is_success"]` says whether the task is solved now.

    The task variation (object and goal positions) is a function of the reset seed alone:
    Meta-World's own sampler draws it from a generator seeded with it, after the simulator
    state has been fully reset, so an episode does not depend on what ran before it.

    `render_on_step = False` makes the next steps skip the render (their frames are None, as is
    `render()`): for a caller that will not read those frames, e.g. an evaluation rollout between
    two chunk plans. Physics, state, reward and success do not depend on it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(METAWORLD_FPS)}

    def __init__(
        self,
        env_name: str,
        size: int = 128,
        camera: str = "corner",
        seed: int = 0,
        max_steps: int = 200,
        tracks: bool = False,
        points_per_body: int = 8,
        render_mode: str | None = "rgb_array",
        share_renderer_with: "MetaWorldEnv | None" = None,
    ):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML1_ARGS_KWARGS
        from metaworld.policies import ENV_POLICY_MAP

        from care.envs.camera import CameraView, apply_fast_render_settings

        if env_name not in ALL_V3_ENVIRONMENTS:
            resolve_tasks(env_name)  # raises with the list of valid names
            raise CareError(f"unknown Meta-World task: {env_name}")
        self._init_env(env_name, size, camera, seed, max_steps, tracks, render_mode, state_dim=39, action_dim=4)

        env = ALL_V3_ENVIRONMENTS[env_name]()  # no gymnasium renderer: we render ourselves
        # Multi-task (MT) setting: the goal is part of the observation; the experts read it.
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # cached for the old setting
        kwargs = {k: v for k, v in ML1_ARGS_KWARGS[env_name]["kwargs"].items() if k != "task_id"}
        env._set_task_inner(**kwargs)
        env._set_task_called = True
        # Variation drawn from env.np_random (seeded per reset), not frozen task vectors.
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = 1 << 30  # our own step limit; Meta-World's would raise
        self._env = env
        self.model, self.data = env.model, env.data
        apply_fast_render_settings(self.model)
        # Envs of the same task (a lockstep evaluation batch) may share one renderer: building
        # its OpenGL context and uploading the scene's meshes took ~0.6 s of the ~0.85 s an env
        # costs to make. Rendering reads poses from each env's own data; the shared model
        # supplies only the geometry, identical for one task (tests/envs/test_metaworld_env.py).
        other = share_renderer_with
        if other is not None:
            if (other.env_name, other.size, other.camera) != (env_name, self.size, camera):
                raise CareError(f"share_renderer_with: a {other.env_name} env at {other.size}px from {other.camera!r} "
                                f"cannot render {env_name} at {self.size}px from {camera!r}")
            self.view, self._owns_view = other.view, False
        else:
            self.view = CameraView(self.model, camera, self.size, rotate180=self._upside_down(camera))
            self._owns_view = True
        self._policy = ENV_POLICY_MAP[env_name]()
        self._check_fps(1.0 / float(env.dt), METAWORLD_FPS)
        self._init_points(ROBOT_TRACK_BODIES, points_per_body, seed=stable_seed(env_name, points_per_body))
        self._obs: np.ndarray | None = None
        self._init_episode()

    @property
    def _started(self) -> bool:
        return self._obs is not None

    # ------------------------------------------------------------------ bodies

    def _upside_down(self, camera: str) -> bool:
        """Meta-World's "corner" cameras have their image-up axis pointing down in the world,
        so MuJoCo renders them upside down: those get turned by 180 degrees."""
        cam = self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_CAMERA, camera)
        if cam < 0:
            return False  # CameraView reports the unknown camera
        self._mj.mj_forward(self.model, self.data)
        return bool(self.data.cam_xmat[cam].reshape(3, 3)[2, 1] < 0)  # world z of the camera's y axis

    def _object_bodies(self) -> list[int]:
        """Bodies of the task's objects that can move: outside the robot, with a joint on
        their path to the world (a free puck, a drawer on its slide, a door on its hinge)."""
        m = self.model
        robot_root = self._body_id("base")
        mocap = self._body_id("mocap")

        def ancestors(b: int):
            while b != 0:
                yield b
                b = m.body_parentid[b]

        out = []
        for b in range(1, m.nbody):
            chain = list(ancestors(b))
            if robot_root in chain or mocap in chain:
                continue
            if any(m.body_jntnum[a] > 0 for a in chain):
                out.append(b)
        return out

    # ------------------------------------------------------------------ episode

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode whose variation is a function of `seed` -> (observation, info).

        Without a seed, the episode seed is drawn from `np_random` (seeded by the constructor's
        `seed`, or by the last seeded reset), so unseeded resets are reproducible too;
        `info["seed"]` is the episode seed used.
        """
        super().reset(seed=seed)  # re-seeds np_random when a seed is given
        seed = int(self.np_random.integers(2**31)) if seed is None else int(seed)
        self._mj.mj_resetData(self.model, self.data)  # no warm-start or state carried over
        self._env.seed(seed)
        obs, _ = self._env.reset()
        # Meta-World moves goal sites in the model after its last kinematics pass: recompute,
        # or the first frame shows the previous episode's goal marker.
        self._mj.mj_forward(self.model, self.data)
        self._obs = np.asarray(obs, np.float64)
        self.episode_seed = seed
        self._info = {"is_success": False, "seed": seed}
        self.t = 0
        self._render()
        return self._observation(), dict(self._info)

    def _simulate(self, action: np.ndarray) -> float:
        """One Meta-World step of a clipped (4,) action; the reward is Meta-World's, the info holds
        its step info ("success", "near_object", ...) and `is_success` (SimEnv.step)."""
        obs, reward, _term, _trunc, info = self._env.step(action)
        self._obs = np.asarray(obs, np.float64)
        self._info = {**info, "is_success": bool(info.get("success", False))}
        return reward

    def _observation(self) -> dict:
        return {"pixels": self._image, "agent_pos": self.state}

    def expert_action(self) -> np.ndarray:
        """The scripted Meta-World policy's action for the current state, float32 (4,)."""
        self._require_started("expert_action")
        with warnings.catch_warnings():  # the experts warn that their gains exceed [-1, 1]
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(self._policy.get_action(self._obs), np.float32)

    def _render(self) -> None:
        self._image, self._depth = self.view.render(self.data, depth=self.tracks_enabled)

    @property
    def state(self) -> np.ndarray:
        """Meta-World's 39-d observation: hand xyz, gripper, objects, previous frame, goal."""
        return self._obs.astype(np.float32)

    @property
    def instructions(self) -> list[str]:
        return instructions_for(self.env_name)

    # ------------------------------------------------------------------ tracks

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (M, 3) -> pixel (x, y) (M, 2) and view depth (M,), image convention."""
        return self.view.project(self.data, points_world)
