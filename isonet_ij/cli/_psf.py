"""``isonet psf``: measure a PSF from beads, or estimate the axial blur of a volume."""

from __future__ import annotations

import argparse
import json

_DESCRIPTION = """\
PSF guidance:
  from-beads  average isolated sub-resolution beads of a bead stack into a measured PSF
              (sub-voxel registration); prints lateral/axial FWHM and 3D Gaussian sigmas
  estimate    estimate the axial Gaussian blur of an anisotropic volume from its own
              lateral vs axial power spectra; prints a --psf spec gaussian:SXY,SZ

Units: voxel sizes in um (z,y,x); sigmas in voxels of the isotropic grid.

Examples:
  isonet psf from-beads beads.tif --voxel-size 0.2,0.05,0.05 -o psf.tif --plot psf.png
  isonet psf estimate input.tif --factor 8 -o psf.tif --report report.json
"""


def _voxel_size(text):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected z,y,x in um, got {text!r}") from None
    if len(vals) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected z,y,x in um, got {text!r}")
    return tuple(vals * 3 if len(vals) == 1 else vals)


def register(subparsers) -> None:
    """Add ``psf from-beads`` and ``psf estimate``."""
    p = subparsers.add_parser("psf", help="measure a PSF from beads or estimate the axial blur",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="psf_command", metavar="SUBCOMMAND")
    sub.required = True
    b = sub.add_parser("from-beads", help="average isolated beads into a PSF")
    b.add_argument("beads", metavar="BEADS.tif")
    b.add_argument("--voxel-size", type=_voxel_size, default=None, metavar="Z,Y,X",
                   help="um (default: the file's calibration, else 1,1,1)")
    b.add_argument("-o", "--output", required=True, metavar="PSF.tif")
    b.add_argument("--plot", default=None, metavar="PNG", help="xy/xz views and fitted profiles")
    b.add_argument("--report", default=None, metavar="JSON")
    b.add_argument("--threshold", type=float, default=None, help="detection level above background")
    b.add_argument("--force", action="store_true", help="replace existing outputs")
    b.set_defaults(func=cmd_from_beads)
    e = sub.add_parser("estimate", help="estimate the axial Gaussian blur of a volume")
    e.add_argument("volume", metavar="VOLUME.tif")
    e.add_argument("--factor", type=float, default=None,
                   help="anisotropy factor dz/dx (default: from the calibration)")
    e.add_argument("--allow-large-factor", action="store_true",
                   help="accept an anisotropy factor above 16 (refused as a probable mistake)")
    e.add_argument("--sigma-xy", type=float, default=None, help="lateral sigma in voxels if known")
    e.add_argument("--model", default=None, metavar="MODEL",
                   help="also fit an optical model's free NA to the measured axial blur: confocal, "
                        "widefield or lightsheet, with known parameters in --psf syntax, e.g. "
                        "confocal:n=1.33,ex=488,em=520 or lightsheet:na_detect=0.8 (needs the xy voxel size)")
    e.add_argument("-o", "--output", default=None, metavar="PSF.tif",
                   help="write the PSF (the fitted model with --model, else the Gaussian)")
    e.add_argument("--report", default=None, metavar="JSON")
    e.add_argument("--plot", default=None, metavar="PNG", help="spectra plot")
    e.add_argument("--force", action="store_true", help="replace existing outputs")
    e.set_defaults(func=cmd_estimate)


def _read_stack(path, label: str, args):
    """The ZYX stack at ``path`` after checking every output of ``args`` (nothing written yet)."""
    from ..volume_io import check_output_path, read_volume

    for out in (args.output, args.report, args.plot):
        if out is not None:
            check_output_path(out, force=args.force, inputs=[path])
    vol = read_volume(path)
    if vol.axes != "ZYX":
        raise ValueError(f"{label} must be a single-channel z-stack (ZYX), got axes {vol.axes}")
    return vol


def cmd_from_beads(args) -> int:
    from ..volume_io import write_json, write_volume
    from ..psf import psf_from_beads

    vol = _read_stack(args.beads, "BEADS.tif", args)
    vs = args.voxel_size or vol.voxel_size or (1.0, 1.0, 1.0)
    psf, report = psf_from_beads(vol.data, voxel_size=vs, threshold=args.threshold, plot=args.plot)
    write_volume(args.output, psf, voxel_size=vs, force=args.force, inputs=[args.beads],
                 metadata={"source": "isonet psf from-beads", "beads": str(args.beads)})
    summary = {k: v for k, v in report.items() if k != "positions"}
    if args.report:
        write_json(args.report, report)
    print(json.dumps(summary))
    return 0


def cmd_estimate(args) -> int:
    from ..volume_io import write_json, write_volume
    from ..psf import gaussian_psf, parse_psf_spec
    from ..psf import estimate_axial_blur, estimate_summary, fit_optical_psf

    from ..workflow import check_large_factor, resolve_factor

    vol = _read_stack(args.volume, "VOLUME.tif", args)
    factor, _ = resolve_factor(args.factor, vol.voxel_size, what=str(args.volume))
    check_large_factor(factor, allow=args.allow_large_factor)
    rep = estimate_axial_blur(vol.data, factor=factor, sigma_xy=args.sigma_xy, plot=args.plot)
    summary = estimate_summary(rep)
    dx = vol.voxel_size[2] if vol.voxel_size else None
    spec, h = rep["psf_spec"], None
    if args.model:
        if dx is None:
            raise ValueError("--model needs VOLUME.tif's xy voxel size in um; set the calibration (Image > Properties in Fiji)")
        spec, summary["model_fit"] = fit_optical_psf(rep, args.model, xy_voxel_size=dx)
        summary["psf_spec_model"] = spec
        h = parse_psf_spec(spec, voxel_size=(dx, dx, dx))[0]
    if args.output:
        h = gaussian_psf(rep["sigma_xy"], rep["sigma_z"]) if h is None else h
        write_volume(args.output, h, voxel_size=(dx or 1.0,) * 3, force=args.force, inputs=[args.volume],
                     metadata={"source": "isonet psf estimate", "psf_spec": spec})
    if args.report:
        write_json(args.report, rep, force=True)
    print(json.dumps(summary))
    return 0
