"""Chunked restoration: peak memory, wall time and voxels/s, threads vs LocalCluster.

Restores a synthetic OME-Zarr volume whose float32 output is >= 4x ``--max-memory`` and
samples the summed RSS of this process and all its children (dask workers) every 0.2 s.
Writes a markdown table to benchmarks/results/chunked.md.

    python benchmarks/bench_chunked.py --shape 64 1024 1024 --factor 4 --max-memory 256M
    python benchmarks/bench_chunked.py --shape 16 512 512 --factor 4 --max-memory 100M   # small
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from isonet_ij import chunked, grid, io_zarr
from isonet_ij.backends import find_demo_package


def tree_rss() -> int:
    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(fn):
    peak, stop = [tree_rss()], threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.2)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        res = fn()
    finally:
        stop.set()
        th.join()
    return res, time.perf_counter() - t0, peak[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", type=int, nargs=3, default=(16, 512, 512))
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--max-memory", default="100M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/chunked.md")
    args = ap.parse_args(argv)
    Z, Y, X = args.shape
    n_out = grid.n_output_slices(Z, args.factor)
    out_bytes = n_out * Y * X * 4
    budget = chunked_budget = __import__("isonet_ij.restore").restore.parse_memory(args.max_memory)
    model = str(find_demo_package())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.zarr"
        _, arr = io_zarr.create_ome_zarr(src, (Z, Y, X), chunks=(Z, 256, 256), dtype="uint16",
                                         voxel_size=(args.factor * 0.1, 0.1, 0.1))
        rng = np.random.default_rng(0)
        for y0 in range(0, Y, 256):
            yy, xx = np.mgrid[y0 : min(Y, y0 + 256), :X]
            slab = 1000 + 500 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
            arr[:, y0 : y0 + 256, :] = (slab[None] + rng.normal(0, 50, (Z,) + slab.shape)).astype(np.uint16)
        base = tree_rss()
        for sched in ("threads", "processes"):
            out = Path(tmp) / f"out_{sched}.zarr"
            info, wall, peak = measure(lambda: chunked.restore_chunked(
                src, model, out=out, scheduler=sched, workers=args.workers, max_memory=budget, backend="onnx"))
            rows.append((sched, wall, peak, peak - base, n_out * Y * X / wall, info["chunks"], info["n_chunks"]))
    lines = [
        "# Chunked restoration (`benchmarks/bench_chunked.py`)", "",
        f"input {Z}x{Y}x{X} uint16 OME-Zarr, factor {args.factor:g}, output {n_out}x{Y}x{X} float32 = "
        f"{out_bytes / 2**20:.0f} MiB ({out_bytes / chunked_budget:.1f}x --max-memory {args.max_memory} per worker), "
        f"demo model (IsoNet-2, onnx), {args.workers} workers, {psutil.cpu_count()} CPUs", "",
        "| scheduler | wall s | peak RSS tree MiB | above start MiB | voxels/s | chunk (y, x) | chunks |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, w, p, d, v, c, n in rows:
        lines.append(f"| {s} | {w:.1f} | {p / 2**20:.0f} | {d / 2**20:.0f} | {v:.3g} | {c} | {n} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
