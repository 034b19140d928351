"""Quality benchmark of the restoration engine: the paper's Table 1 on synthetic phantoms.

For each pairing (phantom / PSF / factor of the paper: nuclei / gaussian 2-8 / 8,
membranes / confocal NA 1.1 / 4, nuclei+membranes / light-sheet / 6) and each phantom seed
of ``--seeds``, at ``--size``^3, it runs bicubic z interpolation, Richardson-Lucy, SRCNN
(IsoNet-1 on subsampling-only pairs), IsoNet-1 full/split and IsoNet-2 full/split (each
network trained for at most ``--minutes`` wall-clock minutes, pair preparation included),
and scores every output against the ground truth (GT) and the isotropic ground truth (GT
convolved with h_iso), both cropped to the restoration grid (floor((Z-1)*f)+1 slices).

Score: PSNR after the least-squares affine intensity fit of the output to the reference
(CSBDeep's evaluation; ``isonet_ij.metrics.psnr_affine``), dB; data range = range of the
reference. The main table gives ``mean (std)`` over the seeds (std with ddof=1; no std
with one seed), as the paper's Table 1 (which used n=10 phantoms of its own, 512^3-ish);
a "Paper's ordering" section checks the paper's qualitative findings on the means, and the
paper's own numbers are printed for reference. ``--ablations`` adds IsoNet-2 split without
noise matching; ``--paper-recipe`` adds every network without it (the paper's pairs carry
no added noise) and a section comparing full and split both ways.

Every finished cell (pairing x seed x method) is cached as JSON under ``--cache``; a rerun
with the same parameters skips it, so an interrupted run resumes. Each cell also keeps the
central xz slice of its output, from which ``<out stem>_montage_<pairing>.png`` (first seed,
beside ``--out``) is drawn. Results go to ``benchmarks/results/engine_quality.md`` (and
``.json``).

    isonet bench table1 --profile quick     # --size 128 --minutes 3 --seeds 0
    isonet bench table1 --profile full      # --size 128 --minutes 15 --seeds 0,1,2 --ablations
    .venv/bin/python benchmarks/bench_engine_quality.py --size 128 --minutes 15 --seeds 0,1,2
    .venv/bin/python benchmarks/bench_engine_quality.py --size 128 --minutes 3 --ablations --paper-recipe
    .venv/bin/python benchmarks/bench_engine_quality.py --size 64 --minutes 1 --pairings nuclei

Goals checked in the report: IsoNet-2 split beats bicubic and RL vs isotropic GT on every
pairing, by at least 3 dB on nuclei/gaussian/8.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from common import (RESULTS, case_psf_spec, central_xz, command_line, load_cell, save_cell, score, synth_case,
                    save_figure, trained_key)
from common import write_report as save_report

PAIRINGS = {  # name -> phantom kind (PSF and factor: the phantoms module's paper defaults)
    "nuclei": "nuclei",
    "membranes": "membranes",
    "nuclei-membranes": "nuclei-membranes",
}
METHODS = ["bicubic", "rl", "srcnn", "isonet1-full", "isonet1-split", "isonet2-full", "isonet2-split"]
ABLATIONS = ["isonet2-split-nonoise"]
NETWORKS = [m for m in METHODS if m.startswith("isonet")]
#: Suffix of a network trained without noise matching (the paper's pairs carry no added noise).
NONOISE = "-nonoise"
#: ``--paper-recipe``: every network of Table 1 trained without noise matching as well.
PAPER_RECIPE = [m + NONOISE for m in NETWORKS]
LABELS = {
    "bicubic": "Bicubic (input)", "rl": "Deconv (RL)", "srcnn": "SRCNN",
    "isonet1-full": "IsoNet-1 full", "isonet1-split": "IsoNet-1 split",
    "isonet2-full": "IsoNet-2 full", "isonet2-split": "IsoNet-2 split",
}
LABELS.update({m + NONOISE: LABELS[m] + ", no noise matching" for m in NETWORKS})
#: The paper's Table 1 (mean PSNR in dB over n=10 phantoms, its own 512^3-ish volumes),
#: columns in the order of METHODS: pairing -> reference -> values.
PAPER = {
    "nuclei": {"gt_iso": [25.84, 27.48, 25.89, 32.18, 32.47, 35.11, 35.61],
               "gt": [24.09, 25.88, 24.15, 27.74, 27.53, 29.51, 28.84]},
    "membranes": {"gt_iso": [21.83, 18.52, 21.69, 19.55, 26.19, 19.14, 27.33],
                  "gt": [15.95, 16.48, 15.94, 16.84, 16.49, 17.09, 16.62]},
    "nuclei-membranes": {"gt_iso": [28.13, 25.00, 28.69, 25.59, 30.23, 25.40, 30.95],
                         "gt": [24.61, 26.57, 24.59, 26.86, 26.07, 27.85, 26.66]},
}
REF_NAMES = {"gt_iso": "isotropic GT", "gt": "GT"}


def label(method):
    return LABELS.get(method, method.replace("rl-", "RL ") + " it.")

log = logging.getLogger("bench_engine_quality")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128, help="phantom edge length (default 128)")
    p.add_argument("--minutes", type=float, default=15.0, help="training minutes per model (default 15)")
    p.add_argument("--pairings", default=",".join(PAIRINGS), help="comma list of " + ", ".join(PAIRINGS))
    p.add_argument("--seeds", default="0", help="comma list of phantom seeds (default 0); the table "
                   "gives mean (std) over them")
    p.add_argument("--seed", dest="seeds", help="alias of --seeds (one seed)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma list of " + ", ".join(dict.fromkeys(METHODS + ABLATIONS + PAPER_RECIPE)))
    p.add_argument("--ablations", action="store_true", help="also run " + ", ".join(ABLATIONS))
    p.add_argument("--paper-recipe", action="store_true",
                   help="also train every network without noise matching, as the paper's pairs were made "
                   "(" + ", ".join(PAPER_RECIPE) + "): the report compares full and split both ways")
    p.add_argument("--rl-iterations", default="10,30", help="RL iteration counts; the first is the table's RL column")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default all cores)")
    p.add_argument("--cache", default=str(RESULTS / "cache" / "engine_quality"))
    p.add_argument("--out", default=str(RESULTS / "engine_quality.md"),
                   help="Markdown report; the .json and the <stem>_montage_<pairing>.png go beside it")
    p.add_argument("--keep-models", default=None, metavar="DIR", help="keep the trained model dirs here")
    p.add_argument("--cached-only", action="store_true",
                   help="train nothing: render the report from the cached cells; a seed counts for a "
                   "pairing only when all its cells are cached (a full run in progress, seed by seed)")
    p.add_argument("--note", default="", help="a line quoted at the top of the report (e.g. what is "
                   "still running, how the cells were made)")
    args = p.parse_args(argv)
    try:
        args.seed_list = list(dict.fromkeys(int(s) for s in str(args.seeds).split(",") if s.strip()))
    except ValueError:
        p.error(f"--seeds: expected a comma list of integers, got {args.seeds!r}")
    if not args.seed_list:
        p.error("--seeds: no seed given")
    return args


def cell_key(args, pairing, seed, method, extra=""):
    key = f"{pairing}_s{args.size}_seed{seed}_m{args.minutes:g}_{method}{extra}"
    return key if method == "bicubic" or method.startswith("rl") else trained_key(key)


def refs_key(args, pairing, seed):
    """Cache key of the reference slices (GT and isotropic GT) of one phantom."""
    return f"{pairing}_s{args.size}_seed{seed}_refs_xz"


def encode_slice(a) -> str:
    """A 2D array as base64 of its float32 ``.npy`` bytes."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_slice(s: str):
    import numpy as np

    return np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False)


