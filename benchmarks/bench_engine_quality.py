"""Quality benchmark of the restoration engine: the paper's Table 1 on synthetic phantoms.

For each pairing (phantom / PSF / factor of the paper: nuclei / gaussian 2-8 / 8,
membranes / confocal NA 1.1 / 4, nuclei+membranes / light-sheet / 6) at ``--size``^3 it
runs bicubic z interpolation, Richardson-Lucy, SRCNN (IsoNet-1 on subsampling-only
pairs), IsoNet-1 full/split and IsoNet-2 full/split (each network trained for at most
``--minutes`` wall-clock minutes, pair preparation included), and scores every output
against the ground truth (GT) and the isotropic ground truth (GT convolved with h_iso),
both cropped to the restoration grid (floor((Z-1)*f)+1 slices).

Score: PSNR after the least-squares affine intensity fit of the output to the reference
(CSBDeep's evaluation; ``isonet_ij.metrics.psnr_affine``), dB; data range = range of the
reference.

Every finished cell (pairing x method) is cached as JSON under ``--cache``; a rerun with
the same parameters skips it, so an interrupted run resumes. Results go to
``benchmarks/results/engine_quality.md`` (and ``.json``).

    .venv/bin/python benchmarks/bench_engine_quality.py --size 128 --minutes 15
    .venv/bin/python benchmarks/bench_engine_quality.py --size 64 --minutes 1 --pairings nuclei

Goals checked in the report: IsoNet-2 split beats bicubic and RL vs isotropic GT on every
pairing, by at least 3 dB on nuclei/gaussian/8.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import load_cell, save_cell, synth_case  # noqa: E402
from common import write_report as save_report  # noqa: E402

PAIRINGS = {  # name -> phantom kind (PSF and factor: the phantoms module's paper defaults)
    "nuclei": "nuclei",
    "membranes": "membranes",
    "nuclei-membranes": "nuclei-membranes",
}
METHODS = ["bicubic", "rl", "srcnn", "isonet1-full", "isonet1-split", "isonet2-full", "isonet2-split"]
ABLATIONS = ["isonet2-split-nonoise"]
LABELS = {
    "bicubic": "Bicubic (input)", "rl": "Deconv (RL)", "srcnn": "SRCNN",
    "isonet1-full": "IsoNet-1 full", "isonet1-split": "IsoNet-1 split",
    "isonet2-full": "IsoNet-2 full", "isonet2-split": "IsoNet-2 split",
    "isonet2-split-nonoise": "IsoNet-2 split, no noise matching",
}

log = logging.getLogger("bench_engine_quality")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128, help="phantom edge length (default 128)")
    p.add_argument("--minutes", type=float, default=15.0, help="training minutes per model (default 15)")
    p.add_argument("--pairings", default=",".join(PAIRINGS), help="comma list of " + ", ".join(PAIRINGS))
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS + ABLATIONS))
    p.add_argument("--ablations", action="store_true", help="also run " + ", ".join(ABLATIONS))
    p.add_argument("--rl-iterations", default="10,30", help="RL iteration counts; the first is the table's RL column")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default all cores)")
    p.add_argument("--cache", default=str(REPO / "benchmarks" / "results" / "cache" / "engine_quality"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "engine_quality.md"))
    p.add_argument("--keep-models", default=None, metavar="DIR", help="keep the trained model dirs here")
    return p.parse_args(argv)


def cell_key(args, pairing, method, extra=""):
    return f"{pairing}_s{args.size}_seed{args.seed}_m{args.minutes:g}_{method}{extra}"






def score(vol, refs):
    from isonet_ij import metrics

    return {name: float(metrics.psnr_affine(vol, ref)) for name, ref in refs.items()}


def run_method(method, case, args, rl_iters, refs):
    """Return (restored volume, info dict) for one method on one synthetic case."""
    from isonet_ij import baselines
    from isonet_ij.config import Config
    from isonet_ij.restore import restore
    from isonet_ij.train import train

    g, f, h = case["input"], float(case["meta"]["factor"]), case["psf"]
    psf_spec = case["meta"]["psf"].get("spec", str(case["meta"]["psf"].get("kind")))
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
        extra = {"noise_match": False} if method.endswith("nonoise") else {}
    from isonet_ij.pairs import max_patch_size

    patch = min(64, max_patch_size(g.shape, f))  # 64 (measured default) unless the volume is smaller
    cfg = Config(factor=f, arch=arch, mode=mode, psf=psf_spec if mode != "none" else "",
                 psf_info=case["meta"]["psf"], epochs=100_000, seed=args.seed, patch_size=patch, **extra)
    model_dir = None
    if args.keep_models:
        model_dir = Path(args.keep_models) / f"{case['meta']['kind']}_{method}"
    t = time.monotonic()
    res = train(g, cfg, psf=h if mode != "none" else None, model_dir=model_dir, time_budget=budget,
                force=True, progress=sys.stderr.isatty())
    t_train = time.monotonic() - t
    out, info = restore(g, res.model, return_info=True, consistency=mode != "none")
    # fusion comparison from the same network: each pass alone, mean, geometric mean
    from isonet_ij import pairs
    from isonet_ij.restore import fuse

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
    rl_iters = [int(v) for v in args.rl_iterations.split(",") if v]
    extra_rl = [f"rl-{it}" for it in rl_iters[1:]]
    cache = Path(args.cache)
    results = {}
    for pairing in pairings:
        case = None
        results[pairing] = {}
        for method in methods + extra_rl:
            key = cell_key(args, pairing, method, f"_it{rl_iters[0]}" if method == "rl" else "")
            cell = load_cell(cache, key)
            if cell is None:
                if case is None:
                    case, refs = synth_case(PAIRINGS[pairing], args.size, args.seed)
                log.info("%s / %s ...", pairing, method)
                t = time.monotonic()
                out, info = run_method(method, case, args, rl_iters, refs)
                cell = {"pairing": pairing, "method": method, "scores": score(out, refs), **info,
                        "seconds": round(time.monotonic() - t, 1), "size": args.size, "seed": args.seed,
                        "minutes": args.minutes, "psf": case["meta"]["psf"].get("spec"),
                        "factor": case["meta"]["factor"]}
                save_cell(cache, key, cell)
                log.info("%s / %s: vs GT_iso %.2f dB, vs GT %.2f dB", pairing, method,
                         cell["scores"]["gt_iso"], cell["scores"]["gt"])
            results[pairing][method] = cell
    write_report(args, results, methods, extra_rl)
    return 0


def write_report(args, results, methods, extra_rl):
    from isonet_ij import __version__
    from isonet_ij.config import versions

    cols = methods + extra_rl
    head = "| Volume (PSF / factor) | reference | " + " | ".join(LABELS.get(m, m.replace("rl-", "RL ") + " it.") for m in cols) + " |"
    lines = [
        "# Engine quality: the paper's Table 1 on synthetic phantoms",
        "",
        f"Phantoms {args.size}^3, seed {args.seed}; each network trained for at most {args.minutes:g} min "
        "(wall clock, pair preparation included) on the anisotropic input itself, then restored "
        "(xz and yz passes, mean fusion). PSNR in dB after the least-squares affine intensity fit "
        "of the output to the reference (CSBDeep's evaluation), references cropped to the "
        "restoration grid (floor((Z-1)*f)+1 slices). RL column: "
        f"{args.rl_iterations.split(',')[0]} iterations.",
        "",
        head,
        "|" + "---|" * (len(cols) + 2),
    ]
    goals = []
    for pairing, cells in results.items():
        any_cell = next(iter(cells.values()))
        label = f"{pairing} ({any_cell.get('psf')} / {any_cell.get('factor')})"
        for ref in ("gt_iso", "gt"):
            vals = [cells[m]["scores"][ref] if m in cells else None for m in cols]
            best = max(v for v in vals if v is not None)
            txt = [("**%.2f**" % v if v == best else "%.2f" % v) if v is not None else "" for v in vals]
            lines.append(f"| {label if ref == 'gt_iso' else ''} | {'isotropic GT' if ref == 'gt_iso' else 'GT'} | " + " | ".join(txt) + " |")
        if {"isonet2-split", "bicubic", "rl"} <= set(cells):
            s = cells["isonet2-split"]["scores"]["gt_iso"]
            margin = s - max(cells["bicubic"]["scores"]["gt_iso"], cells["rl"]["scores"]["gt_iso"])
            need = 3.0 if pairing == "nuclei" else 0.0
            goals.append((pairing, margin, need, margin > need))
    lines += ["", "## Goals", ""]
    for pairing, margin, need, ok in goals:
        lines.append(f"- {pairing}: IsoNet-2 split - max(bicubic, RL) vs isotropic GT = {margin:+.2f} dB "
                     f"(goal > {need:g} dB): {'PASS' if ok else 'FAIL'}")
    lines += ["", "## Training", "", "| Volume | method | steps | epochs | train s | best val PSNR | val PSNR input | self-consistency dB |",
              "|---|---|---|---|---|---|---|---|"]
    for pairing, cells in results.items():
        for m, c in cells.items():
            if "steps" in c:
                sc = c.get("self_consistency_psnr")
                lines.append(f"| {pairing} | {m} | {c['steps']} | {c['epochs']} | {c['train_s']} | "
                             f"{c['best_val_psnr']:.2f} | {c['val_psnr_input']:.2f} | {'' if sc is None else '%.2f' % sc} |")
    lines += ["", "## Fusion of the xz and yz passes (same network; PSNR vs isotropic GT, dB)", "",
              "| Volume | method | xz only | yz only | mean | geometric mean |", "|---|---|---|---|---|---|"]
    for pairing, cells in results.items():
        for m, c in cells.items():
            fu = c.get("fusion")
            if fu:
                lines.append(f"| {pairing} | {m} | " + " | ".join(
                    f"{fu[k]['gt_iso']:.2f}" for k in ("xz", "yz", "mean", "geometric")) + " |")
    lines += ["", f"isonet-ij {__version__}; versions: {json.dumps(versions())}; "
              f"command: `{' '.join(sys.argv)}`", ""]
    save_report(args.out, lines, results)


if __name__ == "__main__":
    sys.exit(main())
