#!/usr/bin/env python3
"""Restore an anisotropic stack with an IsoNet volume model, without isonet-ij.

Needs only onnxruntime, numpy and tifffile::

    python restore_onnx.py MODEL.onnx INPUT.tif OUTPUT.tif [--z-spacing UM --xy-spacing UM]

The model (``isonet export MODEL_DIR --format onnx -o MODEL.onnx``) holds the whole
pipeline: z interpolation, the training normalization, both axial passes, fusion. Its
input is the raw (Z, Y, X) stack as float32 (1, 1, Z, Y, X); its output the isotropic stack
(1, 1, floor((Z-1)*f)+1, Y, X) with acquired slice i at output slice i*f. The output TIFF
gets isotropic calibration (the xy pixel size on z too). Nothing is written on bad input.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tifffile


def model_info(session) -> dict:
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("isonet.graph") != "volume":
        raise ValueError("not an IsoNet volume model (export it with `isonet export --format onnx`, without --plane)")
    return {"factor": float(meta["isonet.factor"]), "min_z": int(meta["isonet.min_z"]),
            "min_yx": int(meta["isonet.min_yx"])}


def check_input(vol: np.ndarray, info: dict) -> None:
    """ValueError with what is wrong: not 3D, too few z slices, too small, NaN / inf."""
    if vol.ndim != 3:
        raise ValueError(f"the input must be a 3D stack (z, y, x), got shape {vol.shape}")
    z, y, x = vol.shape
    if z < info["min_z"]:
        raise ValueError(f"the input has {z} z slices; this model (factor {info['factor']:g}) needs at least {info['min_z']}")
    if min(y, x) < info["min_yx"]:
        raise ValueError(f"the input is {y}x{x} in y, x; this model needs at least {info['min_yx']}x{info['min_yx']}")
    if not np.isfinite(vol).all():
        raise ValueError("the input holds NaN or infinite values")


def restore(session, vol: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(vol, dtype=np.float32)[None, None]
    return session.run(["output"], {"input": x})[0][0, 0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--xy-spacing", type=float, default=None, help="xy pixel size (default: from the TIFF, else 1)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if Path(args.output).exists():
        print(f"error: {args.output} exists", file=sys.stderr)
        return 2
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
        info = model_info(session)
        vol = np.squeeze(tifffile.imread(args.input))
        check_input(vol, info)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    xy = args.xy_spacing
    if xy is None:
        with tifffile.TiffFile(args.input) as tif:
            res = tif.pages[0].tags.get("XResolution")
            xy = res.value[1] / res.value[0] if res is not None and res.value[0] else 1.0
    out = restore(session, vol)
    tmp = Path(args.output).with_name(Path(args.output).name + ".part")
    tifffile.imwrite(tmp, out, imagej=True, resolution=(1 / xy, 1 / xy), metadata={"spacing": xy, "axes": "ZYX"})
    tmp.replace(args.output)
    print(json.dumps({"output": args.output, "shape": list(out.shape), "factor": info["factor"], "spacing": xy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
