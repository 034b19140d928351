"""Widths of PSFs and profiles: FWHM by linear interpolation between samples."""

from __future__ import annotations

import math

import numpy as np

from ._validate import check_voxel_size

__all__ = ["FWHM_PER_SIGMA", "fwhm_1d", "fwhm_at_peak", "psf_fwhm"]

#: FWHM of a Gaussian over its sigma, 2 sqrt(2 ln 2) (about 2.355).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def fwhm_1d(profile) -> float:
    """Full width at half maximum of a 1D profile, in samples.

    Half maximum is ``max / 2`` (baseline 0); the crossings on both sides of the
    (first) maximum are found by linear interpolation between samples.

    Parameters
    ----------
    profile : (N,) array_like
        Non-negative samples.

    Returns
    -------
    float
        FWHM in samples; NaN when the profile does not fall below half maximum on both
        sides.
    """
    p = np.asarray(profile, dtype=np.float64).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)):
        msg = f"`profile` must be a non-empty finite 1D array, got shape {np.shape(profile)}"
        raise ValueError(msg)
    return fwhm_at_peak(p, int(np.argmax(p)))


def fwhm_at_peak(profile, i: int) -> float:
    """FWHM (samples) of the peak at index ``i`` of a profile with baseline 0.

    Parameters
    ----------
    profile : (N,) array_like
        Samples (background subtracted).
    i : int
        Index of the peak; half maximum is ``profile[i] / 2``.

    Returns
    -------
    float
        Distance between the half-maximum crossings on both sides of ``i`` (linear
        interpolation); NaN when ``profile[i] <= 0`` or a side does not fall below it.
    """
    p = np.asarray(profile, dtype=np.float64)
    half = p[i] / 2.0
    if not half > 0:
        return float("nan")
    left = np.nonzero(p[:i] < half)[0]
    right = np.nonzero(p[i:] < half)[0]
    if left.size == 0 or right.size == 0:
        return float("nan")
    lo = int(left[-1])  # p[lo] < half <= p[lo + 1]
    hi = i + int(right[0])  # p[hi - 1] >= half > p[hi]
    x_left = lo + (half - p[lo]) / (p[lo + 1] - p[lo])
    x_right = hi - 1 + (p[hi - 1] - half) / (p[hi - 1] - p[hi])
    return float(x_right - x_left)


def psf_fwhm(h, voxel_size=(1.0, 1.0, 1.0)) -> tuple[float, float, float]:
    """FWHM of a centred PSF along z, y and x through its centre voxel.

    Parameters
    ----------
    h : (Z, Y, X) array_like
        Centred PSF.
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)``; the result is in the same unit (voxels by default).

    Returns
    -------
    tuple of float
        ``(fwhm_z, fwhm_y, fwhm_x)`` from :func:`fwhm_1d` on the central line profiles.
    """
    a = np.asarray(h)
    if a.ndim != 3:
        msg = f"`h` must be a 3D (z, y, x) array, got shape {a.shape}"
        raise ValueError(msg)
    dz, dy, dx = check_voxel_size(voxel_size)
    cz, cy, cx = (s // 2 for s in a.shape)
    return (
        fwhm_1d(a[:, cy, cx]) * dz,
        fwhm_1d(a[cz, :, cx]) * dy,
        fwhm_1d(a[cz, cy, :]) * dx,
    )
