"""``isonet score``: PSNR / SSIM of a restoration against a reference."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "cmd_score"]

_DESCRIPTION = """\
PSNR (and SSIM) of a restored volume against a reference on the isotropic grid (e.g.
gt.tif or gt_iso.tif of `isonet synth`). The reference is cropped to the restoration's
z grid (its first floor((Z-1)*F)+1 slices: slice i*F of the reference is acquired slice i).

  psnr         10 log10(range(ref)^2 / MSE), range = max - min of the reference
  psnr_affine  PSNR after the least-squares affine intensity fit a*out + b of the output to
               the reference (CSBDeep's evaluation: units and offsets do not count)
  ssim_affine  structural similarity after the same affine fit (data range of the reference)

JSON on stdout (and in --json FILE).
"""


def register(subparsers) -> None:
    """Add ``score``."""
    p = subparsers.add_parser("score", help="PSNR / SSIM of a restoration against a reference",
                              description=_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("restored", metavar="OUT.tif")
    p.add_argument("--gt", required=True, metavar="GT.tif", help="reference on the isotropic grid")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM (faster)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the scores here")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    from .. import volume_io as vio
    from ..workflow import score_volumes

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
