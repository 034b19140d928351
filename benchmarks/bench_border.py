"""Plane border margin: restoration speed and quality per reflected border width.

Until 2026-11-25 every plane was reflect-padded by the full halo (>= the receptive field,
36 px for IsoNet-2) before the network, so a 125x128 plane ran as a 200x200 tile: 2.4x the
pixels. Now planes get a few reflected z rows (``restore.default_border``: 4 up to factor
4, else 8; none along x / y: border_z_only.md) and the network's own zero padding beyond
them, as in a whole-plane pass (CSBDeep pads only to a multiple of 4). This script
measures what the z margin changes, on the paper's three pairings at
``--size``^3: one IsoNet-2 split network per pairing trained for ``--steps`` steps (a step
budget: a busy machine favours no arm), then the same network restores the volume with
each ``--borders`` value. Border 36 x 0 is the full z context (the reflected margin covers
the receptive field: the network never sees its zero padding).

With ``--real`` the same is done on the real near-isotropic volumes of ``../shared/data/real``
(A1 membranes, A3 nuclei), thinned to every ``--real-step``-th z slice, against the
original volume (the paper's Fig. 3 setting of ``bench_real.py``, PSF ``gaussian:1,1``):
their planes are short (A1: 105 output rows), so the z margin is a larger share of the
pixels than on the 128^3 phantoms.

Reported: PSNR (affine fit) vs the reference (isotropic GT / original) over the whole
volume, away from the y/x borders (outputs more than the receptive field from every y/x
border; the z borders, the rows of every plane, stay in) and at the z ends only (the first
and last ``--z-end`` output slices, where the margin acts), restore seconds (best of
``--repeats``) and output voxels/s.

    .venv/bin/python benchmarks/bench_border.py                          # 128^3, 300 steps
    .venv/bin/python benchmarks/bench_border.py --size 96 --steps 10 --pairings nuclei --real "" --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from common import (REAL, REAL_DATA, RESULTS, THINNED_PSF, case_psf_spec, gaussian, load_cell, save_cell,
                    synth_case, train_isonet2, trained_key, write_report)

PAIRINGS = ("nuclei", "membranes", "nuclei-membranes")


def synthetic(kind, size, seed):
    """(input, factor, psf, psf spec, psf info, reference) of a phantom pairing."""
    case, refs = synth_case(kind, size, seed)
    meta = case["meta"]
    return case["input"], float(meta["factor"]), case["psf"], case_psf_spec(case), meta["psf"], refs["gt_iso"]


def real(name, step, data):
    """The same for a real volume thinned to every ``step``-th slice; the original is the reference."""
    import numpy as np

    from isonet_ij import grid
    from isonet_ij.volume_io import read_volume

    full = np.squeeze(read_volume(Path(data) / REAL[name][0]).data).astype(np.float32)
    acq = full[::step]
    return acq, float(step), gaussian(THINNED_PSF), THINNED_PSF, None, grid.crop_to_grid(full, acq.shape[0], float(step))


def measure(vol, ref, tm, border, repeats, z_end):
    import numpy as np

    from isonet_ij import nets
    from isonet_ij.metrics import psnr_affine
    from isonet_ij import restore, restore_with_info

    restore(vol[:4, :32, :32], tm, border=border)  # trace / warm up
    best, out = None, None
    for _ in range(repeats):
        out, info = (r := restore_with_info(vol, tm, border=border)).volume, r.info
        best = info["seconds"] if best is None else min(best, info["seconds"])
    r = nets.receptive_field("isonet2")
    inner = (slice(None), slice(r, -r), slice(r, -r))
    ends = np.r_[0:z_end, out.shape[0] - z_end : out.shape[0]]
    return {"border": _label(border), "seconds": round(best, 2), "voxels_per_s": out.size / best,
            "psnr_iso": float(psnr_affine(out, ref)), "psnr_iso_interior": float(psnr_affine(out[inner], ref[inner])),
            "psnr_z_ends": float(psnr_affine(out[ends], ref[ends])),
            "tile": info["plan"]["tile"], "_out": np.asarray(out)}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _label(border) -> str:
    return f"{border[0]} (z) x {border[1]}" if isinstance(border, tuple) else str(border)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--borders", default="0x0,4x0,8x0,36x0",
                   help="comma list of borders: N (rows and cols) or RxC (rows = z, cols = x/y); the last is "
                        "the reference (default 36x0: the full z context)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--pairings", default=",".join(PAIRINGS))
    p.add_argument("--real", default="A1,A3", help="comma list of real volumes (A1, A3; empty for none)")
    p.add_argument("--real-step", type=int, default=4, help="z slice step of the thinned real volumes (the factor)")
    p.add_argument("--z-end", type=int, default=16, help="output slices at each z end for the z-ends PSNR")
    p.add_argument("--data", default=str(REAL_DATA))
    p.add_argument("--cache", default=str(RESULTS / "cache" / "border"))
    p.add_argument("--out", default=str(RESULTS / "border.md"))
    p.add_argument("--note", default="", help="free text for the report (e.g. the machine's load)")
    args = p.parse_args(argv)
    # "8" (rows and cols) or "8x0" (rows x cols); the last one is the reference
    borders = [tuple(int(v) for v in b.split("x")) if "x" in b else int(b) for b in args.borders.split(",")]
    cases = [(kind, f"{kind}_s{args.size}", lambda kind=kind: synthetic(kind, args.size, args.seed))
             for kind in args.pairings.split(",") if kind]
    cases += [(f"{name}-every{args.real_step}", f"{name}_z{args.real_step}",
               lambda name=name: real(name, args.real_step, args.data))
              for name in args.real.split(",") if name]
    rows = []
    for label, stem, make in cases:
        key = trained_key(f"{stem}_seed{args.seed}_st{args.steps}_b{args.borders.replace(',', '-')}_ze{args.z_end}")
        cell = load_cell(args.cache, key)
        if cell is None:
            vol, f, psf, spec, psf_info, ref = make()
            t = time.monotonic()
            tm = train_isonet2(vol, f, psf, spec, args.steps, args.seed, psf_info=psf_info).model
            train_s = time.monotonic() - t
            res = [measure(vol, ref, tm, b, args.repeats, args.z_end) for b in borders]
            ref_out = res[-1]["_out"]  # the reference margin
            for r in res:
                r["max_abs_vs_widest"] = float(abs(r.pop("_out") - ref_out).max() / (ref_out.max() - ref_out.min()))
            cell = {"pairing": label, "train_s": round(train_s, 1), "repeats": args.repeats, "rows": res}
            save_cell(args.cache, key, cell)
        rows.append(cell)
    lines = ["# Plane border margin: speed and quality (`benchmarks/bench_border.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {__import__('os').cpu_count()} CPUs, "
             f"{args.size}^3 phantoms (seed {args.seed}; reference: isotropic GT) and real volumes thinned to every "
             f"{args.real_step}th z slice (reference: the original), IsoNet-2 split trained {args.steps} steps per "
             "volume, TensorFlow backend, default memory budget (one tile per plane at these sizes). "
             "The last border is the reference (36 (z) x 0: reflected z rows >= the receptive field). "
             f"z ends: the first and last {args.z_end} output slices. Restore seconds: best of "
             f"{'/'.join(str(r) for r in sorted({c.get('repeats', '?') for c in rows}))} calls.", "",
             "| volume | border px (rows z x cols) | tile | restore s | output voxels/s | speed-up vs the last | PSNR | "
             "PSNR away from y/x borders | PSNR at the z ends | max abs diff vs the last (normalized) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in rows:
        base = cell["rows"][-1]["seconds"]
        for r in cell["rows"]:
            lines.append(f"| {cell['pairing']} | {r['border']} | {'x'.join(map(str, r['tile']))} | {r['seconds']:.2f} | "
                         f"{r['voxels_per_s'] / 1e6:.3f} M | {base / r['seconds']:.2f}x | {r['psnr_iso']:.2f} | "
                         f"{r['psnr_iso_interior']:.2f} | {_fmt(r.get('psnr_z_ends'))} | {r['max_abs_vs_widest']:.1e} |")
    if args.note:
        lines += ["", args.note]
    write_report(args.out, lines + [""], {"args": vars(args), "cells": rows})


if __name__ == "__main__":
    main()
