"""Points fixed on bodies: sampled once on the visible surfaces of a body's geoms, kept in
body-local coordinates, so they move with the body and give ground-truth point tracks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BodyPoints:
    """N points, each fixed on one body.

    body: int (N,) body id; local: float64 (N, 3) position in that body's frame.
    """

    body: np.ndarray
    local: np.ndarray

    def __len__(self) -> int:
        return len(self.body)

    def world(self, data) -> np.ndarray:
        """(N, 3) world positions for the current state of `data`."""
        rot = data.xmat[self.body].reshape(-1, 3, 3)
        return data.xpos[self.body] + np.einsum("nij,nj->ni", rot, self.local)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def visible_geoms(model, body: int, geom_groups: tuple[int, ...] | None = None) -> list[int]:
    """Geoms of `body` that the scene draws (`geom_groups`; None: MuJoCo's default, 0-2) and
    are not transparent."""
    import mujoco

    shown = np.asarray(mujoco.MjvOption().geomgroup)
    if geom_groups is not None:
        shown = np.array([int(g in geom_groups) for g in range(len(shown))])
    adr, num = model.body_geomadr[body], model.body_geomnum[body]
    out = []
    for g in range(adr, adr + num) if adr >= 0 else ():
        if shown[model.geom_group[g]] and model.geom_rgba[g, 3] > 0 and model.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE:
            if model.geom_matid[g] >= 0 and model.mat_rgba[model.geom_matid[g], 3] == 0:
                continue
            out.append(g)
    return out


def _mesh_triangles(model, mesh: int) -> np.ndarray:
    """(F, 3, 3) triangle vertices of a mesh, in the mesh (= geom) frame."""
    v0, nv = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    f0, nf = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    verts = model.mesh_vert[v0 : v0 + nv].astype(np.float64)
    faces = model.mesh_face[f0 : f0 + nf]
    return verts[faces]


def _sample_geom_surface(model, g: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on the surface of geom g, in the geom's frame."""
    import mujoco

    t, s = model.geom_type[g], model.geom_size[g]
    T = mujoco.mjtGeom
    if t == T.mjGEOM_MESH:
        tri = _mesh_triangles(model, model.geom_dataid[g])
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        idx = rng.choice(len(tri), size=n, p=area / area.sum())
        a, b = rng.random(n), rng.random(n)
        flip = a + b > 1  # fold the unit square onto the triangle: uniform barycentrics
        a[flip], b[flip] = 1 - a[flip], 1 - b[flip]
        t0 = tri[idx]
        return t0[:, 0] + a[:, None] * (t0[:, 1] - t0[:, 0]) + b[:, None] * (t0[:, 2] - t0[:, 0])
    if t == T.mjGEOM_BOX:
        # a face chosen by area, then a uniform point on it
        h = s[:3]
        areas = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)
        face = rng.choice(6, size=n, p=areas / areas.sum())
        p = rng.uniform(-1, 1, size=(n, 3)) * h
        axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
        p[np.arange(n), axis] = sign * h[axis]
        return p
    if t in (T.mjGEOM_SPHERE, T.mjGEOM_ELLIPSOID):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        radii = s[:3] if t == T.mjGEOM_ELLIPSOID else np.full(3, s[0])
        return d * radii
    if t in (T.mjGEOM_CAPSULE, T.mjGEOM_CYLINDER):
        r, hl = s[0], s[1]
        side = 2 * np.pi * r * 2 * hl
        ends = 4 * np.pi * r * r if t == T.mjGEOM_CAPSULE else 2 * np.pi * r * r
        on_side = rng.random(n) < side / (side + ends)
        ang = rng.uniform(0, 2 * np.pi, n)
        p = np.stack([r * np.cos(ang), r * np.sin(ang), rng.uniform(-hl, hl, n)], axis=1)
        k = ~on_side
        if k.any():
            top = np.where(rng.random(k.sum()) < 0.5, 1.0, -1.0)
            if t == T.mjGEOM_CAPSULE:  # hemispherical caps
                d = rng.normal(size=(k.sum(), 3))
                d /= np.linalg.norm(d, axis=1, keepdims=True)
                d[:, 2] = np.abs(d[:, 2]) * top
                p[k] = d * r + np.stack([np.zeros_like(top), np.zeros_like(top), top * hl], axis=1)
            else:  # flat discs
                rad = r * np.sqrt(rng.random(k.sum()))
                a = rng.uniform(0, 2 * np.pi, k.sum())
                p[k] = np.stack([rad * np.cos(a), rad * np.sin(a), top * hl], axis=1)
        return p
    raise ValueError(f"geom {g}: cannot sample points on geom type {t}")


def _geom_area(model, g: int) -> float:
    import mujoco

    t, s = model.geom_type[g], model.geom_size[g]
    T = mujoco.mjtGeom
    if t == T.mjGEOM_MESH:
        tri = _mesh_triangles(model, model.geom_dataid[g])
        return float(0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum())
    if t == T.mjGEOM_BOX:
        return float(8 * (s[0] * s[1] + s[1] * s[2] + s[0] * s[2]))
    if t == T.mjGEOM_SPHERE:
        return float(4 * np.pi * s[0] ** 2)
    if t == T.mjGEOM_ELLIPSOID:  # Knud Thomsen's approximation, plenty for a sampling weight
        a, b, c, p = s[0], s[1], s[2], 1.6075
        return float(4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p))
    if t == T.mjGEOM_CAPSULE:
        return float(4 * np.pi * s[0] * s[1] + 4 * np.pi * s[0] ** 2)
    if t == T.mjGEOM_CYLINDER:
        return float(4 * np.pi * s[0] * s[1] + 2 * np.pi * s[0] ** 2)
    return 0.0


def sample_body_points(model, bodies: list[int], points_per_body: int, seed: int = 0,
                       geom_groups: tuple[int, ...] | None = None) -> BodyPoints:
    """`points_per_body` points on the visible geoms of each body (area-weighted), body-local.

    Deterministic for (model, bodies, points_per_body, seed). Bodies without a visible geom
    (of `geom_groups`, as in `visible_geoms`) get no points.
    """
    rng = np.random.default_rng(seed)
    body_ids, local = [], []
    for b in bodies:
        geoms = [g for g in visible_geoms(model, b, geom_groups) if _geom_area(model, g) > 0]
        if not geoms:
            continue
        areas = np.array([_geom_area(model, g) for g in geoms])
        which = rng.choice(len(geoms), size=points_per_body, p=areas / areas.sum())
        for gi in range(len(geoms)):
            k = int((which == gi).sum())
            if k == 0:
                continue
            g = geoms[gi]
            p = _sample_geom_surface(model, g, k, rng)  # geom frame
            p = model.geom_pos[g] + p @ _quat_to_mat(model.geom_quat[g]).T  # body frame
            local.append(p)
            body_ids.append(np.full(k, b))
    if not local:
        return BodyPoints(np.zeros(0, np.int64), np.zeros((0, 3)))
    return BodyPoints(np.concatenate(body_ids).astype(np.int64), np.concatenate(local))
