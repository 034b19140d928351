"""Restoration throughput per inference backend (TensorFlow vs onnxruntime), same volume.

For IsoNet-1 and IsoNet-2 (random weights; speed does not depend on them) restores one
synthetic volume with :func:`isonet_ij.restoration.restore` through each backend of
:mod:`isonet_ij.backends` (both planes, interpolation, fusion included), after a warm-up
call, and reports output voxels per second (median of ``--repeat``), the one-off load
cost (ONNX: tf2onnx conversion in memory + session creation) and the max abs difference
between the two restorations (normalized units).

Writes ``benchmarks/results/backends.md`` and ``backends.json``.

    .venv/bin/python benchmarks/bench_backends.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from common import RESULTS
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="32,128,128", help="input volume Z,Y,X (default 32,128,128)")
    p.add_argument("--factor", type=float, default=4.0, help="anisotropy factor (default 4)")
    p.add_argument("--batch", type=int, default=8, help="tiles per network call (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per backend (default 3)")
    p.add_argument("--archs", default="isonet1,isonet2")
    p.add_argument("--out", default=str(RESULTS / "backends"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from isonet_ij import nets
    from isonet_ij import Config, load_model, restore, restore_with_info
    from isonet_ij.model import model_from_keras

    shape = tuple(int(s) for s in args.shape.split(","))
    rng = np.random.default_rng(0)
    vol = gaussian_filter(rng.random(shape), (0.5, 2, 2)).astype(np.float32)
    rows = []
    load_before = os.getloadavg()
    for arch in args.archs.split(","):
        cfg = Config(factor=args.factor, arch=arch, mode="none", dropout=0.0, seed=0)
        tm = model_from_keras(nets.build_model(arch, dropout=0.0, seed=0), cfg)
        outs = {}
        for backend in ("tensorflow", "onnx"):
            t0 = time.perf_counter()
            btm = load_model(tm, backend=backend)
            t_load = time.perf_counter() - t0
            restore(vol, btm, batch_size=args.batch, precision="fp32")  # warm-up: trace
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out, info = (r := restore_with_info(vol, btm, batch_size=args.batch, precision="fp32")).volume, r.info
                times.append(time.perf_counter() - t0)
            outs[backend] = (out, info)
            med = statistics.median(times)
            rows.append({"arch": arch, "backend": backend, "output_shape": list(out.shape),
                         "seconds_median": med, "seconds_all": times, "load_seconds": t_load,
                         "voxels_per_second": out.size / med, "tile": info["plan"]["tile"]})
            print(json.dumps(rows[-1]))
        (a, ia), (b, _) = outs["tensorflow"], outs["onnx"]
        span = ia["normalization"]["high"] - ia["normalization"]["low"]
        diff = float(np.max(np.abs(a - b)) / span)
        for r in rows[-2:]:
            r["max_abs_diff_normalized"] = diff
    import onnxruntime
    import tensorflow as tf

    env = {"python": platform.python_version(), "tensorflow": tf.__version__,
           "onnxruntime": onnxruntime.__version__, "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "shape": list(shape), "factor": args.factor,
           "batch": args.batch, "repeat": args.repeat,
           "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Restoration throughput per inference backend",
        "",
        f"Input {','.join(map(str, shape))} (Z,Y,X), factor {args.factor:g}, batch {args.batch} tiles, both "
        f"planes + fusion; median of {args.repeat} after a warm-up call. {os.cpu_count()} CPU cores (shared "
        f"machine, 1-min load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after), TensorFlow "
        f"{tf.__version__}, onnxruntime {onnxruntime.__version__}. Regenerate: "
        "`.venv/bin/python benchmarks/bench_backends.py`.",
        "",
        "| network | backend | output voxels | tile | s (median) | output voxels/s | speed-up | load s | max abs diff (normalized) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(x for x in rows if x["arch"] == r["arch"] and x["backend"] == "tensorflow")
        lines.append(
            f"| {r['arch']} | {r['backend']} | {'x'.join(map(str, r['output_shape']))} | "
            f"{r['tile'][0]}x{r['tile'][1]} | {r['seconds_median']:.2f} | {r['voxels_per_second'] / 1e6:.3f} M | "
            f"{base['seconds_median'] / r['seconds_median']:.2f}x | {r['load_seconds']:.2f} | "
            f"{r['max_abs_diff_normalized']:.1e} |"
        )
    lines += ["", "Load: TensorFlow wraps the in-memory Keras model; ONNX converts it with tf2onnx in memory and "
              "opens an onnxruntime session (a `.onnx` file or package skips the conversion).", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
