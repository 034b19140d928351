"""Optical PSF models: Gaussian, widefield, confocal and light-sheet.

Every PSF is a 3D ``float32`` array with axes ``(z, y, x)``, odd sizes, its centre (peak
and centroid) at the centre voxel, non-negative, summing to 1, and sampled on a voxel
grid ``voxel_size = (dz, dy, dx)`` in micrometres. Wavelengths are vacuum wavelengths in
nanometres; Gaussian sigmas are in voxels. The optical models come from :mod:`psfmodels`
(index-matched, in focus); their default boxes hold the PSF out to
:data:`DECAY_THRESHOLD` of its peak.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._arrays import pad_to
from ._validate import (
    check_model,
    check_na,
    check_positive,
    check_shape,
    check_voxel_size,
    check_wavelength,
    validate_psf,
)

__all__ = [
    "PAPER_DEFAULTS",
    "WIDEFIELD_DEFAULTS",
    "DECAY_THRESHOLD",
    "gaussian_psf",
    "widefield_psf",
    "confocal_psf",
    "lightsheet_psf",
    "sheet_waist",
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
#: Automatic PSF sizes are capped at this many voxels per axis and in all (with a warning).
_MAX_AUTO_SIZE = 401
_MAX_AUTO_VOXELS = 2**23


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
    shape = check_shape(shape)
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
    return pad_to(h, tuple(2 * max(k, 1) + 1 for k in need))


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
    vs = check_voxel_size(voxel_size)
    na, n = check_na(na, n_immersion, "na")
    lam = check_wavelength(wavelength, "wavelength")
    model = check_model(model)
    if shape is None:
        prof_z, prof_r = _profiles(vs, na=na, wavelength=lam, n=n, model=model)
        fz, fr = _widefield_fwhm_estimate(na, lam, n)
        shape = _shape_from_profiles(vs, prof_z, prof_r, fz, fr, threshold, 12)
    shape = check_shape(shape)
    h = _widefield_raw(shape, vs, na=na, wavelength=lam, n=n, model=model)
    return validate_psf(h, name="widefield psf")



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
    vs = check_voxel_size(voxel_size)
    na, n = check_na(na, n_immersion, "na")
    lam_ex = check_wavelength(wavelength_ex, "wavelength_ex")
    lam_em = check_wavelength(wavelength_em, "wavelength_em")
    model = check_model(model)

    def build(shp):
        h_ex = _widefield_raw(shp, vs, na=na, wavelength=lam_ex, n=n, model=model)
        return h_ex * _widefield_raw(shp, vs, na=na, wavelength=lam_em, n=n, model=model)

    if shape is None:
        fz, fr = _widefield_fwhm_estimate(na, max(lam_ex, lam_em), n)
        h = _auto_box(build, vs, (3 * fz, 3 * fr, 3 * fr), threshold)
        return validate_psf(h, name="confocal psf")
    return validate_psf(build(check_shape(shape)), name="confocal psf")


def sheet_waist(wavelength_ex, na_illum) -> float:
    """Gaussian light-sheet waist ``w0 = lambda_ex / (pi * NA_illum)`` in um (1/e^2 radius)."""
    return check_wavelength(wavelength_ex, "wavelength_ex") / 1000.0 / (
        math.pi * check_positive(na_illum, "na_illum")
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
    vs = check_voxel_size(voxel_size)
    na, n = check_na(na_detect, n_immersion, "na_detect")
    na_il, _ = check_na(na_illum, n_immersion, "na_illum")
    lam_ex = check_wavelength(wavelength_ex, "wavelength_ex")
    lam_em = check_wavelength(wavelength_em, "wavelength_em")
    model = check_model(model)
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
    h = build(check_shape(shape))
    return validate_psf(h, name="light-sheet psf")
