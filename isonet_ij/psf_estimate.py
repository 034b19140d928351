"""PSF guidance: measure a PSF from a bead stack, or estimate the axial blur from data.

* :func:`psf_from_beads` detects isolated sub-resolution beads in a 3D bead stack,
  registers them with sub-voxel accuracy (3D Gaussian fit, cubic-spline shift), averages
  them and reports lateral/axial FWHM and a 3D Gaussian fit.
* :func:`estimate_axial_blur` estimates, from an anisotropic volume alone, the Gaussian
  axial sigma (voxels of the isotropic grid) that makes lateral lines look like axial
  lines: lateral lines are blurred by an extra Gaussian, sampled every ``factor`` voxels
  and cubic-interpolated exactly as :func:`isonet_ij.grid.upsample_z` does, and their
  power spectrum is matched to the spectrum of the upsampled axial lines.

Axes ``(z, y, x)``; voxel sizes ``(dz, dy, dx)`` in micrometres; sigmas in voxels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psf_from_beads", "estimate_axial_blur", "plot_bead_psf", "plot_spectra"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --------------------------------------------------------------------------- helpers


def _as_volume(arr, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3:
        msg = f"`{name}` must be a 3D (z, y, x) array, got shape {a.shape}"
        raise ValueError(msg)
    if a.dtype.kind not in "fiub":
        msg = f"`{name}` must hold real numbers, got dtype {a.dtype}"
        raise ValueError(msg)
    if not np.all(np.isfinite(a)):
        msg = f"`{name}` contains NaN/inf values; replace them (e.g. by the background)"
        raise ValueError(msg)
    return a


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


def _robust_noise(a: np.ndarray) -> tuple[float, float]:
    """(median, MAD-based sd) of ``a``."""
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med)))
    return med, 1.4826 * mad


# --------------------------------------------------------------------------- beads


def psf_from_beads(
    stack,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    box=None,
    threshold: float | None = None,
    rel_threshold: float = 0.2,
    min_separation: float = 3.0,
    max_beads: int = 500,
    plot=None,
):
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

    from .psf import _check_shape, _check_voxel_size, psf_fwhm, validate_psf

    raw = _as_volume(stack, "stack")
    vs = _check_voxel_size(voxel_size)
    if min(raw.shape) < 5:
        msg = f"`stack` must be at least 5 voxels along each axis, got shape {raw.shape}"
        raise ValueError(msg)
    a = raw.astype(np.float64)
    sat_level = float(np.iinfo(raw.dtype).max) if raw.dtype.kind in "iu" else None

    bg, noise = _robust_noise(a)
    sm = ndimage.gaussian_filter(a, 1.0)
    _, noise_sm = _robust_noise(sm)
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
    cand_val = sm[tuple(cand.T)]
    # merge plateau maxima (equal neighbours): keep one per connected plateau
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

    # saturation / flat tops: raw peak at the dtype maximum or tied with neighbours
    n_sat = 0
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
            + (f" at the {raw.dtype} maximum {sat_level:g}" if sat_level is not None else "")
            + "); acquire the beads with lower laser power / exposure / gain so that the "
            "brightest voxel stays below the detector maximum"
        )
        raise ValueError(msg)

    # rough per-bead FWHM (background-subtracted central profiles)
    def bead_fwhm(p):
        out = []
        for ax in range(3):
            idx = list(p)
            idx[ax] = slice(None)
            out.append(_local_fwhm(sm[tuple(idx)] - bg, p[ax]))
        return out

    fw = np.array([bead_fwhm(p) for p in strong])
    ok_fw = np.all(np.isfinite(fw), axis=1) & ~sat_flags
    if not np.any(ok_fw):
        msg = (
            "`stack`: no bead has a measurable FWHM (the profiles do not fall to half "
            "maximum); provide a larger field of view around sparse beads"
        )
        raise ValueError(msg)
    fw_med = np.median(fw[ok_fw], axis=0)

    # clusters: any detection (incl. weak ones) within min_separation FWHM
    weak = cand[cand_val > bg + 0.5 * (level - bg)]
    rejected = {"saturated": n_sat, "cluster": 0, "border": 0, "shape": 0, "fit": 0}
    if box is None:
        half = np.maximum(3, np.ceil(2.0 * fw_med)).astype(int)
    else:
        half = np.array(_check_shape(box, name="box")) // 2
    margin = half + 2
    keep = []
    for i, p in enumerate(strong):
        if sat_flags[i]:
            continue
        d = (weak - p) / fw_med
        dist = np.sqrt((d**2).sum(axis=1))
        if np.count_nonzero(dist < min_separation) > 1:
            rejected["cluster"] += 1
            continue
        if np.any(p < margin) or np.any(p >= np.array(a.shape) - margin):
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
    keep = keep[:max_beads]

    # sub-voxel registration and averaging
    sig0 = fw_med / _FWHM_PER_SIGMA
    fit_half = np.maximum(2, np.ceil(1.5 * fw_med)).astype(int)
    acc = np.zeros(tuple(2 * half + 1))
    positions = []
    for i in keep:
        p = strong[i]
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
    # residual background from the border shell of the box
    shell = np.ones(avg.shape, bool)
    shell[1:-1, 1:-1, 1:-1] = False
    avg = avg - float(np.median(avg[shell]))
    psf = validate_psf(np.clip(avg, 0, None), name="averaged bead psf")

    fwhm_vox = psf_fwhm(psf)
    gpar = _fit_gaussian(psf.astype(np.float64), sig0)
    sig_vox = tuple(float(v) for v in gpar[5:8])
    report = {
        "n_detected": int(len(strong)),
        "n_used": len(positions),
        "rejected": rejected,
        "background": bg,
        "noise_sd": noise,
        "shape": list(psf.shape),
        "voxel_size": list(vs),
        "fwhm_voxels": [float(v) for v in fwhm_vox],
        "fwhm_um": [float(v * d) for v, d in zip(fwhm_vox, vs)],
        "gaussian_sigma_voxels": list(sig_vox),
        "gaussian_sigma_um": [float(v * d) for v, d in zip(sig_vox, vs)],
        "gaussian_centre_offset_voxels": [float(gpar[2 + k] - psf.shape[k] // 2) for k in range(3)],
        "positions": positions,
    }
    if plot is not None:
        plot_bead_psf(psf, report, plot)
    return psf, report


def _local_fwhm(profile: np.ndarray, i: int) -> float:
    """FWHM (samples) of the peak at index ``i`` of a background-subtracted profile."""
    p = np.asarray(profile, dtype=np.float64)
    half = p[i] / 2.0
    if not half > 0:
        return float("nan")
    left = np.nonzero(p[:i] < half)[0]
    right = np.nonzero(p[i:] < half)[0]
    if left.size == 0 or right.size == 0:
        return float("nan")
    lo = int(left[-1])
    hi = i + int(right[0])
    xl = lo + (half - p[lo]) / (p[lo + 1] - p[lo])
    xr = hi - 1 + (p[hi - 1] - half) / (p[hi - 1] - p[hi])
    return float(xr - xl)


def plot_bead_psf(psf: np.ndarray, report: dict, path) -> None:
    """PNG: xy and xz central slices of ``psf`` and its z / x profiles with the Gaussian fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    cz, cy, cx = (s // 2 for s in psf.shape)
    dz, dy, dx = report["voxel_size"]
    sz, sy, sx = report["gaussian_sigma_voxels"]
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.5))
    ax[0].imshow(psf[cz], cmap="magma", aspect=dy / dx)
    ax[0].set_title("xy (central slice)")
    ax[1].imshow(psf[:, cy, :], cmap="magma", aspect=dz / dx)
    ax[1].set_title("xz (central slice)")
    for k, (prof, s, d, name) in enumerate(
        ((psf[cz, cy, :], sx, dx, "x"), (psf[:, cy, cx], sz, dz, "z"))
    ):
        t = (np.arange(prof.size) - prof.size // 2) * d
        tt = np.linspace(t[0], t[-1], 400)
        ax[2 + k].plot(t, prof / prof.max(), "o", ms=3, label="average")
        ax[2 + k].plot(tt, np.exp(-0.5 * (tt / (s * d)) ** 2), "-", label=f"gauss sigma {s * d:.3g} um")
        ax[2 + k].set_title(f"{name} profile, FWHM {report['fwhm_um'][2 if name == 'x' else 0]:.3g} um")
        ax[2 + k].set_xlabel("um")
        ax[2 + k].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- axial blur


def _line_spectrum(lines: np.ndarray) -> np.ndarray:
    """Mean power spectrum of the rows of ``lines`` (N, L), mean removed, Hann window."""
    lines = lines - lines.mean(axis=1, keepdims=True)
    w = np.hanning(lines.shape[1])
    return (np.abs(np.fft.rfft(lines * w, axis=1)) ** 2).mean(axis=0)


def _resample_lines(lines: np.ndarray, factor: float, length: int) -> np.ndarray:
    """Sample rows (N, L0) at i*factor and cubic-interpolate back (grid.upsample_z)."""
    from .grid import n_output_slices, resample_axis, upsample_z  # noqa: F401
    from .grid import acquired_positions

    n_z = int(math.floor((length - 1) / factor + 1e-9)) + 1
    n_iso = n_output_slices(n_z, factor)
    src = lines[:, :n_iso].T[:, :, None]  # (n_iso, N, 1)
    sampled = resample_axis(src, acquired_positions(n_z, factor), axis=0, kind="cubic",
                            dtype=np.float64)
    up = upsample_z(sampled, factor, dtype=np.float64)
    return up[:, :, 0].T


def estimate_axial_blur(
    volume,
    *,
    factor,
    sigma_xy=None,
    max_lines: int = 4096,
    plot=None,
    seed: int = 0,
):
    """Estimate the axial Gaussian blur of an anisotropic volume from its own content.

    Lateral lines (along y, of the acquired slices) show the lateral resolution. They are
    blurred by an extra Gaussian ``sigma_extra`` (voxels), sampled every ``factor``
    voxels and interpolated back with :func:`isonet_ij.grid.upsample_z` (Keys cubic), so
    that the sampling and interpolation transfer is modelled exactly; ``sigma_extra``
    is fitted so that their power spectrum (white noise floor removed) matches the axial
    spectrum of ``upsample_z(volume, factor)`` up to a constant, in log scale, over the
    band where the axial signal is above the noise. Then
    ``sigma_z = sqrt(sigma_xy**2 + sigma_extra**2)``.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Anisotropic volume, Z >= 4 acquired slices, not constant.
    factor : float
        Anisotropy factor (z spacing / xy spacing), >= 1.
    sigma_xy : float, optional
        Lateral Gaussian sigma (voxels) if known; default: fitted to the lateral spectrum
        assuming a power-law object spectrum (rough; ``sigma_z`` depends on it only
        weakly when ``sigma_z >> sigma_xy``).
    max_lines : int
        Use at most this many lines per direction (random subset).
    plot : str or Path, optional
        Write a PNG with the axial, lateral and fitted spectra.
    seed : int
        Seed of the line subset.

    Returns
    -------
    dict
        ``sigma_z``, ``sigma_xy``, ``sigma_extra`` (voxels of the isotropic grid),
        ``factor``, ``psf_spec`` (``"gaussian:SXY,SZ"`` for
        :func:`isonet_ij.psf.parse_psf_spec`), ``noise_var``, ``band`` (cycles/voxel),
        ``residual`` (rms log10 misfit), ``frequencies``, ``axial_spectrum``,
        ``lateral_spectrum``, ``model_spectrum``.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.optimize import minimize_scalar

    from .grid import check_factor, upsample_z

    vol = _as_volume(volume, "volume").astype(np.float64)
    f = check_factor(factor)
    if vol.shape[0] < 4:
        msg = (
            f"`volume` has {vol.shape[0]} z slices; estimating the axial blur needs at "
            "least 4 acquired slices: provide a larger stack or pass the PSF explicitly "
            "(--psf gaussian:SXY,SZ)"
        )
        raise ValueError(msg)
    if min(vol.shape[1:]) < 16:
        msg = f"`volume` must be at least 16 voxels along y and x, got shape {vol.shape}"
        raise ValueError(msg)
    if float(vol.std()) <= 1e-12 * max(1.0, float(np.abs(vol).max())):
        msg = (
            "`volume` is constant: it holds no structure to estimate the blur from; "
            "provide a volume with content or pass the PSF explicitly (--psf gaussian:SXY,SZ)"
        )
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    nz, ny, nx = vol.shape
    up = upsample_z(vol, f, dtype=np.float64)
    length = up.shape[0]
    if ny < length:  # lateral lines must be at least as long as the axial ones
        length = int(math.floor((ny - 1) / f + 1e-9) * f) + 1
    length_ax = length
    ax_lines = up[:length_ax].reshape(length_ax, -1).T
    if ax_lines.shape[0] > max_lines:
        ax_lines = ax_lines[rng.choice(ax_lines.shape[0], max_lines, replace=False)]
    # lateral lines along y (and x, transposed) from the acquired slices
    lat = np.concatenate(
        [vol[:, :length, :].transpose(0, 2, 1).reshape(-1, length),
         vol[:, :, :length].reshape(-1, length)] if nx >= length else
        [vol[:, :length, :].transpose(0, 2, 1).reshape(-1, length)]
    )
    if lat.shape[0] > max_lines:
        lat = lat[rng.choice(lat.shape[0], max_lines, replace=False)]

    # white noise variance from the top of the full-length lateral spectrum along x
    s_x = _line_spectrum(vol.reshape(-1, nx)[: max_lines * 4])
    k_x = np.fft.rfftfreq(nx)
    w2 = float((np.hanning(nx) ** 2).sum())
    noise_var = float(np.median(s_x[k_x > 0.4]) / w2)

    freqs = np.fft.rfftfreq(length)
    w2l = float((np.hanning(length) ** 2).sum())
    # noise spectrum after sampling + interpolation (axial), by simulation
    white = rng.standard_normal((512, length))
    n_ax = _line_spectrum(_resample_lines(white, f, length)) * noise_var
    s_ax = _line_spectrum(ax_lines) - n_ax
    s_lat_raw = _line_spectrum(lat)

    # fit band: axial signal above 3x the noise and above 1e-4 of its low-frequency level
    ref = float(np.max(s_ax[1:4]))
    band = (freqs > 0) & (s_ax > 3 * np.maximum(n_ax, 1e-30)) & (s_ax > 1e-4 * ref)
    idx = np.nonzero(band)[0]
    if idx.size == 0:
        msg = "`volume`: the axial spectrum is at the noise level; nothing to fit"
        raise ValueError(msg)
    # contiguous band from the first bin
    last = idx[0]
    for j in idx[1:]:
        if j != last + 1:
            break
        last = j
    band = np.zeros_like(band)
    band[idx[0]: last + 1] = True
    if band.sum() < 3:
        msg = (
            "`volume`: fewer than 3 axial frequencies are above the noise; provide a "
            "larger or less noisy volume, or pass the PSF explicitly"
        )
        raise ValueError(msg)

    def model(se):
        lines = gaussian_filter1d(lat, se, axis=1, mode="reflect") if se > 1e-3 else lat
        s = _line_spectrum(_resample_lines(lines, f, length))
        # the lateral noise (white, var noise_var) was blurred too: its spectrum
        nl = gaussian_filter1d(white, se, axis=1, mode="reflect") if se > 1e-3 else white
        s_n = _line_spectrum(_resample_lines(nl, f, length)) * noise_var
        return s - s_n

    la = np.log(np.maximum(s_ax[band], 1e-300))

    def cost(se):
        m = model(se)[band]
        if np.any(m <= 0):
            m = np.maximum(m, 1e-12 * np.abs(m).max())
        d = la - np.log(m)
        return float(np.mean((d - d.mean()) ** 2))

    hi = max(4.0 * f, 24.0)
    grid = np.linspace(0.0, hi, 25)
    costs = [cost(g) for g in grid]
    j = int(np.argmin(costs))
    a_, b_ = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    res = minimize_scalar(cost, bounds=(a_, b_), method="bounded", options={"xatol": 0.02})
    se = float(res.x)

    if sigma_xy is None:
        sxy = _fit_lateral_sigma(s_x - noise_var * w2, k_x)
    else:
        sxy = float(sigma_xy)
        if not (math.isfinite(sxy) and sxy >= 0):
            msg = f"`sigma_xy` must be a number >= 0 (voxels), got {sigma_xy!r}"
            raise ValueError(msg)
    sz = math.sqrt(sxy**2 + se**2)
    m = model(se)
    d = np.log(np.maximum(s_ax[band], 1e-300)) - np.log(np.maximum(m[band], 1e-300))
    scale = float(np.exp(d.mean()))
    report = {
        "sigma_z": sz,
        "sigma_xy": sxy,
        "sigma_xy_source": "given" if sigma_xy is not None else "lateral spectrum fit",
        "sigma_extra": se,
        "factor": f,
        "psf_spec": f"gaussian:{sxy:.4g},{sz:.4g}",
        "noise_var": noise_var,
        "band": [float(freqs[band][0]), float(freqs[band][-1])],
        "residual": float(math.sqrt(res.fun) / math.log(10)),
        "at_bound": bool(se >= hi - 1e-3),
        "frequencies": freqs,
        "axial_spectrum": s_ax,
        "lateral_spectrum": s_lat_raw,
        "model_spectrum": m * scale,
    }
    if plot is not None:
        plot_spectra(report, plot)
    return report


def _fit_lateral_sigma(s: np.ndarray, k: np.ndarray) -> float:
    """Rough lateral sigma: fit log S = a - p log k - (2 pi k sigma)^2 over the signal band."""
    ok = (k > 0) & (s > 1e-3 * np.max(s[1:4]))
    idx = np.nonzero(ok)[0]
    if idx.size < 4:
        return 0.0
    kk = k[idx]
    y = np.log(s[idx])
    a_mat = np.stack([np.ones_like(kk), -np.log(kk), -((2 * np.pi * kk) ** 2)], axis=1)
    coef, *_ = np.linalg.lstsq(a_mat, y, rcond=None)
    return float(math.sqrt(max(coef[2], 0.0) / 2.0))


def plot_spectra(report: dict, path) -> None:
    """PNG of the axial, lateral and fitted model power spectra of :func:`estimate_axial_blur`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    k = np.asarray(report["frequencies"])
    fig, ax = plt.subplots(figsize=(6, 4))
    sel = k > 0
    ax.semilogy(k[sel], np.maximum(report["axial_spectrum"][sel], 1e-30), label="axial (upsampled)")
    ax.semilogy(k[sel], report["lateral_spectrum"][sel], label="lateral")
    ax.semilogy(k[sel], np.maximum(report["model_spectrum"][sel], 1e-30), "--",
                label=f"lateral + blur, sigma_z {report['sigma_z']:.3g}")
    ax.axvspan(*report["band"], color="0.9", label="fit band")
    ax.set_xlabel("cycles / voxel (isotropic grid)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
