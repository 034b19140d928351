"""The phantom kinds of sec. 3.1 of the paper: nuclei, membranes, and both together.

Each phantom is a fluorophore density (float32 in ``[0, 1]``, arbitrary units) with
uint16 labels on a ``(z, y, x)`` grid of isotropic voxels; every random choice comes from
one ``seed``.
"""

from __future__ import annotations

import math

import numpy as np

from ._geometry import (
    check_shape,
    fit_ellipsoids,
    make_rng,
    random_rotations,
    rasterize_ellipsoids,
    spaced_points,
    voronoi,
)

#: Phantom kinds understood by :func:`synthesize` (also the ``isonet synth`` choices).
KINDS = ("nuclei", "membranes", "nuclei-membranes")

#: Nuclei in a 512^3 volume, as in sec. 3.1 of the paper ("about 1500 simulated nuclei").
NUCLEI_PER_512_CUBE = 1500
#: Default nuclei density of :func:`nuclei`, in nuclei per 10^6 voxels (about 11.2).
_NUCLEI_DENSITY = NUCLEI_PER_512_CUBE / 512**3 * 1e6


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
    rng = make_rng(seed)
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


def _nuclei_shapes(n, spacing, rng, *, radius_range, aspect):
    """Random semi-axes (n, 3) in voxels and rotations (n, 3, 3)."""
    radius = rng.uniform(*radius_range, size=n) * spacing
    stretch = rng.uniform(1 - aspect, 1 + aspect, size=(n, 3))
    stretch /= np.cbrt(np.prod(stretch, axis=1))[:, None]  # keep the volume of the sphere
    return radius[:, None] * stretch, random_rotations(n, rng)


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
    shape = check_shape(shape)
    rng = make_rng(seed)
    n = target_nuclei_count(shape, density=density)
    dens = _NUCLEI_DENSITY if density is None else float(density)
    spacing = (1e6 / dens) ** (1 / 3)  # mean centre spacing in voxels
    if n > np.iinfo(np.uint16).max:
        msg = f"{n} nuclei do not fit uint16 labels; use a smaller `shape` or `density`"
        raise ValueError(msg)
    centres = spaced_points(shape, n, 0.85 * spacing, rng)
    axes, rot = _nuclei_shapes(n, spacing, rng, radius_range=(0.36, 0.48), aspect=0.25)
    axes = fit_ellipsoids(centres, axes, rot, slack=0.06)
    brightness = rng.uniform(0.75, 1.0, size=n)
    tex = smooth_noise(shape, scale=4.0, octaves=3, seed=rng.spawn(1)[0])
    labels, rho = rasterize_ellipsoids(shape, centres, axes, rot)
    return _nuclei_density(labels, rho, tex, brightness), labels


def _membrane_density(shape, seeds, rng, *, sigma: float = 0.55):
    """Membrane density on the Voronoi faces of ``seeds`` and the cell ids (int32)."""
    nearest, face, second = voronoi(shape, seeds)
    # one brightness per cell; a face is as bright as the mean of its two cells
    cell_b = rng.uniform(0.6, 1.0, size=len(seeds)).astype(np.float32)
    tex = smooth_noise(shape, scale=3.0, octaves=3, seed=rng.spawn(1)[0])
    profile = np.exp(-0.5 * (face / np.float32(sigma)) ** 2)
    profile[face > 3 * sigma] = 0
    f = 0.5 * (cell_b[nearest] + cell_b[second]) * (0.35 + 0.65 * tex) * profile
    return f.astype(np.float32), nearest


def _cell_count(shape, cell_size: float) -> int:
    """Cells of mean spacing ``cell_size`` (voxels) that fill ``shape``: at least 2."""
    return max(2, int(round(math.prod(shape) / cell_size**3)))


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
    shape = check_shape(shape)
    rng = make_rng(seed)
    n = _cell_count(shape, cell_size)
    seeds = spaced_points(shape, n, 0.8 * cell_size, rng)
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
    shape = check_shape(shape)
    rng = make_rng(seed)
    n = _cell_count(shape, cell_size)
    if n > np.iinfo(np.uint16).max:
        msg = f"{n} cells do not fit uint16 labels; use a smaller `shape`"
        raise ValueError(msg)
    seeds = spaced_points(shape, n, 0.85 * cell_size, rng)
    mem, _ = _membrane_density(shape, seeds, rng)
    axes, rot = _nuclei_shapes(n, cell_size, rng, radius_range=(0.30, 0.42), aspect=0.2)
    axes = fit_ellipsoids(seeds, axes, rot, margin=2.0)
    brightness = rng.uniform(0.4, 0.6, size=n)
    tex = smooth_noise(shape, scale=3.0, octaves=3, seed=rng.spawn(1)[0])
    labels, rho = rasterize_ellipsoids(shape, seeds, axes, rot)
    f = np.maximum(mem, _nuclei_density(labels, rho, tex, brightness))
    return f.astype(np.float32), labels


#: Phantom function of each kind in :data:`KINDS`: ``f(shape, *, seed) -> (density, labels)``.
PHANTOMS = {"nuclei": nuclei, "membranes": membranes, "nuclei-membranes": nuclei_membranes}
