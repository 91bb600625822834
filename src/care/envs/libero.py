"""LIBERO (the paper's benchmark) with care's conventions, through the `libero` Python API.

    tasks = resolve_tasks("libero_object", "")            # the suite's 10 task names
    env = LiberoEnv("libero_object", tasks[0], size=128, tracks=True)   # a gymnasium.Env
    obs, info = env.reset(seed=3)                         # a random placement drawn from seed 3
    obs, info = LiberoEnv(..., init_states="fixed").reset(seed=3)   # the suite's initial state 3
    obs["pixels"]       uint8 (H, W, 3), the public datasets' orientation (below)
    obs["agent_pos"]    float32 (8,): eef xyz, eef axis-angle (3), gripper finger qpos (2)
    obs, reward, terminated, truncated, info = env.step(env.expert_action())
    info["is_success"]  LIBERO's own goal check (the BDDL `:goal`), every step

The evaluation protocol of the published LIBERO numbers (OpenVLA's `run_libero_eval.py`, which
OpenVLA-OFT, UniVLA, openpi and LeRobot follow), and where each detail lives here:

    initial states   the suite's 50 fixed initial states per task (`init_states="fixed"`:
                     reset(seed=i) loads state i; `care eval` uses them)
    settling         10 steps of [0, 0, 0, 0, 0, 0, -1] after every reset, not counted
                     (`NUM_STEPS_WAIT`); objects in the initial states are not at rest
    step limit       220 / 280 / 300 / 520 / 400 policy steps for libero_spatial / _object /
                     _goal / _10 / _90 (`MAX_STEPS`; the LIBERO-PRO variants as their base suite)
    images           agent view (`camera="image"`) and wrist view (`"wrist_image"`) turned as
                     the public datasets store them: robosuite's raw frame `img[::-1, ::-1]`,
                     i.e. the upright camera view mirrored left-right
    actions          7-d in [-1, 1]: OSC_POSE deltas (x, y, z at 0.05 m, axis-angle at 0.5 rad
                     per unit) and the gripper, -1 open, +1 closed (the public datasets' sign)
    success          the environment's goal check; an episode ends at the first success
    instruction      the task's `language` (the LIBERO-PRO suites: the BDDL's own sentence,
                     which is where their changed language lives)

`care collect` records episodes from random placements (`init_states="random"`: the BDDL's
placement regions sampled with the episode seed), so the fixed initial states that `care eval`
uses are never trained on. Rendering is care's own (`care.envs.camera`: no shadows, reflections
or multisampling, one camera by default): the robosuite env is built without its renderer.

`libero` (the `libero` extra: `pip install -e ".[libero]"`) is imported when an env is built or
a suite is listed; the constants here work without it.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from care.envs.base import SimEnv, stable_seed  # (sets MUJOCO_GL before mujoco is imported)
from care.envs.configs import LIBERO_MAX_STEPS as MAX_STEPS  # the protocol's step limits
from care.envs.configs import LIBERO_PRO_KINDS as PRO_KINDS  # noqa: F401
from care.envs.configs import LIBERO_SUITES as SUITES  # noqa: F401
from care.envs.configs import check_libero_suite as check_suite
from care.envs.configs import libero_max_steps as suite_max_steps
from care.errors import CareError

__all__ = [
    "LIBERO_FPS",
    "MAX_STEPS",
    "NUM_STEPS_WAIT",
    "CAMERAS",
    "ACTION_NAMES",
    "STATE_NAMES",
    "LiberoEnv",
    "resolve_tasks",
    "suite_max_steps",
    "task_instruction",
]

LIBERO_FPS = 20.0  # robosuite control_freq of every LIBERO env
NUM_STEPS_WAIT = 10  # settling steps after a reset (OpenVLA's num_steps_wait)
DUMMY_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], np.float64)  # hold still, gripper open
# dataset camera key -> model camera (the public LeRobot conversions' names)
CAMERAS = {"image": "agentview", "wrist_image": "robot0_eye_in_hand"}
ACTION_NAMES = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_axis_angle_x", "eef_axis_angle_y", "eef_axis_angle_z",
               "gripper_qpos_left", "gripper_qpos_right"]
# robot bodies that carry track points: the hand and the two fingers
ROBOT_TRACK_BODIES = ("robot0_right_hand", "gripper0_leftfinger", "gripper0_rightfinger")
_ROBOT_PREFIXES = ("robot0_", "gripper0_", "mount0_")
GEOM_GROUPS = (1, 2)  # robosuite draws its visual geoms (group 1), not the collision ones (group 0)


def _require_libero():
    import sys
    import types

    # robosuite warns three lines per process when it finds no user macro file; its defaults are
    # what care wants, so an empty one stands in (robosuite star-imports it over its defaults)
    sys.modules.setdefault("robosuite.macros_private", types.ModuleType("robosuite.macros_private"))
    try:
        from libero.libero import benchmark  # noqa: F401
    except ImportError as e:
        raise CareError(f"--env.type=libero needs the `libero` extra: pip install -e \".[libero]\" ({e})") from None
    return benchmark


@functools.lru_cache(maxsize=None)
def _suite(suite: str):
    import contextlib
    import io

    benchmark = _require_libero()
    with contextlib.redirect_stdout(io.StringIO()):  # "[info] Applying task order index 0 ..." per suite
        return benchmark.get_benchmark_dict()[check_suite(suite)](task_order_index=0)


def resolve_tasks(suite: str, spec: str = "") -> list[str]:
    """Task names of `suite` that `spec` selects: "" (all, in the suite's order), or a
    comma-separated list of task names or indices ("0,3"). CareError names unknown ones."""
    names = [t.name for t in _suite(suite).tasks]
    spec = (spec or "").strip()
    if not spec or spec.lower() == suite:
        return names
    out, unknown = [], []
    for s in (s.strip() for s in spec.split(",") if s.strip()):
        name = names[int(s)] if s.isdigit() and int(s) < len(names) else s
        if name not in names:
            unknown.append(s)
        elif name not in out:
            out.append(name)
    if unknown:
        raise CareError(f"unknown {suite} task(s): {', '.join(unknown)}. Tasks (or their indices 0-{len(names) - 1}): "
                        + ", ".join(names))
    return out


def _bddl_language(path: str) -> str:
    with open(path) as f:
        m = re.search(r"\(:language\s+([^)]*)\)", f.read())
    if m is None:
        raise CareError(f"{path}: no (:language ...) in the BDDL file")
    return " ".join(m.group(1).split()).lower()


def task_instruction(suite: str, task: str) -> str:
    """The instruction of one task: `task.language` for the LIBERO suites (what OpenVLA and
    the public datasets use); the BDDL's sentence for the LIBERO-PRO variants, whose
    `task.language` is the base suite's (and names the wrong object in `_task`)."""
    s = _suite(suite)
    i = [t.name for t in s.tasks].index(task)
    if suite in MAX_STEPS:
        return s.get_task(i).language
    return _bddl_language(s.get_task_bddl_file_path(i))


def quat_xyzw_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """robosuite's quat2axisangle: (x, y, z, w) -> axis * angle, angle in [0, pi]."""
    q = np.asarray(q, np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if np.isclose(den, 0.0):
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(w) / den


class LiberoEnv(SimEnv):
    """One LIBERO task, rendered by care from one camera (two with `wrist`), as a `gymnasium.Env`.

    Args:
        suite: "libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90", or a
            LIBERO-PRO variant ("libero_object_swap", ..._lan, ..._object, ..._task).
        task: a task name of the suite (`resolve_tasks`).
        size: square image side in pixels.
        camera: "image" (agent view) or "wrist_image" (eye in hand): the public datasets' keys.
        seed: seeds the generator that draws the episode seed of a `reset()` without one.
        max_steps: policy steps per episode (None: the suite's protocol limit, `MAX_STEPS`).
        tracks: keep a depth image from each render so `project_points()` is free.
        points_per_body: track points sampled on each tracked body (hand, fingers, and every
            body that can move: objects, drawers, doors).
        init_states: "random" (reset(seed=s) samples the BDDL placement regions with s; for
            collecting) or "fixed" (reset(seed=i) loads the suite's i-th initial state; the
            protocol's evaluation episodes).
        wrist: also render the wrist camera, as obs["wrist_pixels"].
        num_steps_wait: settling steps after each reset (the protocol's 10).
        render_mode: "rgb_array" or None.

    Observations: {"pixels": uint8 (size, size, 3), "agent_pos": float32 (8,)} (+ "wrist_pixels").
    `terminated` is always False (success does not end an episode, as in MetaWorldEnv; the caller
    decides); `truncated` is True at `max_steps`; `info["is_success"]` is the goal check.
    Resets seed numpy's global generator (robosuite's placement samplers draw from it).
    `render_on_step = False` makes the next steps skip the render (their frames are None, as is
    `render()`): for a caller that will not read those frames, e.g. an evaluation rollout between
    two chunk plans. Physics, state, reward and success do not depend on it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(LIBERO_FPS)}

    def __init__(
        self,
        suite: str,
        task: str,
        size: int = 128,
        camera: str = "image",
        seed: int = 0,
        max_steps: int | None = None,
        tracks: bool = False,
        points_per_body: int = 8,
        init_states: str = "random",
        wrist: bool = False,
        num_steps_wait: int = NUM_STEPS_WAIT,
        render_mode: str | None = "rgb_array",
        share_renderer_with: "LiberoEnv | None" = None,
    ):
        if camera not in CAMERAS:
            raise CareError(f"LIBERO camera {camera!r}: use one of {', '.join(CAMERAS)} "
                            f"(the public datasets' keys for {', '.join(CAMERAS.values())})")
        if wrist and camera == "wrist_image":
            raise CareError("camera='wrist_image' with wrist=True would record the wrist view twice")
        if init_states not in ("random", "fixed"):
            raise CareError(f"init_states must be 'random' or 'fixed', got {init_states!r}")
        names = resolve_tasks(suite, task)
        if len(names) != 1:
            raise CareError(f"LiberoEnv runs one task, got {task!r}")
        self._init_env(names[0], size, camera, seed, max_steps if max_steps is not None else suite_max_steps(suite),
                       tracks, render_mode, state_dim=len(STATE_NAMES), action_dim=len(ACTION_NAMES), wrist=wrist)
        self.suite = suite
        self.init_states_mode = init_states
        self.wrist = bool(wrist)
        self.num_steps_wait = int(num_steps_wait)

        from libero.libero.envs.env_wrapper import ControlEnv

        s = _suite(suite)
        i = [t.name for t in s.tasks].index(self.env_name)
        self.instruction = task_instruction(suite, self.env_name)
        self._init_states = None if init_states == "random" else np.asarray(s.get_task_init_states(i))
        # robosuite without its renderer (care renders); soft resets (a reset keeps the model, so
        # the renderer stays valid) except where they would be wrong (below); the step limit is ours.
        # building the model places the fixtures, drawing from numpy's global generator: seeded,
        # so that the scene (and every fixed-initial-state episode in it) is the same in any process
        np.random.seed(stable_seed(suite, self.env_name, self.seed))
        self._env = ControlEnv(
            bddl_file_name=s.get_task_bddl_file_path(i), use_camera_obs=False, has_offscreen_renderer=False,
            hard_reset=False, ignore_done=True, camera_heights=self.size, camera_widths=self.size,
        )
        self._env.seed(self.seed)
        self._env.reset()
        # robosuite's reset leaves the gripper's integrated command as the last episode left it;
        # restored at every reset, so an episode does not depend on the ones before it
        self._gripper_rest = [np.array(r.gripper.current_action, copy=True) for r in self._env.robots]
        self.model, self.data = self._env.sim.model._model, self._env.sim.data._data
        # Fixtures (stove, cabinet, rack) are static bodies placed when the model is built, but a
        # soft reset re-samples their placement and puts the objects that stand on them relative
        # to that new, unused placement: a bowl "on the stove" landed 40 cm away. Random
        # placements in scenes with fixtures therefore rebuild the model, as LIBERO's default
        # hard reset does. The fixed initial states need no rebuild (they set every free body).
        self._hard_resets = init_states == "random" and bool(self._env.env.fixtures_dict)
        if self._hard_resets and share_renderer_with is not None:
            raise CareError(f"{self.env_name}: random placements rebuild the scene at every reset; "
                            "such an env cannot share a renderer")
        other = share_renderer_with
        if other is not None:
            if (other.suite, other.env_name, other.size, other.camera, other.wrist) != (
                    suite, self.env_name, self.size, camera, self.wrist):
                raise CareError(f"share_renderer_with: a {other.env_name} env at {other.size}px cannot render "
                                f"{self.env_name} at {self.size}px from {camera!r}")
            self.view, self.wrist_view, self._owns_view = other.view, other.wrist_view, False
        else:
            # the public datasets' image is robosuite's raw (bottom-up) frame turned by 180
            # degrees: the upright view mirrored left-right
            self._make_views()
            self._owns_view = True
        self._check_fps(self._env.env.control_freq, LIBERO_FPS)
        self._init_points(ROBOT_TRACK_BODIES, points_per_body, geom_groups=GEOM_GROUPS,
                          seed=stable_seed(suite, self.env_name, points_per_body))
        self._expert = None
        self._raw: dict | None = None
        self._wrist_image = None
        self._init_episode()

    def _make_views(self) -> None:
        """Renderers of this env's model. The public datasets' image is robosuite's raw
        (bottom-up) frame turned by 180 degrees: the upright view mirrored left-right."""
        from care.envs.camera import CameraView

        def view(cam):
            return CameraView(self.model, cam, self.size, mirror_x=True, geom_groups=GEOM_GROUPS)

        self.view = view(CAMERAS[self.camera])
        self.wrist_view = view(CAMERAS["wrist_image"]) if self.wrist else None

    def _close_views(self) -> None:
        self.view.close()
        if self.wrist_view is not None:
            self.wrist_view.close()

    @property
    def _started(self) -> bool:
        return self._raw is not None

    def _skip_render(self) -> None:
        self._image = self._depth = self._wrist_image = None

    # ------------------------------------------------------------------ bodies

    def _object_bodies(self) -> list[int]:
        """Bodies outside the robot with a joint on their path to the world: the free objects,
        and the drawers and doors of fixtures."""
        m, name = self.model, lambda b: self._mj.mj_id2name(self.model, self._mj.mjtObj.mjOBJ_BODY, b) or ""
        out = []
        for b in range(1, m.nbody):
            chain, a = [], b
            while a != 0:
                chain.append(a)
                a = m.body_parentid[a]
            if any(name(a).startswith(_ROBOT_PREFIXES) for a in chain):
                continue
            if any(m.body_jntnum[a] > 0 for a in chain):
                out.append(b)
        return out

    # ------------------------------------------------------------------ episode

    @property
    def num_init_states(self) -> int:
        """Fixed initial states of the task (0 with init_states="random")."""
        return 0 if self._init_states is None else len(self._init_states)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode -> (observation, info): a random placement drawn from `seed`, or
        (init_states="fixed") the suite's initial state number `seed`; then the settling steps."""
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(self.num_init_states or 2**31))
        seed = int(seed)
        if self._init_states is not None and not 0 <= seed < len(self._init_states):
            raise CareError(f"{self.suite}/{self.env_name} has {len(self._init_states)} initial states (0-"
                            f"{len(self._init_states) - 1}); episode seed {seed} is not one of them")
        np.random.seed(seed)  # robosuite's placement samplers draw from numpy's global generator
        self._env.env.hard_reset = self._hard_resets
        raw = self._env.reset()
        if self._env.sim.model._model is not self.model:  # rebuilt: new model, new renderers
            nbody = self.model.nbody
            self.model, self.data = self._env.sim.model._model, self._env.sim.data._data
            if self.model.nbody != nbody:  # the track points' body ids must stay valid
                raise CareError(f"{self.env_name}: the rebuilt scene has {self.model.nbody} bodies, not {nbody}")
            self._close_views()
            self._make_views()
        for robot, rest in zip(self._env.robots, self._gripper_rest):
            robot.gripper.current_action = rest.copy()
        if self._init_states is not None:
            raw = self._env.set_init_state(self._init_states[seed])
        for _ in range(self.num_steps_wait):
            raw, _r, _d, _i = self._env.step(DUMMY_ACTION)
        self._raw = raw
        self.episode_seed, self.t = seed, 0
        self._info = {"is_success": bool(self._env.check_success()), "seed": seed}
        self._expert = None
        self._render()
        return self._observation(), dict(self._info)

    def _simulate(self, action: np.ndarray) -> float:
        """One LIBERO step of a clipped (7,) action; the reward is LIBERO's sparse one (1 on success)."""
        if not np.isfinite(action).all():
            raise CareError(f"{self.env_name}: non-finite action {action.tolist()}")
        self._raw, reward, _done, _info = self._env.step(action)
        self._info = {"is_success": bool(self._env.check_success())}
        return reward

    def _render(self) -> None:
        self._image, self._depth = self.view.render(self.data, depth=self.tracks_enabled)
        if self.wrist_view is not None:
            self._wrist_image, _ = self.wrist_view.render(self.data)

    def _observation(self) -> dict:
        obs = {"pixels": self._image, "agent_pos": self.state}
        if self.wrist:
            obs["wrist_pixels"] = self._wrist_image
        return obs

    @property
    def state(self) -> np.ndarray:
        """float32 (8,): eef position, eef orientation as axis-angle, the two finger joints
        (the public LIBERO datasets' `observation.state`)."""
        r = self._raw
        return np.concatenate([r["robot0_eef_pos"], quat_xyzw_to_axis_angle(r["robot0_eef_quat"]),
                               r["robot0_gripper_qpos"]]).astype(np.float32)

    @property
    def instructions(self) -> list[str]:
        return [self.instruction]

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action (care.envs.libero_expert), float32 (7,); CareError for
        a goal it cannot do. Its per-episode variation is drawn from the episode seed."""
        self._require_started("expert_action")
        if self._expert is None:
            from care.envs.libero_expert import LiberoExpert

            rng = np.random.default_rng([self.episode_seed, stable_seed(self.suite, self.env_name)])
            self._expert = LiberoExpert(self._env, rng=rng)
            self._expert.reset()
        return np.asarray(self._expert(self._raw), np.float32)
