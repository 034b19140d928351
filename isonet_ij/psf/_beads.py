"""A measured PSF from a bead stack: detect, register and average isolated beads.

Axes ``(z, y, x)``; voxel sizes ``(dz, dy, dx)`` in micrometres; sigmas and FWHM in voxels
unless named ``_um``.
"""

from __future__ import annotations

import numpy as np

from ._arrays import robust_noise
from ._measures import FWHM_PER_SIGMA, fwhm_at_peak, psf_fwhm
from ._plots import plot_bead_psf
from ._validate import check_shape, check_volume, check_voxel_size, validate_psf

__all__ = ["psf_from_beads"]


def psf_from_beads(stack, *, voxel_size=(1.0, 1.0, 1.0), box=None, threshold: float | None = None,
                   rel_threshold: float = 0.2, min_separation: float = 3.0, max_beads: int = 500,
                   plot=None):
    """Average isolated beads of a bead stack into a measured PSF.

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
        Bead stack (any real dtype), sub-resolution beads on a flat background.
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um; the output PSF is on this grid.
    box : int or tuple of int, optional
        Odd size ``(nz, ny, nx)`` of the output PSF; default ``2 * ceil(2 FWHM) + 1``
        per axis (at least 7), from the median bead FWHM.
    threshold : float, optional
        Absolute detection level above background (in stack units); default
        ``max(8 noise sd, rel_threshold * (brightest peak - background))``.
    rel_threshold : float
        Fraction of the brightest bead's peak a bead must reach (rejects side lobes and
        dim debris).
    min_separation : float
        A bead with another detection closer than this many FWHM (ellipsoidal distance)
        is part of a cluster and rejected.
    max_beads : int
        Use at most this many (the brightest) isolated beads.
    plot : str or Path, optional
        Write a PNG with xy/xz views of the averaged PSF and its fitted profiles.

    Returns
    -------
    psf : (nz, ny, nx) ndarray of float32
        Background-subtracted, clipped at 0, sums to 1, centred.
    report : dict
        ``n_detected``, ``n_used``, ``rejected`` (counts per reason), ``background``,
        ``noise_sd``, ``fwhm_voxels`` / ``fwhm_um`` ``(z, y, x)``, ``gaussian_sigma_voxels``
        / ``gaussian_sigma_um`` ``(z, y, x)`` (3D Gaussian fit of the average),
        ``positions`` (sub-voxel centres of the used beads, voxels).

    Raises
    ------
    ValueError
        No bead found, none isolated, or the beads are saturated.
    """
    from scipy import ndimage

    raw = check_volume(stack, "stack")
    vs = check_voxel_size(voxel_size)
    if min(raw.shape) < 5:
        msg = f"`stack` must be at least 5 voxels along each axis, got shape {raw.shape}"
        raise ValueError(msg)
    a = raw.astype(np.float64)
    bg, noise = robust_noise(a)
    sm = ndimage.gaussian_filter(a, 1.0)
    cand, cand_val, noise_sm = _local_maxima(sm, bg, noise)
    strong, level = _bright_maxima(sm, cand, cand_val, bg, noise_sm, threshold, rel_threshold)
    saturated = _saturation_flags(a, strong, raw.dtype)
    fw, ok_fw, fw_med = _bead_fwhms(sm, bg, strong, saturated)
    # half size of the output box: default +-2 FWHM (at least 3 voxels)
    half = np.maximum(3, np.ceil(2.0 * fw_med)).astype(int) if box is None else (
        np.array(check_shape(box, name="box")) // 2)
    rejected = {"saturated": int(saturated.sum()), "cluster": 0, "border": 0, "shape": 0, "fit": 0}
    # clusters: any detection (incl. weak ones) within min_separation FWHM
    weak = cand[cand_val > bg + 0.5 * (level - bg)]
    keep = _isolated_beads(strong, weak, a.shape, saturated=saturated, fw=fw, ok_fw=ok_fw,
                           fw_med=fw_med, half=half, min_separation=min_separation,
                           rejected=rejected)[:max_beads]
    sig0 = fw_med / FWHM_PER_SIGMA
    avg, positions = _register_and_average(a, bg, strong[keep], fw_med, half, sig0, rejected)
    psf = validate_psf(np.clip(avg, 0, None), name="averaged bead psf")
    report = _bead_report(psf, sig0, vs, n_detected=int(len(strong)), positions=positions,
                          rejected=rejected, background=bg, noise_sd=noise)
    if plot is not None:
        plot_bead_psf(psf, report, plot)
    return psf, report


def _local_maxima(sm: np.ndarray, bg: float, noise: float):
    """Local maxima of the smoothed stack above 5 noise sd: positions (N, 3), values, noise sd."""
    from scipy import ndimage

    _, noise_sm = robust_noise(sm)
    noise_sm = max(noise_sm, 1e-12 * max(1.0, abs(bg)))
    peaks_mask = (sm == ndimage.maximum_filter(sm, size=3)) & (sm > bg + 5 * noise_sm)
    cand = np.argwhere(peaks_mask)
    if cand.size == 0:
        msg = (
            "`stack`: no bead found above the noise (background "
            f"{bg:.3g}, noise sd {noise:.3g}); provide a bead stack with bright "
            "sub-resolution beads on a dark background, or use a model PSF "
            "(--psf gaussian:SXY,SZ / confocal:... / lightsheet:...)"
        )
        raise ValueError(msg)
    return cand, sm[tuple(cand.T)], noise_sm


def _bright_maxima(sm, cand, cand_val, bg, noise_sm, threshold, rel_threshold):
    """The maxima above the detection level, brightest first, and that level."""
    top = float(cand_val.max())
    level = bg + (threshold if threshold is not None else
                  max(8 * noise_sm, rel_threshold * (top - bg)))
    strong = cand[cand_val > level]
    strong_val = sm[tuple(strong.T)]
    order = np.argsort(-strong_val)
    strong = strong[order]
    if len(strong) == 0:
        msg = (
            f"`stack`: no bead above the detection level {level:.3g}; lower `threshold` "
            "or provide a brighter bead stack"
        )
        raise ValueError(msg)
    return strong, level


def _saturation_flags(a: np.ndarray, strong: np.ndarray, dtype) -> np.ndarray:
    """Saturated beads: raw peak at the integer dtype's maximum, or a flat top (>= 3 ties).

    Raises when more than half of the beads are saturated: the stack is then unusable.
    """
    sat_level = float(np.iinfo(dtype).max) if dtype.kind in "iu" else None
    sat_flags = np.zeros(len(strong), bool)
    for i, p in enumerate(strong):
        sl = tuple(slice(max(c - 1, 0), c + 2) for c in p)
        nb = a[sl]
        pk = nb.max()
        tied = int(np.count_nonzero(nb >= pk - 1e-9 * abs(pk)))
        if (sat_level is not None and pk >= sat_level) or tied >= 3:
            sat_flags[i] = True
    n_sat = int(sat_flags.sum())
    if n_sat > 0.5 * len(strong):
        msg = (
            f"`stack`: {n_sat} of {len(strong)} beads are saturated (flat-topped maxima"
            + (f" at the {dtype} maximum {sat_level:g}" if sat_level is not None else "")
            + "); acquire the beads with lower laser power / exposure / gain so that the "
            "brightest voxel stays below the detector maximum"
        )
        raise ValueError(msg)
    return sat_flags


def _bead_fwhms(sm: np.ndarray, bg: float, strong: np.ndarray, saturated: np.ndarray):
    """Rough per-bead FWHM (N, 3) from background-subtracted central profiles of the
    smoothed stack, which rows are usable (finite, not saturated), and their median."""
    fw = np.array([_bead_fwhm(sm, bg, p) for p in strong])
    ok_fw = np.all(np.isfinite(fw), axis=1) & ~saturated
    if not np.any(ok_fw):
        msg = (
            "`stack`: no bead has a measurable FWHM (the profiles do not fall to half "
            "maximum); provide a larger field of view around sparse beads"
        )
        raise ValueError(msg)
    return fw, ok_fw, np.median(fw[ok_fw], axis=0)


def _bead_fwhm(sm: np.ndarray, bg: float, p) -> list[float]:
    """FWHM (voxels) along z, y, x of the bead at ``p``: its central line profiles."""
    out = []
    for ax in range(3):
        idx = list(p)
        idx[ax] = slice(None)
        out.append(fwhm_at_peak(sm[tuple(idx)] - bg, p[ax]))
    return out


def _isolated_beads(strong, weak, stack_shape, *, saturated, fw, ok_fw, fw_med, half,
                    min_separation, rejected) -> list[int]:
    """Indices of the beads that are isolated, away from the borders and of typical shape.

    ``rejected`` (counts per reason) is updated in place.
    """
    margin = half + 2
    keep = []
    for i, p in enumerate(strong):
        if saturated[i]:
            continue
        d = (weak - p) / fw_med
        dist = np.sqrt((d**2).sum(axis=1))
        if np.count_nonzero(dist < min_separation) > 1:
            rejected["cluster"] += 1
            continue
        if np.any(p < margin) or np.any(p >= np.array(stack_shape) - margin):
            rejected["border"] += 1
            continue
        if not ok_fw[i] or np.any(np.abs(fw[i] / fw_med - 1) > 0.3):
            rejected["shape"] += 1
            continue
        keep.append(i)
    if not keep:
        msg = (
            f"`stack`: found {len(strong)} beads but none is isolated and away from the "
            f"borders (rejected: {rejected}); provide a sparser bead stack (beads more "
            f"than {min_separation:g} FWHM apart and {int(margin.max())} voxels from the "
            "borders), or use a model PSF (--psf gaussian:SXY,SZ / confocal:... )"
        )
        raise ValueError(msg)
    return keep


def _register_and_average(a, bg, beads, fw_med, half, sig0, rejected):
    """Mean of the beads, each shifted by its sub-voxel Gaussian-fit offset, sum 1 each.

    Parameters
    ----------
    a : (Z, Y, X) ndarray of float64
        Bead stack.
    bg : float
        Its background level.
    beads : (N, 3) ndarray of int
        Voxel positions of the beads to use.
    fw_med : (3,) ndarray
        Median bead FWHM (voxels): sets the fit box.
    half : (3,) ndarray of int
        Half size of the output box.
    sig0 : (3,) ndarray
        Starting sigmas of the fit (voxels).
    rejected : dict
        Counts per reason; ``"fit"`` is incremented for each bead that fails.

    Returns
    -------
    avg : (2 half + 1) ndarray of float64
        Mean bead, its residual background (median of the box's outer shell) removed.
    positions : list of list of float
        Sub-voxel centres of the beads used.
    """
    from scipy import ndimage

    fit_half = np.maximum(2, np.ceil(1.5 * fw_med)).astype(int)
    acc = np.zeros(tuple(2 * half + 1))
    positions = []
    for p in beads:
        sl = tuple(slice(c - h, c + h + 1) for c, h in zip(p, fit_half))
        try:
            par = _fit_gaussian(a[sl] - bg, sig0)
        except (RuntimeError, ValueError):
            rejected["fit"] += 1
            continue
        off = par[2:5] - fit_half  # sub-voxel offset of the centre from p
        if np.any(np.abs(off) > 1.5):
            rejected["fit"] += 1
            continue
        sl2 = tuple(slice(c - h - 2, c + h + 3) for c, h in zip(p, half))
        sub = a[sl2] - bg
        shifted = ndimage.shift(sub, -off, order=3, mode="nearest")[2:-2, 2:-2, 2:-2]
        s = shifted.sum()
        if not s > 0:
            rejected["fit"] += 1
            continue
        acc += shifted / s
        positions.append((p + off).tolist())
    if not positions:
        msg = "`stack`: no bead could be fitted with a 3D Gaussian; provide cleaner beads"
        raise ValueError(msg)
    avg = acc / len(positions)
    shell = np.ones(avg.shape, bool)
    shell[1:-1, 1:-1, 1:-1] = False
    return avg - float(np.median(avg[shell])), positions


def _bead_report(psf, sig0, vs, *, n_detected, positions, rejected, background, noise_sd):
    """The report of :func:`psf_from_beads`: counts, FWHM and a 3D Gaussian fit of ``psf``."""
    fwhm_vox = psf_fwhm(psf)
    gpar = _fit_gaussian(psf.astype(np.float64), sig0)
    sig_vox = tuple(float(v) for v in gpar[5:8])
    return {
        "n_detected": n_detected,
        "n_used": len(positions),
        "rejected": rejected,
        "background": background,
        "noise_sd": noise_sd,
        "shape": list(psf.shape),
        "voxel_size": list(vs),
        "fwhm_voxels": [float(v) for v in fwhm_vox],
        "fwhm_um": [float(v * d) for v, d in zip(fwhm_vox, vs)],
        "gaussian_sigma_voxels": list(sig_vox),
        "gaussian_sigma_um": [float(v * d) for v, d in zip(sig_vox, vs)],
        "gaussian_centre_offset_voxels": [float(gpar[2 + k] - psf.shape[k] // 2) for k in range(3)],
        "positions": positions,
    }


def _gauss3d(coords, amp, bg, z0, y0, x0, sz, sy, sx):
    z, y, x = coords
    return bg + amp * np.exp(
        -0.5 * (((z - z0) / sz) ** 2 + ((y - y0) / sy) ** 2 + ((x - x0) / sx) ** 2)
    )


def _fit_gaussian(box: np.ndarray, guess_sigma) -> np.ndarray:
    """Least-squares 3D Gaussian fit; returns (amp, bg, z0, y0, x0, sz, sy, sx) in box voxels."""
    from scipy.optimize import curve_fit

    grids = np.indices(box.shape, dtype=np.float64)
    coords = grids.reshape(3, -1)
    c = [s // 2 for s in box.shape]
    bg0 = float(np.median(box))
    p0 = [float(box[tuple(c)] - bg0), bg0, *map(float, c), *map(float, guess_sigma)]
    lo = [0.0, -np.inf, -0.5, -0.5, -0.5, 0.2, 0.2, 0.2]
    hi = [np.inf, np.inf, box.shape[0] - 0.5, box.shape[1] - 0.5, box.shape[2] - 0.5,
          *(float(s) for s in box.shape)]
    p0 = list(np.clip(p0, np.array(lo) + 1e-6, np.array(hi) - 1e-6))
    p, _ = curve_fit(_gauss3d, coords, box.ravel().astype(np.float64), p0=p0,
                     bounds=(lo, hi), maxfev=4000)
    return p
