"""The axial blur of a volume estimated from its own content (``--psf auto[:MODEL]``).

For an isotropic object the 3D power spectrum on a shell ``|k| = const`` falls as
``exp(-4 pi^2 (sz^2 - sxy^2) kz^2)``, whatever the object's spectrum is; this is fitted
over shells and axial frequencies above the noise (:func:`estimate_axial_blur`). An
optical model can then be fitted to the measured blur (:func:`fit_optical_psf`).

Axes ``(z, y, x)``; sigmas in voxels of the isotropic grid; frequencies in cycles per
isotropic voxel.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._models import PAPER_DEFAULTS
from ._plots import plot_spectra
from ._spec import parse_psf_spec
from ._validate import check_volume

__all__ = [
    "FREE_PARAMETER",
    "estimate_axial_blur",
    "estimate_summary",
    "shell_extra_sigma",
    "fit_optical_psf",
    "auto_psf_spec",
]

#: Slices are cropped to at most this many voxels along y and x (their centre).
_MAX_LATERAL = 256


def estimate_axial_blur(volume, *, factor, sigma_xy=None, max_lines: int = 4096, plot=None,
                        seed: int = 0, shell_width: float = 0.008, snr: float = 5.0, max_kz=None):
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
    max_kz : float, optional
        Highest axial frequency fitted (cycles/voxel of the isotropic grid); default and
        upper limit ``0.8 * 0.5 / factor``. A lower one measures a volume's blur over the
        band a thinned stack would show.

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
    from isonet_ij.grid import check_factor

    del seed
    vol = check_volume(volume, "volume").astype(np.float64)
    f = check_factor(factor)
    _check_blur_input(vol, shell_width, max_kz)
    _, ny0, nx0 = vol.shape
    cy, cx = max((ny0 - _MAX_LATERAL) // 2, 0), max((nx0 - _MAX_LATERAL) // 2, 0)
    vol = vol[:, cy: cy + _MAX_LATERAL, cx: cx + _MAX_LATERAL]
    spectra = _shell_spectra(vol, f, shell_width, snr, max_kz)
    fit = _fit_shells(spectra)
    sxy = _lateral_sigma(vol, sigma_xy, max_lines)
    sz, se, at_bound = _axial_sigma(sxy, float(fit.coef[-1]), spectra.nz, f, vol.shape[0])
    report = _blur_report(spectra, fit, sigma_z=sz, sigma_xy=sxy, sigma_extra=se, factor=f,
                          at_bound=at_bound, sigma_xy_given=sigma_xy is not None)
    if plot is not None:
        plot_spectra(report, plot)
    return report


def _check_blur_input(vol: np.ndarray, shell_width: float, max_kz=None) -> None:
    """Reject volumes too small or flat to estimate from, and a bad ``shell_width``."""
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
    if max_kz is not None and not (isinstance(max_kz, (int, float)) and math.isfinite(max_kz) and max_kz > 0):
        msg = f"`max_kz` must be a number > 0 (cycles/voxel), got {max_kz!r}"
        raise ValueError(msg)


class _ShellSpectra(NamedTuple):
    """Power of the acquired slices in cells (shell of ``|k|`` x ``k_z`` bin)."""

    nz: int  # acquired slices after the z first difference
    kz: np.ndarray  # (nzb,) k_z of each bin, cycles / isotropic voxel
    noise: np.ndarray  # (nzb,) white noise floor per k_z bin
    power: np.ndarray  # (n_shells, nzb) noise-free power, prewhitening undone
    count: np.ndarray  # (n_shells, nzb) Fourier samples per cell
    ok: np.ndarray  # (n_shells, nzb) cells above the noise, used in the fit


def _prewhitened_power(vol: np.ndarray) -> np.ndarray:
    """3D power spectrum of the z-prewhitened (first difference), Hann-windowed slices."""
    v = np.diff(vol, axis=0)
    v -= v.mean(axis=(1, 2), keepdims=True)
    nz, ny, nx = v.shape
    w = (np.hanning(nz + 2)[1:-1][:, None, None] * np.hanning(ny + 2)[1:-1][None, :, None]
         * np.hanning(nx + 2)[1:-1][None, None, :])
    return np.abs(np.fft.fftn(v * w)) ** 2 / float(np.sum(w**2))


def _shell_spectra(vol: np.ndarray, f: float, shell_width: float, snr: float, max_kz=None) -> _ShellSpectra:
    """Mean power per cell, white noise floor (lateral frequencies > 0.4) subtracted."""
    power = _prewhitened_power(vol)
    nz, ny, nx = power.shape
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
              & (kz_b[None, :] <= min(0.8 * 0.5 / f, np.inf if max_kz is None else float(max_kz))))
        sig = sig / np.where(gain_b > 0, gain_b, 1.0)[None, :]
    ok[0, :] = False  # the DC shell
    return _ShellSpectra(nz, kz_b, noise_b, sig, c, ok)


class _ShellFit(NamedTuple):
    """Weighted least-squares fit of ``log power = c_shell - 4 pi^2 sigma_extra^2 k_z^2``."""

    coef: np.ndarray  # (n_shells + 1,) c_shell per fitted shell, then sigma_extra^2
    residual: float  # weighted rms misfit, log10 units
    cells: list  # (shell index in the fit, shell, k_z bin) of each fitted cell
    shells: list  # the shells fitted (those with >= 2 cells above the noise)


def _fit_shells(sp: _ShellSpectra) -> _ShellFit:
    """Fit the Gaussian axial decay over the cells above the noise (weights sqrt(count))."""
    ok, sig, c, kz_b = sp.ok, sp.power, sp.count, sp.kz
    shells = [i for i in range(ok.shape[0]) if int(ok[i].sum()) >= 2]
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
    return _ShellFit(coef, residual, cells, shells)


def _lateral_sigma(vol: np.ndarray, sigma_xy, max_lines: int) -> float:
    """``sigma_xy`` checked, or (None) a rough fit to the spectrum of the x lines."""
    if sigma_xy is None:
        lines = vol.reshape(-1, vol.shape[2])[: max_lines * 4]
        s_x = _line_spectrum(lines)
        k_x = np.fft.rfftfreq(vol.shape[2])
        w2 = float((np.hanning(vol.shape[2]) ** 2).sum())
        nv = float(np.median(s_x[k_x > 0.4]) / w2)
        return _fit_lateral_sigma(s_x - nv * w2, k_x)
    sxy = float(sigma_xy)
    if not (math.isfinite(sxy) and sxy >= 0):
        msg = f"`sigma_xy` must be a number >= 0 (voxels), got {sigma_xy!r}"
        raise ValueError(msg)
    return sxy


def _line_spectrum(lines: np.ndarray) -> np.ndarray:
    """Mean power spectrum of the rows of ``lines`` (N, L), mean removed, Hann window."""
    lines = lines - lines.mean(axis=1, keepdims=True)
    w = np.hanning(lines.shape[1])
    return (np.abs(np.fft.rfft(lines * w, axis=1)) ** 2).mean(axis=0)


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


def _axial_sigma(sxy: float, se2_fit: float, nz: int, f: float, n_slices: int):
    """``(sigma_z, sigma_extra, at_bound)`` from the fitted ``sigma_extra^2``.

    The few acquired slices make the z window's main lobe broaden the measured spectrum:
    the fitted Gaussian's variance in k_z is ``1/(8 pi^2 sz^2) + 1/(3 nz^2 f^2)`` (Hann,
    ``nz`` samples), so the window's share is removed.
    """
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
            f"{n_slices} slices allows; provide more slices or pass the PSF explicitly"
        )
        raise ValueError(msg)
    sz = math.sqrt(max(sz2, sxy**2))
    se = math.sqrt(max(sz**2 - sxy**2, 0.0))
    return sz, se, at_bound


def _normalised_axial_spectrum(sp: _ShellSpectra, fit: _ShellFit) -> np.ndarray:
    """Measured power per k_z bin with each shell's constant removed (NaN: no cell fitted)."""
    nzb = sp.kz.size
    norm = np.full(nzb, np.nan)
    acc = np.zeros(nzb)
    cnt = np.zeros(nzb)
    for (si, i, j) in fit.cells:
        acc[j] += math.log(sp.power[i, j]) - fit.coef[si]
        cnt[j] += 1
    norm[cnt > 0] = np.exp(acc[cnt > 0] / cnt[cnt > 0])
    return norm