def run_method(method, case, args, rl_iters, refs, seed=0):
    """Return (restored volume, info dict) for one method on one synthetic case."""
    from isonet_ij import baselines
    from isonet_ij.config import Config
    from isonet_ij import restore, restore_with_info, train

    g, f, h = case["input"], float(case["meta"]["factor"]), case["psf"]
    psf_spec = case_psf_spec(case)
    if method == "bicubic":
        return baselines.bicubic(g, f), {}
    if method.startswith("rl"):
        it = int(method[3:]) if method != "rl" else rl_iters[0]
        return baselines.richardson_lucy(g, h, f, iterations=it), {"iterations": it}
    budget = 60.0 * args.minutes
    if method == "srcnn":
        arch, mode, extra = "isonet1", "none", {}
    else:
        parts = method.split("-")
        arch, mode = parts[0], parts[1]
        extra = {"noise_match": False} if method.endswith(NONOISE) else {}
    from isonet_ij.pairs import max_patch_size

    patch = min(64, max_patch_size(g.shape, f))  # 64 (measured default) unless the volume is smaller
    cfg = Config(factor=f, arch=arch, mode=mode, psf=psf_spec if mode != "none" else "",
                 psf_info=case["meta"]["psf"], epochs=100_000, seed=seed, patch_size=patch, **extra)
    model_dir = None
    if args.keep_models:
        model_dir = Path(args.keep_models) / f"{case['meta']['kind']}_seed{seed}_{method}"
    t = time.monotonic()
    res = train(g, cfg, psf=h if mode != "none" else None, model_dir=model_dir, time_budget=budget,
                force=True, progress=sys.stderr.isatty())
    t_train = time.monotonic() - t
    result = restore_with_info(g, res.model, consistency=mode != "none")
    out, info = result.volume, result.info
    # fusion comparison from the same network: each pass alone, mean, geometric mean
    from isonet_ij import pairs
    from isonet_ij.restoration import fuse

    lo, hi = info["normalization"]["low"], info["normalization"]["high"]
    single = {p: pairs.normalize(restore(g, res.model, passes=(p,)), lo, hi) for p in ("xz", "yz")}
    fusion = {p: score(pairs.denormalize(v, lo, hi), refs) for p, v in single.items()}
    for how in ("mean", "geometric"):
        fusion[how] = score(pairs.denormalize(fuse(single["xz"], single["yz"], how), lo, hi), refs)
    return out, {
        "fusion": fusion,
        "train_s": round(t_train, 1),
        "steps": int(sum(r["steps"] for r in res.history)),
        "epochs": len(res.history),
        "best_val_psnr": max(r["val_psnr"] for r in res.history),
        "val_psnr_input": res.history[-1]["val_psnr_input"],
        "restore_s": round(info["seconds"], 1),
        "self_consistency_psnr": (info.get("consistency") or {}).get("psnr"),
    }


