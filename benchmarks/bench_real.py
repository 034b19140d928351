"""The paper's Fig. 3 experiment on real volumes: restore a thinned stack, compare with the original.

Part 1, A1 (membranes, confocal, uint8, no calibration) and A3 (nuclei, confocal,
0.29 / 0.26 um) of ``../shared/data/real``, both near-isotropic: for each slice step in
``--steps-z`` only every step-th z slice is kept (the factor is the step, whatever the
calibration says) and restored by bicubic z interpolation, Richardson-Lucy (bicubic then
``--rl-iterations`` RL iterations with the same PSF as IsoNet) and IsoNet-2 split trained
for ``--train-steps`` steps (a step budget, so that a busy machine cannot favour a run) with
``--psf`` (default ``gaussian:1,1``: no axial blur beyond the slice step; the psf_auto
benchmark found it best on A1). Each output is scored against the original volume cropped
to the restoration grid: PSNR after the least-squares affine intensity fit and SSIM.

Part 2, B1 (mesoSPIM light sheet, nuclei; sampling ~isotropic but axial blur ~2.5x
lateral, no ground truth): IsoNet-2 split with factor 1 and two PSFs: the one estimated from
the volume (``--psf auto``) and the one under which its nuclei are round on average
(:func:`objects_psf_spec`). Judged by how close axial resolution comes to lateral: the
autocorrelation width ratio z / x (:func:`acf_fwhm`; object-level), the spectral cut-off
along each axis (:func:`axis_cutoffs`) and their ratio z / x (1.0 = isotropic), plus the
extra axial Gaussian blur that ``psf.estimate_axial_blur`` still sees
(sigma_extra, voxels).

Montages (central xz slices; B1: xy and xz before / after) are written next to ``--out``.
Every finished cell is cached (``--cache``); a rerun resumes. Results:
``benchmarks/results/real.md`` and ``.json``.

    .venv/bin/python benchmarks/bench_real.py                        # 300 steps, z steps 4 and 8
    .venv/bin/python benchmarks/bench_real.py --train-steps 5 --steps-z 8 \\
        --cache /tmp/real_cache --out /tmp/real_smoke/real.md        # smoke test
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from common import (REAL, REAL_DATA, RESULTS, THINNED_PSF, cached, central_xz, estimate, gaussian, machine_line,
                    save_figure, train_restore, trained_key, write_report)

#: volumes with a ground truth (thinned in z) and the one without (restored at factor 1)
THINNED = ("A1", "A3")
NO_GT = "B1"

log = logging.getLogger("bench_real")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=300, help="IsoNet-2 training steps per model (batches of 16)")
    p.add_argument("--steps-z", default="4,8", help="comma list of z slice steps for A1 / A3 (the factors)")
    p.add_argument("--psf", default=THINNED_PSF, help="PSF of IsoNet-2 and RL on A1 / A3 (voxels)")
    p.add_argument("--rl-iterations", type=int, default=10)
    p.add_argument("--volumes", default="A1,A3,B1", help="comma list of A1, A3, B1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(REAL_DATA))
    p.add_argument("--cache", default=str(RESULTS / "cache" / "real"))
    p.add_argument("--out", default=str(RESULTS / "real.md"))
    return p.parse_args(argv)


# ---------------------------------------------------------------- resolution along an axis


def axis_spectrum(vol, axis: int):
    """Mean 1D power spectrum of every line of ``vol`` along ``axis``.

    Parameters
    ----------
    vol : (Z, Y, X) ndarray
    axis : int
        0 (z), 1 (y) or 2 (x).

    Returns
    -------
    k : (L // 2 + 1,) ndarray
        Frequencies, cycles/voxel (L = ``vol.shape[axis]``).
    p : (L // 2 + 1,) ndarray
        Power per line, mean removed and Hann-windowed, normalised by the window's energy
        (white noise of variance s^2 gives ``p == s^2`` on every axis, whatever L).
    """
    a = np.moveaxis(np.asarray(vol, dtype=np.float64), axis, -1)
    n = a.shape[-1]
    lines = a.reshape(-1, n)
    lines = lines - lines.mean(axis=1, keepdims=True)
    w = np.hanning(n)
    p = (np.abs(np.fft.rfft(lines * w, axis=1)) ** 2).mean(axis=0) / float((w ** 2).sum())
    return np.fft.rfftfreq(n), p


def noise_floor(k, p, *, floor_from: float = 0.4) -> float:
    """Median power of a spectrum (:func:`axis_spectrum`) at ``k >= floor_from`` cycles/voxel."""
    return float(np.median(p[k >= floor_from]))


def spectral_cutoff(k, p, floor: float, *, ratio: float = 2.0) -> float:
    """Highest frequency up to which the spectrum stays above ``ratio`` x ``floor``.

    Parameters
    ----------
    k, p : (M,) ndarray
        Frequencies (cycles/voxel, ascending, ``k[0] == 0``) and power (:func:`axis_spectrum`).
    floor : float
        Noise power (:func:`noise_floor`).
    ratio : float

    Returns
    -------
    float
        The first crossing below ``ratio * floor`` after DC (3-bin smoothed spectrum,
        interpolated in log power), cycles/voxel; ``k[-1]`` (Nyquist) if it never falls.
    """
    ps = np.convolve(np.pad(p, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    thr = ratio * max(floor, 1e-30)
    below = np.flatnonzero(ps[1:] < thr) + 1
    if below.size == 0:
        return float(k[-1])
    i = int(below[0])
    if i == 1:
        return float(k[1])
    lo, hi = np.log(ps[i - 1]), np.log(max(ps[i], 1e-30))
    t = (lo - np.log(thr)) / max(lo - hi, 1e-12)
    return float(k[i - 1] + t * (k[i] - k[i - 1]))


def axis_cutoffs(vol, *, ratio: float = 2.0) -> dict:
    """Spectral cut-offs of a (Z, Y, X) volume on the isotropic grid along z, y and x.

    Each axis's noise floor (:func:`noise_floor`) is its own, z's at least the lateral one
    (mean of the y and x floors): noise need not be white (B1's is correlated laterally,
    so its z floor is about 2x its lateral one), but a z floor below the lateral one means
    the processing removed the noise along z (interpolation of a thinned stack leaves
    next to no power near Nyquist), and a floor that low would call that "resolution".

    Returns
    -------
    dict
        ``k_z``, ``k_y``, ``k_x`` (cycles/voxel), ``noise_floor_zyx`` (the floors used) and ``res_z_over_x`` =
        ``k_x / k_z``, the axial resolution (period at the cut-off) relative to the lateral
        one: 1.0 = isotropic, 2.5 = axial detail 2.5x coarser.
    """
    spectra = [axis_spectrum(vol, i) for i in range(3)]
    floors = np.array([noise_floor(k, p) for k, p in spectra])
    floors[0] = max(floors[0], floors[1:].mean())
    ks = {f"k_{a}": float(spectral_cutoff(k, p, fl, ratio=ratio)) for a, (k, p), fl in zip("zyx", spectra, floors)}
    ks["noise_floor_zyx"] = floors.tolist()
    ks["res_z_over_x"] = ks["k_x"] / max(ks["k_z"], 1e-6)
    return ks


def acf_fwhm(vol) -> list:
    """FWHM (voxels) of the autocorrelation of a (Z, Y, X) volume along z, y and x.

    Mean removed, zero-padded FFT (no wrap-around), normalised to 1 at zero lag; the width is
    where the profile through the origin first falls to 0.5, interpolated linearly. For
    content of round objects (nuclei) the ratio z / x measures how much longer objects
    look along z: 1.0 = isotropic.
    """
    v = np.asarray(vol, dtype=np.float64)
    v = v - v.mean()
    shape = [2 * n for n in v.shape]
    ac = np.fft.irfftn(np.abs(np.fft.rfftn(v, s=shape, axes=(0, 1, 2))) ** 2, s=shape, axes=(0, 1, 2))
    ac /= ac[0, 0, 0]
    widths = []
    for axis, n in enumerate(v.shape):
        prof = np.moveaxis(ac, axis, 0)[:n, 0, 0]
        below = np.flatnonzero(prof < 0.5)
        if below.size == 0:
            widths.append(float(2 * n))
            continue
        i = int(below[0])
        widths.append(float(2 * ((i - 1) + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i]))))
    return widths


def objects_psf_spec(acf_widths, sigma_xy: float):
    """Gaussian PSF spec from the assumption that the imaged objects are round on average.

    The axial autocorrelation is then the lateral one widened by the extra axial blur: a
    Gaussian blur of sigma ``s`` widens the autocorrelation by a Gaussian of sigma
    ``s * sqrt(2)``, so ``s = sqrt(w_z^2 - w_xy^2) / (2 sqrt(2 ln 2) sqrt(2))`` with the
    :func:`acf_fwhm` widths ``acf_widths`` (z, y, x) of the volume. Returns ``(spec, s)``;
    sigmas in voxels.
    """
    from isonet_ij.psf import FWHM_PER_SIGMA

    wz, wy, wx = acf_widths
    wl = 0.5 * (wy + wx)
    s = float(np.sqrt(max(wz * wz - wl * wl, 0.0)) / (FWHM_PER_SIGMA * np.sqrt(2.0)))
    return f"gaussian:{sigma_xy:.4g},{float(np.hypot(sigma_xy, s)):.4g}", s


# ---------------------------------------------------------------- montages


def central_xy(vol) -> np.ndarray:
    """(Y, X) slice at the central z of a (Z, Y, X) volume."""
    return np.asarray(vol)[vol.shape[0] // 2]


def _pack(a) -> list:
    """A 2D slice as a JSON-able nested list (float32 precision is plenty for a picture)."""
    return np.asarray(a, dtype=np.float32).round(3).tolist()


def save_montage(path, panels, title: str) -> None:
    """PNG of 2D ``panels`` [(label, (H, W) array), ...] side by side, each scaled to its
    own 1 / 99.8 percentiles, square voxels; written atomically (temp file, os.replace)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widths = [np.asarray(a).shape[1] for _, a in panels]
    height = max(np.asarray(a).shape[0] for _, a in panels)
    panel_h = min(3.2, 18.0 * height / sum(widths))  # inches; the row at most ~18 in wide
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_h * sum(widths) / height + 0.2 * len(panels) + 0.4,
                                                      panel_h + 1.0),
                             gridspec_kw={"width_ratios": widths}, layout="constrained")
    for ax, (label, a) in zip(np.atleast_1d(axes), panels):
        a = np.asarray(a, dtype=np.float32)
        lo, hi = np.percentile(a, [1.0, 99.8])
        ax.imshow(a, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------- part 1: A1 / A3


def _spec_key(spec: str) -> str:
    return spec.replace(":", "-").replace(",", "_")


def thinned_step(args, cache: Path, name: str, full: np.ndarray, step: int) -> dict:
    """One volume (A1 / A3, ``full`` (Z, Y, X)) thinned to every ``step``-th z slice.

    Returns ``{"factor", "n_acquired", "original", "bicubic", "rl", "isonet2"}`` (cells: PSNR,
    SSIM, :func:`axis_cutoffs`, central xz slice of the output on the (floor((n-1) step)+1, Y, X)
    restoration grid); writes the montage.
    """
    from isonet_ij import baselines, grid, metrics

    h = gaussian(args.psf)
    acq = full[::step]
    f = float(step)
    ref = grid.crop_to_grid(full, acq.shape[0], f)

    def scored(out, **extra):
        return {"psnr": float(metrics.psnr_affine(out, ref)), "ssim": float(metrics.ssim(out, ref)),
                **axis_cutoffs(out), "shape": list(out.shape), "xz": _pack(central_xz(out)), **extra}

    def isonet():
        out, info = train_restore(acq, f, h, args.psf, args, args.train_steps)
        return scored(out, psf=args.psf, **info)

    methods = {
        "bicubic": (f"{name}_z{step}_bicubic", lambda: scored(baselines.bicubic(acq, f))),
        "rl": (f"{name}_z{step}_rl{args.rl_iterations}_{_spec_key(args.psf)}",
               lambda: scored(baselines.richardson_lucy(acq, h, f, iterations=args.rl_iterations), psf=args.psf)),
        "isonet2": (trained_key(f"{name}_z{step}_isonet2_{_spec_key(args.psf)}_st{args.train_steps}_seed{args.seed}"),
                    isonet),
    }
    row = {"factor": f, "n_acquired": int(acq.shape[0]),
           "original": cached(cache, f"{name}_z{step}_original",
                              lambda: {**axis_cutoffs(ref), "xz": _pack(central_xz(ref))})}
    for method, (key, compute) in methods.items():
        row[method] = c = cached(cache, key, compute)
        log.info("%s step %d %s: %.2f dB, SSIM %.3f", name, step, method, c["psnr"], c["ssim"])
    out = Path(args.out)
    labels = {"original": "original", "bicubic": "input (bicubic)", "rl": f"RL {args.rl_iterations} it.",
              "isonet2": "IsoNet-2"}
    panels = [(labels[m] + (f"\n{row[m]['psnr']:.2f} dB" if m != "original" else "\nreference"),
               np.asarray(row[m]["xz"])) for m in labels]
    save_montage(out.with_name(f"{out.stem}_{name}_z{step}.png"), panels,
                 f"{name}, every {step}th z slice kept (factor {step}), central xz slice; "
                 f"IsoNet-2 {args.train_steps} steps, PSF {args.psf}")
    return row


# ---------------------------------------------------------------- part 2: B1


def no_gt_part(args, cache: Path, vol: np.ndarray) -> dict:
    """B1: factor 1, two PSFs: the product's estimate (``--psf auto``) and the round-objects
    one (:func:`objects_psf_spec`); returns {"input": cell, "arms": {arm: cell}, ...}."""
    from isonet_ij.psf import auto_psf_spec

    factor = 1.0  # sampling is ~isotropic; training accepts factor >= 1 (Config, grid.check_factor)

    def measure(out, **extra):
        w = acf_fwhm(out)
        return {**axis_cutoffs(out), "axial_extra_sigma": float(estimate(out, 1.0)["sigma_extra"]),
                "acf_fwhm_zyx": w, "acf_z_over_x": w[0] / w[2],
                "xy": _pack(central_xy(out)), "xz": _pack(central_xz(out)), **extra}

    est = cached(cache, f"{NO_GT}_auto_psf", lambda: dict(zip(("psf", "estimate"), auto_psf_spec(vol, factor))))
    measured = cached(cache, f"{NO_GT}_input_acf", lambda: measure(vol))
    obj_spec, obj_sigma = objects_psf_spec(measured["acf_fwhm_zyx"], est["estimate"]["sigma_xy"])
    rows = {"factor": factor, "psf": est["psf"], "estimate": est["estimate"],
            "objects_psf": obj_spec, "objects_sigma_extra": obj_sigma, "input": measured, "arms": {}}
    for arm, spec in (("auto", est["psf"]), ("objects", obj_spec)):
        def compute(spec=spec):
            out, info = train_restore(vol, factor, gaussian(spec), spec, args, args.train_steps)
            return measure(out, psf=spec, **info)

        rows["arms"][arm] = cached(cache, trained_key(f"{NO_GT}_isonet2_{arm}_{_spec_key(spec)}_st{args.train_steps}"
                                                      f"_seed{args.seed}_acf"), compute)
    for arm, c in (("input", rows["input"]), *rows["arms"].items()):
        log.info("%s %s: k_z %.3f k_x %.3f (z/x %.2f), ACF z/x %.2f, sigma_extra %.2f", NO_GT, arm, c["k_z"],
                 c["k_x"], c["res_z_over_x"], c["acf_z_over_x"], c["axial_extra_sigma"])
    out = Path(args.out)
    panels = []
    for label, c in (("before", rows["input"]), *((f"IsoNet-2, {a} PSF", c) for a, c in rows["arms"].items())):
        panels += [(f"{label}: xy", np.asarray(c["xy"])),
                   (f"{label}: xz\nACF z/x {c['acf_z_over_x']:.2f}", np.asarray(c["xz"]))]
    save_montage(out.with_name(f"{out.stem}_{NO_GT}.png"), panels,
                 f"{NO_GT} (light sheet, factor {factor:g}), central xy / xz slices; IsoNet-2 {args.train_steps} "
                 f"steps; PSF auto {est['psf']}, round objects {obj_spec}")
    return rows


# ---------------------------------------------------------------- report


def _strip(obj):
    """``obj`` without the montage slices (for the JSON results)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in ("xz", "xy")}
    return obj


def report(args, thinned: dict, no_gt) -> None:
    from isonet_ij.config import versions

    out = Path(args.out)
    v = versions()
    lines = ["# Real volumes: thinned-stack restoration (paper Fig. 3) and light-sheet B1 (`benchmarks/bench_real.py`)",
             "", (f"Machine / date: {machine_line()}; isonet-ij {v.get('isonet_ij')}, tensorflow "
             f"{v.get('tensorflow')}, numpy {v.get('numpy')}."), "",
             (f"IsoNet-2 split, {args.train_steps} training steps per model (batch 16, patch <= 64; a step "
             f"budget), seed {args.seed}. Data: `{args.data}`."), ""]
    if thinned:
        lines += ["## A1 / A3: every n-th z slice kept, restored, compared with the original", "",
                  (f"Factor = slice step. PSF for IsoNet-2 and Richardson-Lucy ({args.rl_iterations} iterations "
                  f"after bicubic): `{args.psf}` (voxels). PSNR (dB, after the affine intensity fit) / SSIM "
                  "against the original cropped to the restoration grid (floor((Z-1) f)+1 slices). "
                  "res z/x: spectral resolution ratio (see B1 below) of the output; the original's is given "
                  "for reference (its z is itself mildly blurrier than xy)."), "",
                  ("| volume | step | acquired slices | bicubic | RL | IsoNet-2 | IsoNet-2 - bicubic | "
                  "res z/x orig / bicubic / RL / IsoNet-2 | IsoNet-2 train s | montage |"),
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, steps in thinned.items():
            for step, r in steps.items():
                b, rl, iso = r["bicubic"], r["rl"], r["isonet2"]
                png = f"{out.stem}_{name}_z{step}.png"
                lines.append(
                    f"| {name} | {step} | {r['n_acquired']} | {b['psnr']:.2f} / {b['ssim']:.3f} | "
                    f"{rl['psnr']:.2f} / {rl['ssim']:.3f} | **{iso['psnr']:.2f} / {iso['ssim']:.3f}** | "
                    f"{iso['psnr'] - b['psnr']:+.2f} dB | "
                    + " / ".join(f"{r[m]['res_z_over_x']:.2f}" for m in ("original", "bicubic", "rl", "isonet2"))
                    + f" | {iso.get('train_s', 0):.0f} | [{png}]({png}) |")
        lines.append("")
    if no_gt:
        png = f"{out.stem}_{NO_GT}.png"
        lines += [f"## {NO_GT}: light sheet, no ground truth, factor {no_gt['factor']:g}", "",
                  ("Two PSFs for IsoNet-2: `auto`, the product's estimate from the volume (`--psf auto`: "
                  f"`{no_gt['psf']}`, sigma_extra {no_gt['estimate'].get('sigma_extra', float('nan')):.2f} voxels, "
                  "a 3D spectrum fit), and `objects`, from the assumption that the nuclei are round on average: "
                  "the extra axial Gaussian blur that widens the autocorrelation along z to what it is "
                  f"(`{no_gt['objects_psf']}`, sigma_extra {no_gt['objects_sigma_extra']:.2f} voxels)."), "",
                  ("Measures: ACF z/x = FWHM of the volume's autocorrelation along z over that along x (for "
                  "round objects 1.0 = isotropic; the object-level measure). Spectral cut-off per axis: "
                  "mean 1D power spectrum of every line along the axis (mean removed, Hann window), 3-bin "
                  "smoothed; the first frequency where it falls below 2x the noise floor (median power at "
                  ">= 0.4 cycles/voxel along that axis, but at least the lateral floor: an interpolated or "
                  "smoothed z axis has next to no floor of its own). res z/x = k_x / k_z (1.0 = isotropic). "
                  "sigma_extra: extra axial Gaussian blur seen by `psf.estimate_axial_blur` "
                  "(voxels, 0 = axial as sharp as lateral)."), "",
                  "| | PSF | ACF FWHM z / y / x (voxels) | ACF z/x | k_z | k_x (cycles/voxel) | res z/x | sigma_extra |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, c in (("input", no_gt["input"]),
                         *((f"IsoNet-2, {a} ({args.train_steps} steps)", c) for a, c in no_gt["arms"].items())):
            lines.append(f"| {label} | {c.get('psf', '')} | " + " / ".join(f"{w:.2f}" for w in c["acf_fwhm_zyx"])
                         + f" | {c['acf_z_over_x']:.2f} | {c['k_z']:.3f} | {c['k_x']:.3f} | "
                         f"{c['res_z_over_x']:.2f} | {c['axial_extra_sigma']:.2f} |")
        lines += ["", (f"Montage: [{png}]({png}). Caveat: a network that smooths noise lowers its own noise "
                  "floor, so the cut-off can move outward without new detail; read it with the montage."), ""]
    write_report(out, lines, _strip({"args": vars(args), "thinned": thinned, "no_gt": no_gt}))


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from isonet_ij.volume_io import read_volume

    cache = Path(args.cache)
    thinned, no_gt = {}, None
    t0 = time.monotonic()
    for name in [n for n in args.volumes.split(",") if n]:
        path = Path(args.data) / REAL[name][0]
        if not path.is_file():
            log.warning("%s missing: skipped", path)
            continue
        full = read_volume(path).data.astype(np.float32)
        if name == NO_GT:
            no_gt = no_gt_part(args, cache, full)
        else:
            thinned[name] = {step: thinned_step(args, cache, name, full, step)
                             for step in [int(s) for s in args.steps_z.split(",") if s]}
    log.info("done in %.0f s", time.monotonic() - t0)
    report(args, thinned, no_gt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
