"""The image-formation model (eq. 1 of the paper): ``g = P[S_sigma(h * f)] + eta``.

Convolutions use half-sample symmetric ("reflect") padding; the axial slicing keeps every
``factor``-th slice from slice 0.
"""

from __future__ import annotations

import numpy as np

from ._geometry import make_rng


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
    factor = check_factor(factor)
    if photons is not None and (not np.isfinite(photons) or photons <= 0):
        msg = f"`photons` must be a positive photon count (or None for no noise), got {photons!r}"
        raise ValueError(msg)
    if not np.isfinite(read_noise) or read_noise < 0:
        msg = f"`read_noise` must be a non-negative sd in counts, got {read_noise!r}"
        raise ValueError(msg)
    if not np.isfinite(background) or background < 0:
        msg = f"`background` must be a non-negative photon count, got {background!r}"
        raise ValueError(msg)
    g, _ = acquire(
        convolve(f, h), factor=factor, photons=photons, read_noise=float(read_noise),
        background=float(background), rng=make_rng(seed),
    )
    return g


def check_factor(factor) -> int:
    """``factor`` as an int; ``ValueError`` unless it is an integer >= 1 (3.0 passes)."""
    try:
        ok = float(factor) == int(factor) and int(factor) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        msg = f"`factor` must be an integer >= 1 (axial subsampling), got {factor!r}"
        raise ValueError(msg)
    return int(factor)


def acquire(blurred, *, factor, photons, read_noise, background, rng):
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
