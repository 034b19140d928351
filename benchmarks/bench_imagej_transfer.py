"""Benchmark: numpy <-> ImagePlus transfer speed of the ImageJ bridge (MB/s both ways).

``isonet_ij.imagej.convert.array_to_imageplus`` (numpy -> a new ImagePlus: one Java array
built from each contiguous plane) and ``imageplus_to_volume`` (ImagePlus -> numpy: each
plane copied from the Java array's buffer into a preallocated array), on (Z, 512, 512)
stacks of uint8 / uint16 / float32 and a float32 hyperstack (T, Z, C). Every transfer is
checked to be exact. Reports the median of ``--repeats`` runs (first run of each case
discarded as warm-up) and, for scale, a plain numpy copy of the same bytes.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_imagej_transfer.py --repeats 7 --heap 4g
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS

from isonet_ij.imagej import start_jvm
from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume
from isonet_ij.volume_io import write_json


def _data(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _time(fn, repeats):
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), min(times[1:]), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=100, help="z slices of 512x512 (default 100)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--heap", default="4g", help="JVM -Xmx (default 4g)")
    p.add_argument("--out", default=str(RESULTS / "imagej_transfer"),
                   help="output stem (.md and .json)")
    args = p.parse_args(argv)

    version = start_jvm(headless=True, max_heap=args.heap)
    import jpype

    cases = [
        ("uint8", np.uint8, (args.slices, 512, 512), "ZYX"),
        ("uint16", np.uint16, (args.slices, 512, 512), "ZYX"),
        ("float32", np.float32, (args.slices, 512, 512), "ZYX"),
        ("float32 hyperstack", np.float32, (2, args.slices // 4, 2, 512, 512), "TZCYX"),
    ]
    rows = []
    for name, dtype, shape, axes in cases:
        data = _data(dtype, shape)
        mb = data.nbytes / 1e6
        to_ij, to_ij_best, imp = _time(lambda: array_to_imageplus(data, axes=axes, title="b"), args.repeats)
        to_np, to_np_best, vol = _time(lambda: imageplus_to_volume(imp), args.repeats)
        exact = bool(np.array_equal(vol.data, data)) and vol.axes == axes
        copy, _, _ = _time(lambda: data.copy(), args.repeats)
        rows.append({
            "case": name, "shape": list(shape), "MB": round(mb, 1), "exact": exact,
            "numpy_to_imageplus_MBps": round(mb / to_ij), "numpy_to_imageplus_best_MBps": round(mb / to_ij_best),
            "imageplus_to_numpy_MBps": round(mb / to_np), "imageplus_to_numpy_best_MBps": round(mb / to_np_best),
            "numpy_copy_MBps": round(mb / copy),
            "numpy_to_imageplus_s": round(to_ij, 4), "imageplus_to_numpy_s": round(to_np, 4),
        })
        print(rows[-1], flush=True)
        del imp, vol
        jpype.JClass("java.lang.System").gc()

    meta = {
        "date": datetime.date.today().isoformat(),
        "command": "benchmarks/bench_imagej_transfer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "imagej": version, "jpype": jpype.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "java": str(jpype.JClass("java.lang.System").getProperty("java.version")),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "heap": args.heap, "repeats": args.repeats,
    }
    write_json(args.out + ".json", {"meta": meta, "rows": rows}, force=True)
    lines = [
        f"# numpy <-> ImagePlus transfer (ImageJ bridge), {args.slices} x 512 x 512",
        "",
        f"Generated {meta['date']} by `{meta['command']}` (ImageJ {version}, JPype {meta['jpype']}, "
        f"Java {meta['java']}, -Xmx{args.heap}, {meta['machine']}; median of {args.repeats} runs after "
        "one warm-up; MB = 10^6 bytes of pixel data).",
        "",
        "numpy -> ImagePlus: `array_to_imageplus` (a new stack; one Java array built per plane from "
        "the contiguous numpy plane, 16-bit reinterpreted as Java short). ImagePlus -> numpy: "
        "`imageplus_to_volume` (each plane copied from the Java array's buffer into a preallocated "
        "array). Both exact (checked). Plain numpy copy of the same bytes for scale.",
        "",
        "| case | shape | MB | numpy -> ImagePlus MB/s (best) | ImagePlus -> numpy MB/s (best) | numpy copy MB/s | exact |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r['MB']} | "
            f"{r['numpy_to_imageplus_MBps']} ({r['numpy_to_imageplus_best_MBps']}) | "
            f"{r['imageplus_to_numpy_MBps']} ({r['imageplus_to_numpy_best_MBps']}) | "
            f"{r['numpy_copy_MBps']} | {r['exact']} |"
        )
    lines += [
        "",
        "numpy -> ImagePlus is bounded by the JVM allocating (and zeroing) fresh Java arrays; "
        "ImagePlus -> numpy by page faults of the fresh numpy array. The machine is shared "
        "(2 cores), so single runs vary by 2-3x; compare medians.",
        "",
    ]
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
