"""The demo job: synthesize, train, restore, score, segment, montage on built-in defaults (``isonet demo``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoOptions", "run_demo", "DEMO_DESCRIPTION"]

log = logging.getLogger(__name__)

DEMO_DESCRIPTION = """\
The main job on built-in defaults: synthesize a 128^3 nuclei volume (Gaussian PSF
sigma_xy/sigma_z = 2/8 voxels, factor 8, Poisson + read noise), train IsoNet-2 (split) on
it for --minutes, restore it, compute bicubic and Richardson-Lucy baselines, score all
against the ground truth and the isotropic ground truth, segment the nuclei (Intermodes,
fill holes, 3D watershed) and report SEG, and write an xy/xz montage.

Files in DIR: input.tif, gt.tif, gt_iso.tif, psf.tif, labels.tif, model/ (model dir),
restored.tif, bicubic.tif, rl.tif, scores.json, scores.md, montage.png.
"""

_KIND = "nuclei"
_PSF = "gaussian:2,8"
_FACTOR = 8
_FILES = ("input.tif", "gt.tif", "gt_iso.tif", "psf.tif", "labels.tif", "restored.tif",
          "bicubic.tif", "rl.tif", "scores.json", "scores.md", "montage.png")


@dataclass
class DemoOptions:
    """What ``isonet demo`` is asked for (the CLI's flags, by the same names)."""

    output: str = "demo_out"
    minutes: float = 5.0
    pretrained: bool = False
    size: int = 128
    seed: int = 0
    threads: int | None = None
    force: bool = False


def _check_outputs(args) -> Path:
    """Refuse before computing anything: a file as -o, existing outputs without --force."""
    from .. import volume_io as vio

    if not args.minutes > 0:
        msg = f"--minutes must be positive, got {args.minutes}"
        raise ValueError(msg)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        msg = f"-o {str(out)!r} is a file; give a folder"
        raise FileExistsError(msg)
    for name in _FILES:
        vio.check_output_path(out / name, force=args.force)
    model_dir = out / "model"
    if model_dir.is_dir() and any(model_dir.iterdir()) and not args.force:
        msg = f"{str(model_dir)!r} exists; pass --force to replace it or choose another -o"
        raise FileExistsError(msg)
    return out


def _synthesize(args, out: Path) -> dict:
    """The phantom, written as input/gt/gt_iso/psf/labels.tif."""
    import numpy as np

    from .. import phantoms
    from .. import volume_io as vio

    log.info("synthesizing a %d^3 %s phantom (%s, factor %d)", args.size, _KIND, _PSF, _FACTOR)
    syn = phantoms.synthesize(_KIND, size=args.size, psf=_PSF, factor=_FACTOR, seed=args.seed,
                              progress=True)
    vs_iso, vs_in = syn["voxel_size"], syn["input_voxel_size"]
    tag = {"kind": _KIND, "seed": args.seed, "factor": float(syn["meta"]["factor"])}
    out.mkdir(parents=True, exist_ok=True)
    for name, data, vs in (("input.tif", syn["input"], vs_in), ("gt.tif", syn["gt"], vs_iso),
                           ("gt_iso.tif", syn["gt_iso"], vs_iso), ("psf.tif", syn["psf"], vs_iso)):
        vio.write_volume(out / name, np.asarray(data, np.float32), voxel_size=vs, metadata=tag, force=args.force)
    vio.write_volume(out / "labels.tif", syn["labels"].astype(np.uint16), voxel_size=vs_iso,
                     metadata=tag, force=args.force)
    syn["tag"] = tag
    return syn


def _model(args, syn, out: Path):
    """``(model, train result or None, model path)``: trained for --minutes, or the committed one."""
    from ._train import train_volume, training_config

    if args.pretrained:
        from ..artifacts import find_demo_package
        from ..model import load_model

        path = find_demo_package()
        return load_model(path), None, path
    g, f = syn["input"], float(syn["meta"]["factor"])
    model_dir = out / "model"
    # 64x64 patches (the default), smaller when the planes on the sampling grid are smaller
    cfg = training_config(g.shape, f, psf=_PSF, psf_info=syn["meta"]["psf"], arch="isonet2",
                          mode="split", train_input=str((out / "input.tif").resolve()),
                          voxel_size=syn["input_voxel_size"], epochs=10_000)
    res, _ = train_volume(g, cfg, psf=syn["psf"], model_dir=model_dir,
                          time_budget=60.0 * args.minutes, force=args.force, progress=True)
    return res.model, res, model_dir


def _training(res, model_dir) -> dict:
    """What the demo's model went through: this run's training, or the committed package."""
    from ._train import training_summary

    s = training_summary(res, model_dir)
    if res is None:
        return s
    return {"stop_reason": s["stop_reason"], "epochs": s["epochs"], "steps": s["steps"],
            "best_val_psnr": _r(s["best_val_psnr"]), "val_psnr_input": _r(s["val_psnr_input"])}


def _scores(methods, syn, out, args) -> dict:
    from .. import grid
    from ._score import score_volumes

    g, f = syn["input"], float(syn["meta"]["factor"])
    n_out = grid.n_output_slices(g.shape[0], f)
    gt = grid.crop_to_grid(syn["gt"], g.shape[0], f)
    gt_iso = grid.crop_to_grid(syn["gt_iso"], g.shape[0], f)
    scores = {}
    for name, vol in methods.items():
        scores[name] = {
            "psnr_affine_vs_gt_iso": _r(score_volumes(vol, gt_iso, with_ssim=False)["psnr_affine"]),
            "psnr_affine_vs_gt": _r(score_volumes(vol, gt, with_ssim=False)["psnr_affine"]),
        }
    seg = _demo_segmentation(methods, gt_iso, syn["labels"][:n_out], syn["voxel_size"])
    for name, v in seg.items():
        scores.setdefault(name, {})["SEG"] = v
    _demo_montage(out / "montage.png", g, methods["isonet2 split"], gt_iso, f, force=args.force)
    return scores


def run_demo(args: DemoOptions) -> str:
    """Run the demo into ``args.output``; the scores as Markdown (also written as scores.md)."""
    from .. import baselines
    from .. import volume_io as vio
    from ._common import provenance, quiet_tensorflow

    quiet_tensorflow()
    from ..nets import set_threads
    from ..restoration import restore_with_info

    out = _check_outputs(args)
    set_threads(args.threads)
    t_all = t = time.monotonic()
    syn = _synthesize(args, out)
    g, f, vs_iso = syn["input"], float(syn["meta"]["factor"]), syn["voxel_size"]
    timings = {"synthesize": time.monotonic() - t}
    t = time.monotonic()
    model, res, model_dir = _model(args, syn, out)
    timings["train"] = time.monotonic() - t
    t = time.monotonic()
    restoration = restore_with_info(g, model, consistency=True, progress=True)
    restored, info = restoration.volume, restoration.info
    timings["restore"] = time.monotonic() - t
    vio.write_volume(out / "restored.tif", restored, voxel_size=vs_iso, force=args.force,
                     metadata=provenance(command="demo", model=str(model_dir.resolve()), psf=_PSF,
                                            factor=f, arch="isonet2", mode="split",
                                            self_consistency_psnr_db=info["consistency"]["psnr"]))
    t = time.monotonic()
    bic = baselines.bicubic(g, f)
    rl = baselines.richardson_lucy(g, syn["psf"], f, iterations=10)
    timings["baselines"] = time.monotonic() - t
    vio.write_volume(out / "bicubic.tif", bic, voxel_size=vs_iso, force=args.force, metadata=syn["tag"])
    vio.write_volume(out / "rl.tif", rl, voxel_size=vs_iso, force=args.force, metadata=syn["tag"])
    n_out = restored.shape[0]
    summary = {
        "scores": _scores({"bicubic": bic, "rl (10 it.)": rl, "isonet2 split": restored}, syn, out, args),
        "self_consistency_psnr_db": _r(info["consistency"]["psnr"]),
        "self_consistency_bicubic_psnr_db": _r(info["consistency"]["psnr_bicubic"]),
        "training": _training(res, model_dir),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.monotonic() - t_all, 1),
        "setup": {"kind": _KIND, "size": args.size, "psf": _PSF, "factor": f, "seed": args.seed,
                  "minutes": 0 if args.pretrained else args.minutes},
        "scoring": "PSNR after a least-squares affine intensity fit (CSBDeep), references cropped "
                   f"to the {n_out}-slice grid; SEG: CTC SEG of the Intermodes/fill-holes/"
                   "watershed segmentation vs the phantom labels",
    }
    vio.write_json(out / "scores.json", summary, force=args.force)
    md = _scores_markdown(summary)
    with vio.atomic_path(out / "scores.md", force=args.force) as tmp:
        tmp.write_text(md)
    return md