def slice_info(vol, refs):
    """The central xz slice of ``vol`` and its affine fit to the isotropic GT (whole volume)."""
    from isonet_ij import metrics

    a, b = metrics.affine_fit(vol, refs["gt_iso"])
    return {"xz": encode_slice(central_xz(vol)), "xz_affine_gt_iso": [float(a), float(b)]}


def refs_cell(refs):
    """Cache cell with the central xz slices of the references (GT fitted to the isotropic GT)."""
    return {"gt_iso": slice_info(refs["gt_iso"], refs), "gt": slice_info(refs["gt"], refs)}


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from isonet_ij.nets import set_threads

    set_threads(args.threads)
    pairings = [p for p in args.pairings.split(",") if p]
    for p in pairings:
        if p not in PAIRINGS:
            raise SystemExit(f"unknown pairing {p!r}; choose from {', '.join(PAIRINGS)}")
    methods = [m for m in args.methods.split(",") if m]
    if args.ablations:
        methods += [a for a in ABLATIONS if a not in methods]
    if args.paper_recipe:  # the four no-noise networks side by side, in the order of the others
        methods = [m for m in methods if m not in PAPER_RECIPE] + PAPER_RECIPE
    rl_iters = [int(v) for v in args.rl_iterations.split(",") if v]
    extra_rl = [f"rl-{it}" for it in rl_iters[1:]]
    cache = Path(args.cache)
    results = {}  # pairing -> seed (str) -> method -> cell
    incomplete = {}  # pairing -> seeds left out by --cached-only (cells missing)
    montage_refs = {}  # pairing -> reference slices of the first seed (or None)
    seed_refs = {}  # pairing -> seed (str) -> reference slices
    for pairing in pairings:
        results[pairing] = {}
        for seed in args.seed_list:
            case = refs = None
            cells = results[pairing][str(seed)] = {}
            for method in methods + extra_rl:
                key = cell_key(args, pairing, seed, method, f"_it{rl_iters[0]}" if method == "rl" else "")
                cell = load_cell(cache, key)
                if cell is None and args.cached_only:
                    continue
                if cell is None:
                    if case is None:
                        case, refs = synth_case(PAIRINGS[pairing], args.size, seed)
                    log.info("%s / seed %d / %s ...", pairing, seed, method)
                    t = time.monotonic()
                    out, info = run_method(method, case, args, rl_iters, refs, seed)
                    cell = {"pairing": pairing, "method": method, "scores": score(out, refs), **info,
                            "seconds": round(time.monotonic() - t, 1), "size": args.size, "seed": seed,
                            "minutes": args.minutes, "psf": case["meta"]["psf"].get("spec"),
                            "factor": case["meta"]["factor"], **slice_info(out, refs)}
                    del out
                    save_cell(cache, key, cell)
                    log.info("%s / seed %d / %s: vs GT_iso %.2f dB, vs GT %.2f dB", pairing, seed, method,
                             cell["scores"]["gt_iso"], cell["scores"]["gt"])
                cells[method] = cell
            if len(cells) < len(methods + extra_rl):  # only with --cached-only
                incomplete.setdefault(pairing, []).append(seed)
                del results[pairing][str(seed)]
                continue
            first = seed == min(int(s) for s in results[pairing])
            rc = load_cell(cache, refs_key(args, pairing, seed))
            # The montage needs the first seed's references (synthesized again if need be);
            # the axial-detail table takes every seed whose references are at hand.
            if rc is None and (refs is not None or (first and any("xz" in c for c in cells.values()))):
                if refs is None:
                    case, refs = synth_case(PAIRINGS[pairing], args.size, seed)
                rc = refs_cell(refs)
                save_cell(cache, refs_key(args, pairing, seed), rc)
            if rc is not None:
                seed_refs.setdefault(pairing, {})[str(seed)] = rc
            if first:
                montage_refs[pairing] = rc
            del case, refs
    for pairing in [p for p in pairings if not results[p]]:
        log.warning("%s: no seed has all its cells cached; left out of the report", pairing)
        del results[pairing]
    if not results:
        raise SystemExit(f"--cached-only: no pairing has a complete seed in {cache}; run without it first")
    montages = {p: write_montage(args, p, by_seed[min(by_seed, key=int)], montage_refs.get(p), methods + extra_rl)
                for p, by_seed in results.items()}
    write_report(args, results, methods, extra_rl, montages, incomplete, seed_refs)
    return 0


