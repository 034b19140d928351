"""Synthetic volumes and the image-formation model (eq. 1 of Weigert et al. 2017).

Three phantom kinds mimic sec. 3.1 of the paper: textured nuclei (:func:`nuclei`), a
packed epithelium of bright membranes (:func:`membranes`) and both together
(:func:`nuclei_membranes`). :func:`forward_model` turns a fluorophore density ``f`` into
an anisotropic acquisition ``g = P[S_sigma(h * f)] + eta`` and :func:`synthesize` builds a
complete, documented test case (ground truth, isotropic ground truth, input, PSF,
labels, metadata).

Conventions
-----------
* Axes are ``(z, y, x)``; phantoms live on an isotropic grid of voxel size ``dx`` (um).
* Every random choice comes from one ``seed``: the same seed gives byte-identical arrays.
* Densities are float32 in ``[0, 1]`` (arbitrary fluorophore units); labels are uint16
  with 0 as background.
* Convolutions use half-sample symmetric ("reflect") padding (:func:`convolve`), so
  structures cut by the volume border do not fade into a dark rim and, for a
  point-symmetric PSF, the total intensity is exactly preserved.
* The axial slicing keeps every ``factor``-th slice starting at slice 0: slice ``i`` of
  the acquisition lies at slice ``i * factor`` of the isotropic grid.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "KINDS",
    "DEFAULTS",
    "NUCLEI_PER_512_CUBE",
    "MIN_SIZE",
    "target_nuclei_count",
    "smooth_noise",
    "nuclei",
    "membranes",
    "nuclei_membranes",
    "convolve",
    "forward_model",
    "synthesize",
]

#: Phantom kinds understood by :func:`synthesize` (also the ``isonet synth`` choices).
KINDS = ("nuclei", "membranes", "nuclei-membranes")

#: Nuclei in a 512^3 volume, as in sec. 3.1 of the paper ("about 1500 simulated nuclei").
NUCLEI_PER_512_CUBE = 1500
#: Default nuclei density of :func:`nuclei`, in nuclei per 10^6 voxels (about 11.2).
_NUCLEI_DENSITY = NUCLEI_PER_512_CUBE / 512**3 * 1e6

#: Smallest edge length (voxels) :func:`synthesize` accepts.
MIN_SIZE = 32

#: Defaults of :func:`synthesize` (and of ``isonet synth``). ``voxel_size`` is the lateral
#: (= isotropic grid) voxel size in um; ``photons`` the expected photon count at the
#: brightest voxel of the blurred signal; ``read_noise`` the sd of the Gaussian detector
#: noise in counts; ``background`` a uniform background in photons per voxel. Per kind,
#: the paper's pairing (Table 1): a ``--psf`` spec (:func:`isonet_ij.psf.parse_psf_spec`;
#: optical PSFs take water immersion n = 1.33, excitation 488 nm and emission 520 nm from
#: :data:`isonet_ij.psf.PAPER_DEFAULTS`) and the axial subsampling factor.
DEFAULTS = {
    "voxel_size": 0.1,
    "photons": 200.0,
    "read_noise": 3.0,
    "background": 5.0,
    "kinds": {
        "nuclei": {"psf": "gaussian:2,8", "factor": 8},
        "membranes": {"psf": "confocal:na=1.1", "factor": 4},
        "nuclei-membranes": {"psf": "lightsheet:na_detect=0.8,na_illum=0.1", "factor": 6},
    },
}


# --------------------------------------------------------------------------- helpers


def _rng(seed) -> np.random.Generator:
    """``np.random.default_rng`` that also passes a Generator through unchanged."""
    return np.random.default_rng(seed)


def _check_shape(shape, *, name: str = "shape", minimum: int = 4) -> tuple[int, int, int]:
    shp = tuple(int(s) for s in np.atleast_1d(shape))
    if len(shp) == 1:
        shp = shp * 3
    if len(shp) != 3 or min(shp) < minimum:
        msg = f"`{name}` must be 3 sizes (z, y, x) of at least {minimum} voxels, got {shape!r}"
        raise ValueError(msg)
    return shp


def target_nuclei_count(shape, *, density=None) -> int:
    """Number of nuclei :func:`nuclei` places in a volume of ``shape``.

    ``round(density * prod(shape) / 1e6)`` with ``density`` in nuclei per 10^6 voxels
    (default: 1500 per 512^3, i.e. about 23 at 128^3 and 188 at 256^3), at least 1.
    """
    density = _NUCLEI_DENSITY if density is None else float(density)
    if not np.isfinite(density) or density <= 0:
        msg = f"`density` must be a positive number of nuclei per 10^6 voxels, got {density!r}"
        raise ValueError(msg)
    return max(1, int(round(density * math.prod(int(s) for s in shape) / 1e6)))


def _spaced_points(shape, n: int, d_min: float, rng: np.random.Generator) -> np.ndarray:
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


def _random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) Haar-random rotation matrices (columns: principal axes in z, y, x)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1
    return q


def _fit_ellipsoids(centres, semi_axes, rotations, *, slack: float = 0.0, margin: float = 0.0):
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


def _rasterize_ellipsoids(shape, centres, semi_axes, rotations):
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


def _voronoi(shape, seeds, *, chunk_voxels: int = 1 << 20):
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


# --------------------------------------------------------------------------- textures


def smooth_noise(shape, *, scale: float, seed=None, octaves: int = 3, persistence: float = 0.6):
    """Perlin-like fractal noise texture in ``[0, 1]``.

    The sum of ``octaves`` Gaussian-filtered white-noise fields with feature sizes
    ``scale, scale/2, scale/4, ...`` (amplitude ``persistence**k`` after normalising each
    octave to unit variance), computed in one Fourier filtering step (periodic
    boundaries), standardised and mapped through the normal CDF so that values are spread
    evenly over ``[0, 1]`` whatever the volume size.

    Parameters
    ----------
    shape : tuple of int, shape (3,)
        Output shape ``(z, y, x)`` (a 1D or 2D shape works too).
    scale : float
        Gaussian sigma of the coarsest octave, in voxels (> 0).
    seed : int, SeedSequence or Generator, optional
        Randomness; the same seed gives a byte-identical texture.
    octaves : int
        Number of octaves (>= 1).
    persistence : float
        Amplitude ratio between successive octaves.

    Returns
    -------
    texture : ndarray of float32, shape ``shape``
        Values in ``[0, 1]``, mean about 0.5.
    """
    from scipy import fft
    from scipy.special import ndtr

    shape = tuple(int(s) for s in shape)
    if not np.isfinite(scale) or scale <= 0:
        msg = f"`scale` must be a positive number of voxels, got {scale!r}"
        raise ValueError(msg)
    if int(octaves) < 1:
        msg = f"`octaves` must be >= 1, got {octaves!r}"
        raise ValueError(msg)
    rng = _rng(seed)
    white = rng.standard_normal(shape, dtype=np.float32)
    spec = fft.rfftn(white)
    freqs = [fft.fftfreq(s) for s in shape[:-1]] + [fft.rfftfreq(shape[-1])]
    full = [fft.fftfreq(s) for s in shape]
    transfer = np.zeros(spec.shape, dtype=np.float32)
    for k in range(int(octaves)):
        sigma = scale / 2**k
        gains = [np.exp(-2 * (np.pi * sigma * f) ** 2) for f in freqs]
        # sd of the filtered unit white noise: separable, from the full frequency grids
        norm = math.prod(
            float(np.sqrt(np.mean(np.exp(-4 * (np.pi * sigma * f) ** 2)))) for f in full
        )
        term = np.float32(persistence**k / norm)
        for ax, gain in enumerate(gains):
            view = [1] * len(shape)
            view[ax] = -1
            term = term * gain.reshape(view).astype(np.float32)
        transfer += term
    field = fft.irfftn(spec * transfer, s=shape)
    field -= field.mean()
    sd = float(field.std())
    if sd > 0:
        field /= sd
    return ndtr(field).astype(np.float32)


# --------------------------------------------------------------------------- phantoms


def _nuclei_shapes(n, spacing, rng, *, radius_range, aspect):
    """Random semi-axes (n, 3) in voxels and rotations (n, 3, 3)."""
    radius = rng.uniform(*radius_range, size=n) * spacing
    stretch = rng.uniform(1 - aspect, 1 + aspect, size=(n, 3))
    stretch /= np.cbrt(np.prod(stretch, axis=1))[:, None]  # keep the volume of the sphere
    return radius[:, None] * stretch, _random_rotations(n, rng)


def _nuclei_density(labels, rho, tex, brightness):
    """Textured density inside ``labels`` (> 0 exactly there); float32 in (0, 1]."""
    edge = 0.55 + 0.45 * np.clip((1.0 - rho) / 0.15, 0.0, 1.0)
    b = np.concatenate([[0.0], brightness]).astype(np.float32)[labels]
    f = b * (0.3 + 0.7 * tex) * edge
    f[labels == 0] = 0
    return f.astype(np.float32)


def nuclei(shape, *, seed=None, density=None):
    """Densely packed, textured ellipsoidal nuclei with instance labels.

    Centres are placed by random sequential addition (pairwise at least 0.85 mean
    spacings apart, mean spacing ``(1e6 / density) ** (1/3)``, 44.7 voxels by default),
    each nucleus gets a random orientation, a radius of 0.36-0.48 mean spacings and axes
    stretched by up to +-25 % (equivalent diameters about 33-41 voxels by default, median
    about 37). Each nucleus is then shrunk until it reaches at most 6 % past the plane
    half way to any neighbour, so nuclei never overlap much but some touch along a small
    flat contact (which a distance-transform watershed can split). Overlapping voxels go
    to the nucleus in whose normalised radius they are closest to the centre.

    Parameters
    ----------
    shape : int or tuple of int, shape (3,)
        Volume shape ``(z, y, x)`` in voxels.
    seed : int, SeedSequence or Generator, optional
        Randomness; the same seed gives byte-identical outputs.
    density : float, optional
        Nuclei per 10^6 voxels; default 1500 per 512^3 (about 11.2), i.e. 23 nuclei at
        128^3, 188 at 256^3. See :func:`target_nuclei_count`.

    Returns
    -------
    f : ndarray of float32, shape ``shape``
        Fluorophore density in ``[0, 1]``: per-nucleus brightness 0.75-1 times a fractal
        texture (30-100 %) times a slight edge fall-off; exactly 0 outside the nuclei.
    labels : ndarray of uint16, shape ``shape``
        Instance labels 1..n (0 background); ``labels > 0`` exactly where ``f > 0``.
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    n = target_nuclei_count(shape, density=density)
    dens = _NUCLEI_DENSITY if density is None else float(density)
    spacing = (1e6 / dens) ** (1 / 3)  # mean centre spacing in voxels
    if n > np.iinfo(np.uint16).max:
        msg = f"{n} nuclei do not fit uint16 labels; use a smaller `shape` or `density`"
        raise ValueError(msg)
    centres = _spaced_points(shape, n, 0.85 * spacing, rng)
    axes, rot = _nuclei_shapes(n, spacing, rng, radius_range=(0.36, 0.48), aspect=0.25)
    axes = _fit_ellipsoids(centres, axes, rot, slack=0.06)
    brightness = rng.uniform(0.75, 1.0, size=n)
    tex = smooth_noise(shape, scale=4.0, octaves=3, seed=rng.spawn(1)[0])
    labels, rho = _rasterize_ellipsoids(shape, centres, axes, rot)
    return _nuclei_density(labels, rho, tex, brightness), labels


