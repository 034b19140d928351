"""Does ``--psf auto`` (a Gaussian estimated from the volume) restore as well as the true PSF?

Part 1, phantoms (the paper's confocal and light-sheet pairings, ``--size``^3):
IsoNet-2 split trained with the true PSF and with ``--psf auto``, the same number of
training steps each (a step budget, not a wall-clock one, so that a busy machine cannot
favour either), scored by PSNR (affine-fitted) against the isotropic ground truth.

Part 2, the real volumes of ``../shared/data/real``: A1 (membranes) and A3 (nuclei) with
every 4th z slice kept (the factor is the slice step) and B1 (light-sheet, axial blur
~2.5x lateral, factor 1) as is. Each is restored by IsoNet-2 split trained with the
estimated PSF and with each of a small grid of Gaussian guesses (sigma_xy 1, sigma_z
1 / 2 / 4 voxels), equal steps. A1/A3 are scored against the original volume (PSNR after
the affine fit, SSIM); B1 has no ground truth: the score is the extra axial blur left in
the restored volume, estimated the same way (``estimate_axial_blur(restored, factor=1)``,
sigma_extra in voxels; 0 = axial as sharp as lateral), next to the input's.

Every finished cell is cached (``--cache``); a rerun resumes. Results:
``benchmarks/results/psf_auto.md`` and ``.json``.

    .venv/bin/python benchmarks/bench_psf_auto.py                     # 128^3, 300 / 120 steps
    .venv/bin/python benchmarks/bench_psf_auto.py --size 48 --steps 20 --real A1   # smoke test
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from common import REAL, REAL_DATA, RESULTS, cached, estimate, gaussian, synth_case, train_restore, trained_key
from common import write_report as save_report

SYNTH = {"membranes": "confocal", "nuclei-membranes": "light-sheet"}
#: ``--psf auto:MODEL`` per pairing: the modality and what a user knows (immersion, dyes), not the NA
AUTO_MODEL = {"membranes": "confocal:n=1.33,ex=488,em=520",
              "nuclei-membranes": "lightsheet:na_detect=0.8,n=1.33,ex=488,em=520"}
GUESSES = ["gaussian:1,1", "gaussian:1,2", "gaussian:1,4"]
#: real volumes with a calibration also get ``--psf auto:MODEL`` (A3: spinning-disk confocal, hiPSC nuclei)
REAL_MODEL = {"A3": "confocal"}

log = logging.getLogger("bench_psf_auto")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300, help="training steps per model on the phantoms (batches of 16)")
    p.add_argument("--real-steps", type=int, default=120, help="training steps per model on the real volumes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synth", default=",".join(SYNTH), help="comma list of " + ", ".join(SYNTH) + " (or empty)")
    p.add_argument("--real", default=",".join(REAL), help="comma list of " + ", ".join(REAL) + " (or empty)")
    p.add_argument("--data", default=str(REAL_DATA))
    p.add_argument("--cache", default=str(RESULTS / "cache" / "psf_auto"))
    p.add_argument("--out", default=str(RESULTS / "psf_auto.md"))
    return p.parse_args(argv)


def synth_part(args, cache):
    from isonet_ij import metrics

    rows = {}
    for kind in [k for k in args.synth.split(",") if k]:
        case = None
        rows[kind] = {}
        for arm in ("true", "auto", "auto-model"):
            key = trained_key(f"synth_{kind}_s{args.size}_seed{args.seed}_st{args.steps}_{arm}")

            def compute(arm=arm):
                nonlocal case
                if case is None:
                    case = synth_case(kind, args.size, args.seed)
                g, f = case[0]["input"], float(case[0]["meta"]["factor"])
                ref = case[1]["gt_iso"]
                from isonet_ij.psf import parse_psf_spec
                from isonet_ij.psf import auto_psf_spec  # exactly what --psf auto uses

                dx = float(case[0]["meta"]["voxel_size_um"][2])
                if arm == "true":
                    spec, h, est = case[0]["meta"]["psf"].get("spec", "true"), case[0]["psf"], None
                elif arm == "auto":
                    spec, est = auto_psf_spec(g, f)
                    h = gaussian(spec)
                else:
                    spec, est = auto_psf_spec(g, f, model=AUTO_MODEL[kind], xy_voxel_size=dx)
                    h = parse_psf_spec(spec, voxel_size=(dx, dx, dx))[0]
                out, info = train_restore(g, f, h, spec, args, args.steps)
                return {"kind": kind, "arm": arm, "psf": spec, "estimate": est, "factor": f,
                        "psnr_gt_iso": float(metrics.psnr_affine(out, ref)), **info}

            rows[kind][arm] = cached(cache, key, compute)
            c = rows[kind][arm]
            log.info("%s %s (%s): %.2f dB vs GT_iso", kind, arm, c["psf"], c["psnr_gt_iso"])
    return rows


def real_part(args, cache):
    from isonet_ij import baselines, grid, metrics
    from isonet_ij.volume_io import read_volume

    rows = {}
    for name in [n for n in args.real.split(",") if n]:
        fname, step = REAL[name]
        path = Path(args.data) / fname
        if not path.is_file():
            log.warning("%s missing: skipped", path)
            continue
        vol = read_volume(path)
        full = vol.data.astype(np.float32)
        dx = vol.voxel_size[2] if vol.voxel_size else None
        acq = full[::step]
        f = float(step)
        ref = grid.crop_to_grid(full, acq.shape[0], f) if step > 1 else None
        est = cached(cache, f"real_{name}_estimate", lambda acq=acq, f=f: estimate(acq, f))
        rows[name] = {"estimate": est, "factor": f, "shape": list(full.shape), "cells": {}}

        def scores(out):
            if ref is not None:
                return {"psnr": float(metrics.psnr_affine(out, ref)), "ssim": float(metrics.ssim(out, ref))}
            return {"axial_extra_sigma": float(estimate(out, 1.0)["sigma_extra"])}

        key0 = f"real_{name}_input"
        rows[name]["input"] = cached(cache, key0, lambda acq=acq, f=f: {
            "scores": scores(baselines.bicubic(acq, f) if f > 1 else acq)})
        arms = ["auto", *GUESSES] + ([f"auto:{REAL_MODEL[name]}"] if name in REAL_MODEL else [])
        for spec in arms:
            key = trained_key(f"real_{name}_seed{args.seed}_st{args.real_steps}_{spec.replace(':', '-').replace(',', '_')}")

            def compute(spec=spec, acq=acq, f=f, dx=dx):
                if spec.startswith("auto:"):
                    from isonet_ij.psf import parse_psf_spec
                    from isonet_ij.psf import auto_psf_spec

                    s, _ = auto_psf_spec(acq, f, model=spec[5:], xy_voxel_size=dx)
                    h = parse_psf_spec(s, voxel_size=(dx, dx, dx))[0]
                else:
                    s = est["psf_spec"] if spec == "auto" else spec
                    h = gaussian(s)
                out, info = train_restore(acq, f, h, s, args, args.real_steps)
                return {"psf": s, "scores": scores(out), **info}

            rows[name]["cells"][spec] = cached(cache, key, compute)
            log.info("%s %s: %s", name, spec, rows[name]["cells"][spec]["scores"])
    return rows


def write_report(args, synth, real):
    from isonet_ij.config import versions

    lines = ["# `--psf auto` vs the true PSF and vs Gaussian guesses (`benchmarks/bench_psf_auto.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({platform.machine()}), no GPU; "
             f"tensorflow {versions().get('tensorflow')}. IsoNet-2 split, {args.steps} training steps "
             f"per model on the phantoms and {args.real_steps} on the real volumes (batch 16, patch <= 64), "
             "the same for every arm of a volume; seed "
             f"{args.seed}. PSNR after the least-squares affine intensity fit (dB).", ""]
    if synth:
        lines += [f"## Phantoms, {args.size}^3: PSNR vs isotropic GT", "",
                  "| pairing | true PSF | dB (true) | `--psf auto` (Gaussian) | dB | vs true | "
                  "`--psf auto:MODEL` (fitted) | dB | vs true |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for kind, arms in synth.items():
            t, a, m = arms["true"], arms["auto"], arms.get("auto-model")
            row = (f"| {kind} / {SYNTH[kind]} / {t['factor']:g} | `{t['psf']}` | {t['psnr_gt_iso']:.2f} | "
                   f"`{a['psf']}` | {a['psnr_gt_iso']:.2f} | {a['psnr_gt_iso'] - t['psnr_gt_iso']:+.2f} | ")
            row += (f"`auto:{AUTO_MODEL[kind]}` -> `{m['psf']}` | {m['psnr_gt_iso']:.2f} | "
                    f"{m['psnr_gt_iso'] - t['psnr_gt_iso']:+.2f} |") if m else "| | |"
            lines.append(row)
        lines += ["", "`auto` fits a Gaussian to the measured axial spectrum: it matches the PSF's core "
                  "(its FWHM), not the heavy tails of optical PSFs. `auto:MODEL` keeps the optical model's "
                  "shape and fits its free NA (confocal: NA; light sheet: illumination NA) so that the model's "
                  "spectrum shows the same extra axial blur over the same band "
                  "(`isonet_ij.psf.fit_optical_psf`); the user gives only the modality and what is "
                  "known (immersion, wavelengths, detection NA of the light sheet).", ""]
    if real:
        lines += ["## Real volumes", "",
                  "A1/A3: every 4th slice kept, scored against the original volume (PSNR dB / SSIM). "
                  "B1: factor 1, scored by the extra axial Gaussian blur left (sigma_extra, voxels, "
                  "estimated from the restored volume; lower = axial closer to lateral).", "",
                  "| volume | estimate (auto) | input (bicubic) | auto | " + " | ".join(f"`{g}`" for g in GUESSES)
                  + " | auto >= best guess |",
                  "|---|---|---|---|" + "---|" * len(GUESSES) + "---|"]
        model_rows = []
        for name, r in real.items():
            def fmt(s):
                if "psnr" in s:
                    return f"{s['psnr']:.2f} / {s['ssim']:.3f}"
                return f"{s['axial_extra_sigma']:.2f}"

            cells = r["cells"]
            if "psnr" in cells["auto"]["scores"]:
                best = max(cells[g]["scores"]["psnr"] for g in GUESSES)
                ok = cells["auto"]["scores"]["psnr"] >= best - 1e-9
                verdict = f"{'yes' if ok else 'no'} ({cells['auto']['scores']['psnr'] - best:+.2f} dB)"
            else:
                best = min(cells[g]["scores"]["axial_extra_sigma"] for g in GUESSES)
                ok = cells["auto"]["scores"]["axial_extra_sigma"] <= best + 1e-9
                verdict = f"{'yes' if ok else 'no'} ({cells['auto']['scores']['axial_extra_sigma'] - best:+.2f} vox)"
            e = r["estimate"]
            lines.append(f"| {name} {tuple(r['shape'])} f={r['factor']:g} | `{e['psf_spec']}` (sigma_extra "
                         f"{e['sigma_extra']:.2f}) | {fmt(r['input']['scores'])} | **{fmt(cells['auto']['scores'])}** | "
                         + " | ".join(fmt(cells[g]["scores"]) for g in GUESSES) + f" | {verdict} |")
            for spec, cell in cells.items():
                if spec.startswith("auto:"):
                    model_rows.append(f"| {name} | `{spec}` -> `{cell['psf']}` | {fmt(cell['scores'])} |")
        if model_rows:
            lines += ["", "| volume | `--psf auto:MODEL` | score |", "|---|---|---|", *model_rows]
        lines.append("")
    save_report(args.out, lines, {"synth": synth, "real": real})  # atomic: never a half-written report


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cache = Path(args.cache)
    synth = synth_part(args, cache)
    real = real_part(args, cache)
    write_report(args, synth, real)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
