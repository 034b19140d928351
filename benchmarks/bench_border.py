"""Plane border margin: restoration speed and quality per reflected border width.

Until 2026-11-25 every plane was reflect-padded by the full halo (>= the receptive field,
36 px for IsoNet-2) before the network, so a 125x128 plane ran as a 200x200 tile: 2.4x the
pixels. Now planes get a small reflected border (``restore.BORDER``, 8 px) and the
network's own zero padding beyond it, as in a whole-plane pass (CSBDeep pads only to a
multiple of 4). This script measures what that changes, on the paper's three pairings at
``--size``^3: one IsoNet-2 split network per pairing trained for ``--steps`` steps (a step
budget: a busy machine favours no arm), then the same network restores the volume with
each ``--borders`` value. Border 36 is the previous behaviour (the reflected margin covers
the receptive field: the network never sees its zero padding).

Reported: PSNR (affine fit) vs isotropic GT over the whole volume and away from the y/x
borders (outputs more than the receptive field from every y/x border; the z borders, the
rows of every plane, stay in, so the margin still matters there), restore seconds (best of
``--repeats``) and output voxels/s.

    .venv/bin/python benchmarks/bench_border.py                          # 128^3, 300 steps
    .venv/bin/python benchmarks/bench_border.py --size 48 --steps 10 --pairings nuclei --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import load_cell, save_cell, synth_case, trained_key, write_report  # noqa: E402

PAIRINGS = ("nuclei", "membranes", "nuclei-membranes")


def train_model(case, steps, seed):
    from isonet_ij.config import Config
    from isonet_ij.pairs import max_patch_size
    from isonet_ij.train import train

    vol, meta = case["input"], case["meta"]
    f = float(meta["factor"])
    patch = min(64, max_patch_size(vol.shape, f))
    spec = meta["psf"].get("spec", str(meta["psf"].get("kind")))
    cfg = Config(factor=f, arch="isonet2", mode="split", psf=spec, psf_info=meta["psf"],
                 epochs=max(1, round(steps / 50)), steps_per_epoch=min(50, steps), seed=seed, patch_size=patch)
    return train(vol, cfg, psf=case["psf"], force=True, progress=False).model


def measure(case, refs, tm, border, repeats):
    import numpy as np

    from isonet_ij import nets
    from isonet_ij.metrics import psnr_affine
    from isonet_ij.restore import restore

    restore(case["input"][:4, :32, :32], tm, border=border)  # trace / warm up
    best, out = None, None
    for _ in range(repeats):
        out, info = restore(case["input"], tm, border=border, return_info=True)
        best = info["seconds"] if best is None else min(best, info["seconds"])
    r = nets.receptive_field("isonet2")
    inner = (slice(None), slice(r, -r), slice(r, -r))
    gt = refs["gt_iso"]
    return {"border": _label(border), "seconds": round(best, 2), "voxels_per_s": out.size / best,
            "psnr_iso": float(psnr_affine(out, gt)), "psnr_iso_interior": float(psnr_affine(out[inner], gt[inner])),
            "tile": info["plan"]["tile"], "_out": np.asarray(out)}


def _label(border) -> str:
    return f"{border[0]} (z) x {border[1]}" if isinstance(border, tuple) else str(border)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--borders", default="0,8x0,8,16,36",
                   help="comma list of borders: N (rows and cols) or RxC (rows = z, cols = x/y); the last is "
                        "the reference (default 36: the previous behaviour)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--pairings", default=",".join(PAIRINGS))
    p.add_argument("--cache", default=str(REPO / "benchmarks/results/cache/border"))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/border.md"))
    p.add_argument("--note", default="", help="free text for the report (e.g. the machine's load)")
    args = p.parse_args(argv)
    # "8" (rows and cols) or "8x0" (rows x cols); the last one is the reference
    borders = [tuple(int(v) for v in b.split("x")) if "x" in b else int(b) for b in args.borders.split(",")]
    rows = []
    for kind in args.pairings.split(","):
        key = trained_key(f"{kind}_s{args.size}_seed{args.seed}_st{args.steps}_b{args.borders.replace(',', '-')}")
        cell = load_cell(args.cache, key)
        if cell is None:
            case, refs = synth_case(kind, args.size, args.seed)
            t = time.monotonic()
            tm = train_model(case, args.steps, args.seed)
            train_s = time.monotonic() - t
            res = [measure(case, refs, tm, b, args.repeats) for b in borders]
            ref_out = res[-1]["_out"]  # the reference margin
            for r in res:
                r["max_abs_vs_widest"] = float(abs(r.pop("_out") - ref_out).max() / (ref_out.max() - ref_out.min()))
            cell = {"pairing": kind, "train_s": round(train_s, 1), "rows": res}
            save_cell(args.cache, key, cell)
        rows.append(cell)
    lines = ["# Plane border margin: speed and quality (`benchmarks/bench_border.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {__import__('os').cpu_count()} CPUs, "
             f"{args.size}^3 phantoms (seed {args.seed}), IsoNet-2 split trained {args.steps} steps per pairing, "
             "TensorFlow backend, default memory budget (one tile per plane at this size). "
             "Border 36 = the previous behaviour (reflected margin >= the receptive field).", "",
             "| pairing | border px (rows z x cols) | tile | restore s | output voxels/s | speed-up vs the last | PSNR vs iso GT | "
             "PSNR away from y/x borders | max abs diff vs the last (normalized) |", "|---|---|---|---|---|---|---|---|---|"]
    for cell in rows:
        base = cell["rows"][-1]["seconds"]
        for r in cell["rows"]:
            lines.append(f"| {cell['pairing']} | {r['border']} | {'x'.join(map(str, r['tile']))} | {r['seconds']:.2f} | "
                         f"{r['voxels_per_s'] / 1e6:.3f} M | {base / r['seconds']:.2f}x | {r['psnr_iso']:.2f} | "
                         f"{r['psnr_iso_interior']:.2f} | {r['max_abs_vs_widest']:.1e} |")
    if args.note:
        lines += ["", args.note]
    write_report(args.out, lines + [""], {"args": vars(args), "cells": rows})


if __name__ == "__main__":
    main()