def _membrane_density(shape, seeds, rng, *, sigma: float = 0.55):
    """Membrane density on the Voronoi faces of ``seeds`` and the cell ids (int32)."""
    nearest, face, second = _voronoi(shape, seeds)
    # one brightness per cell; a face is as bright as the mean of its two cells
    cell_b = rng.uniform(0.6, 1.0, size=len(seeds)).astype(np.float32)
    tex = smooth_noise(shape, scale=3.0, octaves=3, seed=rng.spawn(1)[0])
    profile = np.exp(-0.5 * (face / np.float32(sigma)) ** 2)
    profile[face > 3 * sigma] = 0
    f = 0.5 * (cell_b[nearest] + cell_b[second]) * (0.35 + 0.65 * tex) * profile
    return f.astype(np.float32), nearest


def membranes(shape, *, seed=None, cell_size: float = 24.0):
    """Packed epithelial cells with bright, textured membranes (3D Voronoi tessellation).

    Cell centres are placed by random sequential addition (pairwise at least
    ``0.8 * cell_size`` apart, about ``prod(shape) / cell_size**3`` cells); the membrane is
    a Gaussian profile (sd 0.55 voxel, FWHM about 1.3 voxels, cut at 3 sd) of the
    distance to the bisector plane between each voxel's nearest and second-nearest
    centres, modulated by a fractal texture and by a per-cell brightness.

    Parameters
    ----------
    shape : int or tuple of int, shape (3,)
        Volume shape ``(z, y, x)`` in voxels.
    seed : int, SeedSequence or Generator, optional
        Randomness; the same seed gives byte-identical outputs.
    cell_size : float
        Mean cell spacing in voxels.

    Returns
    -------
    f : ndarray of float32, shape ``shape``
        Membrane density in ``[0, 1]`` (0 inside the cells, away from the membranes).
    labels : ndarray of uint16, shape ``shape``
        Voronoi cell ids 1..n for every voxel (membrane voxels belong to the nearest
        centre); no background.
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    n = max(2, int(round(math.prod(shape) / cell_size**3)))
    seeds = _spaced_points(shape, n, 0.8 * cell_size, rng)
    f, nearest = _membrane_density(shape, seeds, rng)
    return f, (nearest + 1).astype(np.uint16)


def nuclei_membranes(shape, *, seed=None, cell_size: float = 36.0):
    """Epithelial cells with membranes and one textured nucleus inside each cell.

    The cells are the Voronoi tessellation of randomly spaced centres (as in
    :func:`membranes`, mean spacing ``cell_size``, pairwise at least ``0.85 * cell_size``
    apart); each cell holds one randomly oriented ellipsoidal nucleus (radius 0.30-0.42
    ``cell_size``, axes stretched by up to +-20 %) centred on the cell centre and
    shrunk until it keeps at least 2 voxels from every membrane plane, so nuclei never
    cross membranes nor touch each other.

    Parameters
    ----------
    shape : int or tuple of int, shape (3,)
        Volume shape ``(z, y, x)`` in voxels.
    seed : int, SeedSequence or Generator, optional
        Randomness; the same seed gives byte-identical outputs.
    cell_size : float
        Mean cell spacing in voxels.

    Returns
    -------
    f : ndarray of float32, shape ``shape``
        Density in ``[0, 1]``: membranes (peak 0.6-1) and nuclei (0.4-0.6 times texture;
        dimmer, as bulky nuclei outshine thin membranes once blurred).
    labels : ndarray of uint16, shape ``shape``
        Nuclei instance labels 1..n (0 elsewhere, membranes included).
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    n = max(2, int(round(math.prod(shape) / cell_size**3)))
    if n > np.iinfo(np.uint16).max:
        msg = f"{n} cells do not fit uint16 labels; use a smaller `shape`"
        raise ValueError(msg)
    seeds = _spaced_points(shape, n, 0.85 * cell_size, rng)
    mem, _ = _membrane_density(shape, seeds, rng)
    axes, rot = _nuclei_shapes(n, cell_size, rng, radius_range=(0.30, 0.42), aspect=0.2)
    axes = _fit_ellipsoids(seeds, axes, rot, margin=2.0)
    brightness = rng.uniform(0.4, 0.6, size=n)
    tex = smooth_noise(shape, scale=3.0, octaves=3, seed=rng.spawn(1)[0])
    labels, rho = _rasterize_ellipsoids(shape, seeds, axes, rot)
    f = np.maximum(mem, _nuclei_density(labels, rho, tex, brightness))
    return f.astype(np.float32), labels


