"""One fixed MuJoCo camera: fast offscreen RGB (+ depth) rendering and the matching projection.

The image and the projection share one convention, so a point projected here lands on the
pixel where the renderer drew it:

    pixel coordinates (x right, y down), pixel centres at integers (OpenCV / CoTracker
    convention: a point at (x, y) is drawn at img[round(y), round(x)]);
    f = 0.5 * H / tan(fovy / 2); the camera looks along its -z axis, y up (MuJoCo/OpenGL);
    `rotate180` turns both the image and the coordinates by 180 degrees (Meta-World's
    "corner" camera renders upside down); `mirror_x` mirrors both left-right (LIBERO's public
    datasets store robosuite's bottom-up frame turned by 180 degrees: the upright view mirrored).

Depth comes from the same render pass as the RGB image (one `mjr_render`, one
`mjr_readPixels` for both buffers), so a visibility test costs almost nothing extra.
"""

from __future__ import annotations

import atexit
import os
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported anywhere: headless rendering

import numpy as np

from care.errors import CareError


def apply_fast_render_settings(model) -> None:
    """No shadows, no reflections, no multisampling: ~8x faster offscreen rendering (docs/DESIGN.md §8).

    Must run before the rendering context is created (`offsamples` sizes its framebuffer).
    """
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0
    model.vis.quality.offsamples = 0


_LIVE: "weakref.WeakSet[CameraView]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_all() -> None:
    """Free every context before mujoco.egl's own exit handler terminates the display (exit
    handlers run last-registered first; this one is registered after mujoco is imported), so
    an env left open does not print EGL errors at interpreter exit."""
    for view in list(_LIVE):
        try:
            view.close()
        except Exception:
            pass


def _gl_context(size: int):
    """An offscreen OpenGL context. `mujoco` picks its backend from MUJOCO_GL when it is first
    imported; if it was imported before care could default that to EGL and there is no
    display, GLFW cannot work: use EGL then."""
    import mujoco

    cls = mujoco.gl_context.GLContext
    if cls.__module__.startswith("mujoco.glfw") and not os.environ.get("DISPLAY"):
        from mujoco.egl import GLContext as cls
    return cls(size, size)


