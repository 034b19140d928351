"""How close to the ceiling: self-supervised IsoNet-2 against a supervised oracle, held-out scoring.

For each case, the same network (IsoNet-2 split), the same input grid and the same training
budget (``--minutes`` of wall clock per network) are given to two arms:

- **self-supervised**: what users run, ``isonet_ij.train`` on the acquired volume alone;
- **oracle**: ``isonet_ij.oracle.train_oracle``, trained on pairs whose targets are the
  truth (sources: the acquired volume's axial planes interpolated onto the isotropic grid,
  as restoration feeds the network; targets: the truth's axial planes at the same place).

Cases: the three phantom pairings of Table 1 (``--size``^3, seeds ``--seeds``; truth: the
isotropic ground truth), the real volumes A1 and A3 with every 4th and every 8th z slice
kept (truth: the original; seed 0), the controls A1y (A1 turned: its real y axis thinned),
and real content with a strong axial blur (``A1y_z4_b2`` ...: blurred along z by a known
sigma, thinned, Poisson and read noise; truth: the original).

Your own volume: ``--volume PATH`` (an isotropic stack) with ``--cases vol_z4,vol_z4_b2`` thins it
(and blurs it first) the same way, so the gap is measured on your content: a small gap with a
small gain over bicubic says the volume itself allows little more; a large gap, that the engine
leaves quality there (its cells are keyed by the file's name, path, size and time).

Held-out scoring: every volume is split at ``x_stop = X // 2``. No oracle pair, training or
validation, touches a voxel with ``x >= x_stop`` (xz planes are cropped to ``x < x_stop``,
yz planes are taken only there; ``tests/test_oracle.py`` shows it), and every method
(bicubic, Richardson-Lucy, self-supervised, oracle) restores the whole volume but is scored
on the block ``x >= x_stop`` alone: PSNR after the affine intensity fit and SSIM, against
the truth cropped to the restoration grid. The patch side is the same for both arms:
``min(64, what the volume allows, x_stop and the restoration grid's z size, each rounded
down to 4)``.

Restoration variants (``--variants``, e.g. ``tta``) restore the kept models of both arms
again with other options (``isonet_ij.restore(..., **options)``); a variant is scored like
the arms, so its gain can be read against the oracle gap.

Every finished cell is cached (``--cache``; the full profile's cells are committed in
``benchmarks/results/cells/oracle``), so a rerun resumes; trained models are kept under
``--models`` (ignored by git) for variants run later.

    .venv/bin/python benchmarks/bench_oracle.py --minutes 2 --seeds 0        # quick profile
    .venv/bin/python benchmarks/bench_oracle.py --minutes 0.1 --cases nuclei --size 64 \\
        --cache /tmp/oracle_cache --models /tmp/oracle_models --out /tmp/oracle/oracle.md   # smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import re
import statistics
import time
from pathlib import Path

import numpy as np

from common import (REAL, REAL_DATA, RESULTS, THINNED_PSF, TRUTH_SOURCES, cached, case_psf_spec, command_line, gaussian,
                    load_cell, machine_line, real_volume, semi_synthetic, synth_case, trained_key, write_report)

PHANTOMS = ("nuclei", "membranes", "nuclei-membranes")
REAL_CASES = ("A1_z4", "A1_z8", "A3_z4", "A3_z8")
#: controls: A1 turned so that its original y axis is thinned (A1's own z axis is interpolated from
#: slices about 4.84 voxels apart, ``isonet_ij.grid.resampling_period``; its y axis is not)
CONTROL_CASES = ("A1y_z4", "A1y_z8")
#: real content with a strong axial blur: the source (A1y, A3: real axes) blurred along z by a
#: Gaussian of sigma ``_bS`` voxels, then thinned and given noise as in bench_psf_auto_real
#: (``common.semi_synthetic``, :data:`NOISE`); the training PSF is that blur (sigma_z^2 = 1 + S^2)
BLURRED_CASES = ("A1y_z4_b2", "A3_z4_b2", "A1y_z4_b4", "A3_z4_b4")
NOISE = {"photons": 200.0, "background": 5.0, "read_noise": 3.0, "seed": 0}
CASES = PHANTOMS + REAL_CASES + CONTROL_CASES + BLURRED_CASES
#: the source name of ``--volume`` (a user's isotropic volume): cases ``vol_zF`` and ``vol_zF_bS``
USER_SOURCE = "vol"
#: the suffix of a thinned source's case name: ``_zF`` (every F-th slice kept), then ``_bS`` (blurred along z by S
#: voxels first); ``split_case`` reads it
THINNING = r"_z(?P<factor>\d+)(?:_b(?P<blur>\d+(?:\.\d+)?))?"
#: any source followed by THINNING: ``split_case`` reads its groups; any thinning / blur of TRUTH_SOURCES (or of
#: USER_SOURCE) is a case, beyond the listed ones (e.g. A1y_z4_b1)
THINNED_CASE = re.compile(r"(?P<source>.+?)" + THINNING)
ARMS = ("isonet2", "oracle")
#: engine changes that alter training, as extra self-supervised arms: name -> Config options
ENGINE_ARMS = {"rounds2": {"rounds": 2}}
#: restoration variants: name -> options of isonet_ij.restore
VARIANTS = {"tta": {"tta": True}, "refblur": {}, "ensemble": {}}
#: variants that change the output, not the restoration: name -> function(out, case)
POST = {"refblur": lambda out, case: reference_blur(out, case)}
LABELS = {"bicubic": "bicubic", "rl": "RL", "isonet2": "self-supervised", "oracle": "oracle"}
#: the cells a case (one seed) needs to be in the table (``--cached-only`` leaves out the others)
REQUIRED = ("bicubic", "isonet2", "oracle")

log = logging.getLogger("bench_oracle")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=15.0, help="training minutes per network, both arms")
    p.add_argument("--size", type=int, default=128, help="phantom edge length")
    p.add_argument("--seeds", default="0,1,2", help="phantom seeds (real volumes: seed 0)")
    p.add_argument("--cases", default=",".join(CASES), help="comma list of " + ", ".join(PHANTOMS + REAL_CASES) +
                   "; controls: " + ", ".join(CONTROL_CASES) + "; blurred semi-synthetic: " + ", ".join(BLURRED_CASES))
    p.add_argument("--variants", default="", help="comma list of restoration variants (" + ", ".join(VARIANTS) +
                   ") applied to the kept models of both arms")
    p.add_argument("--longer", default="", help="comma list of budget multiples (e.g. 3) for an extra "
                   "self-supervised arm trained that many times --minutes (a cell shared with a run at that budget)")
    p.add_argument("--longer-cases", default=",".join(REAL_CASES), help="cases the --longer arms run on")
    p.add_argument("--engine", default="", help="comma list of training changes (" + ", ".join(ENGINE_ARMS) +
                   ") trained as extra self-supervised arms (`isonet2+NAME`) on every case, same budget")
    p.add_argument("--epochs", type=int, default=0,
                   help="stop each network after this many epochs of 50 steps too (smoke tests: a run of a "
                        "known length on any machine; its cells are keyed apart); default: the time budget alone")
    p.add_argument("--rl-iterations", type=int, default=10)
    p.add_argument("--data", default=str(REAL_DATA))
    p.add_argument("--cache", default=str(RESULTS / "cache" / "oracle"))
    p.add_argument("--models", default=str(RESULTS / "cache" / "oracle_models"),
                   help="where trained models are kept (for --variants)")
    p.add_argument("--out", default=str(RESULTS / "oracle.md"))
    p.add_argument("--note", default="", help="a line quoted at the top of the report")
    p.add_argument("--volume", default="", help="your own isotropic stack (TIFF, OME-Zarr ...; z spacing = xy "
                   "spacing) as the truth of the cases vol_zF (every F-th slice kept) and vol_zF_bS (blurred along z "
                   "by S voxels first, with noise), e.g. --cases vol_z4,vol_z4_b2")
    p.add_argument("--cached-only", action="store_true",
                   help="render the table from the cells done so far, training nothing (a profile in progress: "
                        "cases and seeds without their bicubic, self-supervised and oracle cells are left out, and listed)")
    args = p.parse_args(argv)
    args.left_out = []
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.case_list = [c for c in args.cases.split(",") if c.strip()]
    args.variant_list = [v for v in args.variants.split(",") if v.strip()]
    args.longer_list = [float(v) for v in args.longer.split(",") if v.strip()]
    args.longer_case_list = [c for c in args.longer_cases.split(",") if c.strip()]
    args.engine_list = [c for c in args.engine.split(",") if c.strip()]
    for c in args.engine_list:
        if c not in ENGINE_ARMS:
            p.error(f"--engine: unknown change {c!r}; choose from {', '.join(ENGINE_ARMS)}")
    for c in args.case_list:
        thinned = THINNED_CASE.fullmatch(c)
        source = thinned.group("source") if thinned else None
        if source == USER_SOURCE and not args.volume:
            p.error(f"--cases: {c!r} thins the volume of --volume; pass --volume PATH (an isotropic stack)")
        if c not in CASES and source not in (*TRUTH_SOURCES, USER_SOURCE):
            p.error(f"--cases: unknown case {c!r}; choose from {', '.join(CASES)}, another factor or blur of "
                    f"{', '.join(TRUTH_SOURCES)} (e.g. A1y_z4_b1), or vol_z4, vol_z8_b2 ... with --volume")
    if args.volume and not Path(args.volume).is_file():
        p.error(f"--volume: no file {args.volume!r}")
    for v in args.variant_list:
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    return args


# ---------------------------------------------------------------- cases


def load_case(args, name: str, seed: int) -> dict:
    """``{"acq", "factor", "psf", "psf_spec", "ref"}`` of a phantom pairing or a thinned real volume."""
    from isonet_ij import grid

    if name in PHANTOMS:
        case, refs = synth_case(name, args.size, seed)
        return {"acq": case["input"], "factor": float(case["meta"]["factor"]), "psf": case["psf"],
                "psf_spec": case_psf_spec(case), "psf_info": case["meta"]["psf"], "ref": refs["gt_iso"]}
    volume, step, blur = split_case(name)
    full = source_volume(args, volume).astype(np.float32)
    acq, psf_spec = full[::step], THINNED_PSF
    if blur is not None:  # the added blur is the PSF's extra axial sigma: 1^2 + S^2 = sigma_z^2
        acq = semi_synthetic(full, blur, step, **NOISE)
        psf_spec = f"gaussian:1,{math.sqrt(1 + blur ** 2):.4g}"
    from isonet_ij import estimate_axial_blur

    return {"acq": acq, "factor": float(step), "psf": gaussian(psf_spec), "psf_spec": psf_spec,
            "psf_info": {}, "ref": grid.crop_to_grid(full, acq.shape[0], float(step)),
            "s0": float(estimate_axial_blur(full, factor=1.0)["sigma_extra"])}


def split_case(name: str) -> tuple:
    """``(source, factor, blur)`` of a thinned case name (``A1y_z4_b2`` -> ``("A1y", 4, 2.0)``; blur ``None``
    when the name has no ``_bS``)."""
    m = THINNED_CASE.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a thinned case name (SOURCE_zF or SOURCE_zF_bS)")
    blur = m.group("blur")
    return m.group("source"), int(m.group("factor")), None if blur is None else float(blur)


def case_id(args, name: str, seed: int) -> str:
    if name.startswith(USER_SOURCE + "_"):  # cells of another file (or of the file changed) are other cells
        path = Path(args.volume).resolve()
        tag = hashlib.sha1(f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:8]
        return f"{path.stem}-{tag}{name[len(USER_SOURCE):]}"
    return f"{name}_s{args.size}_seed{seed}" if name in PHANTOMS else name


def source_volume(args, name: str) -> np.ndarray:
    """The full (isotropic) volume of a source: ``--volume`` for :data:`USER_SOURCE`, else a real volume."""
    if name != USER_SOURCE:
        return real_volume(name, args.data)
    from isonet_ij import read_volume

    vol = read_volume(args.volume)
    data = np.asarray(vol.data, np.float64)
    if data.ndim != 3:
        raise SystemExit(f"--volume: {args.volume!r} is not a single-channel 3D stack (shape {data.shape})")
    if vol.voxel_size and abs(vol.voxel_size[0] / vol.voxel_size[1] - 1) > 0.05:
        log.warning("--volume: %s has z spacing %.3g and xy %.3g: the truth should be isotropic", args.volume,
                    vol.voxel_size[0], vol.voxel_size[1])
    return data


def patch_for(case) -> int:
    """Patch side of both arms: the volume's limit, the oracle planes' height and the training block's width."""
    from isonet_ij.pairs import max_patch_size

    x_stop = case["acq"].shape[2] // 2
    n_out = case["ref"].shape[0]
    return min(64, max_patch_size(case["acq"].shape, case["factor"]), x_stop - x_stop % 4, n_out - n_out % 4)