def _r(x, nd=3):
    return None if x is None else round(float(x), nd)


def _demo_segmentation(methods, gt_iso, labels, vs_iso) -> dict:
    """SEG of the paper's segmentation pipeline on each volume."""
    from ..metrics import seg_score
    from ..segment import segment_nuclei

    out = {}
    for name, vol in {"isotropic GT": gt_iso, **methods}.items():
        try:
            lab = segment_nuclei(vol, voxel_size=vs_iso)
            s = seg_score(lab, labels)
            out[name] = _r(s.seg)
        except ValueError as exc:
            log.warning("segmentation of %s failed: %s", name, exc)
            out[name] = None
    return out


def _scores_markdown(summary) -> str:
    s = summary["setup"]
    lines = [
        f"# isonet demo: {s['kind']} {s['size']}^3, PSF {s['psf']}, factor {s['factor']:g}, "
        f"{s['minutes']:g} min of training",
        "",
        "| method | PSNR vs isotropic GT (dB) | PSNR vs GT (dB) | SEG |",
        "|---|---|---|---|",
    ]
    for name, v in summary["scores"].items():
        lines.append(
            f"| {name} | {v.get('psnr_affine_vs_gt_iso', '')} | {v.get('psnr_affine_vs_gt', '')} "
            f"| {v.get('SEG', '')} |"
        )
    t = summary["training"]
    trained = (f"Pretrained model {t['pretrained']} (no training in this run)." if "pretrained" in t
               else f"Training: {t['epochs']} epochs, {t['steps']} steps ({t['stop_reason']}); "
                    f"validation PSNR {t['best_val_psnr']} dB (input {t['val_psnr_input']} dB).")
    lines += [
        "",
        f"{trained} Self-consistency (forward "
        f"model re-applied, vs the acquired slices; no ground truth): restored "
        f"{summary['self_consistency_psnr_db']} dB, bicubic {summary['self_consistency_bicubic_psnr_db']} dB.",
        "",
        summary["scoring"] + ".",
        "",
        "Timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items())
        + f"; total {summary['total_s']}.",
        "",
    ]
    return "\n".join(lines)


