"""Point-spread functions: models, measured beads, and the kernels IsoNet trains with.

Every PSF is a 3D ``float32`` array with axes ``(z, y, x)``, odd sizes, its centre (peak
and centroid) at the centre voxel ``(nz // 2, ny // 2, nx // 2)``, non-negative, summing
to 1, and sampled on a voxel grid ``voxel_size = (dz, dy, dx)`` in micrometres.
Wavelengths are vacuum wavelengths in nanometres; Gaussian sigmas are in voxels.

IsoNet (Weigert et al., MICCAI 2017, sec. 2.1) degrades lateral (xy) planes so that they
look like axial planes. Its kernels, built here:

* ``h_rot`` (:func:`rotated_psf`): the PSF with its axial axis laid along a lateral axis;
* ``h_iso`` (:func:`isotropic_psf`): the PSF with lateral resolution in every direction;
* ``h_split`` (:func:`split_psf`): the non-negative solution of ``h_rot = h_iso * h_split``;
* the 2D training kernels (:func:`training_kernels`), projections of ``h_rot`` (mode
  ``"full"``) or of ``h_split`` (mode ``"split"``) onto the lateral plane.

Table 1 of the paper uses a Gaussian PSF (sigma_xy/sigma_z = 2/8 voxels), a confocal PSF
(NA 1.1) and a light-sheet PSF (NA_detect 0.8, NA_illum 0.1); :data:`PAPER_DEFAULTS` holds
these with water immersion (n = 1.33), 488 nm excitation and 520 nm emission.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "PAPER_DEFAULTS",
    "WIDEFIELD_DEFAULTS",
    "DECAY_THRESHOLD",
    "gaussian_psf",
    "widefield_psf",
    "confocal_psf",
    "lightsheet_psf",
    "sheet_waist",
    "load_psf",
    "validate_psf",
    "isotropic_psf",
    "rotated_psf",
    "split_psf",
    "split_residual",
    "training_kernels",
    "psf_fwhm",
    "fwhm_1d",
    "parse_psf_spec",
    "psf_for_volume",
]

#: The PSFs of Table 1 of the paper. Gaussian sigmas are in voxels of the isotropic grid;
#: wavelengths in nm (vacuum); ``n_immersion`` is water, index-matched to the sample.
PAPER_DEFAULTS = {
    "gaussian": {"sigma_xy": 2.0, "sigma_z": 8.0},
    "confocal": {
        "na": 1.1,
        "n_immersion": 1.33,
        "wavelength_ex": 488.0,
        "wavelength_em": 520.0,
    },
    "lightsheet": {
        "na_detect": 0.8,
        "na_illum": 0.1,
        "n_immersion": 1.33,
        "wavelength_ex": 488.0,
        "wavelength_em": 520.0,
    },
}
#: Default widefield parameters for ``--psf widefield`` (not in the paper's Table 1).
WIDEFIELD_DEFAULTS = {"na": 1.1, "n_immersion": 1.33, "wavelength": 520.0}

#: Default PSF boxes hold the PSF out to where it falls below this fraction of its peak:
#: along the central line profiles (widefield), or the maximum over each plane
#: perpendicular to an axis (confocal, light-sheet: holds their defocused rings).
#: Gaussian boxes are +-4 sigma instead.
DECAY_THRESHOLD = 1e-3
#: Negative values down to this fraction of the peak count as float noise (clipped).
_NEG_TOL = 1e-5
#: Automatic PSF sizes are capped at this many voxels per axis and in all (with a warning).
_MAX_AUTO_SIZE = 401
_MAX_AUTO_VOXELS = 2**23
#: Mass fraction that may be cropped from the borders of a 2D training kernel.
_KERNEL_CROP_MASS = 1e-4
#: Relative tolerance on the sum of a measured PSF before :func:`load_psf` warns.
_SUM_TOL = 1e-3
_PSF_MODELS = ("vectorial", "scalar")


# --------------------------------------------------------------------------- checks


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
    if lo < -_NEG_TOL * peak:
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


def _check_voxel_size(voxel_size, *, name: str = "voxel_size") -> tuple[float, float, float]:
    from isonet_ij.volume_io import normalize_voxel_size

    try:
        return normalize_voxel_size(voxel_size, name=name)
    except ValueError as exc:  # VolumeError is a ValueError; keep the message
        raise ValueError(str(exc)) from None


def _check_shape(shape, *, name: str = "shape") -> tuple[int, int, int]:
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


def _check_positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        msg = f"`{name}` must be a positive number, got {value!r}"
        raise ValueError(msg)
    return v


def _check_wavelength(value, name: str) -> float:
    v = _check_positive(value, name)
    if not 150 <= v <= 2500:
        msg = (
            f"`{name}` is in nanometres and must lie in [150, 2500], got {value!r}"
            + (f"; did you mean {v * 1000:g} nm?" if v < 5 else "")
        )
        raise ValueError(msg)
    return v


def _check_na(na, n_immersion, name: str) -> tuple[float, float]:
    n = _check_positive(n_immersion, "n_immersion")
    if n < 1:
        msg = f"`n_immersion` is a refractive index >= 1, got {n_immersion!r}"
        raise ValueError(msg)
    a = _check_positive(na, name)
    if a >= n:
        msg = f"`{name}` must be smaller than `n_immersion` ({n:g}), got {na!r}"
        raise ValueError(msg)
    return a, n


# --------------------------------------------------------------------------- gaussian


def gaussian_psf(sigma_xy, sigma_z, *, shape=None, sampling: str = "point") -> np.ndarray:
    """Separable 3D Gaussian PSF.

    Parameters
    ----------
    sigma_xy, sigma_z : float
        Standard deviations in voxels (lateral, axial); 0 gives a delta along that axis.
        The paper uses 2 and 8.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)``; default ``2 * ceil(4 * sigma) + 1`` per axis.
    sampling : {"point", "voxel"}
        ``"point"`` samples the Gaussian at voxel centres: its discrete FWHM (linear
        interpolation) is within 1 % of ``2.355 * sigma`` for sigma >= 1.5 (4 % at 1) and it
        is exactly radially symmetric for equal sigmas. ``"voxel"`` integrates it over
        each voxel, which adds a box of one voxel (discrete FWHM +2 % at sigma 2).

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        Centred, sums to 1.
    """
    sxy = float(sigma_xy)
    sz = float(sigma_z)
    for v, nm in ((sxy, "sigma_xy"), (sz, "sigma_z")):
        if not (np.isfinite(v) and v >= 0):
            msg = f"`{nm}` must be a number >= 0 (voxels), got {v!r}"
            raise ValueError(msg)
    if sampling not in ("point", "voxel"):
        msg = f"`sampling` must be 'point' or 'voxel', got {sampling!r}"
        raise ValueError(msg)
    sigmas = (sz, sxy, sxy)
    if shape is None:
        shape = tuple(2 * math.ceil(4 * s) + 1 for s in sigmas)
    shape = _check_shape(shape)
    factors = [_gauss_1d(n, s, sampling) for n, s in zip(shape, sigmas)]
    h = factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]
    return (h / h.sum()).astype(np.float32)


def _gauss_1d(n: int, sigma: float, sampling: str) -> np.ndarray:
    x = np.arange(n) - n // 2
    if sigma == 0:
        return (x == 0).astype(np.float64)
    if sampling == "point":
        return np.exp(-(x**2) / (2 * sigma**2))
    from scipy.special import erf

    s = math.sqrt(2) * sigma
    return erf((x + 0.5) / s) - erf((x - 0.5) / s)


# --------------------------------------------------------------------------- optical


def _psfmodels_psf(nz, nyx, *, dz, dxy, na, wavelength, n, model) -> np.ndarray:
    """psfmodels PSF, (nz, nyx, nyx) float64, index-matched (ns = ni = ni0 = n)."""
    import psfmodels

    return psfmodels.make_psf(
        nz,
        nyx,
        dxy=dxy,
        dz=dz,
        NA=na,
        wvl=wavelength / 1000.0,
        ni=n,
        ni0=n,
        ns=n,
        model=model,
        normalize=False,
    )


def _widefield_raw(shape, voxel_size, *, na, wavelength, n, model) -> np.ndarray:
    """Widefield PSF on ``shape`` with (possibly dy != dx) lateral spacing, float64."""
    nz, ny, nx = shape
    dz, dy, dx = voxel_size
    if dy == dx:
        n_lat = max(ny, nx)
        h = _psfmodels_psf(
            nz, n_lat, dz=dz, dxy=dx, na=na, wavelength=wavelength, n=n, model=model
        )
        oy, ox = (n_lat - ny) // 2, (n_lat - nx) // 2
        return h[:, oy : oy + ny, ox : ox + nx]
    # psfmodels needs square pixels: compute on the finer spacing, interpolate linearly.
    from scipy.ndimage import map_coordinates

    d = min(dy, dx)
    half = math.ceil(max((ny // 2) * dy, (nx // 2) * dx) / d) + 1
    fine = _psfmodels_psf(
        nz, 2 * half + 1, dz=dz, dxy=d, na=na, wavelength=wavelength, n=n, model=model
    )
    zz, yy, xx = np.meshgrid(
        np.arange(nz, dtype=float),
        half + (np.arange(ny) - ny // 2) * dy / d,
        half + (np.arange(nx) - nx // 2) * dx / d,
        indexing="ij",
    )
    return map_coordinates(fine, [zz, yy, xx], order=1, mode="constant", cval=0.0)


def _decay_half(profile: np.ndarray, threshold: float) -> int:
    """Last index (from the centre, index 0) where ``profile >= threshold * max``."""
    above = np.nonzero(profile >= threshold * profile.max())[0]
    return int(above[-1]) if above.size else 0


def _auto_half(profile_fn, spacing: float, guess_um: float, threshold: float, axis: str) -> int:
    """Half-size (voxels) where ``profile_fn(k)`` (k = 0..K voxels) decays below threshold.

    ``profile_fn(K)`` returns the profile at offsets 0..K voxels from the centre. The
    trial extent doubles until the profile has decayed or the cap is reached.
    """
    cap = _MAX_AUTO_SIZE // 2
    k = min(cap, max(4, math.ceil(guess_um / spacing)))
    while True:
        prof = profile_fn(k)
        half = _decay_half(prof, threshold)
        if half < k:
            return max(half, 1)
        if k >= cap:
            warnings.warn(
                f"the PSF has not decayed to {threshold:g} of its peak within "
                f"{_MAX_AUTO_SIZE} voxels along {axis}; it is truncated there. Pass "
                "`shape=` explicitly (or a coarser voxel size) to choose the extent",
                stacklevel=4,
            )
            return cap
        k = min(cap, 2 * k)


def _profiles(voxel_size, *, na, wavelength, n, model):
    """Functions giving the on-axis (z) and in-focus lateral profiles of a widefield PSF."""
    dz, dy, dx = voxel_size
    d = min(dy, dx)

    opts = {"dz": dz, "dxy": d, "na": na, "wavelength": wavelength, "n": n, "model": model}

    def prof_z(k):
        return _psfmodels_psf(2 * k + 1, 1, **opts)[k:, 0, 0]

    def prof_r(k):
        return _psfmodels_psf(1, 2 * k + 1, **opts)[0, k, k:]

    return prof_z, prof_r


def _widefield_fwhm_estimate(na, wavelength, n):
    """(axial, lateral) FWHM estimates in um (non-paraxial axial formula)."""
    lam = wavelength / 1000.0
    return 0.88 * lam / (n - math.sqrt(n * n - na * na)), 0.51 * lam / na


def _shape_from_profiles(voxel_size, prof_z, prof_r, fwhm_z, fwhm_r, threshold, n_fwhm):
    dz, dy, dx = voxel_size
    d = min(dy, dx)
    hz = _auto_half(prof_z, dz, n_fwhm * fwhm_z, threshold, "z")
    hr = _auto_half(prof_r, d, n_fwhm * fwhm_r, threshold, "y/x")
    r_um = hr * d
    shape = (2 * hz + 1, 2 * math.ceil(r_um / dy - 1e-9) + 1, 2 * math.ceil(r_um / dx - 1e-9) + 1)
    if math.prod(shape) > _MAX_AUTO_VOXELS:
        nz = max(1, _MAX_AUTO_VOXELS // (shape[1] * shape[2]))
        nz -= 1 - nz % 2
        warnings.warn(
            f"the default PSF box {shape} exceeds {_MAX_AUTO_VOXELS} voxels; truncated to "
            f"{(nz, *shape[1:])}. Pass `shape=` explicitly (or a coarser voxel size)",
            stacklevel=3,
        )
        shape = (nz, *shape[1:])
    return shape


def _auto_box(build, voxel_size, guess_um, threshold: float) -> np.ndarray:
    """Build a PSF on a box that holds it out to ``threshold`` of its peak.

    The criterion is the max-projection profile along each axis (the maximum over the two
    other axes at each offset), which also catches defocused rings. ``build(shape)``
    returns the PSF on an odd ``shape``; the trial box doubles along the axes where the
    PSF has not decayed (at most 401 voxels), and the result is cropped to the decay box.
    """
    cap = _MAX_AUTO_SIZE // 2
    half = [min(cap, max(4, math.ceil(g / d))) for g, d in zip(guess_um, voxel_size)]
    while True:
        h = build(tuple(2 * k + 1 for k in half))
        need = []
        for ax in range(3):
            prof = h.max(axis=tuple(i for i in range(3) if i != ax))
            c = prof.size // 2
            need.append(_decay_half(np.maximum(prof[c:], prof[c::-1]), threshold))
        grow = [ax for ax in range(3) if need[ax] >= half[ax] and half[ax] < cap]
        bigger = list(half)
        for ax in grow:
            bigger[ax] = min(cap, 2 * half[ax])
        if not grow or math.prod(2 * k + 1 for k in bigger) > _MAX_AUTO_VOXELS:
            break
        half = bigger
    if any(need[ax] >= half[ax] for ax in range(3)):
        warnings.warn(
            f"the PSF has not decayed to {threshold:g} of its peak within a box of "
            f"{tuple(2 * k + 1 for k in half)} voxels; it is truncated there. Pass `shape=` "
            "explicitly (or a coarser voxel size) to choose the extent",
            stacklevel=3,
        )
    return _pad_to(h, tuple(2 * max(k, 1) + 1 for k in need))


def widefield_psf(
    *,
    na,
    wavelength,
    n_immersion=1.33,
    voxel_size,
    shape=None,
    model: str = "vectorial",
    threshold: float = DECAY_THRESHOLD,
) -> np.ndarray:
    """Widefield (detection) PSF from :mod:`psfmodels`, index-matched, in focus.

    Parameters
    ----------
    na : float
        Numerical aperture, ``0 < na < n_immersion``.
    wavelength : float
        Emission wavelength in nm (vacuum).
    n_immersion : float
        Refractive index of immersion medium and sample (index-matched: no spherical
        aberration). Default water, 1.33.
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um. ``dy != dx`` is supported: the PSF is computed on the
        finer lateral spacing and linearly interpolated onto the coarser axis.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)``. Default: the box out to where the on-axis profile (z) and
        the in-focus lateral profile (y, x) fall below ``threshold`` of the peak, at most
        401 voxels per axis. The on-axis profile of a widefield PSF decays slowly (to 1e-3
        at about +-8.5 um for NA 1.1, 520 nm), so the default box is tall; the defocused
        rings outside the lateral box are not included.
    model : {"vectorial", "scalar"}
        psfmodels model (Aguet et al. 2009 vectorial, or Gibson-Lanni scalar).
    threshold : float
        Decay level that sets the default shape.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        Centred, non-negative, sums to 1.

    Notes
    -----
    psfmodels integrates each pixel laterally (3x oversampling). With 0.1 um pixels this
    widens the lateral FWHM by about 5 % at NA 1.1. The vectorial model is about 8 %
    wider laterally than the paraxial ``0.51 lambda / NA`` at NA 1.1 (depolarisation).
    """
    vs = _check_voxel_size(voxel_size)
    na, n = _check_na(na, n_immersion, "na")
    lam = _check_wavelength(wavelength, "wavelength")
    model = _check_model(model)
    if shape is None:
        prof_z, prof_r = _profiles(vs, na=na, wavelength=lam, n=n, model=model)
        fz, fr = _widefield_fwhm_estimate(na, lam, n)
        shape = _shape_from_profiles(vs, prof_z, prof_r, fz, fr, threshold, 12)
    shape = _check_shape(shape)
    h = _widefield_raw(shape, vs, na=na, wavelength=lam, n=n, model=model)
    return validate_psf(h, name="widefield psf")


def _check_model(model) -> str:
    if model not in _PSF_MODELS:
        msg = f"`model` must be one of {_PSF_MODELS}, got {model!r}"
        raise ValueError(msg)
    return model


def confocal_psf(
    *,
    na,
    n_immersion=1.33,
    wavelength_ex,
    wavelength_em,
    voxel_size,
    shape=None,
    model: str = "vectorial",
    threshold: float = DECAY_THRESHOLD,
) -> np.ndarray:
    """Confocal PSF with a point pinhole: excitation times detection widefield PSF.

    Parameters
    ----------
    na : float
        Numerical aperture of the objective (excitation and detection). Paper: 1.1.
    n_immersion : float
        Refractive index (immersion = sample). Default water, 1.33.
    wavelength_ex, wavelength_em : float
        Excitation and emission wavelengths in nm (vacuum).
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)``. Default: out to where the maximum of the PSF over each
        plane perpendicular to an axis falls below ``threshold`` of the peak (this holds
        the defocused rings too). For NA 1.1, 488/520 nm at 0.1 um voxels this is
        (29, 11, 11) with about 94 % of the mass of a much larger box: the faint tails
        (mass per z plane ~ 1/z^2) carry the rest.
    model : {"vectorial", "scalar"}
        psfmodels model.
    threshold : float
        Decay level that sets the default shape.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        ``h_ex * h_em`` (element-wise), centred, sums to 1.
    """
    vs = _check_voxel_size(voxel_size)
    na, n = _check_na(na, n_immersion, "na")
    lam_ex = _check_wavelength(wavelength_ex, "wavelength_ex")
    lam_em = _check_wavelength(wavelength_em, "wavelength_em")
    model = _check_model(model)

    def build(shp):
        h_ex = _widefield_raw(shp, vs, na=na, wavelength=lam_ex, n=n, model=model)
        return h_ex * _widefield_raw(shp, vs, na=na, wavelength=lam_em, n=n, model=model)

    if shape is None:
        fz, fr = _widefield_fwhm_estimate(na, max(lam_ex, lam_em), n)
        h = _auto_box(build, vs, (3 * fz, 3 * fr, 3 * fr), threshold)
        return validate_psf(h, name="confocal psf")
    return validate_psf(build(_check_shape(shape)), name="confocal psf")


def sheet_waist(wavelength_ex, na_illum) -> float:
    """Gaussian light-sheet waist ``w0 = lambda_ex / (pi * NA_illum)`` in um (1/e^2 radius)."""
    return _check_wavelength(wavelength_ex, "wavelength_ex") / 1000.0 / (
        math.pi * _check_positive(na_illum, "na_illum")
    )


def lightsheet_psf(
    *,
    na_detect,
    na_illum,
    n_immersion=1.33,
    wavelength_ex,
    wavelength_em,
    voxel_size,
    shape=None,
    model: str = "vectorial",
    threshold: float = DECAY_THRESHOLD,
) -> np.ndarray:
    """Light-sheet PSF: detection widefield PSF times the Gaussian sheet profile along z.

    The sheet is ``exp(-2 z^2 / w0^2)`` with waist ``w0 = lambda_ex / (pi * NA_illum)``
    (1/e^2 radius), taken at its waist and constant over the field (Rayleigh length
    ``pi * w0^2 * n / lambda_ex``, about 21 um for the paper's NA_illum 0.1 at 488 nm).

    Parameters
    ----------
    na_detect, na_illum : float
        Detection and illumination numerical apertures. Paper: 0.8 and 0.1.
    n_immersion : float
        Refractive index (immersion = sample). Default water, 1.33.
    wavelength_ex, wavelength_em : float
        Excitation (sheet) and emission (detection) wavelengths in nm (vacuum).
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)``. Default: out to where the maximum of the PSF over each
        plane perpendicular to an axis falls below ``threshold`` of the peak. For the
        paper's PSF at 0.1 um voxels this is (41, 25, 25) with about 95 % of the mass of a
        much larger box (the Airy rings of the detection PSF carry the rest).
    model : {"vectorial", "scalar"}
        psfmodels model of the detection PSF.
    threshold : float
        Decay level that sets the default shape.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        Centred, sums to 1.
    """
    vs = _check_voxel_size(voxel_size)
    na, n = _check_na(na_detect, n_immersion, "na_detect")
    na_il, _ = _check_na(na_illum, n_immersion, "na_illum")
    lam_ex = _check_wavelength(wavelength_ex, "wavelength_ex")
    lam_em = _check_wavelength(wavelength_em, "wavelength_em")
    model = _check_model(model)
    w0 = sheet_waist(lam_ex, na_il)
    dz = vs[0]

    def build(shp):
        h = _widefield_raw(shp, vs, na=na, wavelength=lam_em, n=n, model=model)
        z = (np.arange(shp[0]) - shp[0] // 2) * dz
        return h * np.exp(-2.0 * z**2 / w0**2)[:, None, None]

    if shape is None:
        fz, fr = _widefield_fwhm_estimate(na, lam_em, n)
        h = _auto_box(build, vs, (2 * w0, 2 * w0, 3 * fr), threshold)
        return validate_psf(h, name="light-sheet psf")
    h = build(_check_shape(shape))
    return validate_psf(h, name="light-sheet psf")


# --------------------------------------------------------------------------- measured


def load_psf(
    path,
    *,
    voxel_size=None,
    target_spacing=None,
    shape=None,
    noise_sigmas: float = 3.0,
) -> np.ndarray:
    """Read a measured bead PSF from a TIFF and bring it onto an isotropic grid.

    Steps: subtract the background (median of the outer 2-voxel shell) and zero every
    voxel below ``noise_sigmas`` noise sigmas (noise from the shell's MAD; this also clips
    negatives, and keeps the clipped noise from adding mass all over the box) -- skipped
    for a stack that already is a PSF (no negative values, sums to 1 within 0.1 %, e.g. a
    model's ``psf.tif``), whose faint borders are signal, not background;
    find the bead's centroid (from voxels above 5 noise sigmas, noise from the shell's
    MAD); resample with cubic splines so that the centroid lands on the centre voxel of
    an odd box on the target grid (the largest box around the bead that lies inside the
    stack, or ``shape``); clip spline undershoots; normalize to sum 1.

    Parameters
    ----------
    path : str or Path
        3D (z, y, x) TIFF, any real dtype.
    voxel_size : float or tuple of float, shape (3,), optional
        ``(dz, dy, dx)`` of the file in um; overrides its calibration. Needed when the file
        has none (otherwise it is assumed to be sampled on the target grid, with a
        warning).
    target_spacing : float or tuple of float, optional
        Grid of the result in um: a scalar means isotropic; default isotropic at the
        file's ``dx``.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)`` of the result (zero-padded or cropped around the centre).
    noise_sigmas : float
        Noise floor in units of the background noise sigma; 0 only clips negatives.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        Centred, non-negative, sums to 1.

    Warns
    -----
    UserWarning
        The background-subtracted stack did not sum to 1 (beyond 0.1 %), so it was
        normalized; or the file has no calibration.
    """
    from scipy import ndimage

    from isonet_ij.volume_io import read_volume

    vol = read_volume(path)
    if vol.axes != "ZYX":
        msg = (
            f"PSF file {str(path)!r} has axes {vol.axes!r}; a PSF must be a single-channel "
            "ZYX stack (split channels / time points first)"
        )
        raise ValueError(msg)
    data = vol.data.astype(np.float64)
    if voxel_size is not None:
        spacing = _check_voxel_size(voxel_size)
    elif vol.voxel_size is not None:
        spacing = tuple(float(v) for v in vol.voxel_size)
    else:
        spacing = None
    if target_spacing is None:
        target = (spacing[2],) * 3 if spacing is not None else (1.0, 1.0, 1.0)
    else:
        target = _check_voxel_size(target_spacing, name="target_spacing")
    if spacing is None:
        warnings.warn(
            f"PSF file {str(path)!r} has no voxel size; assuming it is sampled on the "
            f"target grid {target} um (pass voxel_size= to resample it)",
            stacklevel=2,
        )
        spacing = target

    peak = float(np.abs(data).max())
    processed = float(data.min()) >= -_NEG_TOL * peak and abs(data.sum() - 1.0) <= _SUM_TOL
    if processed:  # already a PSF (e.g. a model's psf.tif): keep its faint borders
        bg = noise = 0.0
        h = np.clip(data, 0.0, None)
    else:
        shell = _border_shell(data, 2)
        bg = float(np.median(shell))
        noise = 1.4826 * float(np.median(np.abs(shell - bg)))
        h = data - bg
        h[h < max(float(noise_sigmas), 0.0) * noise] = 0.0
    total = float(h.sum())
    if not total > 0:
        msg = f"PSF file {str(path)!r} holds no signal above its background ({bg:.3g})"
        raise ValueError(msg)
    if abs(total - 1.0) > _SUM_TOL:
        warnings.warn(
            f"PSF {str(path)!r} summed to {total:.6g} after background subtraction "
            f"(background {bg:.4g}); normalized it to sum 1",
            stacklevel=2,
        )
    h /= total

    # Centroid of the bead: voxels clearly above the noise.
    weights = np.where(h * total > max(5.0 * noise, 0.01 * h.max() * total), h, 0.0)
    idx = np.indices(h.shape, dtype=np.float64)
    centroid = np.array([(weights * idx[a]).sum() / weights.sum() for a in range(3)])

    ratio = np.array(spacing) / np.array(target)  # new voxels per old voxel
    if shape is None:
        near = np.minimum(centroid, np.array(h.shape) - 1 - centroid)  # old voxels
        half = np.maximum(np.floor(near * ratio + 1e-6).astype(int), 0)
        if np.any(half < 1):
            msg = (
                f"the bead in {str(path)!r} sits at the stack border (centroid "
                f"{np.round(centroid, 1).tolist()} in a stack of shape {h.shape}); crop a "
                "stack centred on one bead, or pass shape="
            )
            raise ValueError(msg)
        shape = tuple(int(2 * v + 1) for v in half)
    shape = _check_shape(shape)
    coords = [
        centroid[a] + (np.arange(shape[a]) - shape[a] // 2) / ratio[a] for a in range(3)
    ]
    grid = np.meshgrid(*coords, indexing="ij")
    out = ndimage.map_coordinates(h, grid, order=3, mode="grid-constant", cval=0.0)
    return validate_psf(np.clip(out, 0.0, None), name=f"PSF from {Path(path).name}")


def _border_shell(data: np.ndarray, width: int) -> np.ndarray:
    mask = np.ones(data.shape, dtype=bool)
    inner = tuple(slice(min(width, s // 2), max(s - width, s // 2 + 1)) for s in data.shape)
    mask[inner] = False
    return data[mask] if mask.any() else data.ravel()


# --------------------------------------------------------------------------- derived kernels


def isotropic_psf(h, *, shape=None, n_angles: int = 128) -> np.ndarray:
    """h_iso: a radially symmetric kernel with the lateral profile of ``h`` in every direction.

    The profile is the azimuthal average of the in-focus plane ``h[nz // 2]`` (cubic-spline
    samples on ``n_angles`` directions at each needed radius; directions that leave the
    plane are skipped, radii beyond its corners give 0), evaluated at the distance of
    every voxel from the centre. The grid of ``h`` must be isotropic.

    Parameters
    ----------
    h : (Z, Y, X) array_like
        PSF (validated with :func:`validate_psf`).
    shape : int or tuple of int, shape (3,), optional
        Odd shape of the result; default ``h.shape``.
    n_angles : int
        Directions per radius in the azimuthal average.

    Returns
    -------
    ndarray of float32, shape ``shape``
        Non-negative, sums to 1. ``isotropic_psf(gaussian_psf(2, 8))`` equals
        ``gaussian_psf(2, 2, shape=(65, 17, 17))`` within 0.1 % of the peak.
    """
    h = validate_psf(h)
    shape = h.shape if shape is None else _check_shape(shape)
    plane = h[h.shape[0] // 2].astype(np.float64)
    axes = [np.arange(s) - s // 2 for s in shape]
    r2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    uniq, inverse = np.unique(r2, return_inverse=True)
    prof = _azimuthal_average(plane, np.sqrt(uniq), n_angles)
    out = prof[inverse.reshape(shape)]
    return validate_psf(np.clip(out, 0.0, None), name="isotropic psf")


def _azimuthal_average(plane: np.ndarray, radii: np.ndarray, n_angles: int) -> np.ndarray:
    """Mean of ``plane`` on circles of ``radii`` (pixels) around its centre voxel."""
    from scipy.ndimage import map_coordinates, spline_filter

    ny, nx = plane.shape
    theta = np.arange(n_angles) * (2 * np.pi / n_angles)
    yy = ny // 2 + radii[:, None] * np.sin(theta)[None, :]
    xx = nx // 2 + radii[:, None] * np.cos(theta)[None, :]
    eps = 1e-9
    inside = (yy >= -eps) & (yy <= ny - 1 + eps) & (xx >= -eps) & (xx <= nx - 1 + eps)
    coeffs = spline_filter(plane, order=3, mode="mirror")
    vals = map_coordinates(
        coeffs, [yy.ravel(), xx.ravel()], order=3, prefilter=False, mode="mirror"
    )
    vals = np.where(inside.ravel(), vals, 0.0).reshape(yy.shape)
    count = inside.sum(axis=1)
    return np.where(count > 0, vals.sum(axis=1) / np.maximum(count, 1), 0.0)


def rotated_psf(h, plane: str, *, cube: bool = False) -> np.ndarray:
    """h_rot: the PSF with its axial (z) profile laid along a lateral axis.

    Convention: for ``plane="xz"`` axes z and y are swapped (``np.swapaxes(h, 0, 1)``), so
    a lateral (y, x) plane blurred with it gets the axial blur along its rows, like an
    xz plane (rows z, cols x); for ``plane="yz"`` axes z and x are swapped
    (``np.swapaxes(h, 0, 2)``), giving the axial blur along the columns of a lateral
    plane, like a yz plane seen transposed.

    Parameters
    ----------
    h : (Z, Y, X) array_like
        PSF.
    plane : {"xz", "yz"}
        Axial plane to imitate.
    cube : bool
        Zero-pad the result to an odd cube of side ``max(h.shape)``.

    Returns
    -------
    ndarray of float32
        ``(Y, Z, X)`` for "xz", ``(X, Y, Z)`` for "yz" (or the cube); sums to 1.
    """
    h = validate_psf(h)
    if plane == "xz":
        out = np.swapaxes(h, 0, 1)
    elif plane == "yz":
        out = np.swapaxes(h, 0, 2)
    else:
        msg = f"`plane` must be 'xz' or 'yz', got {plane!r}"
        raise ValueError(msg)
    if cube:
        out = _pad_to(out, (max(out.shape),) * 3)
    return np.ascontiguousarray(out)


def _pad_to(a: np.ndarray, shape) -> np.ndarray:
    """Centre-crop / zero-pad odd-sized ``a`` to odd ``shape``."""
    out = np.zeros(shape, dtype=a.dtype)
    src, dst = [], []
    for n_in, n_out in zip(a.shape, shape):
        m = min(n_in, n_out)
        src.append(slice(n_in // 2 - m // 2, n_in // 2 - m // 2 + m))
        dst.append(slice(n_out // 2 - m // 2, n_out // 2 - m // 2 + m))
    out[tuple(dst)] = a[tuple(src)]
    return out


def _crop_negligible(a: np.ndarray, mass: float) -> np.ndarray:
    """Symmetrically crop borders of odd-sized ``a`` holding at most ``mass`` of its sum.

    The budget is shared equally between the axes.
    """
    total = float(a.sum())
    budget = mass * total / a.ndim
    for ax in range(a.ndim):
        prof = a.sum(axis=tuple(i for i in range(a.ndim) if i != ax)).astype(np.float64)
        n = prof.size
        both = np.cumsum(prof[: n // 2]) + np.cumsum(prof[::-1][: n // 2])
        t = int(np.searchsorted(both, budget, side="right"))  # trims within budget
        if t > 0:
            sl = [slice(None)] * a.ndim
            sl[ax] = slice(t, n - t)
            a = a[tuple(sl)]
    return a


def _central_cube(a: np.ndarray) -> np.ndarray:
    m = min(a.shape)
    return _pad_to(a, (m, m, m))


def split_psf(
    h,
    plane: str,
    *,
    h_iso=None,
    n_iter: int = 500,
    method: str = "nnls",
    tol: float = 1e-3,
    init: str = "auto",
    return_info: bool = False,
):
    """h_split: the non-negative kernel with ``h_rot = h_iso * h_split`` (3D convolution).

    An unconstrained (inverse-filter) solution carries most of its mass in negative
    lobes and is useless as a blur; this solves the non-negative problem instead.

    ``method="nnls"`` (default) minimises ``||h_iso * x - h_rot||^2`` over ``x >= 0`` on
    the support of ``h_rot`` (full linear convolution, so mass spilling over the border
    counts) with FISTA (projected, accelerated gradient with adaptive restart; step
    ``1 / max|OTF_iso|^2``; float32 FFTs). It starts from the separable Gaussian whose
    per-axis variance is ``var(h_rot) - var(h_iso)`` (exact for Gaussian PSFs).
    ``method="rl"`` runs Richardson-Lucy from ``h_rot`` (it minimises a Poisson deviance
    and ends with larger least-squares residuals: 0.034 vs 0.018 for the paper's
    confocal PSF at 0.1 um voxels). The relative residual is checked every 10 iterations;
    iteration stops after ``n_iter`` iterations or when it has not dropped by a factor
    ``1 - tol`` within 20 iterations, and the best iterate is returned. ``h_iso`` is
    radially symmetric, so its central cube is used in the rotated frame, cropped where
    its border voxels hold less than 1e-6 of its mass.

    Measured residuals (:func:`split_residual`, default boxes, 0.1 um voxels): Gaussian
    2/8: 2e-4 (0.2 s); confocal NA 1.1: 0.018 (0.1 s); light-sheet 0.8/0.1: 0.134
    (0.5 s). The light-sheet value is the non-negative optimum: a larger support does not
    lower it; it grows with the PSF box (0.24 with boxes to 1e-4 of the peak), as the
    box takes in more of the detection PSF's defocus cone, which a convolution of the
    radially symmetric ``h_iso`` with a non-negative kernel cannot reproduce. Cost grows
    with the box: about 2 s for the light-sheet PSF at 0.05 um voxels (83, 51, 51).

    Parameters
    ----------
    h : (Z, Y, X) array_like
        PSF on an isotropic grid.
    plane : {"xz", "yz"}
        Which rotation (see :func:`rotated_psf`).
    h_iso : (Z', Y', X') array_like, optional
        Isotropic PSF; default ``isotropic_psf(h)``.
    n_iter : int
        Maximum iterations.
    method : {"nnls", "rl"}
        Solver.
    tol : float
        Relative residual decrease per 20 iterations below which iteration stops.
    init : {"auto", "moments", "rot", "tikhonov"}
        Start: ``"auto"`` is ``"moments"`` for nnls and ``"rot"`` (``h_rot``) for rl;
        ``"tikhonov"`` is the clipped Tikhonov-regularised inverse filter.
    return_info : bool
        Also return a dict with ``residual`` (:func:`split_residual`), ``n_iter`` and
        ``method``.

    Returns
    -------
    h_split : ndarray of float32, shape ``rotated_psf(h, plane).shape``
        Non-negative, sums to 1, in the rotated frame of ``h_rot``.
    info : dict
        Only with ``return_info=True``.
    """
    if method not in ("nnls", "rl"):
        msg = f"`method` must be 'nnls' or 'rl', got {method!r}"
        raise ValueError(msg)
    if init not in ("auto", "moments", "rot", "tikhonov"):
        msg = f"`init` must be 'auto', 'moments', 'rot' or 'tikhonov', got {init!r}"
        raise ValueError(msg)
    n_iter = int(n_iter)
    if n_iter < 0:
        msg = f"`n_iter` must be >= 0, got {n_iter}"
        raise ValueError(msg)
    h_rot = rotated_psf(h, plane).astype(np.float64)
    h_iso = isotropic_psf(h) if h_iso is None else validate_psf(h_iso, name="h_iso")
    k = _crop_negligible(_central_cube(h_iso.astype(np.float64)), 1e-6)
    k /= k.sum()
    if init == "auto":
        init = "moments" if method == "nnls" else "rot"
    x, it, _ = _deconv_nonneg(h_rot, k, method=method, n_iter=n_iter, tol=tol, init=init)
    out = validate_psf(np.clip(x, 0.0, None), name="h_split")
    if not return_info:
        return out
    res = split_residual(h_rot, h_iso, out)
    return out, {"residual": res, "n_iter": it, "method": method}


def _deconv_nonneg(
    y_small, k, *, method, n_iter, tol, init, check_every=10, patience=2, dtype=np.float32
):
    """Non-negative ``x`` on ``y_small``'s support with ``k * x ~ y_small`` (full convolution).

    The relative residual is checked every ``check_every`` iterations; iteration stops when
    it has not dropped by a factor ``1 - tol`` within ``patience`` checks. Returns
    ``(x, iterations, relative residual)`` with the best ``x`` checked.
    """
    from scipy import fft as sfft

    s = y_small.shape
    grid = tuple(sfft.next_fast_len(a + b - 1, real=True) for a, b in zip(s, k.shape))
    off = tuple((g - a) // 2 for g, a in zip(grid, s))
    sup = tuple(slice(o, o + a) for o, a in zip(off, s))
    kk = np.zeros(grid, dtype=dtype)
    kk[tuple(slice(0, a) for a in k.shape)] = k
    kk = np.roll(kk, tuple(-(a // 2) for a in k.shape), axis=(0, 1, 2))

    def fwd(x):
        return sfft.rfftn(x, workers=-1)

    def inv(xf):
        return sfft.irfftn(xf, s=grid, workers=-1)

    # Parseval weights of a real FFT along the last axis (interior bins count twice).
    wts = np.full(grid[-1] // 2 + 1, 2.0)
    wts[0] = 1.0
    if grid[-1] % 2 == 0:
        wts[-1] = 1.0
    n_total = float(np.prod(grid))

    otf = fwd(kk)
    y = np.zeros(grid, dtype=dtype)
    y[sup] = y_small
    yf = fwd(y)
    y_norm = float(np.linalg.norm(y_small))

    def residual(x):
        r2 = (np.abs(otf * fwd(x) - yf) ** 2 * wts).sum() / n_total
        return math.sqrt(max(float(r2), 0.0)) / y_norm

    x = np.zeros(grid, dtype=dtype)
    x[sup] = _split_init(y_small, k, init, otf=otf, yf=yf, inv=inv, sup=sup)
    best_res = ref_res = residual(x)
    best = x[sup].copy()
    ref_it = 0
    it = 0
    if method == "nnls":
        a2 = (np.abs(otf) ** 2).astype(dtype)
        step = 1.0 / float(a2.max())
        aty = np.conj(otf) * yf
        z = x.copy()
        t = 1.0
    else:
        conj = np.conj(otf)
    for it in range(1, n_iter + 1):
        x_new = np.zeros_like(x)
        if method == "nnls":
            grad = inv(a2 * fwd(z) - aty)
            x_new[sup] = np.clip(z[sup] - step * grad[sup], 0.0, None)
            dx = x_new - x
            # adaptive restart (O'Donoghue & Candes 2015): drop momentum when it points uphill
            if np.vdot(z - x_new, dx) > 0:
                t = 1.0
                z = x_new.copy()
            else:
                t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
                z = x_new + ((t - 1) / t_new) * dx
                t = t_new
        else:
            est = inv(otf * fwd(x))
            ratio = np.where(est > 1e-12 * est.max(), y / np.maximum(est, 1e-30), 0.0)
            x_new[sup] = x[sup] * np.clip(inv(conj * fwd(ratio))[sup], 0.0, None)
        x = x_new
        if it % check_every == 0 or it == n_iter:
            res = residual(x)
            if res < best_res:
                best_res, best = res, x[sup].copy()
            if res < ref_res * (1.0 - tol):
                ref_res, ref_it = res, it
            elif it - ref_it >= patience * check_every:
                break
    return best.astype(np.float64), it, best_res


def _split_init(y_small, k, init, *, otf, yf, inv, sup):
    if init == "rot":
        return y_small
    if init == "tikhonov":
        a2 = np.abs(otf) ** 2
        x = inv(np.conj(otf) * yf / (a2 + 1e-2 * a2.max()))[sup]
        x = np.clip(x, 0.0, None)
        return x if x.sum() > 0 else y_small
    if init == "moments":
        # separable Gaussian whose per-axis variance is var(y) - var(k)
        def var(a, ax):
            p = a.sum(axis=tuple(i for i in range(3) if i != ax))
            u = np.arange(p.size) - p.size // 2
            return float((p * u**2).sum() / p.sum())

        out = np.ones(y_small.shape)
        for ax in range(3):
            v = max(var(y_small, ax) - var(k, ax), 0.0)
            u = np.arange(y_small.shape[ax]) - y_small.shape[ax] // 2
            g = np.exp(-(u**2) / (2 * max(v, 1e-3)))
            shape = [1, 1, 1]
            shape[ax] = -1
            out = out * g.reshape(shape)
        return out / out.sum()
    msg = f"`init` must be 'moments', 'tikhonov' or 'rot', got {init!r}"
    raise ValueError(msg)


def split_residual(h_rot, h_iso, h_split) -> float:
    """Relative residual ``||h_iso * h_split - h_rot|| / ||h_rot||`` (full 3D convolution).

    All three are centred odd arrays; they are compared on the full linear-convolution
    grid (``h_rot`` zero-padded), so mass pushed outside ``h_rot``'s box counts.

    Returns
    -------
    float
        The relative L2 residual.
    """
    from scipy.signal import fftconvolve

    conv = fftconvolve(np.asarray(h_iso, np.float64), np.asarray(h_split, np.float64), mode="full")
    ref = np.asarray(h_rot, np.float64)
    shape = tuple(max(a, b) for a, b in zip(conv.shape, ref.shape))
    return float(np.linalg.norm(_pad_to(conv, shape) - _pad_to(ref, shape)) / np.linalg.norm(ref))


def training_kernels(h, mode: str, *, h_iso=None, **split_kwargs) -> dict:
    """2D kernels that blur lateral planes into look-alikes of the axial planes.

    Kernel ``"xz"`` blurs a lateral plane (rows y, cols x) so that it looks like an xz
    plane (rows z, cols x): its rows run along the axial direction, its columns along
    the lateral one. Kernel ``"yz"`` has the same layout (rows axial, cols y) and is
    applied by the caller to the transposed lateral plane (rows x, cols y).

    Mode ``"full"``: the projections ``h.sum(axis=1)`` ("xz") and ``h.sum(axis=2)``
    ("yz"), i.e. ``h_rot`` projected onto the lateral plane. Mode ``"split"``: the same
    projections of ``h_split`` (:func:`split_psf`, rotated back). As projection commutes
    with convolution, the "split" kernel solves the projected 2D problem
    ``P(h_rot) = P(h_iso) * P(h_split)`` too.

    Parameters
    ----------
    h : (Z, Y, X) array_like
        PSF on an isotropic grid.
    mode : {"full", "split"}
        Which kernel (paper sec. 2.1).
    h_iso : array_like, optional
        Passed to :func:`split_psf` (mode "split").
    **split_kwargs
        Passed to :func:`split_psf` (e.g. ``n_iter``, ``method``).

    Returns
    -------
    dict
        ``{"xz": k, "yz": k}``, each an odd-sized (axial, lateral) float32 array,
        non-negative, sums to 1, borders with less than 1e-4 of its mass cropped.
    """
    h = validate_psf(h)
    if mode == "full":
        kxz, kyz = h.sum(axis=1), h.sum(axis=2)
    elif mode == "split":
        hs_xz = split_psf(h, "xz", h_iso=h_iso, **split_kwargs)  # (Y, Z, X) frame
        hs_yz = split_psf(h, "yz", h_iso=h_iso, **split_kwargs)  # (X, Y, Z) frame
        kxz = np.swapaxes(hs_xz, 0, 1).sum(axis=1)
        kyz = np.swapaxes(hs_yz, 0, 2).sum(axis=2)
    else:
        msg = f"`mode` must be 'full' or 'split', got {mode!r}"
        raise ValueError(msg)
    out = {}
    for name, k2 in (("xz", kxz), ("yz", kyz)):
        k2 = _crop_negligible(np.asarray(k2, np.float64), _KERNEL_CROP_MASS)
        out[name] = validate_psf(k2[None], name=f"{name} kernel")[0]
    return out


# --------------------------------------------------------------------------- measures


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
    i = int(np.argmax(p))
    half = p[i] / 2.0
    if not half > 0:
        return float("nan")
    below = p < half
    left = np.nonzero(below[:i])[0]
    right = np.nonzero(below[i:])[0]
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
    dz, dy, dx = _check_voxel_size(voxel_size)
    cz, cy, cx = (s // 2 for s in a.shape)
    return (
        fwhm_1d(a[:, cy, cx]) * dz,
        fwhm_1d(a[cz, :, cx]) * dy,
        fwhm_1d(a[cz, cy, :]) * dx,
    )


# --------------------------------------------------------------------------- --psf specs

#: Keys of ``--psf KIND:key=value,...`` -> (function keyword, default source key, unit).
_SPEC_KEYS = {
    "confocal": {
        "na": ("na", "na", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "ex": ("wavelength_ex", "wavelength_ex", "nm"),
        "em": ("wavelength_em", "wavelength_em", "nm"),
    },
    "lightsheet": {
        "na_detect": ("na_detect", "na_detect", ""),
        "na_illum": ("na_illum", "na_illum", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "ex": ("wavelength_ex", "wavelength_ex", "nm"),
        "em": ("wavelength_em", "wavelength_em", "nm"),
    },
    "widefield": {
        "na": ("na", "na", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "em": ("wavelength", "wavelength", "nm"),
    },
}
_KIND_ALIASES = {"light-sheet": "lightsheet", "light_sheet": "lightsheet", "gauss": "gaussian"}
_SPEC_FORMS = (
    "gaussian:SXY,SZ (voxels), confocal:na=1.1,n=1.33,ex=488,em=520, "
    "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520, "
    "widefield:na=1.1,n=1.33,em=520, or a path to a PSF TIFF"
)


def parse_psf_spec(spec: str, *, voxel_size):
    """Build the PSF described by a ``--psf`` string.

    Forms: ``gaussian`` or ``gaussian:SXY,SZ`` (sigmas in voxels; default 2,8);
    ``confocal[:na=1.1,n=1.33,ex=488,em=520]``;
    ``lightsheet[:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520]``;
    ``widefield[:na=1.1,n=1.33,em=520]`` (wavelengths in nm); optical kinds also take
    ``model=vectorial|scalar``; anything else is read as a path to a PSF TIFF
    (:func:`load_psf`, resampled onto ``voxel_size``). Missing keys take
    :data:`PAPER_DEFAULTS`.

    Parameters
    ----------
    spec : str
        The ``--psf`` value.
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um of the grid the PSF is sampled on (the isotropic grid).

    Returns
    -------
    h : (Z, Y, X) ndarray of float32
        The PSF.
    info : dict
        JSON-serialisable record: ``kind``, every parameter with its value, ``units``,
        ``voxel_size`` (um), ``shape`` and the original ``spec``.

    Raises
    ------
    ValueError
        Unknown kind or key (the message names it and lists the valid ones), malformed or
        out-of-range value.
    FileNotFoundError
        ``spec`` looks like a path and the file does not exist.
    """
    if not isinstance(spec, str) or not spec.strip():
        msg = f"`--psf` must be a non-empty string: {_SPEC_FORMS}; got {spec!r}"
        raise ValueError(msg)
    vs = _check_voxel_size(voxel_size)
    text = spec.strip()
    head, sep, body = text.partition(":")
    kind = _KIND_ALIASES.get(head.strip().lower(), head.strip().lower())
    if kind not in ("gaussian", *_SPEC_KEYS):
        if sep and len(head) > 1 and head.replace("-", "").replace("_", "").isalpha():
            if not Path(text).expanduser().is_file():
                msg = (
                    f"unknown PSF kind {head!r} in `--psf {spec}`; valid kinds: gaussian, "
                    f"confocal, lightsheet, widefield ({_SPEC_FORMS})"
                )
                raise ValueError(msg)
        return _psf_from_file(text, vs)
    info: dict = {"kind": kind, "spec": spec, "voxel_size": list(vs), "voxel_size_unit": "um"}
    if kind == "gaussian":
        params = dict(PAPER_DEFAULTS["gaussian"])
        if body.strip():
            parts = [p.strip() for p in body.split(",")]
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                vals = []
            if len(vals) != 2 or not all(np.isfinite(v) and v >= 0 for v in vals):
                msg = (
                    f"`--psf gaussian:SXY,SZ` needs two sigmas >= 0 in voxels, e.g. "
                    f"gaussian:2,8; got {spec!r}"
                )
                raise ValueError(msg)
            params = {"sigma_xy": vals[0], "sigma_z": vals[1]}
        h = gaussian_psf(params["sigma_xy"], params["sigma_z"])
        info.update(params, units={"sigma_xy": "voxel", "sigma_z": "voxel"})
    else:
        keys = _SPEC_KEYS[kind]
        defaults = PAPER_DEFAULTS.get(kind, WIDEFIELD_DEFAULTS)
        kwargs = {kw: float(defaults[src]) for kw, src, _ in keys.values()}
        model = "vectorial"
        valid = [*keys, "model"]
        seen = set()
        for item in (p.strip() for p in body.split(",")) if sep and body.strip() else ():
            key, eq, val = (s.strip() for s in item.partition("="))
            key = key.lower()
            if key not in valid:
                msg = (
                    f"unknown key {key!r} in `--psf {spec}`; valid keys for {kind}: "
                    f"{', '.join(valid)}"
                )
                raise ValueError(msg)
            if not eq or not val:
                msg = f"key {key!r} in `--psf {spec}` needs a value ({key}=...)"
                raise ValueError(msg)
            if key in seen:
                msg = f"key {key!r} given twice in `--psf {spec}`"
                raise ValueError(msg)
            seen.add(key)
            if key == "model":
                if val not in _PSF_MODELS:
                    msg = f"`model` in `--psf {spec}` must be one of {_PSF_MODELS}, got {val!r}"
                    raise ValueError(msg)
                model = val
                continue
            try:
                num = float(val)
            except ValueError:
                msg = f"key {key!r} in `--psf {spec}` must be a number, got {val!r}"
                raise ValueError(msg) from None
            kwargs[keys[key][0]] = num
        builder = {
            "confocal": confocal_psf,
            "lightsheet": lightsheet_psf,
            "widefield": widefield_psf,
        }[kind]
        h = builder(**kwargs, voxel_size=vs, model=model)
        info.update(kwargs, model=model)
        units = {kw: unit for kw, _, unit in keys.values() if unit}
        info["units"] = units
        if kind == "lightsheet":
            info["sheet_waist_um"] = sheet_waist(kwargs["wavelength_ex"], kwargs["na_illum"])
    info["shape"] = list(h.shape)
    return h, info


def _psf_from_file(text: str, vs) -> tuple[np.ndarray, dict]:
    path = Path(text).expanduser()
    if not path.is_file():
        msg = (
            f"`--psf {text}` is neither a known PSF kind nor an existing file; use "
            f"{_SPEC_FORMS}"
        )
        looks_like_path = any(c in text for c in "/\\.")
        raise (FileNotFoundError if looks_like_path else ValueError)(msg)
    h = load_psf(path, target_spacing=vs)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {
        "kind": "file",
        "spec": text,
        "path": str(path.resolve()),
        "sha256": digest,
        "voxel_size": list(vs),
        "voxel_size_unit": "um",
        "shape": list(h.shape),
    }
    return h, info


#: Spec kinds that are physical models and so need the volume's xy voxel size.
_PHYSICAL_KINDS = ("confocal", "lightsheet", "light-sheet", "widefield")


def psf_for_volume(spec: str, voxel_size, *, calibration_hint: str = ""):
    """Parse a PSF spec on the isotropic grid ``(dx, dy, dx)`` of an anisotropic volume.

    Parameters
    ----------
    spec : str
        As for :func:`parse_psf_spec`.
    voxel_size : tuple of float, shape (3,), or None
        The volume's ``(dz, dy, dx)`` in um, or ``None`` when it is uncalibrated (then only
        ``gaussian:`` specs and PSF files, which need no physical size, are accepted).
    calibration_hint : str
        Appended to the error for an uncalibrated volume: how to set the calibration.

    Returns
    -------
    (h, info)
        As :func:`parse_psf_spec`.
    """
    head = str(spec).split(":", 1)[0].strip().lower()
    if voxel_size is not None:
        _, dy, dx = voxel_size
        grid = (dx, dy, dx)
    elif head in _PHYSICAL_KINDS:
        msg = (f"psf {head} needs the volume's xy voxel size in um, but the volume has no "
               f"calibration; {calibration_hint or 'set it'} or use gaussian:SXY,SZ / a PSF file")
        raise ValueError(msg)
    else:
        grid = (1.0, 1.0, 1.0)
    return parse_psf_spec(spec, voxel_size=grid)