def reference_blur(out, case):
    """``out`` blurred along z by the reference's own extra axial sigma (real volumes only).

    A diagnostic, not an engine change: the original of A1 / A3 is itself blurrier along z
    than along x (``s0``, measured at factor 1 by ``estimate_axial_blur``), so a
    restoration as sharp as the lateral planes is penalized against it; blurred by ``s0``
    it is scored against what the reference can show.
    """
    from scipy.ndimage import gaussian_filter1d

    if case.get("s0") is None:
        return None
    if case["s0"] <= 0:  # no extra axial blur measured (A1y): nothing to blur by
        return np.asarray(out, np.float32)
    return gaussian_filter1d(np.asarray(out, np.float32), case["s0"], axis=0, mode="mirror")


def held_out_score(out, case) -> dict:
    """PSNR and SSIM of ``out`` on the scoring block ``x >= X // 2``, both after the affine intensity fit."""
    from isonet_ij import metrics

    x_stop = case["acq"].shape[2] // 2
    pred, ref = np.asarray(out, np.float64)[..., x_stop:], np.asarray(case["ref"], np.float64)[..., x_stop:]
    a, b = metrics.affine_fit(pred, ref)
    return {"psnr": float(metrics.psnr_affine(pred, ref)), "ssim": float(metrics.ssim(a * pred + b, ref))}