_PHANTOMS = {"nuclei": nuclei, "membranes": membranes, "nuclei-membranes": nuclei_membranes}


# --------------------------------------------------------------------------- image formation


def convolve(f, h):
    """3D convolution ``h * f`` of the same shape as ``f``, with reflect padding.

    ``f`` is padded by half the PSF size on each side with half-sample symmetric
    reflection (``np.pad(mode="symmetric")``, ``scipy.ndimage`` ``mode="reflect"``) and
    convolved by FFT (``scipy.signal.fftconvolve``, ``mode="valid"``). For a
    point-symmetric ``h`` with sum 1 the total intensity of ``f`` is preserved exactly.

    Parameters
    ----------
    f : (Z, Y, X) ndarray
        Volume.
    h : (a, b, c) ndarray
        Kernel with odd sizes, centred on its middle voxel.

    Returns
    -------
    ndarray of float32, shape (Z, Y, X)
    """
    from scipy.signal import fftconvolve

    f = np.asarray(f, dtype=np.float32)
    h = np.asarray(h, dtype=np.float32)
    if f.ndim != 3 or h.ndim != 3:
        msg = f"`f` and `h` must be 3D (z, y, x), got shapes {f.shape} and {h.shape}"
        raise ValueError(msg)
    if any(s % 2 == 0 for s in h.shape):
        msg = f"`h` must have odd sizes (centred PSF), got shape {h.shape}"
        raise ValueError(msg)
    pads = [(s // 2, s // 2) for s in h.shape]
    padded = np.pad(f, pads, mode="symmetric")
    return fftconvolve(padded, h, mode="valid").astype(np.float32)


def forward_model(
    f,
    h,
    *,
    factor: int,
    photons: float | None = None,
    read_noise: float = 0.0,
    background: float = 0.0,
    seed=None,
):
    """Anisotropic acquisition ``g = P[S_sigma(h * f)] + eta`` (eq. 1 of the paper).

    1. blur: ``b = h * f`` (:func:`convolve`, reflect padding, same shape as ``f``);
    2. slice: keep every ``factor``-th z slice from slice 0, ``s = b[::factor]``: slice
       ``i`` of ``g`` lies at slice ``i * factor`` of ``f``;
    3. Poisson noise: ``P(photons / max(b) * s + background)``, i.e. the brightest voxel of
       the blurred signal has an expected ``photons`` counts on top of the background;
    4. detector noise: add Gaussian noise of sd ``read_noise`` counts (not clipped, so
       ``g`` may be slightly negative).

    Parameters
    ----------
    f : (Z, Y, X) ndarray
        Fluorophore density on the isotropic grid.
    h : (a, b, c) ndarray
        PSF on the same grid (odd sizes, centred, sum 1).
    factor : int
        Axial subsampling factor (integer >= 1).
    photons : float or None
        Expected peak photon count. ``None``: no Poisson noise and no scaling (``g`` in
        the units of ``f``; ``background`` and ``read_noise`` then also in those units).
    read_noise : float
        Sd of the additive Gaussian detector noise, in counts (0: none).
    background : float
        Uniform background added before the Poisson noise, in photons per voxel.
    seed : int, SeedSequence or Generator, optional
        Randomness of the noise.

    Returns
    -------
    g : ndarray of float32, shape ``(ceil(Z / factor), Y, X)``
        In photon counts (or in the units of ``f`` when ``photons`` is None).
    """
    factor = _check_factor(factor)
    if photons is not None and (not np.isfinite(photons) or photons <= 0):
        msg = f"`photons` must be a positive photon count (or None for no noise), got {photons!r}"
        raise ValueError(msg)
    if not np.isfinite(read_noise) or read_noise < 0:
        msg = f"`read_noise` must be a non-negative sd in counts, got {read_noise!r}"
        raise ValueError(msg)
    if not np.isfinite(background) or background < 0:
        msg = f"`background` must be a non-negative photon count, got {background!r}"
        raise ValueError(msg)
    g, _ = _acquire(
        convolve(f, h), factor=factor, photons=photons, read_noise=float(read_noise),
        background=float(background), rng=_rng(seed),
    )
    return g


def _check_factor(factor) -> int:
    try:
        ok = float(factor) == int(factor) and int(factor) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        msg = f"`factor` must be an integer >= 1 (axial subsampling), got {factor!r}"
        raise ValueError(msg)
    return int(factor)


# --------------------------------------------------------------------------- synthesis


def _versions() -> dict:
    import platform

    import scipy
    import tifffile

    from . import __version__

    return {
        "isonet_ij": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "tifffile": tifffile.__version__,
    }


def _acquire(blurred, *, factor, photons, read_noise, background, rng):
    """Steps 2-4 of :func:`forward_model` on an already blurred volume.

    Returns ``(g, photon_scale)`` with ``photon_scale`` the counts per unit of ``blurred``
    (1.0 when ``photons`` is None).
    """
    g = blurred[::factor].astype(np.float64)
    scale = 1.0
    if photons is not None:
        peak = float(blurred.max())
        scale = photons / peak if peak > 0 else 1.0
        g = rng.poisson(np.clip(g * scale + background, 0, None)).astype(np.float64)
    else:
        g = g + background
    if read_noise > 0:
        g = g + rng.normal(0.0, read_noise, size=g.shape)
    return g.astype(np.float32), scale


def _resolve_psf(psf, kind: str, dx: float):
    """``(h, info)`` from ``None`` (the paper's PSF for ``kind``), a spec or an array."""
    from . import psf as psf_mod

    if psf is None:
        psf = DEFAULTS["kinds"][kind]["psf"]
    if isinstance(psf, str):
        return psf_mod.parse_psf_spec(psf, voxel_size=(dx, dx, dx))
    h = np.asarray(psf, dtype=np.float32)
    if h.ndim != 3 or any(s % 2 == 0 for s in h.shape) or not np.isclose(h.sum(), 1, rtol=1e-3):
        msg = (
            f"`psf` array must be 3D (z, y, x) with odd sizes and sum 1, got shape {h.shape} "
            f"and sum {float(h.sum()):.4g}"
        )
        raise ValueError(msg)
    return h, {"kind": "array", "shape": list(h.shape)}


def _check_positive(value, name: str, unit: str, *, allow_zero=False, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        msg = f"`{name}` must be a {what} number ({unit}), got {value!r}"
        raise ValueError(msg)
    return v


def synthesize(
    kind: str,
    *,
    size: int = 128,
    psf=None,
    factor: int | None = None,
    seed: int = 0,
    photons: float | None = DEFAULTS["photons"],
    read_noise: float = DEFAULTS["read_noise"],
    background: float = DEFAULTS["background"],
    voxel_size: float = DEFAULTS["voxel_size"],
    progress: bool = False,
) -> dict:
    """A complete synthetic test case: phantom, PSF, isotropic GT and anisotropic input.

    The paper's pairings (sec. 3.1, Table 1) are the defaults: ``"nuclei"`` with a
    Gaussian PSF (sigma_xy / sigma_z = 2 / 8 voxels) and factor 8; ``"membranes"`` with
    a confocal PSF (NA 1.1) and factor 4; ``"nuclei-membranes"`` with a light-sheet PSF
    (NA_detect 0.8, NA_illum 0.1) and factor 6. Optical PSFs use water immersion
    (n = 1.33), excitation 488 nm and emission 520 nm (see :data:`DEFAULTS`).

    Parameters
    ----------
    kind : {"nuclei", "membranes", "nuclei-membranes"}
        Phantom kind.
    size : int
        Edge length of the cubic isotropic volume in voxels (>= 32).
    psf : str, (a, b, c) ndarray or None
        ``None``: the paper's PSF for ``kind``; a string: a ``--psf`` spec for
        :func:`isonet_ij.psf.parse_psf_spec` (sigmas in voxels of the isotropic grid,
        wavelengths nm); an array: the PSF itself (odd sizes, sum 1).
    factor : int, optional
        Axial subsampling factor (integer >= 1); default per kind (8, 4, 6).
    seed : int
        Seed of every random choice (phantom and noise); same seed, same bytes.
    photons : float or None
        Expected photon count at the brightest voxel of the blurred signal; ``None``
        turns Poisson noise off (``input`` then in the units of ``gt``).
    read_noise : float
        Sd of the Gaussian detector noise in counts (0: none).
    background : float
        Uniform background in photons per voxel, added before the Poisson noise.
    voxel_size : float
        Lateral voxel size ``dx = dy`` in um, also the voxel size of the isotropic grid.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        ``gt`` : (size, size, size) float32, fluorophore density in [0, 1];
        ``gt_iso`` : (size, size, size) float32, ``gt`` convolved with ``h_iso``
        (:func:`isonet_ij.psf.isotropic_psf`), same units as ``gt``;
        ``input`` : (ceil(size / factor), size, size) float32, photon counts, slice ``i``
        at ``gt`` slice ``i * factor``;
        ``psf`` : (a, b, c) float32, sum 1, on the isotropic grid;
        ``psf_iso`` : same shape, ``h_iso``;
        ``labels`` : (size, size, size) uint16 nuclei instance labels, or ``None`` for
        ``"membranes"``;
        ``voxel_size`` : ``(dx, dx, dx)`` um of ``gt``; ``input_voxel_size`` :
        ``(factor * dx, dx, dx)`` um;
        ``meta`` : dict of every parameter, units and versions (JSON-serialisable).
    """
    from tqdm import tqdm

    from . import psf as psf_mod

    if kind not in KINDS:
        msg = f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}"
        raise ValueError(msg)
    try:
        size_ok = int(size) == float(size) and int(size) >= MIN_SIZE
    except (TypeError, ValueError, OverflowError):
        size_ok = False
    if not size_ok:
        msg = f"`size` must be an integer >= {MIN_SIZE} voxels, got {size!r}"
        raise ValueError(msg)
    size = int(size)
    factor = _check_factor(DEFAULTS["kinds"][kind]["factor"] if factor is None else factor)
    n_in = -(-size // factor)
    if n_in < 2:
        msg = (
            f"`factor` {factor} leaves {n_in} input slice of a {size}-voxel volume; use a "
            f"factor below {size} or a larger `size`"
        )
        raise ValueError(msg)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        msg = f"`seed` must be a non-negative integer, got {seed!r}"
        raise ValueError(msg)
    photons = _check_positive(photons, "photons", "expected peak photon count", allow_none=True)
    read_noise = _check_positive(read_noise, "read_noise", "sd in counts", allow_zero=True)
    background = _check_positive(background, "background", "photons per voxel", allow_zero=True)
    dx = _check_positive(voxel_size, "voxel_size", "lateral voxel size in um")

    shape = (size, size, size)
    phantom_ss, noise_ss = np.random.SeedSequence(int(seed)).spawn(2)
    # the PSF first: a bad spec fails before any long computation
    h, psf_info = _resolve_psf(psf, kind, dx)
    h = np.asarray(h, dtype=np.float32)
    h_iso = np.asarray(psf_mod.isotropic_psf(h), dtype=np.float32)
    with tqdm(total=3, desc=f"synth {kind}", disable=not progress, leave=False) as bar:
        bar.set_postfix_str("phantom")
        gt, labels = _PHANTOMS[kind](shape, seed=np.random.default_rng(phantom_ss))
        if kind == "membranes":
            labels = None
        bar.update()
        bar.set_postfix_str("gt_iso")
        gt_iso = convolve(gt, h_iso)
        bar.update()
        bar.set_postfix_str("input")
        blurred = convolve(gt, h)
        g, photon_scale = _acquire(
            blurred, factor=factor, photons=photons, read_noise=read_noise,
            background=background, rng=np.random.default_rng(noise_ss),
        )
        del blurred
        bar.update()

    meta = {
        "kind": kind,
        "size": size,
        "seed": int(seed),
        "factor": factor,
        "shape_gt": list(shape),
        "shape_input": list(g.shape),
        "voxel_size_um": [dx, dx, dx],
        "input_voxel_size_um": [factor * dx, dx, dx],
        "z_grid": "slice i of input lies at gt slice i*factor (slice 0 at slice 0)",
        "psf": psf_info,
        "psf_shape": list(h.shape),
        "psf_iso": "isonet_ij.psf.isotropic_psf(psf)",
        "photons": photons,
        "photon_scale": photon_scale,
        "read_noise": read_noise,
        "background": background,
        "convolution": "FFT, half-sample symmetric (reflect) padding, same shape",
        "noise": (
            "input = Poisson(photon_scale * (psf * gt)[::factor] + background) "
            "+ Normal(0, read_noise); not clipped"
            if photons is not None
            else "input = (psf * gt)[::factor] + background + Normal(0, read_noise)"
        ),
        "units": {
            "gt": "fluorophore density, arbitrary units in [0, 1]",
            "gt_iso": "same as gt",
            "input": "photon counts (float32)" if photons is not None else "same as gt",
            "psf": "dimensionless, sums to 1",
            "labels": "nuclei instance ids (uint16, 0 background)" if labels is not None else None,
            "voxel_size": "um",
            "wavelength": "nm",
            "psf_sigma": "voxels of the isotropic grid",
        },
        "n_labels": int(labels.max()) if labels is not None else None,
        "target_nuclei": target_nuclei_count(shape) if kind == "nuclei" else None,
        "versions": _versions(),
    }
    return {
        "gt": gt,
        "gt_iso": gt_iso,
        "input": g,
        "psf": h,
        "psf_iso": h_iso,
        "labels": labels,
        "voxel_size": (dx, dx, dx),
        "input_voxel_size": (factor * dx, dx, dx),
        "meta": meta,
    }
