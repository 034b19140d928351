"""Training defaults under a wall-clock budget: XLA, dropout, learning-rate schedule.

Each arm trains one network (architecture and mode named by the arm) on the anisotropic input of a
synthetic phantom (``--pairing`` at ``--size``^3, seed 0) for at most ``--minutes`` wall
clock (pair preparation included), restores it (xz and yz passes, mean fusion) and scores
PSNR (affine fit) against the isotropic GT and the GT. Arms differ from the engine's
defaults only in the variants their name lists after ARCH-MODE, joined by "+":

    xla-off      IsoNet-2's training step without XLA (the engine compiles it with XLA)
    dropout-0.2  the paper's 20 % dropout after every hidden convolution (default: none)
    cosine       cosine learning rate decay to 1 % over the budget (default: constant)

The default arms are the ones of ``results/training_defaults.md``: the engine before
(dropout 0.2, no XLA), each change alone, and the engine after.

The budget is wall clock: run it alone on the machine, an arm that shares the CPU trains
fewer steps. Cells are cached (``--cache``), so a rerun resumes.

    .venv/bin/python benchmarks/bench_training_defaults.py --pairing membranes --minutes 3
    .venv/bin/python benchmarks/bench_training_defaults.py --pairing nuclei --arms isonet2-split,isonet2-split-dropout-0.2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from common import RESULTS, load_cell, save_cell, synth_case, trained_key, write_report

ARMS = (
    "isonet2-split-dropout-0.2+xla-off", "isonet2-split-dropout-0.2", "isonet2-split-dropout-0.2+cosine",
    "isonet2-split", "isonet1-split-dropout-0.2", "isonet1-split-dropout-0.2+cosine", "isonet1-split",
)
VARIANTS = {"xla-off": {}, "dropout-0.2": {"dropout": 0.2}, "cosine": {"lr_schedule": "cosine"}}


def parse_arm(arm: str):
    """``"isonet2-split-dropout-0.2+xla-off"`` -> ("isonet2", "split", ["dropout-0.2", "xla-off"])."""
    arch, mode, *rest = arm.split("-", 2)
    variants = rest[0].split("+") if rest else []
    if arch not in ("isonet1", "isonet2") or mode not in ("full", "split") or set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown arm {arm!r}; arms are ARCH-MODE[-VARIANT[+VARIANT]], variants "
                         + ", ".join(VARIANTS))
    return arch, mode, variants


def run_arm(arm, case, refs, minutes):
    import isonet_ij.training as train_mod
    from isonet_ij import metrics
    from isonet_ij.config import Config
    from isonet_ij.pairs import max_patch_size
    from isonet_ij.restoration import restore

    arch, mode, variants = parse_arm(arm)
    options = {k: v for name in variants for k, v in VARIANTS[name].items()}
    g, f, meta = case["input"], float(case["meta"]["factor"]), case["meta"]
    spec = meta["psf"].get("spec", str(meta["psf"].get("kind")))
    cfg = Config(factor=f, arch=arch, mode=mode, psf=spec, psf_info=meta["psf"], epochs=100_000, seed=0,
                 patch_size=min(64, max_patch_size(g.shape, f)), **options)
    jit_for = train_mod.jit_for
    if "xla-off" in variants:
        train_mod.jit_for = lambda a: False
    try:
        res = train_mod.train(g, cfg, psf=case["psf"], time_budget=60.0 * minutes)
    finally:
        train_mod.jit_for = jit_for
    out = restore(g, res.model)
    return {
        "arm": arm, "steps": int(sum(r["steps"] for r in res.history)),
        "best_val_psnr": max(r["val_psnr"] for r in res.history),
        "gt_iso": float(metrics.psnr_affine(out, refs["gt_iso"])), "gt": float(metrics.psnr_affine(out, refs["gt"])),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairing", default="membranes", choices=("nuclei", "membranes", "nuclei-membranes"))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--cache", default=str(RESULTS / "cache" / "training_defaults"))
    p.add_argument("--out", default=None, help="default benchmarks/results/quick/training_defaults_<pairing>.md (the committed table is training_defaults.md)")
    args = p.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    for a in arms:
        parse_arm(a)
    out = Path(args.out or RESULTS / "quick" / f"training_defaults_{args.pairing}.md")
    case = refs = None
    cells = []
    for arm in arms:
        key = trained_key(f"{args.pairing}_s{args.size}_m{args.minutes:g}_{arm}")
        cell = load_cell(args.cache, key)
        if cell is None:
            if case is None:
                case, refs = synth_case(args.pairing, args.size, 0)
            t = time.monotonic()
            cell = run_arm(arm, case, refs, args.minutes)
            cell["wall_s"] = round(time.monotonic() - t, 1)
            save_cell(args.cache, key, cell)
        cells.append(cell)
    lines = [
        f"# Training defaults under a {args.minutes:g}-min budget ({args.pairing} {args.size}^3, seed 0)",
        "",
        f"Generated {time.strftime('%Y-%m-%d')} by `benchmarks/bench_training_defaults.py --pairing {args.pairing} "
        f"--size {args.size} --minutes {args.minutes:g} --arms {','.join(arms)}`, nothing else running. "
        "Each arm differs from the engine's defaults (no dropout, constant learning rate 1e-3, IsoNet-2's "
        "training step under XLA) only in what its name says; PSNR after the affine fit, dB.",
        "",
        "| arm | steps in budget | best val PSNR | vs isotropic GT | vs GT |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {c['arm']} | {c['steps']} | {c['best_val_psnr']:.2f} | {c['gt_iso']:.2f} | {c['gt']:.2f} |"
              for c in cells]
    lines += ["", f"Machine: python {platform.python_version()}, {platform.machine()}, "
              f"{os.cpu_count()} CPUs."]
    write_report(out, lines, {"args": vars(args), "cells": cells})


if __name__ == "__main__":
    main()