# ---------------------------------------------------------------- the arms


def train_arm(arm: str, case, seed: int, args, model_dir: Path, minutes: float, engine: str = ""):
    """Train one arm (with an :data:`ENGINE_ARMS` change) for ``minutes`` into ``model_dir``;
    ``{"train_s", "steps", "best_val_psnr", "patch"}``."""
    from isonet_ij import Config, train
    from isonet_ij.oracle import train_oracle

    P = patch_for(case)
    options = {"rounds": 1, **ENGINE_ARMS.get(engine, {})}  # one round unless the arm says (its cells' key)
    cfg = Config(factor=case["factor"], arch="isonet2", mode="split", psf=case["psf_spec"],
                 psf_info=case["psf_info"], epochs=args.epochs or 100_000, seed=seed, patch_size=P, **options)
    t = time.monotonic()
    budget = 60.0 * minutes
    if arm == "oracle":
        res = train_oracle(case["acq"], case["ref"], cfg, psf=case["psf"], x_stop=case["acq"].shape[2] // 2,
                           model_dir=model_dir, time_budget=budget, force=True)
    else:
        res = train(case["acq"], cfg, psf=case["psf"], model_dir=model_dir, time_budget=budget, force=True)
    return {"train_s": round(time.monotonic() - t, 1), "steps": int(sum(r["steps"] for r in res.history)),
            "best_val_psnr": max((r["val_psnr"] for r in res.history), default=None), "patch": P}