def _demo_montage(path, g, restored, gt_iso, f, *, force) -> None:
    """xy (between two acquired slices) and xz panels: input, restored, isotropic GT."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .. import volume_io as vio

    n_out, n_y, _ = restored.shape
    i = g.shape[0] // 2
    z = min(n_out - 1, int(round(i * f + f / 2)))  # halfway between acquired slices
    y = n_y // 2
    rows = np.clip(np.rint(np.arange(n_out) / f).astype(int), 0, g.shape[0] - 1)
    lo, hi = np.percentile(gt_iso, (0.1, 99.9))

    def scaled(img, ref_lo=None, ref_hi=None):
        a, b = np.percentile(img, (0.1, 99.9)) if ref_lo is None else (ref_lo, ref_hi)
        return np.clip((img - a) / (b - a if b > a else 1.0), 0, 1)

    nearest_xy = g[min(g.shape[0] - 1, int(round(z / f)))]
    panels = [
        (f"input xy (nearest acquired to z={z})", scaled(nearest_xy)),
        (f"restored xy (z={z})", scaled(restored[z])),
        (f"isotropic GT xy (z={z})", scaled(gt_iso[z], lo, hi)),
        (f"input xz (y={y}, nearest x{f:g})", scaled(g[rows, y])),
        (f"restored xz (y={y})", scaled(restored[:, y])),
        (f"isotropic GT xz (y={y})", scaled(gt_iso[:, y], lo, hi)),
    ]
    fig = Figure(figsize=(9.6, 6.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    for ax, (title, img) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    with vio.atomic_path(path, force=force) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
