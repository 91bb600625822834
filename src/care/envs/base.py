"""What care's simulator envs (MetaWorldEnv, LiberoEnv) share: one task, rendered by care's own
`CameraView`, ground-truth track points, and the gymnasium.Env surface.

A subclass builds, in its constructor, `self.model` / `self.data` (MuJoCo), `self.view` (a
CameraView), `self.points` (care.envs.points.BodyPoints), `self.env_name`, `self._owns_view`,
`self._env` (the wrapped simulator, closed with the env), `self._closed = False`; it sets
`self._image` / `self._depth` on every render and says by `_started` whether a reset happened.
"""

from __future__ import annotations

import zlib

import numpy as np

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