def run_case(args, name: str, seed: int) -> dict:
    """Every method's cell of one case (cached); trains the arms whose cells are missing."""
    from isonet_ij import baselines, load_model, restore

    cid = case_id(args, name, seed)
    cache = Path(args.cache)
    case = None

    def get_case():
        nonlocal case
        if case is None:
            case = load_case(args, name, seed)
        return case

    def baseline(method):
        c = get_case()
        if method == "bicubic":
            return held_out_score(baselines.bicubic(c["acq"], c["factor"]), c)
        out = baselines.richardson_lucy(c["acq"], c["psf"], c["factor"], iterations=args.rl_iterations)
        return {**held_out_score(out, c), "iterations": args.rl_iterations}

    def cell(key, compute):  # with --cached-only a missing cell stays missing (None)
        return load_cell(cache, key) if args.cached_only else cached(cache, key, compute)

    row = {"bicubic": cell(f"{cid}_bicubic", lambda: baseline("bicubic")),
           "rl": cell(f"{cid}_rl{args.rl_iterations}", lambda: baseline("rl"))}
    arms = [(arm, arm, args.minutes, "") for arm in ARMS]
    if name in args.longer_case_list:
        arms += [(f"isonet2x{k:g}", "isonet2", args.minutes * k, "") for k in args.longer_list]
    arms += [(f"isonet2+{e}", "isonet2", args.minutes, e) for e in args.engine_list]
    for label, arm, minutes, engine in arms:
        key = trained_key(f"{cid}_m{minutes:g}_{arm}" + (f"_{engine}" if engine else "") +
                          (f"_ep{args.epochs}" if args.epochs else ""), rounds_pinned=True)
        model_dir = Path(args.models) / key

        def trained(arm=arm, model_dir=model_dir, minutes=minutes, engine=engine):
            c = get_case()
            info = train_arm(arm, c, seed, args, model_dir, minutes, engine)
            return {**held_out_score(restore(c["acq"], load_model(model_dir)), c), **info}

        row[label] = cell(key, trained)
        if row[label] is None:
            continue
        log.info("%s %s: %.2f dB (%d steps in %.0f s)", cid, label, row[label]["psnr"], row[label]["steps"],
                 row[label]["train_s"])
        for variant in args.variant_list if label in ARMS or engine else ():
            if variant in POST and name in PHANTOMS:
                continue  # the phantoms' reference is isotropic
            vkey = f"{key}_{variant}"
            if load_cell(cache, vkey) is None and not (model_dir / "config.json").is_file():
                log.warning("%s: no kept model in %s, variant %s skipped", cid, model_dir, variant)
                continue
            row[f"{label}+{variant}"] = cell(vkey, lambda model_dir=model_dir, variant=variant: variant_score(
                model_dir, variant, get_case()))
    return {k: v for k, v in row.items() if v is not None}


