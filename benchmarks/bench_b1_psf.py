"""The extra axial blur of the light-sheet volume B1: three independent lines of evidence.

B1 (``../shared/data/real``, mesoSPIM, cleared mouse brain nuclei, ~isotropic sampling,
factor 1) has two conflicting estimates of its extra axial Gaussian blur ``s`` (voxels; the
axial PSF sigma is ``sqrt(sigma_xy^2 + s^2)``): ``psf.estimate_axial_blur`` (3D spectrum on
shells) gives ``s = 0.50``, the "round objects" estimate of ``bench_real.py`` (autocorrelation
FWHM z vs x) gives ``s = 2.60``. This script weighs them with:

1. Spectral: mean 1D power spectra of every line along z and along x (mean removed, Hann
   window), each minus its noise floor (median power at >= 0.4 cycles/voxel); in the band
   where both exceed ``BAND_SNR`` x their floor, ``log(P_z / P_x) = c - (2 pi k s)^2`` is fitted
   by least squares -> ``s``; also over the band's low (k < ``K_SPLIT``) and high halves
   separately (a Gaussian blur gives one ``s`` for both). The attenuation
   ``exp(-(2 pi k s)^2)`` predicted for s = 0.5 and 2.6 across the high half and at the
   measured z cut-off, versus the observed.
2. Smallest objects as probes: bright separated local maxima; a Gaussian plus offset is
   fitted to the profile through each peak along z, y and x; ``d = sigma_z^2 - sigma_lat^2``
   (lateral = mean of y and x) is ``s^2`` for round objects (more for objects longer in z).
   If s were 2.6, every object would have ``d >= 6.8``.
3. Object shape vs blur: the autocorrelation FWHM z / x of the volume band-passed at
   several scales (differences of Gaussians). A Gaussian blur elongates the fine bands'
   autocorrelation most; objects longer along z elongate every band alike.

All three are calibrated on phantoms (balls of B1's size and density, blurred
laterally by B1's sigma_xy and along z by s = 0.5 or 2.6, or ellipsoids 2x longer along z
with s = 0.5, plus noise): what each measure reads for a known answer.

Writes ``benchmarks/results/b1_psf.md`` (+ ``.json``) and ``b1_psf.png``::

    .venv/bin/python benchmarks/bench_b1_psf.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import REAL, REAL_DATA, RESULTS, command_line, estimate, machine_line, save_figure, write_report

#: the two candidate extra axial sigmas (voxels): product estimate, round-objects estimate
CANDIDATES = (0.5, 2.6)
#: signal band of the spectral fit: both spectra above this many times their noise floor
BAND_SNR = 3.0
#: the spectral band is also fitted in two halves, below and above this frequency (cycles/voxel)
K_SPLIT = 0.12
#: band-pass scales (pairs of Gaussian sigmas, voxels) for the autocorrelation widths
BANDS = ((0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0))
#: profile half-windows (z, y, x) for the object fits
HALF = (10, 6, 6)


# ---------------------------------------------------------------- 1: spectra


def axis_spectrum(vol, axis: int):
    """(k, mean power) of every line along ``axis``: mean removed, Hann window, per window energy."""
    a = np.moveaxis(np.asarray(vol, np.float64), axis, -1)
    n = a.shape[-1]
    lines = a.reshape(-1, n)
    lines = lines - lines.mean(axis=1, keepdims=True)
    w = np.hanning(n)
    return np.fft.rfftfreq(n), (np.abs(np.fft.rfft(lines * w, axis=1)) ** 2).mean(axis=0) / float((w**2).sum())


def cutoff(k, p, floor, ratio=2.0) -> float:
    """First frequency where the 3-bin smoothed spectrum falls below ``ratio`` x ``floor``."""
    ps = np.convolve(np.pad(p, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    below = np.flatnonzero(ps[1:] < ratio * floor) + 1
    return float(k[below[0]]) if below.size else float(k[-1])


def spectral_fit(vol) -> dict:
    """Log ratio of the noise-subtracted z and x spectra, fitted as ``c - (2 pi k s)^2``."""
    (kz, pz), (kx, px) = axis_spectrum(vol, 0), axis_spectrum(vol, 2)
    fz, fx = float(np.median(pz[kz >= 0.4])), float(np.median(px[kx >= 0.4]))
    k = kz[1:]
    px_i = np.interp(k, kx, px)  # x sampled at z's frequencies (different line lengths)
    sz, sx = pz[1:] - fz, px_i - fx
    ok = (sz > (BAND_SNR - 1) * fz) & (sx > (BAND_SNR - 1) * fx)
    ok[0] = False  # the lowest bin is dominated by the window's leakage of the mean
    band = np.cumprod(ok[1:]).astype(bool)  # contiguous from the second bin up
    band = np.concatenate([[False], band])
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.log(sz / sx)
    a = np.stack([np.ones(band.sum()), -(2 * np.pi * k[band]) ** 2], axis=1)
    (c, s2), *_ = np.linalg.lstsq(a, lr[band], rcond=None)
    resid = float(np.sqrt(np.mean((lr[band] - a @ [c, s2]) ** 2)))
    fits = {}
    for s in CANDIDATES:  # best offset for a fixed s
        cs = float(np.mean(lr[band] + (2 * np.pi * k[band] * s) ** 2))
        miss = lr[band] - cs + (2 * np.pi * k[band] * s) ** 2
        fits[f"{s:g}"] = {"c": cs, "rms": float(np.sqrt(np.mean(miss**2)))}
    return {"k": k, "log_ratio": lr, "band": band, "band_k": [float(k[band][0]), float(k[band][-1])],
            "floor_z": fz, "floor_x": fx, "s2": float(s2), "s": float(np.sqrt(max(s2, 0.0))), "c": float(c),
            "rms": resid, "fixed": fits, "k_z": cutoff(kz, pz, max(fz, fx)), "k_x": cutoff(kx, px, fx),
            "pz": pz, "px": px, "kx": kx}


def sub_band_s(fit, lo: float, hi: float) -> float:
    """Extra sigma from the slope of the fitted log ratio over ``lo <= k < hi`` only (NaN: < 3 bins)."""
    k, lr, band = fit["k"], fit["log_ratio"], fit["band"]
    sel = band & (k >= lo) & (k < hi)
    if sel.sum() < 3:
        return float("nan")
    a = np.stack([np.ones(sel.sum()), -(2 * np.pi * k[sel]) ** 2], axis=1)
    (_, s2), *_ = np.linalg.lstsq(a, lr[sel], rcond=None)
    return float(np.sign(s2) * np.sqrt(abs(s2)))


def spectral_evidence(vol) -> dict:
    """:func:`spectral_fit` plus the fits over the low and high halves of the band and the
    attenuation test: the drop of the ratio across the high sub-band, observed vs predicted."""
    fit = spectral_fit(vol)
    k, lr, band = fit["k"], fit["log_ratio"], fit["band"]
    top = float(k[band][-1])
    fit["s_low"] = sub_band_s(fit, 0.0, K_SPLIT)
    fit["s_high"] = sub_band_s(fit, K_SPLIT, top + 1e-9)
    hi = band & (k >= K_SPLIT)
    if hi.sum() >= 2:
        k1, k2 = float(k[hi][0]), float(k[hi][-1])
        line = np.polyfit(k[hi] ** 2, lr[hi], 1)  # observed log drop from k1 to k2, smoothed
        fit["drop"] = {"k1": k1, "k2": k2, "observed": float(np.exp(line[0] * (k2**2 - k1**2))),
                       **{f"{s:g}": float(np.exp(-(2 * np.pi * s) ** 2 * (k2**2 - k1**2))) for s in CANDIDATES}}
    fit["predicted_at_kz"] = {f"{s:g}": float(np.exp(-(2 * np.pi * fit["k_z"] * s) ** 2)) for s in CANDIDATES}
    fit["snr_z_at_kz"] = float(np.interp(fit["k_z"], k, fit["pz"][1:]) / fit["floor_z"])
    return fit


# ---------------------------------------------------------------- 2: objects


def find_peaks(vol, *, percentile: float = 99.0, size=(9, 7, 7)) -> np.ndarray:
    """(N, 3) bright separated local maxima (of the volume smoothed by 0.7), windows inside."""
    from scipy import ndimage as ndi

    sm = ndi.gaussian_filter(np.asarray(vol, np.float64), 0.7)
    pk = np.argwhere((sm == ndi.maximum_filter(sm, size=size)) & (sm > np.percentile(sm, percentile)))
    inside = np.all([(pk[:, a] >= HALF[a]) & (pk[:, a] < vol.shape[a] - HALF[a]) for a in range(3)], axis=0)
    return pk[inside]


def _gauss(x, a, m, s, b):
    return a * np.exp(-0.5 * ((x - m) / s) ** 2) + b


def profile_sigmas(vol, peaks) -> np.ndarray:
    """(N, 3) Gaussian sigma (z, y, x) of the profile through each peak (offset fitted); NaN: no fit."""
    from scipy.optimize import curve_fit

    out = np.full((len(peaks), 3), np.nan)
    for i, p in enumerate(peaks):
        for a in range(3):
            idx = list(p)
            idx[a] = slice(p[a] - HALF[a], p[a] + HALF[a] + 1)
            prof = np.asarray(vol[tuple(idx)], np.float64)
            x = np.arange(-HALF[a], HALF[a] + 1)
            try:
                popt, _ = curve_fit(_gauss, x, prof, p0=[np.ptp(prof), 0.0, 1.5, prof.min()],
                                    bounds=([0, -3, 0.3, 0], [np.inf, 3, 8, np.inf]), maxfev=2000)
            except (RuntimeError, ValueError):
                continue
            if 0.31 < popt[2] < 7.9:  # not at a bound
                out[i, a] = popt[2]
    return out


def object_evidence(vol) -> dict:
    """Widths of the objects at the peaks; ``d = sigma_z^2 - sigma_lat^2`` overall and for the narrowest."""
    sig = profile_sigmas(vol, find_peaks(vol))
    sig = sig[np.isfinite(sig).all(axis=1)]
    sz, sy, sx = sig.T
    lat = 0.5 * (sy + sx)
    d = sz**2 - lat**2
    narrow = np.argsort(lat)[: max(5, len(lat) // 10)]
    thr = CANDIDATES[1] ** 2
    return {"n": int(len(d)), "sigma_z": sz, "sigma_lat": lat,
            "median_sigma_zyx": [float(np.median(v)) for v in (sz, sy, sx)],
            "median_d": float(np.median(d)), "d_quartiles": np.percentile(d, [25, 75]).tolist(),
            "s_median": float(np.sqrt(max(np.median(d), 0.0))),
            "narrow_lat_max": float(lat[narrow].max()), "narrow_median_d": float(np.median(d[narrow])),
            "narrow_d_range": [float(d[narrow].min()), float(d[narrow].max())],
            "frac_d_ge_6.8": float(np.mean(d >= thr)), "frac_narrow_d_ge_6.8": float(np.mean(d[narrow] >= thr))}


# ---------------------------------------------------------------- 3: autocorrelation per scale


def acf_fwhm_zx(vol) -> tuple:
    """FWHM (voxels) of the zero-padded autocorrelation through the origin along z and x."""
    v = np.asarray(vol, np.float64)
    v = v - v.mean()
    shape = [2 * n for n in v.shape]
    ac = np.fft.irfftn(np.abs(np.fft.rfftn(v, s=shape, axes=(0, 1, 2))) ** 2, s=shape, axes=(0, 1, 2))
    widths = []
    for prof in (ac[: v.shape[0], 0, 0], ac[0, 0, : v.shape[2]]):
        prof = prof / prof[0]
        i = int(np.flatnonzero(prof < 0.5)[0])
        widths.append(float(2 * ((i - 1) + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i]))))
    return tuple(widths)


def acf_scales(vol) -> dict:
    """ACF FWHM z, x and z/x of the raw volume and of each difference-of-Gaussians band."""
    from scipy.ndimage import gaussian_filter

    v = np.asarray(vol, np.float64)
    rows = {"raw": acf_fwhm_zx(v)}
    for s1, s2 in BANDS:
        rows[f"DoG {s1:g}-{s2:g}"] = acf_fwhm_zx(gaussian_filter(v, s1) - gaussian_filter(v, s2))
    return {name: {"z": z, "x": x, "z_over_x": z / x} for name, (z, x) in rows.items()}


def phantom(shape, s, *, elong=1.0, sigma_xy=0.66, n=400, seed=0) -> np.ndarray:
    """Balls (radius 1.2-2.2, z semi-axis x ``elong``) blurred by ``(hypot(sigma_xy, s), sigma_xy, sigma_xy)``,
    on a background of 400 with white noise of sd 18 (B1's scale)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    v = np.zeros(shape)
    zz, yy, xx = np.ogrid[-8:9, -4:5, -4:5]
    for _ in range(n):
        r, amp = rng.uniform(1.2, 2.2), rng.lognormal(np.log(600), 0.5)
        c = [rng.integers(8, m - 8) if m > 16 else m // 2 for m in shape]
        ball = ((zz / (r * elong)) ** 2 + (yy / r) ** 2 + (xx / r) ** 2) <= 1.0
        v[c[0] - 8:c[0] + 9, c[1] - 4:c[1] + 5, c[2] - 4:c[2] + 5] += amp * ball
    v = gaussian_filter(v, (float(np.hypot(sigma_xy, s)), sigma_xy, sigma_xy))
    return v + 400 + rng.normal(0, 18, shape)


# ---------------------------------------------------------------- run, report, plot

#: phantoms: label -> (extra axial sigma s, elongation of the objects along z)
PHANTOMS = {"phantom s=0.5": (0.5, 1.0), "phantom s=2.6": (2.6, 1.0), "phantom s=0.5, objects 2x long in z": (0.5, 2.0)}


def measure(vol) -> dict:
    """The three lines of evidence on one volume."""
    return {"spectral": spectral_evidence(vol), "objects": object_evidence(vol), "acf": acf_scales(vol)}


def _jsonable(obj):
    """``obj`` without arrays (the per-frequency and per-object data stay out of the JSON)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not isinstance(v, np.ndarray)}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return float(obj) if isinstance(obj, np.floating) else obj


def _f(x, fmt=".2f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def evidence_tables(cases: dict) -> tuple:
    """Markdown tables (lists of lines) of the three lines of evidence, one row per volume."""
    t1 = [f"| volume | z band fitted (cycles/voxel) | s, whole band | s, k < {K_SPLIT:g} | s, k >= {K_SPLIT:g} | "
          "rms log ratio: fit / s=0.5 / s=2.6 | k_z / k_x cut-off |",
             "|---|---|---|---|---|---|---|"]
    for name, c in cases.items():
        sp = c["spectral"]
        t1.append(f"| {name} | {sp['band_k'][0]:.3f}-{sp['band_k'][1]:.3f} | **{_f(sp['s'])}** | {_f(sp['s_low'])} | "
                     f"{_f(sp['s_high'])} | {sp['rms']:.2f} / {sp['fixed']['0.5']['rms']:.2f} / "
                     f"{sp['fixed']['2.6']['rms']:.2f} | {sp['k_z']:.3f} / {sp['k_x']:.3f} |")
    t2 = ["| volume | objects | median sigma z / y / x | median d (quartiles) | s = sqrt(median d) | "
              "10% narrowest (sigma_lat <= ...): median d (range) | objects with d >= 6.8: all / narrowest |",
              "|---|---|---|---|---|---|---|"]
    for name, c in cases.items():
        o = c["objects"]
        t2.append(f"| {name} | {o['n']} | " + " / ".join(f"{v:.2f}" for v in o["median_sigma_zyx"])
                     + f" | **{o['median_d']:.2f}** ({o['d_quartiles'][0]:.2f}-{o['d_quartiles'][1]:.2f}) | "
                     f"{o['s_median']:.2f} | ({o['narrow_lat_max']:.2f}) {o['narrow_median_d']:.2f} "
                     f"({o['narrow_d_range'][0]:.2f}-{o['narrow_d_range'][1]:.2f}) | "
                     f"{100 * o['frac_d_ge_6.8']:.1f}% / {100 * o['frac_narrow_d_ge_6.8']:.0f}% |")
    scales = list(next(iter(cases.values()))["acf"])
    t3 = ["| volume | " + " | ".join(f"ACF z/x {s}" for s in scales) + " |", "|---|" + "---|" * len(scales)]
    for name, c in cases.items():
        t3.append(f"| {name} | " + " | ".join(f"{c['acf'][s]['z_over_x']:.2f} ({c['acf'][s]['z']:.1f} / "
                                                  f"{c['acf'][s]['x']:.1f})" for s in scales) + " |")
    return t1, t2, t3


def report_lines(args, cases: dict, product: dict, out: Path, shape) -> list:
    """The Markdown report: method, the three tables (B1 and the phantoms), the reading."""
    b1 = cases["B1"]
    sp = b1["spectral"]
    dr = sp.get("drop", {})
    t1, t2, t3 = evidence_tables(cases)
    lines = ["# B1: how much extra axial blur? (`benchmarks/bench_b1_psf.py`)", "",
             f"Machine / date: {machine_line()}. Command: `{command_line()}`.", "",
             (f"B1 = `{REAL['B1'][0]}` (ZYX {'x'.join(map(str, shape))}, factor 1). Candidates for the extra "
              f"axial Gaussian sigma s (voxels): **0.5**, the product's `estimate_axial_blur` (here "
              f"{product['sigma_extra']:.2f}, `{product['psf_spec']}`, band {product['band'][0]:.3f}-"
              f"{product['band'][1]:.3f} cycles/voxel), and **2.6**, bench_real's round-objects estimate from the "
              "autocorrelation FWHM z vs x. Phantoms (balls of radius 1.2-2.2 voxels, B1's density and scale, "
              f"lateral sigma {product['sigma_xy']:.2f}, white noise) show what each measure reads for a known s; "
              "the last one has s = 0.5 but objects twice as long along z (shape, not blur)."), "",
             "## 1. Spectral ratio P_z / P_x", "",
             ("Mean power spectrum of every line along z and along x (mean removed, Hann window), each minus its "
              f"noise floor (median at >= 0.4 cycles/voxel: z {sp['floor_z']:.0f}, x {sp['floor_x']:.0f}); "
              f"`log(P_z/P_x) = c - (2 pi k s)^2` fitted where both exceed {BAND_SNR:g}x their floor (from the "
              f"second bin up, contiguous); also over the band below and above k = {K_SPLIT:g} alone."), "",
             *t1, "",
             (f"Attenuation test (B1): across the upper half of the band, k {dr.get('k1', np.nan):.3f} -> "
              f"{dr.get('k2', np.nan):.3f}, the ratio P_z/P_x falls by a factor {_f(dr.get('observed'), '.2g')} "
              f"(fitted line); s = 0.5 predicts {_f(dr.get('0.5'), '.2g')}, s = 2.6 predicts "
              f"{_f(dr.get('2.6'), '.2g')}. At the z cut-off k_z = {sp['k_z']:.3f} (z power still "
              f"{sp['snr_z_at_kz']:.1f}x its floor there) s = 2.6 predicts an attenuation of "
              f"{sp['predicted_at_kz']['2.6']:.1e} relative to lateral (s = 0.5: {sp['predicted_at_kz']['0.5']:.2f}), "
              f"which would have put the z cut-off near the s = 2.6 phantom's "
              f"{cases['phantom s=2.6']['spectral']['k_z']:.3f}."), "",
             "## 2. Smallest objects as probes", "",
             ("Bright local maxima (volume smoothed by 0.7, 9x7x7 maximum filter, above its 99th percentile, "
              f"windows inside); a Gaussian plus offset fitted to the profile through each peak along z (+-{HALF[0]}), "
              f"y and x (+-{HALF[1]}). d = sigma_z^2 - sigma_lat^2 (lateral: mean of y and x) equals s^2 for round "
              "objects, more for objects longer in z; s = 2.6 would give d >= 6.8 for every object."), "",
             *t2, "",
             "## 3. Autocorrelation elongation per scale", "",
             ("FWHM of the zero-padded autocorrelation along z and x (voxels), of the raw volume (what the "
              "round-objects estimate reads) and of the volume band-passed by differences of Gaussians "
              "(sigmas in voxels; fine to coarse)."), "",
             *t3, "",
             f"Figure: [{out.stem}.png]({out.stem}.png).", "",
             "## Reading", "", *verdict(cases, product["sigma_xy"]), ""]
    return lines


def verdict(cases: dict, sigma_xy: float) -> list:
    """The reading of the evidence, in words, with B1's and the phantoms' numbers."""
    b1, p05, p26, el = (cases[n] for n in ("B1", *PHANTOMS))
    sp, o, acf = b1["spectral"], b1["objects"], b1["acf"]
    dr = sp.get("drop", {})
    scales = list(acf)
    low_excess = float(np.exp(np.mean(sp["log_ratio"][(sp["k"] < 0.05)])))
    psf_z2, psf_x2 = o["median_sigma_zyx"][0] ** 2, np.mean(o["median_sigma_zyx"][1:]) ** 2
    sxy2 = float(sigma_xy) ** 2
    obj_ratio = np.sqrt(max(psf_z2 - sxy2 - CANDIDATES[0] ** 2, 0) / max(psf_x2 - sxy2, 1e-9))
    w_ratio = o["median_sigma_zyx"][0] / np.mean(o["median_sigma_zyx"][1:])
    return [
        (f"1. **Spectral: s = 2.6 is excluded; the fine band reads s = {sp['s_high']:.2f}.** B1's z spectrum stays "
         f"above the noise up to k_z = {sp['k_z']:.3f} like the s = 0.5 phantom ({p05['spectral']['k_z']:.3f}); with "
         f"s = 2.6 it would end near {p26['spectral']['k_z']:.3f}. Across {dr.get('k1', np.nan):.2f}-"
         f"{dr.get('k2', np.nan):.2f} cycles/voxel P_z/P_x falls by {_f(dr.get('observed'), '.2g')} (s = 0.5: "
         f"{_f(dr.get('0.5'), '.2g')}; s = 2.6: {_f(dr.get('2.6'), '.1e')}). But the ratio is not one Gaussian: "
         f"below k = {K_SPLIT:g} it falls steeply (s = {sp['s_low']:.2f}) from an excess of z power at the "
         f"lowest frequencies (z lines carry {low_excess:.1f}x the x lines' power at k < 0.05), which blur cannot "
         f"create (it only removes power) but structure elongated along z can; the whole-band fit, "
         f"s = {sp['s']:.2f}, fits poorly (rms {sp['rms']:.2f} in log "
         f"ratio, {p05['spectral']['rms']:.2f} on the s = 0.5 phantom)."),
        "",
        (f"2. **Objects: s = 2.6 is excluded; round objects would give s = {o['s_median']:.2f}.** The {o['n']} "
         f"objects have median sigma z {o['median_sigma_zyx'][0]:.2f} vs lateral "
         f"{np.mean(o['median_sigma_zyx'][1:]):.2f} "
         f"voxels (ratio {w_ratio:.2f}), median d = {o['median_d']:.2f} voxels^2 and "
         f"{o['narrow_median_d']:.2f} for the "
         f"10% narrowest; {100 * o['frac_d_ge_6.8']:.1f}% reach the 6.8 that s = 2.6 implies (its phantom: median "
         f"{p26['objects']['median_d']:.2f}, {100 * p26['objects']['frac_d_ge_6.8']:.0f}% above). The measure is "
         f"calibrated (phantoms read d = {p05['objects']['median_d']:.2f} for s = 0.5 and "
         f"{p26['objects']['median_d']:.2f} for 2.6), but it reads s^2 plus any elongation of the objects: with "
         f"s = 0.5 the nuclei themselves would be ~{obj_ratio:.1f}x longer along z than wide (intrinsic sigma), "
         "or the axial PSF has a broad skirt around a narrow core."),
        "",
        ("3. **Autocorrelation per scale: does not separate blur from shape here.** B1's ACF z/x is "
         + ", ".join(f"{acf[s]['z_over_x']:.2f} ({s})" for s in scales)
         + ". Objects this small (about the PSF's size) give a similar fall from fine to coarse for blur (s = 2.6 "
         "phantom: " + ", ".join(f"{p26['acf'][s]['z_over_x']:.2f}" for s in scales) + ") and for z-long objects "
         "(" + ", ".join(f"{el['acf'][s]['z_over_x']:.2f}" for s in scales) + "); the s = 0.5 phantom stays at "
         + ", ".join(f"{p05['acf'][s]['z_over_x']:.2f}" for s in scales) + f". Two things are clear: the raw ACF "
         f"ratio ({acf['raw']['z_over_x']:.2f}) exceeds the objects' own width ratio ({w_ratio:.2f}), and B1's "
         f"coarsest band is more elongated ({acf[scales[-1]]['z_over_x']:.2f}) than any phantom: coarse structure "
         "correlated along z (the streaks along z seen in xz slices, the low-k excess of 1.) inflates the "
         "autocorrelation that the round-objects estimate reads, so its 2.6 overstates even the objects' elongation."),
        "",
        ("**Conclusion.** The evidence does not support s = 2.6 as a Gaussian axial blur: the axial spectrum "
         f"carries detail that a 2.6 blur would attenuate by ~1e-8, and only {100 * o['frac_d_ge_6.8']:.1f}% of the "
         "objects are as long along z as it would make every one (the 2.6 comes from an autocorrelation inflated "
         "by coarse z-correlated structure). The "
         f"fine-detail transfer supports the product's s = 0.5 (0.43 above k = {K_SPLIT:g}). It is not the whole "
         f"story: objects are {w_ratio:.2f}x wider along z than laterally (extra variance ~{o['median_d']:.1f} "
         "voxels^2, s ~1.4 if they were round), which s = 0.5 explains only if the nuclei are elongated along "
         "z or the PSF is not Gaussian (narrow core, broad skirt); these data cannot tell which. For a Gaussian "
         "PSF spec: 0.5 is consistent with the fine scales, ~1.4 the upper bound from object widths (for "
         "objects not flatter along z than across), and 2.6 "
         "is too large by every measure here."),
    ]


def save_plot(path, cases: dict) -> None:
    """PNG: (a) log P_z/P_x with the fits, (b) object widths, (c) ACF z/x per scale, (d) the spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b1 = cases["B1"]
    sp, o = b1["spectral"], b1["objects"]
    fig, ax = plt.subplots(2, 2, figsize=(12, 9.5), layout="constrained")
    a = ax[0, 0]
    k, lr, band = sp["k"], sp["log_ratio"], sp["band"]
    a.plot(k, lr, ".", color="0.6", label="B1, all k")
    a.plot(k[band], lr[band], "o", color="k", ms=4, label=f"B1, fitted band (both > {BAND_SNR:g}x floor)")
    kk = np.linspace(0, k[band][-1] * 1.3, 200)
    a.plot(kk, sp["c"] - (2 * np.pi * kk * sp["s"]) ** 2, "k-", label=f"fit: s = {sp['s']:.2f}")
    for s, col in zip(CANDIDATES, ("tab:blue", "tab:red")):
        a.plot(kk, sp["fixed"][f"{s:g}"]["c"] - (2 * np.pi * kk * s) ** 2, "--", color=col,
               label=f"s = {s:g} (best offset)")
    a.axvline(sp["k_z"], color="0.5", lw=0.8, ls=":", label=f"z cut-off {sp['k_z']:.3f}")
    a.set(xlim=(0, 0.5), ylim=(-4, 3), xlabel="k (cycles/voxel)", ylabel="log(P_z / P_x), noise subtracted",
          title="1. spectral ratio z / x")
    a.legend(fontsize=8)
    a = ax[0, 1]
    ph = cases["phantom s=2.6"]["objects"]
    a.plot(ph["sigma_lat"], ph["sigma_z"], ".", color="tab:red", alpha=0.25, ms=4, label="phantom s = 2.6")
    a.plot(o["sigma_lat"], o["sigma_z"], "o", color="k", ms=3, label=f"B1 ({o['n']} objects)")
    sl = np.linspace(0.5, max(3.0, float(np.max(o["sigma_lat"]))), 100)
    for s, col in zip(CANDIDATES + (o["s_median"],), ("tab:blue", "tab:red", "k")):
        a.plot(sl, np.sqrt(sl**2 + s**2), "-", color=col, lw=1.2, label=f"sigma_z = sqrt(sigma_lat^2 + {s:.2g}^2)")
    a.set(xlabel="sigma lateral (mean of y, x), voxels", ylabel="sigma z, voxels", xlim=(0.5, 3), ylim=(0.5, 6),
          title="2. Gaussian widths of the objects at bright maxima")
    a.legend(fontsize=8)
    a = ax[1, 0]
    scales = list(b1["acf"])
    for (name, c), st in zip(cases.items(), ("ko-", "s--", "^--", "v--")):
        a.plot(range(len(scales)), [c["acf"][s]["z_over_x"] for s in scales], st, label=name)
    a.set_xticks(range(len(scales)), scales, fontsize=8)
    a.set(ylabel="ACF FWHM z / x", title="3. autocorrelation elongation per scale (fine -> coarse after raw)")
    a.legend(fontsize=8)
    a = ax[1, 1]
    ph = cases["phantom s=2.6"]["spectral"]
    a.semilogy(sp["kx"], sp["px"], "-", color="tab:green", label="B1 P_x")
    a.semilogy(np.r_[0, k], sp["pz"], "-", color="k", label="B1 P_z")
    a.semilogy(np.r_[0, ph["k"]], ph["pz"], "--", color="tab:red", label="phantom s=2.6 P_z")
    for fl, col in ((sp["floor_z"], "k"), (sp["floor_x"], "tab:green")):
        a.axhline(fl, color=col, lw=0.7, ls=":")
    a.set(xlabel="k (cycles/voxel)", ylabel="power per line", title="mean line spectra (dotted: noise floors)")
    a.legend(fontsize=8)
    fig.suptitle("B1 (mesoSPIM nuclei): extra axial blur s, evidence (bench_b1_psf.py)", fontsize=11)
    save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REAL_DATA))
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--out", default=str(RESULTS / "b1_psf.md"))
    args = p.parse_args(argv)
    from isonet_ij.volume_io import read_volume

    vol = read_volume(Path(args.data) / REAL["B1"][0]).data.astype(np.float64)
    product = estimate(vol, 1.0)
    cases = {"B1": measure(vol)}
    for name, (s, elong) in PHANTOMS.items():
        cases[name] = measure(phantom(vol.shape, s, elong=elong, sigma_xy=product["sigma_xy"], seed=args.seed))
    out = Path(args.out)
    save_plot(out.with_suffix(".png"), cases)
    results = {"args": vars(args), "product": product, "cases": cases}
    write_report(out, report_lines(args, cases, product, out, vol.shape), _jsonable(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