def write_montage(args, pairing, cells, refs, cols):
    """Montage of the central xz slices of one seed: ``(path or None, note)``."""
    import numpy as np

    have = [m for m in cols if m in cells and "xz" in cells[m]]
    missing = [m for m in cols if m in cells and "xz" not in cells[m]]
    note = ""
    if missing:
        note = ("cells computed before slices were kept, left out: " + ", ".join(missing)
                + " (delete their cache files to recompute)")
    if refs is None or not have:
        return None, note or "no slices"

    def fitted(d):
        a, b = d["xz_affine_gt_iso"]
        return a * decode_slice(d["xz"]) + b

    iso = fitted(refs["gt_iso"])
    lo, hi = np.percentile(iso, [1.0, 99.8])
    panels = [("isotropic GT", iso), ("GT (affine fit to isotropic GT)", fitted(refs["gt"]))]
    for m in have:
        s = cells[m]["scores"]
        panels.append((f"{label(m)}\n{s['gt_iso']:.2f} dB vs isotropic GT", fitted(cells[m])))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(5, len(panels))
    nrow = -(-len(panels) // ncol)
    h, w = iso.shape
    pw = 3.2
    title_in = 0.55 if not missing else 0.7
    fig_h = (pw * h / w + 0.6) * nrow + title_in
    fig, axes = plt.subplots(nrow, ncol, figsize=(pw * ncol, fig_h), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, img) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect="equal")
        ax.set_title(title, fontsize=8)
    c0 = cells[have[0]]
    title = (f"{pairing} ({c0.get('psf')} / {c0.get('factor')}), {args.size}^3, seed {c0.get('seed')}: "
             "central xz slice\n(rows z on the restoration grid, columns x), affine fit to the "
             "isotropic GT, display range its 1st-99.8th percentiles")
    if missing:
        title += "\nnot shown (cached before slices were kept): " + ", ".join(label(m) for m in missing)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - title_in / fig_h))
    out_dir = Path(args.out).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named after the report, so that engine_quality.md and table1.md keep their own montages.
    path = out_dir / f"{Path(args.out).stem}_montage_{pairing}.png"
    save_figure(fig, path, dpi=110)
    return path, note


def stats(values):
    """``(mean, std or None, n)`` of a list of numbers (std with ddof=1 when n > 1)."""
    if not values:
        return None, None, 0
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None), len(values)


def fmt(mean, std, bold=False):
    s = f"{mean:.2f}" + ("" if std is None else f" ({std:.2f})")
    return f"**{s}**" if bold else s


def seeds_line(results, incomplete):
    """How many seeds each pairing's row averages, when they differ (``--cached-only``)."""
    parts = [f"{p} {', '.join(by_seed)} (n={len(by_seed)})" for p, by_seed in results.items()]
    line = "Seeds with every cell cached: " + "; ".join(parts) + "."
    if incomplete:
        line += " Not yet complete, left out: " + "; ".join(
            f"{p} {', '.join(str(s) for s in ss)}" for p, ss in incomplete.items()) + "."
    return line