def variant_score(model_dir: Path, variant: str, case) -> dict:
    """The kept model restored with a variant's options (and its output post-processing), scored."""
    from isonet_ij import load_model, restore

    out = restore(case["acq"], load_model(model_dir), **VARIANTS[variant])
    if variant == "ensemble":  # the best and the last checkpoint, averaged
        out = 0.5 * (out + restore(case["acq"], load_model(model_dir, weights="last")))
    if variant in POST:
        out = POST[variant](out, case)
    return {**held_out_score(out, case), "s0": case.get("s0")}


# ---------------------------------------------------------------- report


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt(values, digits=2):
    mean, std = stats(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ({std:.{digits}f})" if std is not None else "")


def summary(rows: list, methods: list) -> dict:
    """Per method: the list of PSNR / SSIM over ``rows`` (one per seed); gaps per seed."""
    out = {m: {k: [r[m][k] for r in rows if m in r] for k in ("psnr", "ssim")} for m in methods}
    out["gap"] = [r["oracle"]["psnr"] - r["isonet2"]["psnr"] for r in rows]
    out["gain"] = [r["isonet2"]["psnr"] - r["bicubic"]["psnr"] for r in rows]
    for arm in ARMS:
        out[f"{arm}_steps"] = [r[arm]["steps"] for r in rows]
        out[f"{arm}_s"] = [r[arm]["train_s"] for r in rows]
    return out


def report(args, results: dict) -> None:
    methods = ["bicubic", "rl", "isonet2", "oracle"]
    lines = ["# How close to the ceiling: self-supervised IsoNet-2 vs a supervised oracle (`benchmarks/bench_oracle.py`)",
             "", f"Machine / date: {machine_line()}.", "", f"Command: `{command_line()}`.", ""]
    if args.note:
        lines += [f"> {args.note}", ""]
    if args.cached_only:
        done = (f"not yet run, left out: {', '.join(args.left_out)}" if args.left_out
                else "every case and seed asked for has its cells")
        lines += [f"> Rendered from the cells done so far (`--cached-only`); {done}.", ""]
    lines += [f"IsoNet-2 split, {args.minutes:g} min of training per network and arm (wall clock; steps "
              "recorded), same patch side for both arms, one training round each (`--rounds 1`; the default, "
              "`--rounds auto`, trains two where the PSF's extra axial sigma is >= 1.5 voxels: the "
              "`isonet2+rounds2` arm below). Scored on the held-out block x >= X/2 only "
              "(no oracle pair touches it): PSNR (dB, after the affine intensity fit) / SSIM against the "
              "isotropic ground truth (phantoms) or the original (A1, A3), SSIM also after the fit. Phantoms: "
              f"mean (std) over seeds {args.seeds}; real volumes: seed 0. gap = oracle - self-supervised; goal: "
              "<= 1 dB on phantoms, <= 1.5 dB on real volumes.", ""]
    head = "| case | " + " | ".join(LABELS[m] for m in methods) + \
        " | self - bicubic | **gap** | steps self / oracle | train s self / oracle |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    summaries = {}
    for name, rows in results.items():
        s = summaries[name] = summary(rows, methods)
        cells = [f"{fmt(s[m]['psnr'])} / {fmt(s[m]['ssim'], 3)}" for m in methods]
        label = f"{name} (n={len(rows)})" if name in PHANTOMS and len(rows) < len(args.seed_list) else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {fmt(s['gain'])} | **{fmt(s['gap'])}** | "
                     f"{fmt(s['isonet2_steps'], 0)} / {fmt(s['oracle_steps'], 0)} | "
                     f"{fmt(s['isonet2_s'], 0)} / {fmt(s['oracle_s'], 0)} |")
    sources = sorted({split_case(n)[0] for n in results if n not in PHANTOMS})
    lines += reference_checks(args, sources)
    lines += noise_checks(args, [s for s in sources if s in REAL or s == USER_SOURCE])
    lines += changes_table(results)
    write_report(args.out, lines, {"args": {k: v for k, v in vars(args).items()}, "results": results,
                                   "summary": summaries})


