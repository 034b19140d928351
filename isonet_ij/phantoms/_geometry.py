"""Geometry of the phantoms: random points, rotations, ellipsoids and Voronoi cells.

Axes are ``(z, y, x)`` in voxels of the isotropic grid.
"""

from __future__ import annotations

import numpy as np


def make_rng(seed) -> np.random.Generator:
    """``np.random.default_rng`` that also passes a Generator through unchanged."""
    return np.random.default_rng(seed)


def check_shape(shape, *, name: str = "shape", minimum: int = 4) -> tuple[int, int, int]:
    """``(z, y, x)`` sizes from 3 sizes or one (a cube), each at least ``minimum`` voxels."""
    shp = tuple(int(s) for s in np.atleast_1d(shape))
    if len(shp) == 1:
        shp = shp * 3
    if len(shp) != 3 or min(shp) < minimum:
        msg = f"`{name}` must be 3 sizes (z, y, x) of at least {minimum} voxels, got {shape!r}"
        raise ValueError(msg)
    return shp


def spaced_points(shape, n: int, d_min: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points in the volume, pairwise at least ``d_min`` apart.

    Random sequential addition (dart throwing); if the volume is too crowded ``d_min``
    shrinks by 5 % until all ``n`` points are placed. Returns (n, 3) float64 (z, y, x).
    """
    extent = np.asarray(shape, dtype=float)
    pts = np.empty((n, 3))
    k = 0
    tries_left = 60 * n + 200
    d2 = d_min**2
    while k < n:
        cand = rng.random((256, 3)) * extent - 0.5  # voxel centres span [-0.5, s - 0.5)
        for c in cand:
            if k == 0 or np.min(np.sum((pts[:k] - c) ** 2, axis=1)) >= d2:
                pts[k] = c
                k += 1
                if k == n:
                    break
            tries_left -= 1
            if tries_left <= 0:
                d2 *= 0.95**2
                tries_left = 60 * n + 200
    return pts


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) Haar-random rotation matrices (columns: principal axes in z, y, x)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1
    return q


def fit_ellipsoids(centres, semi_axes, rotations, *, slack: float = 0.0, margin: float = 0.0):
    """Shrink ellipsoids so that each stays on its side of every bisector plane.

    For every pair ``(i, j)`` the support function of ellipsoid ``i`` in the direction of
    ``j`` must not exceed ``d_ij / 2 * (1 + slack) - margin``. With ``slack = 0`` the
    ellipsoids lie inside their Voronoi cells (never overlap); ``slack > 0`` lets
    neighbours touch and overlap slightly. Returns new (n, 3) semi-axes.
    """
    from scipy.spatial import cKDTree

    semi_axes = np.asarray(semi_axes, dtype=float)
    n = len(centres)
    if n < 2:
        return semi_axes
    reach = 2 * (semi_axes.max() + margin) / (1 + slack) + 1e-6
    pairs = cKDTree(centres).query_pairs(reach, output_type="ndarray")
    if len(pairs) == 0:
        return semi_axes
    i, j = pairs[:, 0], pairs[:, 1]
    d = centres[j] - centres[i]
    dist = np.linalg.norm(d, axis=1)
    u = d / dist[:, None]
    allowed = np.maximum(dist / 2 * (1 + slack) - margin, 1e-3)

    def support(idx):
        local = np.einsum("mkl,mk->ml", rotations[idx], u)  # R^T u
        return np.sqrt(np.sum((local * semi_axes[idx]) ** 2, axis=1))

    scale = np.ones(n)
    np.minimum.at(scale, i, allowed / support(i))
    np.minimum.at(scale, j, allowed / support(j))
    return semi_axes * np.minimum(scale, 1.0)[:, None]


def rasterize_ellipsoids(shape, centres, semi_axes, rotations):
    """Label image and normalised radius of ellipsoids (nearest in normalised radius wins).

    Returns ``labels`` (uint16, object ``k`` has label ``k + 1``) and ``rho``
    (float32, normalised radius ``sqrt(x^T M x)``, < 1 inside the labelled object, 1 in
    the background). Loops over objects, vectorised inside each bounding box.
    """
    labels = np.zeros(shape, dtype=np.uint16)
    rho2 = np.ones(shape, dtype=np.float32)
    shp = np.asarray(shape)
    for k, (c, a, rot) in enumerate(zip(centres, semi_axes, rotations)):
        m = (rot / a**2) @ rot.T  # R diag(1/a^2) R^T
        r = float(a.max())
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shp)
        if np.any(hi <= lo):
            continue
        dz = (np.arange(lo[0], hi[0]) - c[0])[:, None, None]
        dy = (np.arange(lo[1], hi[1]) - c[1])[None, :, None]
        dx = (np.arange(lo[2], hi[2]) - c[2])[None, None, :]
        q = (
            m[0, 0] * dz * dz
            + m[1, 1] * dy * dy
            + m[2, 2] * dx * dx
            + 2 * (m[0, 1] * dz * dy + m[0, 2] * dz * dx + m[1, 2] * dy * dx)
        ).astype(np.float32)
        box = tuple(slice(a_, b_) for a_, b_ in zip(lo, hi))
        sub_rho2 = rho2[box]
        sub_lab = labels[box]
        inside = q < sub_rho2
        sub_rho2[inside] = q[inside]
        sub_lab[inside] = k + 1
    return labels, np.sqrt(rho2)


def voronoi(shape, seeds, *, chunk_voxels: int = 1 << 20):
    """Nearest seed and distance to the nearest Voronoi face for every voxel.

    Queries a ``cKDTree`` for the two nearest seeds of every voxel (in z-slabs of about
    ``chunk_voxels``); the distance to the face is the distance to the bisector plane of
    the two, ``(d2^2 - d1^2) / (2 |s1 - s2|)``. Returns ``nearest`` (int32 seed index),
    ``face_dist`` (float32, voxels) and ``second`` (int32 second-nearest seed index).
    """
    from scipy.spatial import cKDTree

    nz, ny, nx = shape
    tree = cKDTree(seeds)
    nearest = np.empty(shape, dtype=np.int32)
    second = np.empty(shape, dtype=np.int32)
    face = np.empty(shape, dtype=np.float32)
    yy, xx = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    plane = np.stack([np.zeros(ny * nx), yy.ravel(), xx.ravel()], axis=1)
    step = max(1, chunk_voxels // (ny * nx))
    for z0 in range(0, nz, step):
        zs = np.arange(z0, min(z0 + step, nz), dtype=float)
        pts = np.tile(plane, (len(zs), 1))
        pts[:, 0] = np.repeat(zs, ny * nx)
        d, idx = tree.query(pts, k=2, workers=-1)
        sep = np.linalg.norm(seeds[idx[:, 0]] - seeds[idx[:, 1]], axis=1)
        fd = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * sep)
        sl = slice(z0, z0 + len(zs))
        nearest[sl] = idx[:, 0].reshape(len(zs), ny, nx)
        second[sl] = idx[:, 1].reshape(len(zs), ny, nx)
        face[sl] = fd.reshape(len(zs), ny, nx)
    return nearest, face, second
