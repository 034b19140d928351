"""PSF guidance: measure a PSF from a bead stack, or estimate the axial blur from data.

* :func:`psf_from_beads` detects isolated sub-resolution beads in a 3D bead stack,
  registers them with sub-voxel accuracy (3D Gaussian fit, cubic-spline shift), averages
  them and reports lateral/axial FWHM and a 3D Gaussian fit.
* :func:`estimate_axial_blur` estimates, from an anisotropic volume alone, the Gaussian
  axial sigma (voxels of the isotropic grid): for an isotropic object the 3D power
  spectrum on a shell ``|k| = const`` falls as ``exp(-4 pi^2 (sz^2 - sxy^2) kz^2)``, which
  is fitted over shells and axial frequencies above the noise.

Axes ``(z, y, x)``; voxel sizes ``(dz, dy, dx)`` in micrometres; sigmas in voxels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psf_from_beads", "estimate_axial_blur", "estimate_summary", "auto_psf_spec", "fit_optical_psf", "shell_extra_sigma", "plot_bead_psf", "plot_spectra"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --------------------------------------------------------------------------- helpers


def _as_volume(arr, name: str) -> np.ndarray:
    from .volume_io import as_volume3d

    a = as_volume3d(arr, name)
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

    from .volume_io import atomic_path

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


def estimate_axial_blur(
    volume,
    *,
    factor,
    sigma_xy=None,
    max_lines: int = 4096,
    plot=None,
    seed: int = 0,
    shell_width: float = 0.008,
    snr: float = 5.0,
):
    """Estimate the axial Gaussian blur of an anisotropic volume from its own content.

    Spherical-shell comparison of the 3D power spectrum. For an object with an isotropic
    power spectrum ``P0(|k|)`` and a Gaussian PSF, the spectrum of the acquired volume is
    ``P0(|k|) exp(-4 pi^2 (sigma_xy^2 |k_xy|^2 + sigma_z^2 k_z^2))``; on a shell
    ``|k| = const`` this is ``c(|k|) exp(-4 pi^2 sigma_extra^2 k_z^2)`` with
    ``sigma_extra^2 = sigma_z^2 - sigma_xy^2``, whatever ``P0`` is. So the volume (its
    acquired slices, no interpolation) is prewhitened along z (first difference, undone
    in the spectrum), Hann-windowed on all axes and Fourier transformed; the power is
    averaged in cells (shell of ``|k|`` x ``k_z`` bin), the white noise floor (measured
    per ``k_z`` at lateral frequencies > 0.4 cycles/voxel) is subtracted, and
    ``log power = c_shell - 4 pi^2 sigma_extra^2 k_z^2`` is fitted by weighted least
    squares over the cells whose signal exceeds ``snr`` x the noise (``k_z`` below
    0.8 x the axial Nyquist). The few acquired slices make the z window's main lobe
    broaden the measured spectrum; its variance ``1 / (3 N^2 f^2)`` (Hann, ``N`` slices)
    is removed from the fitted Gaussian's. Then
    ``sigma_z = sqrt(sigma_xy**2 + sigma_extra**2)``.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Anisotropic volume, Z >= 4 acquired slices, not constant. At most the central
        256 x 256 voxels of each slice are used.
    factor : float
        Anisotropy factor (z spacing / xy spacing), >= 1.
    sigma_xy : float, optional
        Lateral Gaussian sigma (voxels) if known; default: fitted to the lateral spectrum
        assuming a power-law object spectrum (rough; ``sigma_z`` depends on it only
        weakly when ``sigma_z >> sigma_xy``).
    max_lines : int
        Use at most this many lines for the rough lateral ``sigma_xy`` fit.
    plot : str or Path, optional
        Write a PNG with the shell-normalised axial spectrum and the fitted Gaussian.
    seed : int
        Unused (kept for compatibility; the estimate is deterministic).
    shell_width : float
        Width of the ``|k|`` shells (cycles/voxel).
    snr : float
        A cell is fitted when its noise-subtracted power exceeds ``snr`` x the noise.

    Returns
    -------
    dict
        ``sigma_z``, ``sigma_xy``, ``sigma_extra`` (voxels of the isotropic grid),
        ``factor``, ``psf_spec`` (``"gaussian:SXY,SZ"`` for
        :func:`isonet_ij.psf.parse_psf_spec`), ``noise_var`` (noise power at k_z = 0),
        ``band`` (k_z range fitted, cycles/voxel of the isotropic grid), ``n_cells``,
        ``n_shells``, ``residual`` (weighted rms log10 misfit), ``at_bound`` (the fit gave
        no extra blur), ``frequencies`` (k_z bins), ``axial_spectrum`` (shell-normalised
        measured power per k_z bin, NaN where no cell was fitted), ``lateral_spectrum``
        (ones: no extra blur), ``model_spectrum`` (fitted Gaussian).
    """
    from .grid import check_factor

    del seed
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
    if not (math.isfinite(shell_width) and shell_width > 0):
        msg = f"`shell_width` must be a number > 0 (cycles/voxel), got {shell_width!r}"
        raise ValueError(msg)
    _, ny0, nx0 = vol.shape
    cy, cx = max((ny0 - 256) // 2, 0), max((nx0 - 256) // 2, 0)
    vol = vol[:, cy: cy + 256, cx: cx + 256]

    # 3D spectrum of the z-prewhitened, Hann-windowed acquired slices
    v = np.diff(vol, axis=0)
    v -= v.mean(axis=(1, 2), keepdims=True)
    nz, ny, nx = v.shape
    w = (np.hanning(nz + 2)[1:-1][:, None, None] * np.hanning(ny + 2)[1:-1][None, :, None]
         * np.hanning(nx + 2)[1:-1][None, None, :])
    power = np.abs(np.fft.fftn(v * w)) ** 2 / float(np.sum(w**2))
    fz = np.fft.fftfreq(nz)
    rho = np.sqrt(np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2)
    hi_lat = rho > 0.4
    nzb = nz // 2 + 1
    jz_of = np.rint(np.abs(fz) * nz).astype(int)  # 0 .. nz//2
    noise_z = np.array([np.median(power[j][hi_lat]) for j in range(nz)])
    noise_b = np.zeros(nzb)
    for j in range(nz):
        noise_b[jz_of[j]] = noise_z[j]  # +-k_z give the same floor
    kz_b = np.arange(nzb) / (nz * f)  # cycles / isotropic voxel
    gain_b = 4.0 * np.sin(np.pi * np.arange(nzb) / nz) ** 2  # |1 - e^{-2 pi i k}|^2

    kabs = np.sqrt((np.abs(fz) / f)[:, None, None] ** 2 + rho[None] ** 2)
    shell = np.floor(kabs / shell_width).astype(np.int64)
    n_sh = int(shell.max()) + 1
    idx = shell * nzb + np.broadcast_to(jz_of[:, None, None], power.shape)
    s = np.bincount(idx.ravel(), power.ravel(), minlength=n_sh * nzb).reshape(n_sh, nzb)
    c = np.bincount(idx.ravel(), minlength=n_sh * nzb).reshape(n_sh, nzb)
    with np.errstate(invalid="ignore", divide="ignore"):
        sig = s / np.maximum(c, 1) - noise_b[None, :]
        ok = ((c >= 4) & (sig > snr * noise_b[None, :]) & (gain_b[None, :] > 1e-12)
              & (kz_b[None, :] <= 0.8 * 0.5 / f))
        sig = sig / np.where(gain_b > 0, gain_b, 1.0)[None, :]
    ok[0, :] = False  # the DC shell
    shells = [i for i in range(n_sh) if int(ok[i].sum()) >= 2]
    cells = [(si, i, j) for si, i in enumerate(shells) for j in np.nonzero(ok[i])[0]]
    if len(cells) < 3 or len({j for _, _, j in cells}) < 2:
        msg = (
            "`volume`: fewer than 3 axial frequencies are above the noise; provide a "
            "larger or less noisy volume, or pass the PSF explicitly (--psf gaussian:SXY,SZ)"
        )
        raise ValueError(msg)
    a_mat = np.zeros((len(cells), len(shells) + 1))
    y = np.empty(len(cells))
    wt = np.empty(len(cells))
    for r, (si, i, j) in enumerate(cells):
        a_mat[r, si] = 1.0
        a_mat[r, -1] = -4.0 * np.pi**2 * kz_b[j] ** 2
        y[r] = math.log(sig[i, j])
        wt[r] = math.sqrt(c[i, j])
    coef, *_ = np.linalg.lstsq(a_mat * wt[:, None], y * wt, rcond=None)
    resid = (y - a_mat @ coef) * wt
    residual = float(math.sqrt(np.sum(resid**2) / np.sum(wt**2)) / math.log(10))
    se2_fit = float(coef[-1])

    if sigma_xy is None:
        lines = vol.reshape(-1, vol.shape[2])[: max_lines * 4]
        s_x = _line_spectrum(lines)
        k_x = np.fft.rfftfreq(vol.shape[2])
        w2 = float((np.hanning(vol.shape[2]) ** 2).sum())
        nv = float(np.median(s_x[k_x > 0.4]) / w2)
        sxy = _fit_lateral_sigma(s_x - nv * w2, k_x)
    else:
        sxy = float(sigma_xy)
        if not (math.isfinite(sxy) and sxy >= 0):
            msg = f"`sigma_xy` must be a number >= 0 (voxels), got {sigma_xy!r}"
            raise ValueError(msg)
    # undo the broadening by the z window's main lobe (Hann, nz samples): the fitted
    # Gaussian's variance in k_z is 1/(8 pi^2 sz^2) + 1/(3 nz^2 f^2)
    sz_fit2 = sxy**2 + se2_fit
    at_bound = not sz_fit2 > sxy**2
    if sz_fit2 > 0:
        var = 1.0 / (8.0 * np.pi**2 * sz_fit2) - 1.0 / (3.0 * nz**2 * f**2)
        sz2 = 1.0 / (8.0 * np.pi**2 * var) if var > 0 else float("inf")
    else:
        sz2 = 0.0
    if not math.isfinite(sz2):
        msg = (
            "`volume`: the axial spectrum is narrower than the resolution of "
            f"{vol.shape[0]} slices allows; provide more slices or pass the PSF explicitly"
        )
        raise ValueError(msg)
    sz = math.sqrt(max(sz2, sxy**2))
    se = math.sqrt(max(sz**2 - sxy**2, 0.0))

    # shell-normalised axial spectrum for the plot / report
    norm = np.full(nzb, np.nan)
    acc = np.zeros(nzb)
    cnt = np.zeros(nzb)
    for (si, i, j) in cells:
        acc[j] += math.log(sig[i, j]) - coef[si]
        cnt[j] += 1
    norm[cnt > 0] = np.exp(acc[cnt > 0] / cnt[cnt > 0])
    used = sorted({j for _, _, j in cells})
    report = {
        "sigma_z": sz,
        "sigma_xy": sxy,
        "sigma_xy_source": "given" if sigma_xy is not None else "lateral spectrum fit",
        "sigma_extra": se,
        "factor": f,
        "psf_spec": f"gaussian:{sxy:.4g},{sz:.4g}",
        "noise_var": float(noise_b[0]),
        "band": [float(kz_b[used[0]]), float(kz_b[used[-1]])],
        "n_cells": len(cells),
        "n_shells": len(shells),
        "residual": residual,
        "at_bound": bool(at_bound),
        "frequencies": kz_b,
        "axial_spectrum": norm,
        "lateral_spectrum": np.ones(nzb),
        "model_spectrum": np.exp(-4.0 * np.pi**2 * max(se2_fit, 0.0) * kz_b**2),
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

    from .volume_io import atomic_path

    k = np.asarray(report["frequencies"])
    fig, ax = plt.subplots(figsize=(6, 4))
    sel = k > 0
    ax.semilogy(k[sel], np.maximum(report["axial_spectrum"][sel], 1e-30), label="axial (shell-normalised)")
    ax.semilogy(k[sel], report["lateral_spectrum"][sel], label="no extra blur")
    ax.semilogy(k[sel], np.maximum(report["model_spectrum"][sel], 1e-30), "--",
                label=f"fit, sigma_z {report['sigma_z']:.3g}")
    ax.axvspan(*report["band"], color="0.9", label="fit band")
    ax.set_xlabel("k_z, cycles / voxel (isotropic grid)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def estimate_summary(report: dict) -> dict:
    """The scalar part of an :func:`estimate_axial_blur` report (no spectra), for JSON logs."""
    return {k: v for k, v in report.items() if not k.endswith("spectrum") and k != "frequencies"}


#: The parameter ``auto:<model>`` fits for each optical model (the others are given or default).
FREE_PARAMETER = {"confocal": ("na", 0.5, 1.45), "widefield": ("na", 0.5, 1.45),
                  "lightsheet": ("na_illum", 0.03, 0.5)}


def shell_extra_sigma(h, band, *, n: int = 128) -> float:
    """The extra axial sigma the spectrum fit of :func:`estimate_axial_blur` sees in a PSF.

    The PSF's 3D OTF is sampled on spherical shells ``|k|`` (0.01 cycles/voxel apart, from
    the band's top to 0.3) at axial frequencies across ``band``; ``log |OTF|^2`` is fitted
    as ``c_shell - 4 pi^2 sigma_extra^2 k_z^2``, as the estimator fits the data. For a
    Gaussian PSF this is ``sqrt(sigma_z^2 - sigma_xy^2)``; for a heavy-tailed optical PSF
    it is the extra blur of its core, which is what the data show.

    Parameters
    ----------
    h : (Z, Y, X) ndarray
        PSF on the isotropic grid, laterally symmetric.
    band : (low, high)
        Axial frequencies in cycles per isotropic voxel (``report["band"]``).
    """
    lo, hi = float(band[0]), float(band[1])
    n = max(n, 1 << int(math.ceil(math.log2(2 * max(np.shape(h))))))
    otf = np.abs(np.fft.fftn(np.asarray(h, np.float64), (n, n, n))) ** 2
    otf = otf[:, 0, :] / otf[0, 0, 0]  # (k_z, k_x) plane: the PSF is symmetric about z
    shells = np.arange(max(hi, 0.02), 0.3, 0.01)
    kz = np.linspace(lo, hi, 12)
    rows, y = [], []
    for si, k in enumerate(shells):
        for z in kz[kz <= k]:
            x = math.sqrt(k * k - z * z)
            iz, ix = z * n, x * n
            z0, x0 = int(iz), int(ix)
            dz, dx = iz - z0, ix - x0
            v = (otf[z0, x0] * (1 - dz) * (1 - dx) + otf[z0 + 1, x0] * dz * (1 - dx)
                 + otf[z0, x0 + 1] * (1 - dz) * dx + otf[z0 + 1, x0 + 1] * dz * dx)
            row = np.zeros(len(shells) + 1)
            row[si], row[-1] = 1.0, -4.0 * np.pi**2 * z * z
            rows.append(row)
            y.append(math.log(max(v, 1e-300)))
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(y), rcond=None)
    return math.sqrt(max(float(coef[-1]), 0.0))


def fit_optical_psf(report: dict, model: str, *, xy_voxel_size: float, iterations: int = 10):
    """An optical PSF model whose axial blur matches an :func:`estimate_axial_blur` report.

    The model's free parameter (:data:`FREE_PARAMETER`: the NA of a confocal or widefield
    microscope, the illumination NA of a light sheet) is found by bisection so that the
    model's :func:`shell_extra_sigma` over the report's band equals the measured
    ``sigma_extra``; the other parameters are those of ``model`` (or the defaults). The
    result keeps the model's true shape (side lobes, tails), which a Gaussian with the
    same core misses.

    Parameters
    ----------
    report : dict
        From :func:`estimate_axial_blur` (``sigma_extra``, ``band``).
    model : str
        ``confocal``, ``widefield`` or ``lightsheet``, optionally with given parameters in
        the ``--psf`` syntax without the free one, e.g. ``confocal:n=1.33,ex=488,em=520``.
    xy_voxel_size : float
        Lateral voxel size in um (the isotropic grid's spacing).

    Returns
    -------
    (spec, info)
        The fitted ``--psf`` spec and ``{"model", "parameter", "value", "sigma_extra_target",
        "sigma_extra_model", "at_bound"}``.
    """
    from .psf import parse_psf_spec

    kind, _, given = str(model).strip().partition(":")
    kind = kind.strip().lower().replace("light-sheet", "lightsheet")
    if kind not in FREE_PARAMETER:
        msg = f"auto:{model}: the model must be one of {', '.join(FREE_PARAMETER)} (e.g. auto:confocal:n=1.33,em=520)"
        raise ValueError(msg)
    from .psf import PAPER_DEFAULTS

    name, lo, hi = FREE_PARAMETER[kind]
    pairs_ = dict(kv.split("=", 1) for kv in given.split(",") if "=" in kv)
    keys = [k.strip().lower() for k in pairs_]
    n_imm = float(next((v for k, v in pairs_.items() if k.strip().lower() in ("n", "n_immersion")),
                       PAPER_DEFAULTS[kind]["n_immersion"]))
    hi = min(hi, 0.98 * n_imm)
    if name in keys:
        msg = f"auto:{model}: {name} is what auto fits; leave it out (or give the full PSF without auto)"
        raise ValueError(msg)
    target = float(report["sigma_extra"])
    vs = (xy_voxel_size,) * 3

    def spec_of(value):
        return f"{kind}:{name}={value:.4g}" + (f",{given}" if given.strip() else "")

    def extra(value):
        return shell_extra_sigma(parse_psf_spec(spec_of(value), voxel_size=vs)[0], report["band"])

    # the extra axial blur falls as the (illumination) NA grows
    e_lo, e_hi = extra(lo), extra(hi)
    if target >= e_lo or target <= e_hi:
        value = lo if target >= e_lo else hi
        achieved = e_lo if target >= e_lo else e_hi
    else:
        a, b = lo, hi
        for _ in range(iterations):
            mid = 0.5 * (a + b)
            if extra(mid) > target:
                a = mid
            else:
                b = mid
        value = 0.5 * (a + b)
        achieved = extra(value)
    info = {"model": kind, "parameter": name, "value": float(value), "sigma_extra_target": target,
            "sigma_extra_model": float(achieved), "at_bound": bool(value in (lo, hi))}
    return spec_of(value), info


def auto_psf_spec(volume, factor, *, model: str | None = None, xy_voxel_size=None) -> tuple[str, dict]:
    """``--psf auto[:MODEL]``: the PSF spec estimated from the volume, and the estimate.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
    factor : float
    model : str, optional
        None: a Gaussian (``gaussian:SXY,SZ``). ``confocal``, ``widefield`` or
        ``lightsheet`` (with given parameters, see :func:`fit_optical_psf`): that model
        with its free NA fitted to the measured axial blur; needs ``xy_voxel_size``.
    xy_voxel_size : float, optional
        Lateral voxel size in um.

    Returns
    -------
    (spec, summary)
        The spec (sigmas in voxels of the isotropic grid) and :func:`estimate_summary`
        of :func:`estimate_axial_blur` (plus ``model_fit`` for a model), for the config.
    """
    if model and xy_voxel_size is None:  # before the estimate: fail fast
        msg = (f"--psf auto:{model} needs the volume's xy voxel size in um (calibration); set it "
               "(Image > Properties in Fiji) or use --psf auto (a Gaussian, in voxels)")
        raise ValueError(msg)
    rep = estimate_axial_blur(volume, factor=factor)
    summary = estimate_summary(rep)
    if not model:
        return rep["psf_spec"], summary
    spec, info = fit_optical_psf(rep, model, xy_voxel_size=float(xy_voxel_size))
    summary["model_fit"] = info
    summary["gaussian_spec"] = rep["psf_spec"]
    return spec, summary
