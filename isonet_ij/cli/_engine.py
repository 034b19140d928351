"""``isonet train | restore | baseline | score | demo``: the restoration engine's commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)

_PSF_HELP = (
    "PSF on the isotropic grid: gaussian:SXY,SZ (sigmas in voxels of the isotropic grid), "
    "confocal:na=1.1,n=1.33,ex=488,em=520 (wavelengths nm), "
    "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520, "
    "widefield:na=1.1,n=1.33,em=520, or PSF.tif (a 3D PSF (z, y, x) on the isotropic grid); "
    "physical PSFs need the input's xy voxel size (calibration)"
)
_FACTOR_HELP = (
    "anisotropy factor F = z spacing / xy spacing (> 1, not rounded, e.g. 4.89); default "
    "from the input's calibration"
)

_TRAIN_DESCRIPTION = """\
Train IsoNet on the anisotropic volume itself (self-supervised, Weigert et al. 2017):
lateral slices are blurred with the rotated PSF (--mode full: h_rot) or its anisotropic
part (--mode split: h_split, h_rot = h_iso * h_split), subsampled along one lateral axis
by F and interpolated back (bicubic), for both lateral axes; the network learns to undo
that and is later applied to the axial (xz, yz) planes. --mode none trains on subsampling
only (SRCNN baseline). Intensities are normalized by the 1/99.8 percentiles of the volume.

MODEL_DIR receives config.json (arch, mode, factor, PSF, normalization, versions),
psf.tif, weights_best.weights.h5 (best validation loss), weights_last.weights.h5 (+
optimizer_last.npz, train_state.json: the resume point), training_log.csv and
training_curve.png, each written atomically after every epoch. --time-budget stops at a
wall-clock limit (e.g. 15m, 90s, 1.5h; pair preparation included) and keeps the best
checkpoint; --resume continues a stopped run.

Defaults: Adam lr 1e-3 (2 dB ahead of the paper's 5e-3 in our measurement), 64x64
patches, batch 16, no dropout (0.63 dB ahead of the paper's 0.2 for IsoNet-2 at a 3-min
budget), constant learning rate, 100 epochs x 50 steps, negative-PSNR loss (eq. 3).
"""

_RESTORE_DESCRIPTION = """\
Restore isotropic resolution with a trained model: the input is interpolated along z
(bicubic) onto the isotropic grid -- acquired slice i at output slice i*F, floor((Z-1)*F)+1
output slices (nothing extrapolated) -- the network is applied to every xz and every yz
plane (8 rows reflected at the z ends; whole when it fits --max-memory, else in
fixed-size tiles overlapping by a halo >= the receptive field), and the two results are
fused (mean, or geometric mean). Percentiles are computed once per volume (per channel
over all timepoints for ZCYX / TZCYX stacks, restored channel by channel and timepoint by
timepoint, same axes out).

Output: float32 in the input's intensity units (--dtype input: the input's integer type,
clipped and rounded), voxel size (dx, dy, dx), provenance (model, PSF, factor, version,
self-consistency) in the ImageJ Info property. The self-consistency score re-applies the
forward model (blur with the removed PSF part, sample at the acquired slices) and compares
with the input (PSNR in dB on the normalized scale; no ground truth needed; it measures
agreement with the data, not quality), next to the same score of bicubic interpolation:
a useful restoration scores higher than bicubic.
"""

_BASELINE_DESCRIPTION = """\
Baselines of the paper's Table 1, on the same grid as `isonet restore`:
  bicubic  z interpolation (Keys cubic convolution, a = -0.5)
  rl       bicubic z interpolation + 3D Richardson-Lucy deconvolution with --psf
           (reflect padding, --iterations)
  srcnn    IsoNet-1 trained on subsampling-only pairs (no PSF), then restored
           (--time-budget, --model-dir to keep the model)