def _blur_report(sp: _ShellSpectra, fit: _ShellFit, *, sigma_z, sigma_xy, sigma_extra, factor,
                 at_bound, sigma_xy_given) -> dict:
    """The report of :func:`estimate_axial_blur` (see there)."""
    used = sorted({j for _, _, j in fit.cells})
    kz_b = sp.kz
    return {
        "sigma_z": sigma_z,
        "sigma_xy": sigma_xy,
        "sigma_xy_source": "given" if sigma_xy_given else "lateral spectrum fit",
        "sigma_extra": sigma_extra,
        "factor": factor,
        "psf_spec": f"gaussian:{sigma_xy:.4g},{sigma_z:.4g}",
        "noise_var": float(sp.noise[0]),
        "band": [float(kz_b[used[0]]), float(kz_b[used[-1]])],
        "n_cells": len(fit.cells),
        "n_shells": len(fit.shells),
        "residual": fit.residual,
        "at_bound": bool(at_bound),
        "frequencies": kz_b,
        "axial_spectrum": _normalised_axial_spectrum(sp, fit),
        "lateral_spectrum": np.ones(kz_b.size),
        "model_spectrum": np.exp(-4.0 * np.pi**2 * max(float(fit.coef[-1]), 0.0) * kz_b**2),
    }


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
    kind, _, given = str(model).strip().partition(":")
    kind = kind.strip().lower().replace("light-sheet", "lightsheet")
    if kind not in FREE_PARAMETER:
        msg = f"auto:{model}: the model must be one of {', '.join(FREE_PARAMETER)} (e.g. auto:confocal:n=1.33,em=520)"
        raise ValueError(msg)
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