def reference_checks(args, sources: list) -> list:
    """Is the thinned axis (z) of each real source (A1, A1y, A3) itself interpolated
    (``isonet_ij.grid.resampling_period``)?"""
    from isonet_ij.grid import resampling_period

    if not sources:
        return []
    lines = ["", "## Is the reference's thinned axis real?", "",
             "A reference whose z axis was itself interpolated from coarser slices (A1 is stored \"isotropic in "
             "pixels (resampled)\") holds no more axial detail than those slices; an oracle trained on it learns "
             "the interpolation, which no restoration from lateral planes can know, so its gap overstates the "
             "distance to a real ceiling. The controls A1y_z4 / A1y_z8 thin A1's original y axis instead "
             "(the volume turned, `load_case`). Test: `isonet_ij.grid.resampling_period` on the full reference along the "
             "thinned axis (period of the knots, modulation amplitude of the second-difference energy, p against "
             "200 shuffled profiles; resampled: p < 0.01 and amplitude >= 0.1).", "",
             "| source | thinned axis resampled? | period (voxels) | amplitude | p |", "|---|---|---|---|---|"]
    for name in sources:
        check = resampling_period(source_volume(args, name), 0)
        lines.append(f"| {name} | {'**yes**' if check['resampled'] else 'no'} | {check['period']:.2f} | "
                     f"{check['amplitude']:.3f} | {check['p']:.3f} |")
    return lines


def white_noise_floor(volume_norm, k_min: float) -> float:
    """Median power of the lateral slices (Hann-windowed, per-slice mean removed) at ``|k| > k_min``
    cycles/pixel: the variance of white noise, where the optics pass no signal."""
    v = np.asarray(volume_norm, np.float64)
    ny, nx = v.shape[1:]
    k = np.sqrt(np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2)
    w = np.hanning(ny)[:, None] * np.hanning(nx)[None, :]
    power = np.mean([np.abs(np.fft.fft2((s - s.mean()) * w)) ** 2 for s in v], axis=0) / float((w**2).sum())
    return float(np.median(power[k > k_min]))


