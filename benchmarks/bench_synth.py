"""Speed of ``isonet synth``: a 128^3 case of each kind, and the nuclei count at 512^3.

Times :func:`isonet_ij.phantoms.synthesize` end to end (phantom, PSF build, h_iso, the
isotropic ground truth and the forward model with noise; no file writing), median of
``--repeats`` runs, and checks the nuclei count of a 512^3 nuclei phantom against the
paper's "about 1500" (``--skip-512`` skips the 512^3 phantom and only checks the target
formula). Prints a Markdown table and writes it to ``benchmarks/results/synth_speed.md``.

Goal: each 128^3 case under 30 s on a 2-core machine.

    .venv/bin/python benchmarks/bench_synth.py [--size 128] [--repeats 3] [--skip-512]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from common import RESULTS
from isonet_ij import phantoms

OUT = RESULTS / "synth_speed.md"
GOAL_S = 30.0


def _time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-512", action="store_true", help="do not build the 512^3 phantom")
    ap.add_argument("--output", type=Path, default=OUT)
    args = ap.parse_args(argv)

    lines = [
        f"# `isonet synth` speed ({args.size}^3, median of {args.repeats})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}. Goal: < {GOAL_S:.0f} s per "
        "kind. Times cover phantom, PSF, h_iso, gt_iso and the forward model with noise "
        "(no TIFF writing).",
        "",
        "| kind | psf | factor | psf shape | input shape | labels | time (s) | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in phantoms.KINDS:
        t, res = _time(lambda k=kind: phantoms.synthesize(k, size=args.size, seed=0), args.repeats)
        meta = res["meta"]
        n_lab = meta["n_labels"] if meta["n_labels"] is not None else "-"
        lines.append(
            f"| {kind} | {meta['psf']['spec']} | {meta['factor']} | "
            f"{'x'.join(map(str, meta['psf_shape']))} | "
            f"{'x'.join(map(str, meta['shape_input']))} | {n_lab} | {t:.2f} | "
            f"{'ok' if t < GOAL_S else 'SLOW'} |"
        )

    lines += ["", "## Nuclei count vs the paper's 1500 per 512^3", ""]
    lines += ["| shape | target (formula) | placed | time (s) |", "|---|---|---|---|"]
    sizes = [(96,) * 3, (128,) * 3, (256,) * 3]
    if not args.skip_512:
        sizes.append((512,) * 3)
    for shape in sizes:
        target = phantoms.target_nuclei_count(shape)
        t0 = time.perf_counter()
        _, labels = phantoms.nuclei(shape, seed=0)
        dt = time.perf_counter() - t0
        placed = len(np.unique(labels)) - 1
        del labels
        lines.append(f"| {'x'.join(map(str, shape))} | {target} | {placed} | {dt:.1f} |")
    if args.skip_512:
        lines.append(
            f"| 512x512x512 | {phantoms.target_nuclei_count((512,) * 3)} | not built "
            "(--skip-512) | - |"
        )

    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
