"""What care's simulator envs (MetaWorldEnv, LiberoEnv) share: one task, rendered by care's own
`CameraView`, ground-truth track points, and the gymnasium.Env surface.

A subclass's constructor calls `_init_env` first (the checks, settings, spaces and seeding both
simulators share), builds `self.model` / `self.data` (MuJoCo), `self.view` (a CameraView),
`self._owns_view` and `self._env` (the wrapped simulator, closed with the env), then
`_init_points` (the track points on the robot and object bodies) and `_init_episode` (the
per-episode state). It sets `self._image` / `self._depth` on every render and says by
`_started` whether a reset happened.
"""

from __future__ import annotations

import os
import zlib

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede `import mujoco`

import numpy as np  # noqa: E402

try:  # a dependency of the `sim` extra; the task lists of the env modules work without it
    import gymnasium

    _GymEnv = gymnasium.Env
except ImportError:  # pragma: no cover - no env can be built without the extra anyway
    gymnasium = None
    _GymEnv = object

from care.errors import CareError


def stable_seed(*parts: object) -> int:
    """A seed from strings/ints that is the same in every process (unlike hash())."""
    return zlib.crc32("/".join(map(str, parts)).encode())


class SimEnv(_GymEnv):
    """The part of a care simulator env that does not depend on the simulator."""

    _image: np.ndarray | None
    _depth: np.ndarray | None

    # ------------------------------------------------------------------ construction

    def _init_env(self, env_name: str, size: int, camera: str, seed: int, max_steps: int, tracks: bool,
                  render_mode: str | None, state_dim: int, action_dim: int, wrist: bool = False) -> None:
        """What every care env checks and sets first: gymnasium present, a known render mode; its
        name, size, camera, seed, step limit, spaces (pixels, agent_pos, and wrist_pixels with
        `wrist`), and the generator that draws the episode seeds of unseeded resets (from `seed`)."""
        import mujoco

        if gymnasium is None:
            raise CareError(f"{type(self).__name__} needs gymnasium: install the `sim` extra")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise CareError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        from gymnasium import spaces
        from gymnasium.utils import seeding

        self._mj = mujoco
        self.env_name = env_name
        self.size, self.camera = int(size), camera
        self.seed = int(seed)
        self.max_steps = int(max_steps)
        self.tracks_enabled = bool(tracks)
        self.render_mode = render_mode
        self.render_on_step = True  # False: step() skips the render (the subclass's docstring)
        pixels = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        obs_space = {"pixels": pixels, "agent_pos": spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if wrist:
            obs_space["wrist_pixels"] = pixels
        self.observation_space = spaces.Dict(obs_space)
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self._np_random, self._np_random_seed = seeding.np_random(self.seed)

    def _init_points(self, body_names: list[str], points_per_body: int, seed: int, **kw) -> None:
        """The track points: `points_per_body` on the geoms of the named robot bodies and of the
        task's objects (`_object_bodies`), and the names of the bodies that got some (a body
        without a visible geom gets none)."""
        from care.envs.points import sample_body_points

        bodies = [self._body_id(n) for n in body_names] + self._object_bodies()
        self.points = sample_body_points(self.model, bodies, points_per_body, seed=seed, **kw)
        self.track_bodies = [self._mj.mj_id2name(self.model, self._mj.mjtObj.mjOBJ_BODY, b) or f"body{b}"
                             for b in dict.fromkeys(self.points.body.tolist())]

    def _init_episode(self) -> None:
        """No episode yet: no frame, no info, step 0 (reset() starts one)."""
        self._image = self._depth = None
        self._info: dict = {}
        self._closed = False
        self.episode_seed: int | None = None
        self.t = 0

    def _check_fps(self, fps: float, expected: float) -> None:
        self.fps = float(fps)
        if abs(self.fps - expected) > 1e-6:
            raise CareError(f"{self.env_name}: control rate {self.fps} Hz, expected {expected}")

    def _object_bodies(self) -> list[int]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @property
    def _started(self) -> bool:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.{what} called before reset()")

    def _body_id(self, name: str) -> int:
        import mujoco

        b = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if b < 0:
            raise CareError(f"{self.env_name}: body {name!r} not found in the model")
        return b

    def _close_views(self) -> None:
        self.view.close()

    def _skip_render(self) -> None:
        """A step whose frame nobody reads (`render_on_step = False`): no frame, no depth."""
        self._image = self._depth = None

    # ------------------------------------------------------------------ stepping

    def step(self, action) -> tuple[dict, float, bool, bool, dict]:
        """Apply an action in [-1, 1] (clipped) -> (observation, reward, terminated, truncated,
        info). `terminated` is always False (success does not end an episode; the caller
        decides); `truncated` is True at `max_steps`; `info["is_success"]` says whether the task
        is solved now (the subclass's `_simulate` sets the info and gives the reward)."""
        self._require_started("step")
        if self.t >= self.max_steps:
            raise RuntimeError(f"episode is over ({self.max_steps} steps); call reset()")
        a = np.clip(np.asarray(action, np.float64).reshape(self.action_space.shape), -1.0, 1.0)
        reward = self._simulate(a)
        self.t += 1
        if self.render_on_step:
            self._render()
        else:
            self._skip_render()
        return self._observation(), float(reward), False, self.t >= self.max_steps, dict(self._info)

    def _simulate(self, action: np.ndarray) -> float:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    # ------------------------------------------------------------------ frames

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 (H, W, 3) (render_mode "rgb_array"), a copy; None before the
        first reset, after a step that skipped its render, or with render_mode None."""
        if self.render_mode is None or self._image is None:
            return None
        return self._image.copy()

    @property
    def image(self) -> np.ndarray | None:
        """The latest rendered frame, uint8 (H, W, 3)."""
        return self._image

    @property
    def info(self) -> dict:
        """The info of the last reset or step."""
        return self._info

    # ------------------------------------------------------------------ tracks

    @property
    def num_points(self) -> int:
        return len(self.points)

    def project_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The track points now: pixel (x, y) float32 (N, 2) in the observation's orientation,
        and visible bool (N,).

        Visible = in front of the camera, inside the image, and not behind the surface the
        last render saw at that pixel (a depth test against the same camera's depth).
        """
        self._require_started("project_points")
        if self._depth is None:
            _, self._depth = self.view.render(self.data, depth=True)
        xy, depth = self.view.project(self.data, self.points.world(self.data))
        return xy, self.view.visibility(xy, depth, self._depth)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the renderer(s) and the simulator; closing twice is harmless."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if self._owns_view:  # a shared renderer is freed by the env that made it
            self._close_views()
        self._env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