def noise_checks(args, sources: list) -> list:
    """Does ``pairs.estimate_noise`` (the model the self-supervised sources' noise is matched to) agree with
    the real volumes' white noise floor?"""
    from isonet_ij import pairs

    if not sources:
        return []
    lines = ["", "## Does the fitted noise model match the real volumes?", "",
             "`pairs.estimate_noise` fits var = a I + b on the normalized lateral slices (3x3 high-pass, robust "
             "variance per intensity bin); its mean over the volume is compared with the power of the lateral "
             "slices where the optics pass no signal (|k| > 0.4 and > 0.6 cycles/pixel): equal for white noise, "
             "and a floor that keeps falling from 0.4 to 0.6 means the noise is not white there.", "",
             "| volume | a | b | model's mean variance | floor, abs(k) > 0.4 | floor, abs(k) > 0.6 | model / floor 0.4 |",
             "|---|---|---|---|---|---|---|"]
    for name in sources:
        vol = source_volume(args, name)
        vn = pairs.normalize(vol, *pairs.percentiles(vol)).astype(np.float64)
        a, b = pairs.estimate_noise(vn)
        model = a * float(np.clip(vn, 0, None).mean()) + b
        f4, f6 = white_noise_floor(vn, 0.4), white_noise_floor(vn, 0.6)
        lines.append(f"| {name} | {a:.3g} | {b:.3g} | {model:.3g} | {f4:.3g} | {f6:.3g} | {model / f4:.2f} |")
    return lines


def changes_table(results: dict) -> list:
    """Engine changes (restoration variants, longer budgets) against the gap: PSNR gained (dB)."""
    changes = sorted({k for rows in results.values() for r in rows for k in r
                      if "+" in k or k.startswith("isonet2x")})
    if not changes:
        return []
    lines = ["", "## Engine changes measured against the gap", "",
             "PSNR gained by each change over the plain arm it modifies (dB, held-out block; "
             "`+tta`: test-time augmentation of the same model, `+ensemble`: the best and the last checkpoint averaged, `+refblur`: a diagnostic, the output blurred along z by the reference's own extra axial sigma s0 (real volumes), `isonet2xN`: self-supervised trained "
             "N times the budget, `isonet2+rounds2`: self-supervised in two training rounds, `--rounds 2`, same budget, "
             "`isonet2+rounds2+tta`: that with `--tta`, its gain over the plain arm), and the gap left (oracle - self-supervised with the change).", ""]
    head = "| case | gap | " + " | ".join(f"{c} gain | gap left" for c in changes) + " |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, rows in results.items():
        cells = []
        for c in changes:
            base = c.split("+")[0] if "+" in c else "isonet2"
            gains = [r[c]["psnr"] - r[base]["psnr"] for r in rows if c in r]
            left = [r["oracle"]["psnr"] - r[c]["psnr"] for r in rows if c in r and not c.startswith("oracle")]
            cells.append(f"{fmt(gains)} | {fmt(left) if left else '-'}")
        gap = [r["oracle"]["psnr"] - r["isonet2"]["psnr"] for r in rows]
        lines.append(f"| {name} | {fmt(gap)} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    results = {}
    for name in args.case_list:
        seeds = args.seed_list if name in PHANTOMS else [0]
        rows = {seed: run_case(args, name, seed) for seed in seeds}
        complete = [r for r in rows.values() if all(m in r for m in REQUIRED)]
        args.left_out += [f"{case_id(args, name, seed)}" for seed, r in rows.items() if r not in complete]
        if complete:
            results[name] = complete
            report(args, results)
    if not results:
        raise SystemExit(f"--cached-only: no case has all of {', '.join(REQUIRED)} in {args.cache}; run without it")
    report(args, results)  # once more: the cases left out after the last one reported are listed
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