def axial_detail(xz, gt, factor):
    """Share of ``gt``'s axial detail that ``xz`` reproduces, in two z-frequency bands.

    Parameters
    ----------
    xz, gt : (Z, X) ndarray
        Central xz slices (rows z on the restoration grid) of an output and of the GT.
    factor : float
        Axial subsampling factor f of the acquisition.

    Returns
    -------
    (float, float)
        ``T(band) / T(low)`` for the bands |k| in [0.5, 1) and [1, 2) times the
        acquisition's Nyquist 1/(2 f) cycles/voxel, with ``T = Re<X, G> / <G, G>`` over a
        band, X, G the rfft along z (column means removed) of ``xz`` and ``gt``, and
        ``low`` the well-sampled band (0, 0.5): scale-free, without an intensity fit (whose
        gain would make up for blur), and noise independent of the GT adds nothing.
    """
    import numpy as np

    x = np.asarray(xz, np.float64)
    g = np.asarray(gt, np.float64)
    spec_x = np.fft.rfft(x - x.mean(axis=0), axis=0)
    spec_g = np.fft.rfft(g - g.mean(axis=0), axis=0)
    k = np.fft.rfftfreq(g.shape[0]) * (2 * float(factor))  # in units of the acquisition's Nyquist

    def transfer(band):
        power = (np.abs(spec_g[band]) ** 2).sum()
        return np.real(spec_x[band] * np.conj(spec_g[band])).sum() / power if power > 0 else np.nan

    low = transfer((k > 0) & (k < 0.5))  # empty (nan) when z is shorter than about 4 f rows
    return tuple(float(transfer((k >= lo) & (k < hi)) / low) for lo, hi in ((0.5, 1.0), (1.0, 2.0)))


def axial_detail_table(results, seed_refs, cols):
    """Markdown rows of :func:`axial_detail` per pairing and band, mean over the seeds with references."""
    import numpy as np

    rows = []
    for pairing, by_seed in results.items():
        per = {}  # column -> [(low band, high band) per seed]
        for seed, cells in by_seed.items():
            rc = seed_refs.get(pairing, {}).get(seed)
            if rc is None:
                continue
            gt, factor = decode_slice(rc["gt"]["xz"]), next(iter(cells.values()))["factor"]
            per.setdefault("isotropic GT", []).append(axial_detail(decode_slice(rc["gt_iso"]["xz"]), gt, factor))
            for m in cols:
                if "xz" in cells.get(m, {}):
                    per.setdefault(m, []).append(axial_detail(decode_slice(cells[m]["xz"]), gt, factor))
        if not per:
            continue
        names = ["isotropic GT", *cols]
        if not rows:
            rows += ["| Volume | band (x the acquisition's Nyquist) | seeds | " + " | ".join(
                n if n == "isotropic GT" else label(n) for n in names) + " |", "|" + "---|" * (len(names) + 3)]
        n_seeds = len(per["isotropic GT"])
        for i, band in enumerate(("[0.5, 1)", "[1, 2)")):
            vals = [f"{np.mean([v[i] for v in per[n]]):.2f}" if n in per else "" for n in names]
            rows.append(f"| {pairing if i == 0 else ''} | {band} | {n_seeds} | " + " | ".join(vals) + " |")
    return rows


