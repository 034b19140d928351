"""``isonet segment`` and ``isonet score-seg``: the paper's nuclei pipeline and CTC SEG."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time

__all__ = ["register"]

log = logging.getLogger(__name__)

_SEGMENT_DESCRIPTION = """\
Segment bright nuclei in a 3D volume with the pipeline of the IsoNet paper (sec. 3.1):
  1. a global threshold: ImageJ's Intermodes (or Otsu) on the 256-bin stack histogram,
     identical to Image > Adjust > Threshold with "Intermodes", "Dark background" and
     "Stack histogram", then Convert to Mask (voxels >= the lower threshold are nuclei);
     or a fixed VALUE (voxels >= VALUE);
  2. fill holes in 3D, or per z slice (= Process > Binary > Fill Holes on a stack);
  3. a 3D watershed on the Euclidean distance transform (anisotropic voxel size from
     the file's calibration, or --voxel-size), seeded by the maxima of the distance map
     with a dynamic >= D (MorphoLibJ's "Distance Transform Watershed 3D" conventions),
     6- or 26-connected; objects smaller than --min-size voxels are dropped.

Writes a uint16 label volume (0 = background, nuclei 1..n) with the input's voxel size,
and prints a JSON summary (threshold, object count, timing) on stdout.
"""

_SCORE_DESCRIPTION = """\
Score a label volume against ground-truth labels with the Cell Tracking Challenge SEG
measure: a reference nucleus R matches a segmented object S iff |R n S| > 0.5 |R|;
J = |R n S| / |R u S| (0 if unmatched); SEG = mean J over all reference nuclei.
Also reports matched / missed / spurious counts, recall, precision and the mean IoU of
matched pairs. Both volumes must have the same shape. JSON on stdout (and in --json).
"""


def register(subparsers) -> None:
    """Add the ``segment`` and ``score-seg`` sub-commands."""
    p = subparsers.add_parser(
        "segment",
        help="segment nuclei: Intermodes threshold, fill holes, 3D distance watershed",
        description=_SEGMENT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("volume", metavar="VOLUME.tif", help="3D intensity volume (ZYX)")
    p.add_argument(
        "-o", "--output", required=True, metavar="LABELS.tif",
        help="output uint16 label volume (must not exist unless --force)",
    )
    p.add_argument(
        "--threshold", default="intermodes", metavar="intermodes|otsu|VALUE",
        help="automatic ImageJ method (dark background, stack histogram) or an intensity "
        "value: voxels >= VALUE are foreground (default intermodes)",
    )
    p.add_argument(
        "--fill-holes", default="3d", choices=("3d", "2d", "off"),
        help="fill holes in 3D, per z slice (as ImageJ), or not (default 3d)",
    )
    p.add_argument(
        "--dynamic", type=float, default=2.0, metavar="D",
        help="minimum dynamic of a watershed seed on the distance map, in units of the "
        "smallest voxel side (xy pixels); larger merges more (default 2, as MorphoLibJ)",
    )
    p.add_argument(
        "--connectivity", type=int, default=6, choices=(6, 26),
        help="3D neighbourhood (default 6)",
    )
    p.add_argument(
        "--min-size", type=int, default=0, metavar="N",
        help="drop objects with fewer than N voxels (default 0: keep all)",
    )
    p.add_argument(
        "--voxel-size", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
        help="voxel size in um, overriding the file's calibration",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=run_segment)

    s = subparsers.add_parser(
        "score-seg",
        help="CTC SEG of a label volume against ground-truth labels (JSON)",
        description=_SCORE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("labels", metavar="LABELS.tif", help="segmentation (integer labels, 0 = bg)")
    s.add_argument("--gt", required=True, metavar="GT_LABELS.tif", help="reference labels")
    s.add_argument("--json", default=None, metavar="OUT.json", help="also write the JSON here")
    s.set_defaults(func=run_score)


def _threshold_arg(text: str):
    key = str(text).strip().lower()
    if key in ("intermodes", "otsu"):
        return key
    try:
        value = float(key)
    except ValueError:
        msg = f"--threshold must be intermodes, otsu or a number, got {text!r}"
        raise ValueError(msg) from None
    if not math.isfinite(value):
        msg = f"--threshold must be finite, got {text!r}"
        raise ValueError(msg)
    return value


def _zyx(vol, what: str):
    """The single ZYX volume of a file; reject channels / time points."""
    if vol.axes != "ZYX":
        msg = (
            f"{what} has axes {vol.axes}; give a single-channel, single-timepoint ZYX "
            "volume (split channels / frames first)"
        )
        raise ValueError(msg)
    return vol.data


def run_segment(args) -> int:
    import warnings

    from .. import volume_io as vio
    from ..segment import segment_nuclei_with_details

    threshold = _threshold_arg(args.threshold)
    vio.check_output_path(args.output, force=args.force, inputs=[args.volume])
    vol = vio.read_volume(args.volume)
    data = _zyx(vol, args.volume)
    if args.voxel_size is not None:
        voxel_size = vio.normalize_voxel_size(args.voxel_size, name="--voxel-size")
        unit = "um"
    elif vol.voxel_size is not None:
        voxel_size, unit = vol.voxel_size, vol.unit
    else:
        log.warning(
            "%s has no voxel size; assuming isotropic voxels (pass --voxel-size DZ DY DX)",
            args.volume,
        )
        voxel_size, unit = (1.0, 1.0, 1.0), "pixel"
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = segment_nuclei_with_details(
            data,
            voxel_size=voxel_size,
            threshold=threshold,
            fill_holes_mode=args.fill_holes,
            dynamic=args.dynamic,
            connectivity=args.connectivity,
            min_size=args.min_size,
        )
    labels, details = result.labels, result.details
    for w in caught:
        log.warning("%s", w.message)
    details["seconds"] = round(time.perf_counter() - t0, 3)
    details["input"] = str(args.volume)
    details["output"] = str(args.output)
    vio.write_volume(
        args.output,
        labels,
        voxel_size=voxel_size,
        unit=unit,
        force=args.force,
        inputs=[args.volume],
        metadata={"role": "labels", "segmentation": details},
    )
    json.dump(details, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    log.info("%d objects -> %s", details["n_objects"], args.output)
    return 0


def run_score(args) -> int:
    from .. import volume_io as vio
    from ..metrics import seg_score

    pred = _zyx(vio.read_volume(args.labels), args.labels)
    gt = _zyx(vio.read_volume(args.gt), args.gt)
    if pred.shape != gt.shape:
        msg = (
            f"{args.labels} has shape {pred.shape} but {args.gt} has shape {gt.shape}; "
            "score a segmentation made on the ground truth's grid (crop or resample first)"
        )
        raise ValueError(msg)
    score = seg_score(pred, gt).as_dict()
    out = {"labels": str(args.labels), "gt": str(args.gt), **score}
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
    if args.json:
        vio.write_json(args.json, out)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
