"""Regenerate the committed demo model package (see models/README.md).

    KERAS_BACKEND=tensorflow python models/make_demo_model.py --minutes 6 --force

IsoNet-2, mode split, trained self-supervised on a synthetic 128^3 nuclei volume
(isonet_ij.phantoms.synthesize, seed 0) with the gaussian 2/8 PSF (sigma_xy / sigma_z in
voxels of the isotropic grid) and anisotropy factor 8, then exported as a bioimage.io
package. Scores (PSNR against the isotropic ground truth, bicubic vs IsoNet) and timings
go to models/isonet2_nuclei_demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
NAME = "isonet2_nuclei_demo"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=6.0, help="training time budget (default 6)")
    ap.add_argument("--size", type=int, default=128, help="phantom edge, voxels (default 128)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(HERE), help="folder for the package and its json (default models/)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)


    from isonet_ij import __version__, baselines, grid, metrics, phantoms
    from isonet_ij.config import Config
    from isonet_ij.model_export import export_bioimageio
    from isonet_ij.nets import set_threads
    from isonet_ij.pairs import max_patch_size
    from isonet_ij.restoration import restore
    from isonet_ij.training import train

    set_threads(args.threads)
    out = Path(args.out)
    pkg = out / f"{NAME}.bioimageio.zip"
    if pkg.exists() and not args.force:
        raise SystemExit(f"{pkg} exists; pass --force")
    syn = phantoms.synthesize("nuclei", size=args.size, psf="gaussian:2,8", factor=8, seed=args.seed)
    g, f = syn["input"], float(syn["meta"]["factor"])
    gt_iso = grid.crop_to_grid(syn["gt_iso"], g.shape[0], f)
    patch = min(64, max_patch_size(g.shape, f))
    cfg = Config(factor=f, arch="isonet2", mode="split", psf="gaussian:2,8", psf_info=syn["meta"]["psf"],
                 train_input=f"phantoms.synthesize('nuclei', size={args.size}, psf='gaussian:2,8', factor=8, seed={args.seed})",
                 voxel_size=list(syn["input_voxel_size"]), epochs=10_000, patch_size=patch, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="isonet_demo_") as td:
        t0 = time.monotonic()
        res = train(g, cfg, psf=syn["psf"], model_dir=Path(td) / "model", time_budget=60.0 * args.minutes)
        t_train = time.monotonic() - t0
        t0 = time.monotonic()
        restored = restore(g, res.model)
        t_restore = time.monotonic() - t0
        bic = baselines.bicubic(g, f)
        # the phantom's ground truth is in other intensity units than the acquired volume:
        # scores after the least-squares affine intensity fit (metrics.psnr_affine)
        scores = {}
        for name, vol in (("bicubic", bic), ("isonet", restored)):
            a, b = metrics.affine_fit(vol, gt_iso)
            scores[f"psnr_affine_{name}_db"] = metrics.psnr_affine(vol, gt_iso)
            scores[f"ssim_affine_{name}"] = metrics.ssim(a * vol + b, gt_iso)
        tmp_pkg = Path(td) / pkg.name
        export_bioimageio(res.model, tmp_pkg, sample=g, name="IsoNet-2 nuclei demo gaussian 2-8 factor 8")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_pkg, pkg)
        history = res.history
    summary = {
        "package": pkg.name,
        "command": "KERAS_BACKEND=tensorflow python models/make_demo_model.py "
                   f"--minutes {args.minutes:g} --size {args.size} --seed {args.seed} --force",
        "isonet_ij": __version__,
        "train_seconds": round(t_train, 1),
        "epochs": len(history),
        "steps": int(sum(h.get("steps", 0) for h in history)),
        "best_val_psnr_db": max(h["val_psnr"] for h in history) if history else None,
        "val_psnr_input_db": history[-1].get("val_psnr_input") if history else None,
        "restore_seconds": round(t_restore, 1),
        "scores_vs_isotropic_gt": {k: round(float(v), 4) for k, v in scores.items()},
        "package_bytes": pkg.stat().st_size,
    }
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