def write_report(args, results, methods, extra_rl, montages=None, incomplete=None, seed_refs=None):
    from isonet_ij import __version__
    from isonet_ij.config import versions

    seeds = [str(s) for s in args.seed_list]
    counts = {p: len(by_seed) for p, by_seed in results.items()}
    uneven = bool(incomplete) or len(set(counts.values())) > 1
    n = max(counts.values())
    cols = methods + extra_rl
    head = "| Volume (PSF / factor) | reference | " + " | ".join(label(m) for m in cols) + " |"
    lines = ["# Engine quality: the paper's Table 1 on synthetic phantoms", ""]
    if args.note:
        lines += [f"> {args.note}", ""]
    if uneven:
        lines += [seeds_line(results, incomplete), ""]
    lines += [
        f"Phantoms {args.size}^3, seeds "
        + ("as listed above" if uneven else f"{', '.join(seeds)} (n={len(seeds)})")
        + f"; each network trained for at most "
        f"{args.minutes:g} min (wall clock, pair preparation included) on the anisotropic input itself, "
        "then restored (xz and yz passes, mean fusion). PSNR in dB after the least-squares affine "
        "intensity fit of the output to the reference (CSBDeep's evaluation), references cropped to the "
        "restoration grid (floor((Z-1)*f)+1 slices). RL column: "
        f"{args.rl_iterations.split(',')[0]} iterations. "
        + ("Values: mean (std) over the seeds (std with ddof=1; none where n=1); best mean in bold."
           if n > 1 else "One seed: no std; best in bold."),
        "",
        head,
        "|" + "---|" * (len(cols) + 2),
    ]
    means = {}  # pairing -> ref -> method -> mean
    for pairing, by_seed in results.items():
        any_cell = next(c for cells in by_seed.values() for c in cells.values())
        name = f"{pairing} ({any_cell.get('psf')} / {any_cell.get('factor')})"
        if uneven:
            name += f", n={counts[pairing]}"
        means[pairing] = {}
        for ref in ("gt_iso", "gt"):
            st = {m: stats([by_seed[s][m]["scores"][ref] for s in seeds if m in by_seed.get(s, {})]) for m in cols}
            means[pairing][ref] = {m: v[0] for m, v in st.items() if v[0] is not None}
            best = max(means[pairing][ref].values())
            txt = [fmt(st[m][0], st[m][1], st[m][0] == best) if st[m][0] is not None else "" for m in cols]
            lines.append(f"| {name if ref == 'gt_iso' else ''} | {REF_NAMES[ref]} | " + " | ".join(txt) + " |")

    goals = []
    for pairing, mm in means.items():
        g = mm["gt_iso"]
        if {"isonet2-split", "bicubic", "rl"} <= set(g):
            margin = g["isonet2-split"] - max(g["bicubic"], g["rl"])
            need = 3.0 if pairing == "nuclei" else 0.0
            goals.append((pairing, margin, need, margin > need))
    lines += ["", "## Goals" + (" (on the means)" if n > 1 else ""), ""]
    for pairing, margin, need, ok in goals:
        lines.append(f"- {pairing}: IsoNet-2 split - max(bicubic, RL) vs isotropic GT = {margin:+.2f} dB "
                     f"(goal > {need:g} dB): {'PASS' if ok else 'FAIL'}")
    if not goals:
        lines.append("- (needs bicubic, RL and IsoNet-2 split)")

    lines += ["", "## Paper's ordering" + (" (on the means)" if n > 1 else ""), ""]
    ordering = paper_ordering(means)
    lines += ordering or ["- (not enough methods run to check the paper's ordering)"]
    paired = paired_ordering(results, seeds) if n > 1 else []
    if paired:
        lines += ["", "### Seed by seed", "",
                  ("The same checks on each phantom alone (the methods of one seed share the phantom and "
                   "the budget, so their difference is paired); (x): that seed disagrees with the paper. "
                   "Difference: IsoNet-2 split minus the best other method of that seed vs isotropic GT; "
                   "full minus split vs GT; SRCNN minus bicubic vs isotropic GT (agrees within +-1 dB)."),
                  ""] + paired

    lines += recipe_section(means)

    detail = axial_detail_table(results, seed_refs or {}, cols)
    if detail:
        lines += ["", "## Axial detail recovered (central xz slice)", "",
                  ("Share of the GT's axial detail each output reproduces, in two bands of z frequency: "
                   "the upper half of what the acquisition's slice step can carry ([0.5, 1) x its Nyquist "
                   "1/(2 f) cycles per voxel) and the octave above it ([1, 2) x, only recoverable from "
                   "priors). Share = T(band) / T(0 to 0.5 x, the well-sampled band), T = Re<X, G> / <G, G> "
                   "over a band, X and G the z spectra (mean over z removed, every column) of the output and "
                   "of the GT: 1 = the band comes through as well as the coarse structure does, in phase; "
                   "no intensity fit is needed, and detail out of phase or noise adds nothing. Mean over the "
                   "seeds whose reference slices are cached. By design \"split\" aims at the isotropic GT's "
                   "column and \"full\" past it (the paper's reason for full > split against the GT)."),
                  ""] + detail
    lines += ["", "## The paper's Table 1 (for reference)", "",
              ("Mean PSNR (dB) from the paper's Table 1: its own phantoms (about 512^3), n=10; "
               "not directly comparable in absolute value (different phantoms, sizes and training)."), "",
              "| Volume | reference | " + " | ".join(LABELS[m] for m in METHODS) + " |",
              "|" + "---|" * (len(METHODS) + 2)]
    for pairing, refs in PAPER.items():
        for ref in ("gt_iso", "gt"):
            vals = refs[ref]
            lines.append(f"| {pairing if ref == 'gt_iso' else ''} | {REF_NAMES[ref]} | "
                         + " | ".join(f"**{v:.2f}**" if v == max(vals) else f"{v:.2f}" for v in vals) + " |")

    if montages:
        lines += ["", "## Montages (first seed, central xz slice)", ""]
        for pairing, (path, note) in montages.items():
            where = f"[{path.name}]({path.name})" if path is not None else "not written"
            lines.append(f"- {pairing}: {where}" + (f"; {note}" if note else ""))

    lines += ["", "## Training", "",
              "| Volume | seed | method | steps | epochs | train s | best val PSNR | val PSNR input | self-consistency dB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for pairing, by_seed in results.items():
        for seed, cells in by_seed.items():
            for m, c in cells.items():
                if "steps" in c:
                    sc = c.get("self_consistency_psnr")
                    lines.append(f"| {pairing} | {seed} | {m} | {c['steps']} | {c['epochs']} | {c['train_s']} | "
                                 f"{c['best_val_psnr']:.2f} | {c['val_psnr_input']:.2f} | "
                                 f"{'' if sc is None else f'{sc:.2f}'} |")
    lines += ["", "## Fusion of the xz and yz passes (same network; PSNR vs isotropic GT, dB)", "",
              "| Volume | seed | method | xz only | yz only | mean | geometric mean |", "|---|---|---|---|---|---|---|"]
    for pairing, by_seed in results.items():
        for seed, cells in by_seed.items():
            for m, c in cells.items():
                fu = c.get("fusion")
                if fu:
                    lines.append(f"| {pairing} | {seed} | {m} | " + " | ".join(
                        f"{fu[k]['gt_iso']:.2f}" for k in ("xz", "yz", "mean", "geometric")) + " |")
    lines += ["", (f"isonet-ij {__version__}; versions: {json.dumps(versions())}; "
                   f"command: `{command_line()}`"), ""]
    slim = {p: {s: {m: {k: v for k, v in c.items() if k not in ("xz", "xz_affine_gt_iso")}
                    for m, c in cells.items()} for s, cells in by_seed.items()} for p, by_seed in results.items()}
    save_report(args.out, lines, {"seeds": args.seed_list, "seeds_used": {p: list(b) for p, b in results.items()},
                                  "means": means, "cells": slim})


def ordering_checks(iso, gt, paper=None, *, srcnn_check=True):
    """The paper's qualitative findings on one set of PSNRs (method -> dB vs isotropic GT / GT).

    Returns ``[(check, d, ok, detail)]``: ``d`` the difference in dB the check is decided on,
    ``detail`` its text for the report (values compared and, with ``paper``, the paper's).
    Used on the means (:func:`paper_ordering`), on each seed alone (:func:`paired_ordering`)
    and on the networks trained without noise matching (:func:`recipe_section`, which leaves
    out the SRCNN check: it has no noise to match, so that check would repeat).
    """
    checks = []

    def compared(a, b, d, paper_ab):
        ref = f"; paper {paper_ab[0]:.2f} vs {paper_ab[1]:.2f}" if paper else ""
        return f"{a:.2f} vs {b:.2f}, {d:+.2f} dB{ref}"

    # (a) IsoNet-2 split is the best method vs the isotropic GT
    rivals = {m: v for m, v in iso.items() if m in METHODS and m != "isonet2-split"}
    if "isonet2-split" in iso and rivals:
        best_rival = max(rivals, key=rivals.get)
        d = iso["isonet2-split"] - rivals[best_rival]
        checks.append(("IsoNet-2 split best vs isotropic GT", d, d > 0,
                       f"margin over {LABELS[best_rival]} {d:+.2f} dB"))
    # (b) full beats split vs GT, for each architecture
    for arch, name in (("isonet1", "IsoNet-1"), ("isonet2", "IsoNet-2")):
        full, split = f"{arch}-full", f"{arch}-split"
        if full in gt and split in gt:
            d = gt[full] - gt[split]
            paper_ab = paper and (paper["gt"][METHODS.index(full)], paper["gt"][METHODS.index(split)])
            checks.append((f"{name} full > split vs GT", d, d > 0, compared(gt[full], gt[split], d, paper_ab)))
    # (c) SRCNN within 1 dB of the input (bicubic) vs the isotropic GT
    if srcnn_check and "srcnn" in iso and "bicubic" in iso:
        d = iso["srcnn"] - iso["bicubic"]
        paper_ab = paper and (paper["gt_iso"][METHODS.index("srcnn")], paper["gt_iso"][METHODS.index("bicubic")])
        checks.append(("SRCNN within 1 dB of the input (bicubic) vs isotropic GT", d, abs(d) <= 1.0,
                       compared(iso["srcnn"], iso["bicubic"], d, paper_ab)))
    return checks


def check_lines(pairing, checks):
    """Report lines of :func:`ordering_checks` results: ``- pairing: check (detail): PASS``."""
    return [f"- {pairing}: {check} ({detail}): {'PASS' if ok else 'FAIL'}" for check, _, ok, detail in checks]


def paper_ordering(means):
    """PASS/FAIL lines for the paper's qualitative findings, from the mean PSNRs."""
    return [line for pairing, mm in means.items()
            for line in check_lines(pairing, ordering_checks(mm["gt_iso"], mm["gt"], PAPER.get(pairing)))]


def without_noise_matching(scores):
    """``scores`` (method -> dB) with each network's value taken from its ``-nonoise`` run.

    The baselines stay (none of them has noise to match); networks without a ``-nonoise``
    run are left out, so that no check mixes the two recipes.
    """
    out = {m: v for m, v in scores.items() if m in METHODS and m not in NETWORKS}
    out.update({m: scores[m + NONOISE] for m in NETWORKS if m + NONOISE in scores})
    return out


def full_minus_split(scores, arch, suffix=""):
    """``scores[arch-full] - scores[arch-split]`` (dB), of the runs named with ``suffix``."""
    return scores[f"{arch}-full{suffix}"] - scores[f"{arch}-split{suffix}"]


def recipe_section(means):
    """Report lines comparing full and split with and without noise matching (``--paper-recipe``).

    Empty unless some pairing has every network both ways. Noise matching is this engine's
    addition to the paper's recipe; the table shows how it changes the full - split gaps the
    paper's ordering is about, and the checks are the paper's on the networks without it.
    """
    pairings = {p: mm for p, mm in means.items()
                if all(m in mm["gt"] and m + NONOISE in mm["gt"] for m in NETWORKS)}
    if not pairings:
        return []
    lines = ["", "## Full vs split with and without noise matching", "",
             ("The paper's training pairs are the lateral slices blurred and subsampled, with no noise "
              "added; this engine adds back the noise the blur averaged away (noise matching, on by "
              "default). Full minus split in dB, means over the seeds: with noise matching (the table "
              "above), without it, and in the paper's Table 1."), "",
             "| Volume | network | vs GT: noise matching | without | paper "
             "| vs isotropic GT: noise matching | without | paper |", "|---|---|---|---|---|---|---|---|"]
    for pairing, mm in pairings.items():
        for arch, name in (("isonet1", "IsoNet-1"), ("isonet2", "IsoNet-2")):
            cells = []
            for ref in ("gt", "gt_iso"):
                paper = PAPER.get(pairing, {}).get(ref)
                gaps = [full_minus_split(mm[ref], arch), full_minus_split(mm[ref], arch, NONOISE)]
                cells += [f"{g:+.2f}" for g in gaps]
                cells.append("" if paper is None else f"{full_minus_split(dict(zip(METHODS, paper)), arch):+.2f}")
            lines.append(f"| {pairing if arch == 'isonet1' else ''} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "The paper's ordering checked on the networks trained without noise matching "
              "(baselines as above):", ""]
    for pairing, mm in pairings.items():
        lines += check_lines(pairing, ordering_checks(without_noise_matching(mm["gt_iso"]),
                                                      without_noise_matching(mm["gt"]), PAPER.get(pairing),
                                                      srcnn_check=False))
    return lines


def paired_ordering(results, seeds):
    """Table of the ordering checks seed by seed (same phantom, same budget: paired).

    The means mix phantom-to-phantom spread (std up to about 1 dB) into gaps of a tenth of a
    dB; the per-seed differences show whether a gap is systematic or one seed's.
    """
    rows = {}  # (pairing, check) -> {seed: (d, ok)}
    for pairing, by_seed in results.items():
        for seed in seeds:
            cells = by_seed.get(seed)
            if not cells:
                continue
            iso = {m: c["scores"]["gt_iso"] for m, c in cells.items()}
            gt = {m: c["scores"]["gt"] for m, c in cells.items()}
            for check, d, ok, _ in ordering_checks(iso, gt):
                rows.setdefault((pairing, check), {})[seed] = (d, ok)
    if not rows:
        return []
    lines = ["| Volume | check (difference in dB) | " + " | ".join(f"seed {s}" for s in seeds)
             + " | seeds that agree with the paper |", "|" + "---|" * (len(seeds) + 3)]
    for (pairing, check), by in rows.items():
        vals = [f"{by[s][0]:+.2f}" + ("" if by[s][1] else " (x)") if s in by else "" for s in seeds]
        agree = sum(ok for _, ok in by.values())
        lines.append(f"| {pairing} | {check} | " + " | ".join(vals) + f" | {agree} of {len(by)} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
