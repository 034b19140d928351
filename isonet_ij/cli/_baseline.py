"""``isonet baseline bicubic | rl | srcnn``: the paper's baselines on the restoration grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..workflow import PSF_HELP, TRAIN_SETTINGS, add_arguments
from ._train import zyx_of

__all__ = ["register", "cmd_baseline"]

_DESCRIPTION = """\
Baselines of the paper's Table 1, on the same grid as `isonet restore`:
  bicubic  z interpolation (Keys cubic convolution, a = -0.5)
  rl       bicubic z interpolation + 3D Richardson-Lucy deconvolution with --psf
           (reflect padding, --iterations)
  srcnn    IsoNet-1 trained on subsampling-only pairs (no PSF), then restored
           (--time-budget, --model-dir to keep the model)
"""


def register(subparsers) -> None:
    """Add ``baseline``."""
    p = subparsers.add_parser("baseline", help="bicubic, Richardson-Lucy or SRCNN on the same grid",
                              description=_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method", choices=("bicubic", "rl", "srcnn"))
    p.add_argument("input", metavar="INPUT.tif", help="anisotropic 3D volume (ZYX)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif")
    add_arguments(p, TRAIN_SETTINGS, ("factor", "allow_large_factor"))
    p.add_argument("--psf", default=None, metavar="SPEC",
                   help=PSF_HELP + " (rl only)")
    p.add_argument("--iterations", type=int, default=10, help="Richardson-Lucy iterations (default 10)")
    p.add_argument("--time-budget", default="15m", metavar="T", help="srcnn training limit (default 15m)")
    p.add_argument("--model-dir", default=None, metavar="DIR", help="srcnn: keep the trained model here")
    p.add_argument("--patch", type=int, default=None, metavar="P", help="srcnn patch side (default as train)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_baseline)


def _rl(args, data, vol, factor, meta):
    from .. import baselines
    from .. import workflow as wf

    if not args.psf:
        msg = "--psf is required for rl (e.g. --psf gaussian:2,8)"
        raise ValueError(msg)
    spec, h, _ = wf.resolve_psf(args.psf, data, factor, vol.voxel_size, "split")
    meta.update(psf=spec, iterations=args.iterations)
    return baselines.richardson_lucy(data, h, factor, iterations=args.iterations, progress=True)


def _srcnn(args, data, factor, meta):
    from .. import baselines
    from .. import workflow as wf
    from ..nets import set_threads
    from ..training import parse_duration

    set_threads(args.threads)
    cfg = wf.training_config(data.shape, factor, patch_size=args.patch, mode="none")
    meta.update(time_budget=args.time_budget, model_dir=args.model_dir)
    return baselines.srcnn(data, factor, config=cfg, time_budget=parse_duration(args.time_budget),
                           model_dir=args.model_dir, progress=True, force=False)


def cmd_baseline(args) -> int:
    from .. import baselines
    from .. import volume_io as vio
    from .. import workflow as wf

    wf.quiet_tensorflow()
    out_path = vio.check_output_path(args.output, force=args.force, inputs=[args.input])
    wf.check_counts({"iterations": args.iterations, "patch": args.patch, "threads": args.threads},
                    {"iterations": ("iterations", 1), "patch": ("patch", 1), "threads": ("threads", 1)})
    vol = vio.read_volume(args.input)
    data = zyx_of(vol, None, None, args.input)
    factor, _ = wf.resolve_factor(args.factor, vol.voxel_size, what=str(args.input))
    wf.check_large_factor(factor, allow=args.allow_large_factor)
    meta = {"method": args.method, "factor": factor}
    if args.method == "bicubic":
        out = baselines.bicubic(data, factor)
    elif args.method == "rl":
        out = _rl(args, data, vol, factor, meta)
    else:
        out = _srcnn(args, data, factor, meta)
    vs, unit = wf.isotropic_voxel_size(vol.voxel_size, vol.unit)
    vio.write_volume(out_path, out, voxel_size=vs, unit=unit,
                     metadata=wf.provenance(command="baseline", input=str(Path(args.input).resolve()), **meta),
                     force=args.force, inputs=[args.input])
    print(json.dumps({"output": str(out_path), "shape": list(out.shape), **meta}, indent=2))
    return 0
