"""Benchmark: the paper's nuclei segmentation on the project's nuclei phantom (sec. 3.1).

For each seed, ``phantoms.synthesize("nuclei", size=N, seed=s)`` gives the isotropic GT
``gt_iso`` (GT convolved with the isotropic PSF), the anisotropic input (every 8th slice
of the anisotropically blurred GT, Poisson + read noise) and the nuclei labels. The
pipeline (:func:`isonet_ij.segment.segment_nuclei`: Intermodes, 3D fill holes, distance
watershed with dynamic 2, 6-connectivity) is run on

* ``gt_iso``: the paper's SEG_GT condition (Intermodes, and Otsu for the Otsu rows of
  the summary);
* ``input`` bicubic-upsampled along z (``scipy.ndimage.zoom``, order 3, mirror boundary, z only, onto the
  grid where acquired slice ``i`` lies at ``i * factor``: ``(Z - 1) * factor + 1``
  slices); labels cropped to that length: the paper's SEG_blurred condition;
* the same with Otsu instead of Intermodes;
* the noise-free input (``photons=None, read_noise=0, background=0``), upsampled the same
  way: the blurred condition without camera noise;
* ``IsoNet-2 split`` (unless ``--no-isonet``): an IsoNet-2 network in split mode trained
  for at most ``--minutes`` wall-clock minutes on the (noisy) anisotropic input itself,
  with the phantom's PSF (as ``benchmarks/bench_engine_quality.py`` does), then
  ``isonet_ij.restoration.restore`` (xz and yz passes, mean fusion). The restoration lies on
  the same grid as the bicubic condition (``floor((Z-1)*f)+1`` slices, acquired slice
  ``i`` at ``i * f``), isotropic voxels; labels cropped the same way. Intermodes and
  Otsu: the paper's SEG_IsoNet-2 condition. Each seed's result (SEG rows, training
  seconds / steps, restore seconds) is cached as JSON under ``--cache`` (key: size,
  seed, minutes, dynamic, min size), so a rerun does not retrain.

Reports SEG (CTC), matching counts, wall time and peak memory of each segmentation call
(Linux: peak RSS after resetting the high-water mark through ``/proc/self/clear_refs``;
the increment is above the RSS just before the call, which already holds the inputs),
and the summary "SEG: isotropic GT / blurred input / IsoNet-2" (mean over seeds, per
threshold) beside the paper's 0.923 / 0.742 / 0.913, with the goals
``IsoNet-2 SEG >= 0.95 x SEG(isotropic GT)`` and ``IsoNet-2 SEG > SEG(blurred input)``.

Run (from the repository root; the last but one line is a smoke test)::

    isonet bench segmentation                    # quick: --size 256 --seeds 0
    isonet bench segmentation --profile full     # the committed table: seeds 0 1 2
    isonet bench segmentation -- --minutes 15    # arguments after -- go to this script
    .venv/bin/python benchmarks/bench_segmentation.py --size 256 --seeds 0 1 2 --minutes 5
    .venv/bin/python benchmarks/bench_segmentation.py --size 48 --seeds 0 --minutes 0.1 --threads 1 --out /tmp/seg_smoke.md --cache /tmp/seg_cache
    .venv/bin/python benchmarks/bench_segmentation.py --render benchmarks/results/segmentation_nuclei256.json

Results: ``benchmarks/results/segmentation_nuclei<N>.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, load_cell, save_cell, trained_key

from isonet_ij import phantoms
from isonet_ij.volume_io import write_json
from isonet_ij.metrics import seg_score
from isonet_ij.segment import segment_nuclei_with_details


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measured(fn, *args, **kwargs):
    """``(result, seconds, peak_rss_mib, increment_mib)`` of one call."""
    import gc

    gc.collect()
    before = _rss_kib("VmRSS")
    ok = _reset_peak()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    peak = _rss_kib("VmHWM") if ok else None
    if peak is None or before is None:
        return out, dt, float("nan"), float("nan")
    return out, dt, peak / 1024, (peak - before) / 1024


def upsample_z_bicubic(g: np.ndarray, factor: int) -> np.ndarray:
    """Order-3 spline zoom along z only; slice i -> i * factor, (Z-1)*factor+1 slices."""
    from scipy import ndimage as ndi

    n_z = g.shape[0]
    n_out = (n_z - 1) * factor + 1
    # zoom maps output index j to input coordinate j * (Z - 1) / (n_out - 1) = j / factor
    up = ndi.zoom(g.astype(np.float32), (n_out / n_z, 1, 1), order=3, mode="mirror")
    assert up.shape[0] == n_out
    return up


ISONET = "IsoNet-2 split"
BLURRED = "input, bicubic"


def segment_row(seed, name, vol, gt, thr, *, factor, voxel_size, dynamic, min_size) -> dict:
    """Segment ``vol`` (isotropic voxels ``voxel_size``), score it against ``gt``; one row."""
    assert vol.shape == gt.shape, (vol.shape, gt.shape)
    result, dt, peak, inc = measured(
        segment_nuclei_with_details,
        vol,
        voxel_size=voxel_size,
        threshold=thr,
        fill_holes_mode="3d",
        dynamic=dynamic,
        min_size=min_size,
    )
    lab, details = result.labels, result.details
    s = seg_score(lab, gt)
    row = {
        "seed": seed,
        "condition": name,
        "threshold": thr,
        "shape": list(vol.shape),
        "factor": factor,
        "seg": s.seg,
        "n_reference": s.n_reference,
        "n_predicted": s.n_predicted,
        "matched": s.matched,
        "missed": s.missed,
        "spurious": s.spurious,
        "mean_iou_matched": s.mean_iou_matched,
        "threshold_lower": details["threshold"]["lower"],
        "foreground_fraction": details["foreground_fraction"],
        "true_foreground_fraction": float(np.count_nonzero(gt)) / gt.size,
        "seconds": dt,
        "peak_rss_mib": peak,
        "increment_mib": inc,
    }
    print(
        f"seed {seed} {name:28s} {thr:10s} SEG {s.seg:.4f}  ref {s.n_reference} "
        f"pred {s.n_predicted} matched {s.matched} spurious {s.spurious}  "
        f"{dt:6.1f} s  peak {peak:7.0f} MiB (+{inc:.0f})",
        flush=True,
    )
    return row


def isonet_key(size: int, seed: int, minutes: float, dynamic: float, min_size: int) -> str:
    return trained_key(f"nuclei_s{size}_seed{seed}_m{minutes:g}_isonet2-split_dyn{dynamic:g}_min{min_size}")


def train_restore_isonet2(res: dict, seed: int, minutes: float, threads=None):
    """IsoNet-2 split trained on ``res["input"]`` itself; ``(restored, info)``.

    As ``bench_engine_quality.run_method``: the phantom's PSF, patch 64 (or the largest
    the volume allows), at most ``minutes`` wall clock (pair preparation included).
    """
    from isonet_ij.config import Config
    from isonet_ij.pairs import max_patch_size
    from isonet_ij.restoration import restore_with_info
    from isonet_ij.training import train

    g = res["input"]
    f = float(res["meta"]["factor"])
    spec = res["meta"]["psf"].get("spec", str(res["meta"]["psf"].get("kind")))
    cfg = Config(factor=f, arch="isonet2", mode="split", psf=spec, psf_info=res["meta"]["psf"],
                 epochs=100_000, seed=seed, patch_size=min(64, max_patch_size(g.shape, f)))
    t = time.monotonic()
    tr = train(g, cfg, psf=res["psf"], time_budget=60.0 * minutes, force=True,
               progress=sys.stderr.isatty(), threads=threads)
    t_train = time.monotonic() - t
    result = restore_with_info(g, tr.model, precision="fp32")
    out, rinfo = result.volume, result.info
    info = {
        "train_s": round(t_train, 1),
        "steps": int(sum(r["steps"] for r in tr.history)),
        "epochs": len(tr.history),
        "stop_reason": tr.stop_reason,
        "best_val_psnr": max((float(r["val_psnr"]) for r in tr.history), default=float("nan")),
        "val_psnr_input": float(tr.history[-1]["val_psnr_input"]) if tr.history else float("nan"),
        "restore_s": round(rinfo["seconds"], 1),
        "minutes": minutes,
        "psf": spec,
        "patch_size": cfg.patch_size,
    }
    print(f"seed {seed} {ISONET}: trained {info['train_s']} s ({info['steps']} steps, "
          f"{info['epochs']} epochs, {info['stop_reason']}), restored {info['restore_s']} s "
          f"-> {out.shape}", flush=True)
    return out, info


def run(size: int, seeds, *, dynamic: float, min_size: int, isonet: bool = True,
        minutes: float = 5.0, cache=None, threads=None) -> list[dict]:
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        res = phantoms.synthesize("nuclei", size=size, seed=seed)
        clean = phantoms.synthesize(
            "nuclei", size=size, seed=seed, photons=None, read_noise=0.0, background=0.0
        )
        t_synth = time.perf_counter() - t0
        factor = int(res["meta"]["factor"])
        labels = res["labels"]
        voxel_size = res["voxel_size"]  # (dx, dx, dx): isotropic, the grid of gt_iso, bicubic, IsoNet
        assert np.array_equal(labels, clean["labels"])
        up = upsample_z_bicubic(res["input"], factor)
        up_clean = upsample_z_bicubic(clean["input"], factor)
        n = up.shape[0]
        conditions = [
            ("gt_iso", res["gt_iso"], labels, "intermodes"),
            ("gt_iso", res["gt_iso"], labels, "otsu"),
            (BLURRED, up, labels[:n], "intermodes"),
            (BLURRED, up, labels[:n], "otsu"),
            ("noise-free input, bicubic", up_clean, labels[:n], "intermodes"),
        ]
        for name, vol, gt, thr in conditions:
            rows.append(segment_row(seed, name, vol, gt, thr, factor=factor, voxel_size=voxel_size,
                                    dynamic=dynamic, min_size=min_size))
        del up, up_clean, clean
        print(f"seed {seed}: synthesis {t_synth:.1f} s", flush=True)
        if not isonet:
            continue
        key = isonet_key(size, seed, minutes, dynamic, min_size)
        cell = load_cell(cache, key) if cache is not None else None
        if cell is not None:
            print(f"seed {seed} {ISONET}: cached ({Path(cache) / key}.json)", flush=True)
            rows.extend(cell["rows"])
            continue
        restored, info = train_restore_isonet2(res, seed, minutes, threads=threads)
        # same grid as the bicubic condition: floor((Z-1)*f)+1 slices, slice i at i*f
        assert restored.shape == (n, *labels.shape[1:]), (restored.shape, n)
        new = []
        for thr in ("intermodes", "otsu"):
            row = segment_row(seed, ISONET, restored, labels[:n], thr, factor=factor,
                              voxel_size=voxel_size, dynamic=dynamic, min_size=min_size)
            row.update(info)
            new.append(row)
        rows.extend(new)
        if cache is not None:
            save_cell(cache, key, {"size": size, "seed": seed, "minutes": minutes, "dynamic": dynamic,
                                   "min_size": min_size, "rows": new})
        del restored
    return rows


def _versions() -> dict:
    import scipy
    import skimage

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }


def _mean_seg(rows, condition, threshold):
    segs = [r["seg"] for r in rows if (r["condition"], r["threshold"]) == (condition, threshold)]
    return (float(np.mean(segs)), len(segs)) if segs else (None, 0)


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def summary_lines(rows) -> list[str]:
    """The paper's triple (SEG_GT / SEG_blurred / SEG_IsoNet-2), goals, IsoNet-2 timings."""
    lines = ["", "## SEG: isotropic GT / blurred input / IsoNet-2", "",
             ("Mean over seeds; blurred input = the noisy input, bicubic along z. Paper (512^3, "
              "its own phantom, Intermodes pipeline): 0.923 / 0.742 / 0.913."), "",
             ("| threshold | isotropic GT | blurred input | IsoNet-2 split | seeds | "
              "paper GT / blurred / IsoNet-2 |"),
             "|---|---|---|---|---|---|"]
    goals = []
    for thr in ("intermodes", "otsu"):
        gt, n_gt = _mean_seg(rows, "gt_iso", thr)
        bl, _ = _mean_seg(rows, BLURRED, thr)
        iso, n_iso = _mean_seg(rows, ISONET, thr)
        if gt is None and bl is None and iso is None:
            continue
        gt_note = ""
        if gt is None:  # older results: gt_iso only segmented with Intermodes
            gt, n_gt = _mean_seg(rows, "gt_iso", "intermodes")
            gt_note = " (intermodes)"
        paper = "0.923 / 0.742 / 0.913" if thr == "intermodes" else ""
        lines.append(f"| {thr} | {_fmt(gt)}{gt_note} | {_fmt(bl)} | {_fmt(iso)} | "
                     f"{n_iso or n_gt} | {paper} |")
        if iso is not None:
            goals.append((thr, gt, bl, iso))
    if goals:
        lines += ["", "## Goals", ""]
        for thr, gt, bl, iso in goals:
            if gt is not None:
                need = 0.95 * gt
                lines.append(f"- {thr}: IsoNet-2 SEG >= 0.95 x SEG(isotropic GT): {iso:.4f} vs "
                             f"0.95 x {gt:.4f} = {need:.4f} ({iso / gt:.3f} x GT): "
                             f"{'PASS' if iso >= need else 'FAIL'}")
            if bl is not None:
                lines.append(f"- {thr}: IsoNet-2 SEG > SEG(blurred input): {iso:.4f} vs {bl:.4f}, "
                             f"{iso - bl:+.4f}: {'PASS' if iso > bl else 'FAIL'}")
    train = {}
    for r in rows:
        if r["condition"] == ISONET and "train_s" in r:
            train.setdefault(r["seed"], r)
    if train:
        lines += ["", "## IsoNet-2 training and restoration", "",
                  ("| seed | budget min | train s | steps | epochs | stop | best val PSNR | "
                   "val PSNR input | restore s |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for seed, r in sorted(train.items()):
            lines.append(f"| {seed} | {r['minutes']:g} | {r['train_s']:.1f} | {r['steps']} | "
                         f"{r['epochs']} | {r['stop_reason']} | {r['best_val_psnr']:.2f} | "
                         f"{r['val_psnr_input']:.2f} | {r['restore_s']:.1f} |")
        lines += ["", ("Train s: wall clock of `isonet_ij.training.train` (pair preparation "
                       "included, capped by the budget); restore s: `isonet_ij.restoration.restore` "
                       "(both passes and fusion).")]
    return lines


def to_markdown(rows, args, versions) -> str:
    lines = [
        f"# Nuclei segmentation on the nuclei phantom ({args.size}^3, seeds "
        f"{', '.join(map(str, args.seeds))})",
        "",
        f"Generated {datetime.date.today().isoformat()} by `benchmarks/bench_segmentation.py "
        f"--size {args.size} --seeds {' '.join(map(str, args.seeds))} "
        + ("--no-isonet" if args.no_isonet else f"--minutes {args.minutes:g}")
        + f"` (dynamic {args.dynamic}, min size {args.min_size}, fill holes 3d, 6-connectivity).",
        "",
        "Pipeline: `isonet_ij.segment.segment_nuclei` (ImageJ-identical global threshold on "
        "the stack histogram, dark background; 3D fill holes; watershed on the Euclidean "
        "distance transform with voxel size, seeds of dynamic >= 2 voxels). Score: CTC SEG "
        "(`isonet_ij.metrics.seg_score`) against the phantom's nuclei labels. The input is "
        "the phantom's anisotropic acquisition (Gaussian PSF sigma_xy/sigma_z = 2/8, every "
        "8th slice; Poisson noise at 200 photons peak + 5 photons background + read noise "
        "3, unless noise-free), upsampled along z with `scipy.ndimage.zoom(order=3, mode='mirror')` onto "
        "the grid where slice i lies at i*8 ((Z-1)*8+1 slices); labels cropped to match.",
        "",
        *(() if args.no_isonet else (
            "IsoNet-2 split: an IsoNet-2 network in split mode (the phantom's PSF, patch 64 or "
            f"the largest the volume allows) trained for at most {args.minutes:g} min (wall "
            "clock, pair preparation included) on the noisy anisotropic input itself, then "
            "`isonet_ij.restoration.restore` (xz and yz passes, mean fusion) onto the same grid as "
            "the bicubic condition; segmented with the same pipeline and isotropic voxel size "
            "as the other conditions.",
            "",
        )),
        "Paper (512^3, its own phantom): SEG_GT 0.923, SEG_blurred 0.742, SEG_IsoNet-2 0.913.",
        "",
        "| seed | condition | threshold | SEG | ref | pred | matched | missed | spurious "
        "| mean IoU matched | fg fraction (true) | time s | peak RSS MiB (+call) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['condition']} | {r['threshold']} | {r['seg']:.4f} | "
            f"{r['n_reference']} | {r['n_predicted']} | {r['matched']} | {r['missed']} | "
            f"{r['spurious']} | {r['mean_iou_matched']:.4f} | "
            f"{r['foreground_fraction']:.3f} ({r['true_foreground_fraction']:.3f}) | "
            f"{r['seconds']:.1f} | {r['peak_rss_mib']:.0f} (+{r['increment_mib']:.0f}) |"
        )
    lines += ["", "Mean over seeds:", "", "| condition | threshold | SEG mean | SEG min | time s mean |",
              "|---|---|---|---|---|"]
    keys = []
    for r in rows:
        k = (r["condition"], r["threshold"])
        if k not in keys:
            keys.append(k)
    for cond, thr in keys:
        sel = [r for r in rows if (r["condition"], r["threshold"]) == (cond, thr)]
        segs = [r["seg"] for r in sel]
        lines.append(
            f"| {cond} | {thr} | {np.mean(segs):.4f} | {np.min(segs):.4f} | "
            f"{np.mean([r['seconds'] for r in sel]):.1f} |"
        )
    lines += summary_lines(rows)
    lines += [
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ". Times are "
        "wall clock of the `segment_nuclei` call alone (threshold + fill holes + watershed), "
        "on a shared machine; peak RSS is the process high-water mark during the call "
        "(inputs included), the increment is above the RSS before the call.",
        "",
        "Reading the table: a collapsed SEG with hundreds of spurious objects goes with a "
        "foreground fraction far below the true one, i.e. the global threshold (identical "
        "to ImageJ's) landed too high on that histogram; the watershed then splits noise "
        "specks. Otsu on the same input keeps every nucleus matched but adds spurious "
        "noise objects (no --min-size here).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--dynamic", type=float, default=2.0)
    p.add_argument("--min-size", type=int, default=0)
    p.add_argument("--minutes", type=float, default=5.0,
                   help="IsoNet-2 training budget per seed, wall-clock minutes (default 5)")
    p.add_argument("--no-isonet", action="store_true", help="skip the IsoNet-2 condition")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default all cores)")
    p.add_argument("--cache", default=str(RESULTS / "cache" / "segmentation"),
                   help="per-seed IsoNet-2 results (default benchmarks/results/cache/segmentation)")
    p.add_argument("--out", default=None, help="markdown file (default benchmarks/results/segmentation_nuclei<N>.md)")
    p.add_argument("--render", default=None, metavar="RESULTS.json",
                   help="only re-write the markdown from an earlier run's JSON")
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        for key in ("size", "seeds", "dynamic", "min_size"):
            setattr(args, key, saved["args"][key])
        args.minutes = saved["args"].get("minutes", args.minutes)
        args.no_isonet = saved["args"].get("no_isonet", True)
        out = Path(args.out) if args.out else Path(args.render).with_suffix(".md")
        out.write_text(to_markdown(saved["rows"], args, saved["versions"]))
        print(f"wrote {out}")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = run(args.size, args.seeds, dynamic=args.dynamic, min_size=args.min_size,
               isonet=not args.no_isonet, minutes=args.minutes, cache=Path(args.cache), threads=args.threads)
    versions = _versions()
    out = Path(args.out) if args.out else RESULTS / f"segmentation_nuclei{args.size}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(rows, args, versions))
    write_json(out.with_suffix(".json"), {"args": vars(args), "versions": versions, "rows": rows})
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
