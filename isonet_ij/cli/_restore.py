"""``isonet restore``: read, call the workflow (or the chunked engine), write, print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..workflow import RESTORE_SETTINGS, add_arguments

__all__ = ["register", "cmd_restore"]

_DESCRIPTION = """\
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


def register(subparsers) -> None:
    """Add ``restore``."""
    p = subparsers.add_parser("restore", help="restore isotropic resolution with a trained model",
                              description=_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT.tif",
                   help="anisotropic volume (TIFF: ZYX, ZCYX or TZCYX; or an OME-Zarr / zarr ZYX)")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="model directory of `isonet train`, an exported MODEL.onnx, or a "
                        "bioimage.io PACKAGE.zip of `isonet export`")
    p.add_argument("--backend", choices=("tensorflow", "onnx"), default=None,
                   help="inference runtime (default: tensorflow for model dirs and packages, "
                        "onnx for .onnx files); both give the same volume to < 1e-4")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="output TIFF")
    add_arguments(p, RESTORE_SETTINGS, ("factor", "fusion", "normalization", "batch_size", "max_memory"))
    p.add_argument("--dtype", choices=("float32", "input"), default="float32",
                   help="output type: float32 (default) or the input's (clipped, rounded)")
    add_arguments(p, RESTORE_SETTINGS, ("weights", "precision", "tta", "allow_large_factor"))
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


def _zarr_in_memory(args):
    """A zarr input restored to a TIFF: read whole when input and output fit in memory."""
    import numpy as np

    from .. import grid
    from ..io_zarr import open_zarr_volume
    from ..volume_io import Volume, available_memory

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


def _restore_chunked(args) -> int:
    """``isonet restore`` with a .zarr output: chunked on dask, resumable."""
    from ..chunked import restore_chunked

    # a TIFF is read region by region (memory-mapped when uncompressed): it may not fit in memory
    info = restore_chunked(args.input, args.model, factor=args.factor, out=args.output,
                           scheduler=args.scheduler, workers=args.workers, resume=args.resume,
                           force=args.force, max_memory=args.max_memory,
                           progress=True, normalization=args.normalization, fusion=args.fusion,
                           batch_size=args.batch, backend=args.backend, weights=args.weights,
                           precision=args.precision, tta=args.tta)
    print(f"wrote {info['out']} {info['shape_out']} ({len(info['computed'])} chunks computed, "
          f"{info['skipped']} resumed)")
    return 0


def _one_or_all(values: list):
    return values if len(values) > 1 else values[0]


def cmd_restore(args) -> int:
    from .. import workflow as wf

    wf.quiet_tensorflow()
    import numpy as np

    from .. import volume_io as vio
    from ..io_zarr import is_zarr
    from ..model import load_model
    from ..nets import set_threads
    from ..tiling import parse_memory

    wf.check_settings({"batch_size": args.batch}, RESTORE_SETTINGS)
    wf.check_counts({"threads": args.threads, "workers": args.workers},
                    {"threads": ("threads", 1), "workers": ("workers", 1)})
    if args.factor is not None:
        wf.check_large_factor(args.factor, allow=args.allow_large_factor)
    if is_zarr(args.output):
        vio.check_writable(args.output, what="output")
        if args.factor is None:  # the calibration's factor, checked as a given one
            from ..io_zarr import open_zarr_volume

            src = open_zarr_volume(args.input) if is_zarr(args.input) else vio.open_lazy_tiff(args.input)
            wf.check_large_factor(src.anisotropy(), allow=args.allow_large_factor)
        return _restore_chunked(args)
    out_path = vio.check_output_path(args.output, force=args.force, inputs=[args.input, args.model])
    max_memory = parse_memory(args.max_memory or "1G")
    vol = _zarr_in_memory(args) if is_zarr(args.input) else vio.read_volume(args.input)
    set_threads(args.threads)
    tm = load_model(args.model, backend=args.backend, weights=args.weights, threads=args.threads)
    wf.check_not_restored(vol.metadata, args.factor, calibrated=vol.voxel_size is not None, what=str(args.input))
    factor, source = wf.resolve_factor(args.factor, vol.voxel_size, fallback=tm.config.factor,
                                       what=str(args.input))
    wf.check_large_factor(factor, allow=args.allow_large_factor)
    res = wf.restore_volume(
        vol.data, vol.axes, tm, factor=factor, factor_source=source, command="restore",
        input=str(Path(args.input).resolve()), model_path=Path(args.model).resolve(),
        fusion=args.fusion, normalization=args.normalization, batch_size=args.batch,
        max_memory=max_memory, consistency=not args.no_consistency, progress=True,
        precision=args.precision, tta=args.tta,
    )
    result = wf.convert_dtype(res.data, args.dtype, vol.data.dtype)
    vs, unit = wf.isotropic_voxel_size(vol.voxel_size, vol.unit)
    vio.write_volume(out_path, result, voxel_size=vs, unit=unit, axes=vol.axes,
                     metadata=res.provenance, force=args.force, inputs=[args.input, args.model])
    cons, cons_bic = res.consistency
    summary = {
        "output": str(out_path), "shape": list(result.shape), "axes": vol.axes, "factor": factor,
        "seconds": res.seconds, "precision": res.provenance["precision"]["precision"],
        "self_consistency_psnr_db": _one_or_all(cons),
        "self_consistency_bicubic_psnr_db": _one_or_all(cons_bic),
    }
    print(json.dumps(summary, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    return 0