"""

_SCORE_DESCRIPTION = """\
PSNR (and SSIM) of a restored volume against a reference on the isotropic grid (e.g.
gt.tif or gt_iso.tif of `isonet synth`). The reference is cropped to the restoration's
z grid (its first floor((Z-1)*F)+1 slices: slice i*F of the reference is acquired slice i).

  psnr         10 log10(range(ref)^2 / MSE), range = max - min of the reference
  psnr_affine  PSNR after the least-squares affine intensity fit a*out + b of the output to
               the reference (CSBDeep's evaluation: units and offsets do not count)
  ssim_affine  structural similarity after the same affine fit (data range of the reference)

JSON on stdout (and in --json FILE).
"""

_DEMO_DESCRIPTION = """\
The main job on built-in defaults: synthesize a 128^3 nuclei volume (Gaussian PSF
sigma_xy/sigma_z = 2/8 voxels, factor 8, Poisson + read noise), train IsoNet-2 (split) on
it for --minutes, restore it, compute bicubic and Richardson-Lucy baselines, score all
against the ground truth and the isotropic ground truth, segment the nuclei (Intermodes,
fill holes, 3D watershed) and report SEG, and write an xy/xz montage.

Files in DIR: input.tif, gt.tif, gt_iso.tif, psf.tif, labels.tif, model/ (model dir),
restored.tif, bicubic.tif, rl.tif, scores.json, scores.md, montage.png.
"""


# --------------------------------------------------------------------------- register


def register(subparsers) -> None:
    """Add ``train``, ``restore``, ``baseline``, ``score`` and ``demo``."""
    fmt = argparse.RawDescriptionHelpFormatter
    # ---- train
    p = subparsers.add_parser("train", help="train IsoNet on an anisotropic volume (self-supervised)",
                              description=_TRAIN_DESCRIPTION, formatter_class=fmt)
    p.add_argument("input", metavar="INPUT.tif", help="anisotropic 3D volume (ZYX)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model directory")
    p.add_argument("--factor", type=float, default=None, metavar="F", help=_FACTOR_HELP)
    p.add_argument("--psf", default=None, metavar="SPEC",
                   help=_PSF_HELP + ", or auto (a Gaussian estimated from the volume itself, "
                        "see `isonet psf estimate`; recorded in the model config), or auto:MODEL "
                        "(an optical model with its NA fitted to the same estimate, e.g. "
                        "auto:confocal:n=1.33,ex=488,em=520 or auto:lightsheet:na_detect=0.8; "
                        "needs the xy calibration) "
                        "(required unless --mode none)")
    p.add_argument("--arch", choices=("isonet1", "isonet2"), default="isonet2", help="network (default isonet2)")
    p.add_argument("--mode", choices=("full", "split", "none"), default="split",
                   help="training kernel: full (h_rot), split (h_split, default), none (SRCNN: no PSF)")
    p.add_argument("--epochs", type=int, default=None, metavar="E",
                   help="total epochs (default 100; with --resume: the stored value)")
    p.add_argument("--steps-per-epoch", type=int, default=50, metavar="S", help="steps per epoch (default 50)")
    p.add_argument("--patch", type=int, default=None, metavar="P",
                   help="patch side, pixels, multiple of 4 (default 64, or the largest that fits a smaller volume)")
    p.add_argument("--batch", type=int, default=16, metavar="B", help="patches per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3; the paper's 5e-3 trained worse)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout rate (default 0: trained faster than the paper's 0.2)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="learning rate over the run (default constant; cosine: down to 1%% of --lr "
                        "at the end of the epochs or of --time-budget)")
    p.add_argument("--loss", choices=("psnr", "mse", "mae"), default="psnr", help="loss (default psnr: eq. 3)")
    p.add_argument("--no-noise-match", action="store_true",
                   help="do not add back the noise the training blur averaged away")
    p.add_argument("--no-augment", action="store_true", help="no flips")
    p.add_argument("--time-budget", default=None, metavar="T",
                   help="wall-clock limit, e.g. 15m, 90s, 1.5h (keeps the best checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--channel", type=int, default=None, metavar="C", help="channel of a ZCYX/TZCYX input")
    p.add_argument("--timepoint", type=int, default=None, metavar="T", help="timepoint of a TZCYX input")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue training from MODEL_DIR's last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_train)

    # ---- restore
    p = subparsers.add_parser("restore", help="restore isotropic resolution with a trained model",
                              description=_RESTORE_DESCRIPTION, formatter_class=fmt)
    p.add_argument("input", metavar="INPUT.tif",
                   help="anisotropic volume (TIFF: ZYX, ZCYX or TZCYX; or an OME-Zarr / zarr ZYX)")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="model directory of `isonet train`, an exported MODEL.onnx, or a "
                        "bioimage.io PACKAGE.zip of `isonet export`")
    p.add_argument("--backend", choices=("tensorflow", "onnx"), default=None,
                   help="inference runtime (default: tensorflow for model dirs and packages, "
                        "onnx for .onnx files); both give the same volume to < 1e-4")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="output TIFF")
    p.add_argument("--factor", type=float, default=None, metavar="F",
                   help=_FACTOR_HELP + ", else the model's")
    p.add_argument("--fusion", choices=("mean", "geometric"), default=None,
                   help="fusion of the xz and yz passes (default: the model's, mean)")
    p.add_argument("--normalization", choices=("volume", "model"), default="volume",
                   help="percentiles of this volume (default) or the training volume's")
    p.add_argument("--batch", type=int, default=8, metavar="B", help="tiles per network call (default 8)")
    p.add_argument("--max-memory", default=None, metavar="M",
                   help="TIFF output: working-memory budget of inference, e.g. 512M, 4G (default 1G; "
                   "input and output volumes come on top). .zarr output: the summed RSS of every "
                   "process of the run, workers included (default 4G)")
    p.add_argument("--dtype", choices=("float32", "input"), default="float32",
                   help="output type: float32 (default) or the input's (clipped, rounded)")
    p.add_argument("--weights", choices=("best", "last"), default="best", help="checkpoint (default best)")
    p.add_argument("--no-consistency", action="store_true", help="skip the self-consistency score")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--scheduler", default="threads", metavar="S",
                   help="with a .zarr output (chunked on dask): threads (default), processes "
                        "(a local dask.distributed cluster), or a scheduler address tcp://HOST:PORT")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads / worker processes for a .zarr output")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted .zarr output, skipping finished chunks")
    p.set_defaults(func=cmd_restore)

    # ---- baseline
    p = subparsers.add_parser("baseline", help="bicubic, Richardson-Lucy or SRCNN on the same grid",
                              description=_BASELINE_DESCRIPTION, formatter_class=fmt)
    p.add_argument("method", choices=("bicubic", "rl", "srcnn"))
    p.add_argument("input", metavar="INPUT.tif", help="anisotropic 3D volume (ZYX)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif")
    p.add_argument("--factor", type=float, default=None, metavar="F", help=_FACTOR_HELP)
    p.add_argument("--psf", default=None, metavar="SPEC", help=_PSF_HELP + " (rl only)")
    p.add_argument("--iterations", type=int, default=10, help="Richardson-Lucy iterations (default 10)")
    p.add_argument("--time-budget", default="15m", metavar="T", help="srcnn training limit (default 15m)")
    p.add_argument("--model-dir", default=None, metavar="DIR", help="srcnn: keep the trained model here")
    p.add_argument("--patch", type=int, default=None, metavar="P", help="srcnn patch side (default as train)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_baseline)

    # ---- score
    p = subparsers.add_parser("score", help="PSNR / SSIM of a restoration against a reference",
                              description=_SCORE_DESCRIPTION, formatter_class=fmt)
    p.add_argument("restored", metavar="OUT.tif")
    p.add_argument("--gt", required=True, metavar="GT.tif", help="reference on the isotropic grid")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM (faster)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the scores here")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_score)

    # ---- demo
    p = subparsers.add_parser("demo", help="synthesize, train, restore, score, segment, montage",
                              description=_DEMO_DESCRIPTION, formatter_class=fmt)
    p.add_argument("-o", "--output", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    p.add_argument("--minutes", type=float, default=5.0, help="training time in minutes (default 5)")
    p.add_argument("--pretrained", action="store_true",
                   help="skip training: restore with the committed demo model "
                        "(models/isonet2_nuclei_demo.bioimageio.zip)")
    p.add_argument("--size", type=int, default=128, help="phantom edge length, voxels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--force", action="store_true", help="replace existing outputs in DIR")
    p.set_defaults(func=cmd_demo)


# --------------------------------------------------------------------------- helpers


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _factor(args_factor, vol, path) -> float:
    from ..grid import check_factor

    if args_factor is not None:
        return check_factor(args_factor, name="--factor")
    if vol.voxel_size is None:
        msg = (
            f"{str(path)!r} has no voxel-size calibration, so z spacing / xy spacing is "
            "unknown; pass --factor F (e.g. --factor 8 for 0.8 um z steps at 0.1 um pixels)"
        )
        raise ValueError(msg)
    dz, _, dx = vol.voxel_size
    return check_factor(dz / dx, name="factor from the calibration (dz/dx)")


def _psf(spec, vol, *, required: bool):
    """Parse --psf on the isotropic grid (dx, dy, dx) of the input."""
    if not spec:
        if required:
            msg = "--psf is required (e.g. --psf gaussian:2,8); --mode none trains without a PSF"
            raise ValueError(msg)
        return None, {}
    from ..psf import psf_for_volume, validate_psf

    if Path(spec).expanduser().is_file():
        # A PSF.tif must already be a PSF on the isotropic grid: odd sizes, non-negative,
        # positive sum. Check the raw file so that a bad one is an error, not resampled.
        from .. import volume_io as vio

        raw = vio.read_volume(Path(spec).expanduser())
        if raw.axes != "ZYX":
            msg = f"PSF file {spec!r} has axes {raw.axes}; a PSF is a single 3D (z, y, x) stack"
            raise ValueError(msg)
        validate_psf(raw.data, name=f"PSF file {spec}")
    return psf_for_volume(spec, vol.voxel_size,
                          calibration_hint="set it (Image > Properties in Fiji)")


def _is_auto(spec) -> bool:
    return isinstance(spec, str) and spec.strip().lower().partition(":")[0] == "auto"


def _auto_psf(spec, data, factor, voxel_size) -> tuple[str, dict]:
    """``--psf auto[:MODEL]``: a PSF estimated from the volume's own spectra."""
    from ..psf import auto_psf_spec

    model = spec.partition(":")[2] or None
    spec, estimate = auto_psf_spec(data, factor, model=model,
                                   xy_voxel_size=voxel_size[2] if voxel_size else None)
    log.info("--psf %s: estimated %s (sigma_xy %.2f, sigma_z %.2f voxels)", "auto" + (f":{model}" if model else ""),
             spec, estimate["sigma_xy"], estimate["sigma_z"])
    return spec, estimate


def _zyx(vol, channel, timepoint, path):
    """Pick one ZYX volume of a ZCYX/TZCYX stack for training."""
    import numpy as np

    data, axes = vol.data, vol.axes
    for ax, idx in (("T", timepoint), ("C", channel)):
        if ax in axes:
            n = data.shape[axes.index(ax)]
            if idx is None:
                if n > 1:
                    opt = "--channel" if ax == "C" else "--timepoint"
                    msg = f"{str(path)!r} has {n} {'channels' if ax == 'C' else 'timepoints'}; choose one with {opt}"
                    raise ValueError(msg)
                idx = 0
            if not 0 <= idx < n:
                msg = f"{ax} index {idx} out of range 0..{n - 1} in {str(path)!r}"
                raise ValueError(msg)
            data = np.take(data, idx, axis=axes.index(ax))
            axes = axes.replace(ax, "")
    return data


def _patch(patch, shape, factor) -> int:
    """--patch, or by default 64 (measured best) capped to what the volume holds."""
    if patch is not None:
        return patch
    from ..pairs import max_patch_size

    fits = max_patch_size(shape, factor)
    if fits < 16:
        msg = (
            f"the volume {tuple(shape)} is too small to train on: its lateral planes hold at most "
            f"{fits}x{fits} patches on the factor-{factor:g} grid (16x16 needed)"
        )
        raise ValueError(msg)
    return min(64, fits)


def _provenance(**kw) -> dict:
    from .. import __version__

    out = {"software": f"isonet-ij {__version__}", "version": __version__}
    out.update(kw)
    return out


def _convert_dtype(out, dtype, in_dtype):
    import numpy as np

    if dtype == "float32" or np.dtype(in_dtype) == np.float32:
        return out.astype(np.float32, copy=False)
    if np.dtype(in_dtype).kind not in "ui":
        return out.astype(np.float32, copy=False)
    info = np.iinfo(in_dtype)
    if info.bits > 16:
        log.warning("ImageJ TIFF cannot store %s; writing uint16", in_dtype)
        info = np.iinfo(np.uint16)
        in_dtype = np.uint16
    n_clip = int(np.count_nonzero((out < info.min) | (out > info.max)))
    if n_clip:
        log.warning("%d voxels clipped to the %s range [%d, %d]", n_clip, np.dtype(in_dtype), info.min, info.max)
    return np.clip(np.rint(out), info.min, info.max).astype(in_dtype)


def _zarr_in_memory(args):
    """A zarr input restored to a TIFF: read whole when input and output fit in memory."""
    import numpy as np

    from .. import grid
    from ..volume_io import Volume, available_memory
    from ..io_zarr import open_zarr_volume

    src = open_zarr_volume(args.input)
    Z, Y, X = src.shape
    factor = args.factor or src.anisotropy() or 1.0
    need = Z * Y * X * 4 + 3 * grid.n_output_slices(Z, max(factor, 1.0)) * Y * X * 4
    avail = available_memory()
    if avail is not None and need > avail // 2:
        msg = (f"restoring {args.input!r} to a TIFF needs about {need / 2**30:.1f} GiB in memory, "
               f"{avail / 2**30:.1f} GiB are available; write OME-Zarr instead (-o OUT.zarr): "
               "it is restored chunk by chunk")
        raise ValueError(msg)
    return Volume(data=np.asarray(src[:, :, :]), voxel_size=src.voxel_size,
                  unit="um" if src.voxel_size else "pixel", axes="ZYX", metadata={})


def _restore_chunked_cli(args) -> int:
    """``isonet restore`` with a .zarr output: chunked on dask, resumable."""
    from ..chunked import restore_chunked

    # a TIFF is read region by region (memory-mapped when uncompressed): it may not fit in memory
    info = restore_chunked(args.input, args.model, factor=args.factor, out=args.output,
                           scheduler=args.scheduler, workers=args.workers, resume=args.resume,
                           force=args.force, max_memory=args.max_memory,
                           progress=True, normalization=args.normalization, fusion=args.fusion,
                           batch_size=args.batch, backend=args.backend, weights=args.weights)
    print(f"wrote {info['out']} {info['shape_out']} ({len(info['computed'])} chunks computed, "
          f"{info['skipped']} resumed)")
    return 0


# --------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    _quiet_tf()
    from .. import volume_io as vio
    from ..config import Config
    from ..training import parse_duration, train

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        msg = f"-o {str(out)!r} is a file; give a model directory"
        raise FileExistsError(msg)
    budget = parse_duration(args.time_budget) if args.time_budget else None
    vol = vio.read_volume(args.input)
    data = _zyx(vol, args.channel, args.timepoint, args.input)
    if args.resume:
        from ..config import read_config

        cfg = read_config(out)
        if args.epochs is not None:
            cfg = cfg.replace(epochs=args.epochs)
        h = None
    else:
        factor = _factor(args.factor, vol, args.input)
        estimate = None
        if _is_auto(args.psf) and args.mode != "none":
            args.psf, estimate = _auto_psf(args.psf, data, factor, vol.voxel_size)
        h, psf_info = _psf(args.psf, vol, required=args.mode != "none")
        if estimate is not None:
            psf_info = {**psf_info, "auto_estimate": estimate}
        if args.mode == "none" and args.psf:
            log.warning("--mode none ignores --psf")
            h, psf_info = None, {}
        cfg = Config(
            factor=factor, arch=args.arch, mode=args.mode,
            psf=args.psf if args.mode != "none" else "", psf_info=psf_info,
            patch_size=_patch(args.patch, data.shape, factor), batch_size=args.batch,
            epochs=100 if args.epochs is None else args.epochs,
            steps_per_epoch=args.steps_per_epoch, learning_rate=args.lr, dropout=args.dropout,
            lr_schedule=args.lr_schedule,
            loss=args.loss, noise_match=not args.no_noise_match, augment=not args.no_augment,
            seed=args.seed, train_input=str(Path(args.input).resolve()),
            voxel_size=list(vol.voxel_size) if vol.voxel_size else None,
        ).validate()
    t0 = time.monotonic()
    res = train(data, cfg, psf=h, model_dir=out, time_budget=budget, resume=args.resume,
                force=args.force, progress=True, threads=args.threads)
    last = res.history[-1] if res.history else {}
    print(json.dumps({
        "model_dir": str(out), "stop_reason": res.stop_reason, "epochs": len(res.history),
        "best_val_psnr": max((r["val_psnr"] for r in res.history), default=None),
        "val_psnr_input": last.get("val_psnr_input"), "seconds": round(time.monotonic() - t0, 1),
    }, indent=2))
    return 0


# --------------------------------------------------------------------------- restore


def cmd_restore(args) -> int:
    _quiet_tf()
    import numpy as np

    from .. import volume_io as vio
    from ..model import load_model
    from ..nets import set_threads
    from ..restoration import restore_stack
    from ..tiling import parse_memory
    from ..io_zarr import is_zarr

    if is_zarr(args.output):
        return _restore_chunked_cli(args)

    out_path = vio.check_output_path(args.output, force=args.force, inputs=[args.input])
    max_memory = parse_memory(args.max_memory or "1G")
    vol = _zarr_in_memory(args) if is_zarr(args.input) else vio.read_volume(args.input)
    set_threads(args.threads)
    tm = load_model(args.model, backend=args.backend, weights=args.weights, threads=args.threads)
    factor = args.factor if args.factor is not None else (
        vol.anisotropy if vol.voxel_size is not None else tm.config.factor)
    from ..grid import check_factor

    factor = check_factor(factor, name="--factor" if args.factor is not None else "factor")
    result, infos = restore_stack(
        vol.data, vol.axes, tm, factor=factor, fusion=args.fusion,
        normalization=args.normalization, batch_size=args.batch, max_memory=max_memory,
        consistency=not args.no_consistency, progress=True,
    )
    result = _convert_dtype(result, args.dtype, vol.data.dtype)
    if vol.voxel_size is not None:
        _, dy, dx = vol.voxel_size
        vs, unit = (dx, dy, dx), vol.unit
    else:
        vs, unit = (1.0, 1.0, 1.0), "pixel"
    cons = [i.get("consistency", {}).get("psnr") for i in infos]
    cons_bic = [i.get("consistency", {}).get("psnr_bicubic") for i in infos]
    meta = _provenance(
        command="restore", input=str(Path(args.input).resolve()), model=str(Path(args.model).resolve()),
        arch=tm.config.arch, mode=tm.config.mode, psf=tm.config.psf, factor=factor,
        model_factor=tm.config.factor, fusion=infos[0]["fusion"], weights=tm.weights,
        normalization=[i["normalization"] for i in infos],
        self_consistency_psnr_db=cons, self_consistency_bicubic_psnr_db=cons_bic,
        input_shape=list(vol.data.shape), axes=vol.axes,
        z_grid=f"acquired slice i at output slice i*{factor:g}",
    )
    vio.write_volume(out_path, result, voxel_size=vs, unit=unit, axes=vol.axes, metadata=meta,
                     force=args.force, inputs=[args.input])
    summary = {
        "output": str(out_path), "shape": list(result.shape), "axes": vol.axes, "factor": factor,
        "seconds": round(sum(i["seconds"] for i in infos), 2),
        "self_consistency_psnr_db": cons if len(cons) > 1 else cons[0],
        "self_consistency_bicubic_psnr_db": cons_bic if len(cons_bic) > 1 else cons_bic[0],
    }
    print(json.dumps(summary, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    return 0


# --------------------------------------------------------------------------- baseline


def cmd_baseline(args) -> int:
    _quiet_tf()
    from .. import baselines
    from .. import volume_io as vio

    out_path = vio.check_output_path(args.output, force=args.force, inputs=[args.input])
    vol = vio.read_volume(args.input)
    data = _zyx(vol, None, None, args.input)
    factor = _factor(args.factor, vol, args.input)
    meta = {"method": args.method, "factor": factor}
    if args.method == "bicubic":
        out = baselines.bicubic(data, factor)
    elif args.method == "rl":
        h, info = _psf(args.psf, vol, required=True)
        out = baselines.richardson_lucy(data, h, factor, iterations=args.iterations, progress=True)
        meta.update(psf=args.psf, iterations=args.iterations)
    else:
        from ..nets import set_threads
        from ..training import parse_duration

        set_threads(args.threads)
        from ..config import Config

        cfg = Config(factor=factor, patch_size=_patch(args.patch, data.shape, factor))
        out = baselines.srcnn(data, factor, config=cfg, time_budget=parse_duration(args.time_budget),
                              model_dir=args.model_dir, progress=True, force=False)
        meta.update(time_budget=args.time_budget, model_dir=args.model_dir)
    if vol.voxel_size is not None:
        _, dy, dx = vol.voxel_size
        vs, unit = (dx, dy, dx), vol.unit
    else:
        vs, unit = (1.0, 1.0, 1.0), "pixel"
    vio.write_volume(out_path, out, voxel_size=vs, unit=unit,
                     metadata=_provenance(command="baseline", input=str(Path(args.input).resolve()), **meta),
                     force=args.force, inputs=[args.input])
    print(json.dumps({"output": str(out_path), "shape": list(out.shape), **meta}, indent=2))
    return 0


# --------------------------------------------------------------------------- score


def score_volumes(restored, reference, *, with_ssim: bool = True) -> dict:
    """PSNR, affine PSNR and SSIM of ``restored`` against ``reference`` cropped to its grid."""
    import numpy as np

    from .. import metrics

    restored = np.asarray(restored, np.float32)
    reference = np.asarray(reference, np.float32)
    if restored.ndim != 3 or reference.ndim != 3:
        msg = f"score needs two 3D volumes, got shapes {restored.shape} and {reference.shape}"
        raise ValueError(msg)
    if reference.shape[1:] != restored.shape[1:] or reference.shape[0] < restored.shape[0]:
        msg = (
            f"reference shape {reference.shape} cannot be cropped to the restoration's grid "
            f"{restored.shape}: y and x must match and the reference needs >= {restored.shape[0]} slices"
        )
        raise ValueError(msg)
    ref = reference[: restored.shape[0]]
    out = {
        "psnr": metrics.psnr(restored, ref),
        "psnr_affine": metrics.psnr_affine(restored, ref),
        "n_slices": int(restored.shape[0]),
        "reference_cropped_from": int(reference.shape[0]),
    }
    if with_ssim:
        a, b = metrics.affine_fit(restored, ref)
        out["ssim_affine"] = metrics.ssim(a * restored + b, ref)
    return out


def cmd_score(args) -> int:
    from .. import volume_io as vio

    if args.json:
        vio.check_output_path(args.json, force=args.force)
    a = vio.read_volume(args.restored)
    b = vio.read_volume(args.gt)
    if a.axes != "ZYX" or b.axes != "ZYX":
        msg = f"score needs ZYX volumes, got {a.axes} and {b.axes}"
        raise ValueError(msg)
    res = score_volumes(a.data, b.data, with_ssim=not args.no_ssim)
    res.update(restored=str(args.restored), reference=str(args.gt))
    print(json.dumps(res, indent=2))
    if args.json:
        vio.write_json(args.json, res, force=args.force)
    return 0


# --------------------------------------------------------------------------- demo


_DEMO_KIND = "nuclei"
_DEMO_PSF = "gaussian:2,8"
_DEMO_FACTOR = 8


def cmd_demo(args) -> int:
    _quiet_tf()
    import numpy as np

    from .. import baselines, grid, phantoms
    from .. import volume_io as vio
    from ..config import Config
    from ..pairs import max_patch_size
    from ..nets import set_threads
    from ..restoration import restore_with_info
    from ..training import train

    if not args.minutes > 0:
        msg = f"--minutes must be positive, got {args.minutes}"
        raise ValueError(msg)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        msg = f"-o {str(out)!r} is a file; give a folder"
        raise FileExistsError(msg)
    files = ["input.tif", "gt.tif", "gt_iso.tif", "psf.tif", "labels.tif", "restored.tif",
             "bicubic.tif", "rl.tif", "scores.json", "scores.md", "montage.png"]
    for name in files:  # refuse before computing anything
        vio.check_output_path(out / name, force=args.force)
    model_dir = out / "model"
    if model_dir.is_dir() and any(model_dir.iterdir()) and not args.force:
        msg = f"{str(model_dir)!r} exists; pass --force to replace it or choose another -o"
        raise FileExistsError(msg)
    set_threads(args.threads)
    t_all = time.monotonic()
    timings = {}

    t = time.monotonic()
    log.info("synthesizing a %d^3 %s phantom (%s, factor %d)", args.size, _DEMO_KIND, _DEMO_PSF, _DEMO_FACTOR)
    syn = phantoms.synthesize(_DEMO_KIND, size=args.size, psf=_DEMO_PSF, factor=_DEMO_FACTOR,
                              seed=args.seed, progress=True)
    g, f = syn["input"], float(syn["meta"]["factor"])
    n_out = grid.n_output_slices(g.shape[0], f)
    gt = grid.crop_to_grid(syn["gt"], g.shape[0], f)
    gt_iso = grid.crop_to_grid(syn["gt_iso"], g.shape[0], f)
    vs_iso, vs_in = syn["voxel_size"], syn["input_voxel_size"]
    tag = {"kind": _DEMO_KIND, "seed": args.seed, "factor": f}
    out.mkdir(parents=True, exist_ok=True)
    for name, data, vs in (("input.tif", g, vs_in), ("gt.tif", syn["gt"], vs_iso),
                           ("gt_iso.tif", syn["gt_iso"], vs_iso), ("psf.tif", syn["psf"], vs_iso)):
        vio.write_volume(out / name, np.asarray(data, np.float32), voxel_size=vs, metadata=tag, force=args.force)
    vio.write_volume(out / "labels.tif", syn["labels"].astype(np.uint16), voxel_size=vs_iso,
                     metadata=tag, force=args.force)
    timings["synthesize"] = time.monotonic() - t

    t = time.monotonic()
    if args.pretrained:
        from ..artifacts import find_demo_package
        from ..model import load_model

        model_dir = find_demo_package()
        model, res = load_model(model_dir), None
    else:
        # 64x64 patches (the default), smaller when the planes on the sampling grid are smaller
        patch = min(64, max_patch_size(g.shape, f))
        cfg = Config(factor=f, arch="isonet2", mode="split", psf=_DEMO_PSF,
                     psf_info=syn["meta"]["psf"], train_input=str((out / "input.tif").resolve()),
                     voxel_size=list(vs_in), epochs=10_000, patch_size=patch)
        res = train(g, cfg, psf=syn["psf"], model_dir=model_dir, time_budget=60.0 * args.minutes,
                    force=args.force, progress=True)
        model = res.model
    timings["train"] = time.monotonic() - t

    t = time.monotonic()
    restoration = restore_with_info(g, model, consistency=True, progress=True)
    restored, info = restoration.volume, restoration.info
    timings["restore"] = time.monotonic() - t
    vio.write_volume(out / "restored.tif", restored, voxel_size=vs_iso, force=args.force,
                     metadata=_provenance(command="demo", model=str(model_dir.resolve()), psf=_DEMO_PSF,
                                          factor=f, arch="isonet2", mode="split",
                                          self_consistency_psnr_db=info["consistency"]["psnr"]))
    t = time.monotonic()
    bic = baselines.bicubic(g, f)
    rl = baselines.richardson_lucy(g, syn["psf"], f, iterations=10)
    timings["baselines"] = time.monotonic() - t
    vio.write_volume(out / "bicubic.tif", bic, voxel_size=vs_iso, force=args.force, metadata=tag)
    vio.write_volume(out / "rl.tif", rl, voxel_size=vs_iso, force=args.force, metadata=tag)

    methods = {"bicubic": bic, "rl (10 it.)": rl, "isonet2 split": restored}
    scores = {}
    for name, vol in methods.items():
        scores[name] = {
            "psnr_affine_vs_gt_iso": _r(score_volumes(vol, gt_iso, with_ssim=False)["psnr_affine"]),
            "psnr_affine_vs_gt": _r(score_volumes(vol, gt, with_ssim=False)["psnr_affine"]),
        }
    seg = _demo_segmentation(methods, gt_iso, syn["labels"][:n_out], vs_iso)
    for name, v in seg.items():
        scores.setdefault(name, {})["SEG"] = v
    _demo_montage(out / "montage.png", g, restored, gt_iso, f, force=args.force)
    summary = {
        "scores": scores,
        "self_consistency_psnr_db": _r(info["consistency"]["psnr"]),
        "self_consistency_bicubic_psnr_db": _r(info["consistency"]["psnr_bicubic"]),
        "training": _training_summary(res, model_dir),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.monotonic() - t_all, 1),
        "setup": {"kind": _DEMO_KIND, "size": args.size, "psf": _DEMO_PSF, "factor": f, "seed": args.seed,
                  "minutes": 0 if args.pretrained else args.minutes},
        "scoring": "PSNR after a least-squares affine intensity fit (CSBDeep), references cropped "
                   f"to the {n_out}-slice grid; SEG: CTC SEG of the Intermodes/fill-holes/"
                   "watershed segmentation vs the phantom labels",
    }
    vio.write_json(out / "scores.json", summary, force=args.force)
    md = _scores_markdown(summary)
    with vio.atomic_path(out / "scores.md", force=args.force) as tmp:
        tmp.write_text(md)
    print(md)
    return 0


def _training_summary(res, model_dir) -> dict:
    """What the demo's model went through: this run's training, or the committed package."""
    if res is None:
        return {"pretrained": str(model_dir)}
    hist = res.history
    return {"stop_reason": res.stop_reason, "epochs": len(hist),
            "steps": int(sum(r["steps"] for r in hist)),
            "best_val_psnr": _r(max(r["val_psnr"] for r in hist)) if hist else None,
            "val_psnr_input": _r(hist[-1]["val_psnr_input"]) if hist else None}


def _r(x, nd=3):
    return None if x is None else round(float(x), nd)


def _demo_segmentation(methods, gt_iso, labels, vs_iso) -> dict:
    """SEG of the paper's segmentation pipeline on each volume (when segment.py exists)."""
    try:
        from ..metrics import seg_score
        from ..segment import segment_nuclei
    except ImportError:  # pragma: no cover - stage not built
        log.warning("segmentation not available; skipping SEG")
        return {}
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