class CameraView:
    """Render and project through one fixed camera of a MuJoCo model.

    Args:
        model: the `mujoco.MjModel` (fast render settings are applied to it here).
        camera: camera name in the model.
        size: square image side in pixels.
        rotate180: turn images and projected coordinates by 180 degrees.
        mirror_x: mirror images and projected coordinates left-right (after `rotate180`).
        geom_groups: the geom groups drawn (None: MuJoCo's default, 0-2; robosuite models keep
            their collision geoms in group 0 and draw groups 1-2).
    """

    def __init__(self, model, camera: str, size: int, rotate180: bool = False, mirror_x: bool = False,
                 geom_groups: tuple[int, ...] | None = None):
        import mujoco

        self._mj = mujoco
        self.model = model
        self.size = int(size)
        self.rotate180 = bool(rotate180)
        self.mirror_x = bool(mirror_x)
        self.cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.cam_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise CareError(f"camera {camera!r} is not in the model; cameras: {', '.join(names)}")
        if self.size > min(model.vis.global_.offwidth, model.vis.global_.offheight):
            raise CareError(
                f"image size {self.size} exceeds the model's offscreen buffer "
                f"({model.vis.global_.offwidth}x{model.vis.global_.offheight})"
            )
        apply_fast_render_settings(model)
        self.fovy = float(model.cam_fovy[self.cam_id])
        self.focal = 0.5 * self.size / np.tan(np.deg2rad(self.fovy) / 2)  # pixels

        global _ATEXIT_REGISTERED
        self._gl = _gl_context(self.size)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_all)
            _ATEXIT_REGISTERED = True
        _LIVE.add(self)
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        self._opt = mujoco.MjvOption()
        if geom_groups is not None:
            self._opt.geomgroup[:] = [int(g in geom_groups) for g in range(len(self._opt.geomgroup))]
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = self.cam_id
        self._rect = mujoco.MjrRect(0, 0, self.size, self.size)
        self._rgb = np.empty((self.size, self.size, 3), np.uint8)
        self._zbuf = np.empty((self.size, self.size), np.float32)
        # OpenGL depth-buffer value -> distance along the view axis (as mujoco.Renderer does)
        extent = model.stat.extent
        znear, zfar = model.vis.map.znear * extent, model.vis.map.zfar * extent
        c = -(zfar + znear) / (zfar - znear)
        d = -(2 * zfar * znear) / (zfar - znear)
        self._c_coef, self._d_coef = -0.5 * c - 0.5, -0.5 * d

    # ------------------------------------------------------------------ rendering

    def render(self, data, depth: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """-> (rgb uint8 (H, W, 3), depth float32 (H, W) metres along the view axis, or None).

        Both come from one render pass and share the image orientation.
        """
        mj = self._mj
        if self._ctx is None:
            raise RuntimeError("CameraView.render called after close()")
        self._gl.make_current()
        mj.mjv_updateScene(self.model, data, self._opt, None, self._cam, mj.mjtCatBit.mjCAT_ALL, self._scene)
        mj.mjr_render(self._rect, self._scene, self._ctx)
        mj.mjr_readPixels(self._rgb, self._zbuf if depth else None, self._rect, self._ctx)
        # OpenGL rows run bottom-up: flipping rows makes the image upright for a normal camera;
        # a 180-degree turn on top of that is a flip of the columns alone; a mirror flips columns.
        rows = slice(None) if self.rotate180 else slice(None, None, -1)
        cols = slice(None, None, -1) if self.rotate180 != self.mirror_x else slice(None)
        flip = (rows, cols)
        rgb = np.ascontiguousarray(self._rgb[flip])
        if not depth:
            return rgb, None
        zbuf = self._zbuf[flip].astype(np.float64)
        lin = (self._d_coef / (zbuf + self._c_coef)).astype(np.float32)
        return rgb, np.ascontiguousarray(lin)

    # ------------------------------------------------------------------ projection

    def project(self, data, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) float32 and view depth (N,) float32.

        Depth is the distance along the viewing direction (-z of the camera); <= 0 is behind.
        """
        pos = data.cam_xpos[self.cam_id]
        rot = data.cam_xmat[self.cam_id].reshape(3, 3)  # columns: camera axes in world
        p = (np.asarray(points_world, np.float64) - pos) @ rot  # (N, 3) in camera frame
        depth = -p[:, 2]
        safe = np.where(depth > 1e-6, depth, 1e-6)
        u = self.focal * p[:, 0] / safe + 0.5 * self.size  # continuous, 0 at the left edge
        v = -self.focal * p[:, 1] / safe + 0.5 * self.size  # continuous, 0 at the top edge
        x, y = u - 0.5, v - 0.5  # pixel centres at integers
        if self.rotate180:
            x, y = (self.size - 1) - x, (self.size - 1) - y
        if self.mirror_x:
            x = (self.size - 1) - x
        return np.stack([x, y], axis=1).astype(np.float32), depth.astype(np.float32)

    def visibility(
        self, xy: np.ndarray, depth: np.ndarray, depth_image: np.ndarray, tol_px: float = 1.0, tol_m: float = 0.005
    ) -> np.ndarray:
        """A point is visible when it is in front of the camera, inside the image, and not
        farther than the rendered surface at its pixel.

        The tolerance is `tol_m` plus `tol_px` pixels' worth of depth at the point's distance
        (a sampled surface point and the surface seen at the pixel centre differ by the
        surface's slope across half a pixel).
        """
        n = self.size
        col = np.rint(xy[:, 0]).astype(np.int64)
        row = np.rint(xy[:, 1]).astype(np.int64)
        inside = (depth > 1e-6) & (col >= 0) & (col < n) & (row >= 0) & (row < n)
        vis = np.zeros(len(xy), bool)
        if inside.any():
            surface = depth_image[row[inside], col[inside]]
            d = depth[inside]
            vis[inside] = d <= surface + tol_m + tol_px * d / self.focal
        return vis

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self._gl.make_current()
            self._ctx.free()
            self._ctx = None
        if getattr(self, "_gl", None) is not None:
            self._gl.free()
            self._gl = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
