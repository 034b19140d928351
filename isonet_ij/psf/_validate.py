"""Checks shared by the PSF modules: PSF arrays, voxel sizes, shapes and optical parameters.

Every check returns the value in its canonical form (float32 PSF summing to 1, tuple of
floats or odd ints) or raises a ``ValueError`` that names the argument, the expectation
and the value.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NEG_TOL",
    "PSF_MODELS",
    "validate_psf",
    "check_voxel_size",
    "check_shape",
    "check_positive",
    "check_wavelength",
    "check_na",
    "check_model",
    "check_volume",
]

#: Negative values down to this fraction of the peak count as float noise (clipped).
NEG_TOL = 1e-5
#: The psfmodels models an optical PSF can be computed with.
PSF_MODELS = ("vectorial", "scalar")


def validate_psf(h, *, name: str = "psf") -> np.ndarray:
    """Check that ``h`` is a usable 3D PSF and return a normalized float32 copy.

    Parameters
    ----------
    h : (Z, Y, X) array_like
        Candidate PSF; odd sizes, finite, non-negative (values down to ``-1e-5`` of the
        peak count as float noise and are clipped to 0), positive sum.
    name : str
        Name used in error messages.

    Returns
    -------
    (Z, Y, X) ndarray of float32
        ``h`` clipped at 0 and divided by its sum.

    Raises
    ------
    ValueError
        ``h`` is not 3D, has an even size, holds NaN/inf or negative values, or does not
        have a positive sum. The message says what is wrong and what to do.
    """
    arr = np.asarray(h)
    if arr.ndim != 3:
        msg = (
            f"`{name}` must be a 3D (z, y, x) array, got {arr.ndim}D with shape {arr.shape}; "
            "for a 2D kernel add a z axis of size 1 (h[None])"
        )
        raise ValueError(msg)
    if arr.dtype.kind not in "fiub":
        msg = f"`{name}` must hold real numbers, got dtype {arr.dtype}"
        raise ValueError(msg)
    if any(s % 2 == 0 for s in arr.shape):
        msg = (
            f"`{name}` must have odd sizes so that its centre is a voxel, got shape "
            f"{arr.shape}; crop or zero-pad it by one voxel along the even axes"
        )
        raise ValueError(msg)
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        msg = f"`{name}` contains {n_bad} NaN/inf values; replace them (e.g. by 0)"
        raise ValueError(msg)
    peak = float(np.abs(arr).max()) if arr.size else 0.0
    lo = float(arr.min()) if arr.size else 0.0
    if lo < -NEG_TOL * peak:
        msg = (
            f"`{name}` has negative values (min {lo:.3g}, peak {peak:.3g}); a PSF is an "
            "intensity: subtract the background and clip at 0 (load_psf does this for bead "
            "stacks)"
        )
        raise ValueError(msg)
    arr = np.clip(arr, 0.0, None)
    total = float(arr.sum())
    if not total > 0:
        msg = f"`{name}` sums to {total:.3g}; a PSF needs a positive sum (is it all zeros?)"
        raise ValueError(msg)
    return (arr / total).astype(np.float32)


def check_voxel_size(voxel_size, *, name: str = "voxel_size") -> tuple[float, float, float]:
    """Return ``voxel_size`` as ``(dz, dy, dx)`` positive floats in um (a scalar: all three)."""
    from isonet_ij.volume_io import normalize_voxel_size

    try:
        return normalize_voxel_size(voxel_size, name=name)
    except ValueError as exc:  # VolumeError is a ValueError; keep the message
        raise ValueError(str(exc)) from None


def check_shape(shape, *, name: str = "shape") -> tuple[int, int, int]:
    """Return ``shape`` as three odd positive ints (a scalar means a cube)."""
    try:
        vals = np.atleast_1d(np.asarray(shape))
        if vals.size == 1:
            vals = np.repeat(vals, 3)
        ok = vals.shape == (3,) and all(float(v) == int(v) and int(v) > 0 for v in vals)
    except (TypeError, ValueError):
        ok = False
    if not ok or any(int(v) % 2 == 0 for v in vals):
        msg = f"`{name}` must be 3 odd positive ints (nz, ny, nx), got {shape!r}"
        raise ValueError(msg)
    return tuple(int(v) for v in vals)


def check_positive(value, name: str) -> float:
    """Return ``value`` as a finite float > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        msg = f"`{name}` must be a positive number, got {value!r}"
        raise ValueError(msg)
    return v


def check_wavelength(value, name: str) -> float:
    """Return a vacuum wavelength in nm, within [150, 2500] (hints at um given by mistake)."""
    v = check_positive(value, name)
    if not 150 <= v <= 2500:
        msg = (
            f"`{name}` is in nanometres and must lie in [150, 2500], got {value!r}"
            + (f"; did you mean {v * 1000:g} nm?" if v < 5 else "")
        )
        raise ValueError(msg)
    return v


def check_na(na, n_immersion, name: str) -> tuple[float, float]:
    """Return ``(na, n_immersion)`` with ``0 < na < n_immersion`` and ``n_immersion >= 1``."""
    n = check_positive(n_immersion, "n_immersion")
    if n < 1:
        msg = f"`n_immersion` is a refractive index >= 1, got {n_immersion!r}"
        raise ValueError(msg)
    a = check_positive(na, name)
    if a >= n:
        msg = f"`{name}` must be smaller than `n_immersion` ({n:g}), got {na!r}"
        raise ValueError(msg)
    return a, n


def check_model(model) -> str:
    """Return ``model`` if it is one of :data:`PSF_MODELS`."""
    if model not in PSF_MODELS:
        msg = f"`model` must be one of {PSF_MODELS}, got {model!r}"
        raise ValueError(msg)
    return model


def check_volume(arr, name: str) -> np.ndarray:
    """Return ``arr`` as a finite 3D (z, y, x) volume (dtype kept)."""
    from isonet_ij.volume_io import as_volume3d

    a = as_volume3d(arr, name)
    if not np.all(np.isfinite(a)):
        msg = f"`{name}` contains NaN/inf values; replace them (e.g. by the background)"
        raise ValueError(msg)
    return a
