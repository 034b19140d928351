"""Chunked restoration under a memory limit: peak summed RSS, wall time, voxels/s.

Restores a synthetic OME-Zarr volume whose float32 output is at least 4x ``--max-memory``
with the project's own command (``isonet restore IN.zarr -o OUT.zarr --max-memory M``),
once on local threads and once on a ``dask.distributed`` LocalCluster, and samples every
0.1 s the summed RSS of the command and all its descendants (worker processes included).
The network is a real IsoNet model trained briefly on a phantom by ``isonet train`` and
exported by ``isonet export --format onnx --plane`` (or any ``--model`` with a plane network); workers use onnxruntime
so that none imports TensorFlow. The restored output is checked against the in-memory
restoration of a sub-volume (max abs difference).

    python benchmarks/bench_chunked.py                       # 4x: 400M limit, 1.6 GB output
    python benchmarks/bench_chunked.py --shape 16 512 512 --max-memory 300M --no-check-ratio   # quick

Writes benchmarks/results/chunked.md and chunked.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from common import RESULTS
from isonet_ij import grid, io_zarr
from isonet_ij.tiling import parse_memory

ISONET = [sys.executable, "-m", "isonet_ij"]


def _role(proc, root_pid):
    """A short name for a process of the run: the command, a dask worker, or its cmdline head."""
    if proc.pid == root_pid:
        return "command"
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    if "multiprocessing.spawn" in cmd or "spawn_main" in cmd:
        return "worker"
    if "resource_tracker" in cmd:
        return "resource tracker"
    return cmd[:40]


def run_measured(cmd, log_path):
    """Run ``cmd``; return (wall s, peak summed RSS of it and its descendants, rc, per-process peaks,
    timeline).

    Per-process peaks are keyed ``role:pid`` (the command, each dask worker process, ...), so
    that a run over its limit says which process grew; the timeline holds, once a second,
    ``[t s, {role:pid: MiB}]``.
    """
    peak, per_proc, timeline = [0], {}, []
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def poll():
            roles = {}
            while not stop.is_set():
                try:
                    root = psutil.Process(proc.pid)
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    break
                total, sample = 0, {}
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    key = roles.get(p.pid) or roles.setdefault(p.pid, f"{_role(p, proc.pid)}:{p.pid}")
                    per_proc[key] = max(per_proc.get(key, 0), rss)
                    sample[key] = rss >> 20
                peak[0] = max(peak[0], total)
                now = time.perf_counter() - t0
                if not timeline or now - timeline[-1][0] >= 1.0:
                    timeline.append([round(now, 1), sample])
                time.sleep(0.1)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        rc = proc.wait()
        stop.set()
        th.join()
    return time.perf_counter() - t0, peak[0], rc, per_proc, timeline


def _memory_plan(log_text):
    """The run's logged memory plan line (what it held at the start, the share per worker)."""
    lines = [ln for ln in log_text.splitlines() if "memory:" in ln and "per worker" in ln]
    return lines[-1].split("memory:", 1)[1].strip() if lines else ""


def make_input(path, shape, factor, seed=0):
    """Blobs plus noise, uint16, written slab by slab (never whole in memory)."""
    Z, Y, X = shape
    _, arr = io_zarr.create_ome_zarr(path, shape, chunks=(Z, 256, 256), dtype="uint16",
                                     voxel_size=(factor * 0.1, 0.1, 0.1))
    rng = np.random.default_rng(seed)
    for y0 in range(0, Y, 256):
        yy, xx = np.mgrid[y0 : min(Y, y0 + 256), :X]
        slab = 1000 + 500 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
        arr[:, y0 : y0 + 256, :] = (slab[None] + rng.normal(0, 50, (Z,) + slab.shape)).clip(0).astype(np.uint16)


def train_model(tmp: Path, factor: float) -> Path:
    """A real IsoNet-1 (fast per voxel), trained for 60 s on a nuclei phantom, as ONNX."""
    syn, mdir, onnx = tmp / "syn", tmp / "model", tmp / "model.onnx"
    psf = "gaussian:2,6"
    subprocess.run([*ISONET, "synth", "nuclei", "--size", "96", "--factor", f"{factor:g}", "--psf", psf,
                    "-o", str(syn)], check=True, capture_output=True)
    subprocess.run([*ISONET, "train", str(syn / "input.tif"), "--arch", "isonet1", "--mode", "split",
                    "--psf", psf, "--factor", f"{factor:g}", "--time-budget", "60s", "-o", str(mdir)],
                   check=True, capture_output=True)
    subprocess.run([*ISONET, "export", str(mdir), "--format", "onnx", "--plane", "-o", str(onnx)],
                   check=True, capture_output=True)
    return onnx


def check_against_in_memory(src, out, model, factor, size=96):
    """Max abs difference between the chunked output and the in-memory restoration of a corner.

    The corner's in-memory restoration sees a reflected border where the chunked run saw
    real data, so only the part more than a halo away from the corner's inner edges counts.
    """
    from isonet_ij import load_model, restore
    from isonet_ij.sources import percentiles_and_range
    from isonet_ij.tiling import halo_of

    vol = io_zarr.open_zarr_volume(src)
    tm = load_model(str(model), backend="onnx")
    (lo, hi), _ = percentiles_and_range(vol, vol.shape, low=tm.config.normalization["p_low"],
                                         high=tm.config.normalization["p_high"])
    corner = vol[:, :size, :size]
    ref = restore(corner, tm, factor=factor, normalization=(lo, hi), precision="fp32")
    got = np.asarray(io_zarr.open_zarr_volume(out)[:, :size, :size])
    keep = size - halo_of(tm.config.arch)
    return float(np.max(np.abs(ref[:, :keep, :keep] - got[:, :keep, :keep])) / (hi - lo))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 1600, 1024), metavar=("Z", "Y", "X"))
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--max-memory", default="400M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default=None, help="ONNX model or package (default: train an IsoNet-1)")
    ap.add_argument("--schedulers", nargs="+", default=["threads", "processes"])
    ap.add_argument("--no-check-ratio", action="store_true", help="allow an output < 4x the limit")
    ap.add_argument("--append", action="store_true",
                    help="keep the rows of other schedulers from an earlier run with the same --shape/--max-memory")
    ap.add_argument("--out", default=str(RESULTS / "chunked.md"))
    ap.add_argument("--render", nargs="+", metavar="JSON", default=None,
                    help="run nothing: write --out from the rows of these results files (a later file's "
                         "row replaces an earlier one of the same scheduler)")
    ap.add_argument("--findings", default="", help="text for the report's findings section")
    args = ap.parse_args(argv)
    if args.render:
        rows = {}
        for path in args.render:
            old = json.loads(Path(path).read_text())
            for r in old["rows"]:
                for k in ("shape", "max_memory", "output_bytes"):
                    if k in old:
                        r.setdefault(k, old[k])
                rows[r["scheduler"]] = r
        return write_report(args, list(rows.values()))
    Z, Y, X = args.shape
    n_out = grid.n_output_slices(Z, args.factor)
    out_bytes = n_out * Y * X * 4
    budget = parse_memory(args.max_memory)
    if out_bytes < 4 * budget and not args.no_check_ratio:
        ap.error(f"output {out_bytes / 2**20:.0f} MiB is < 4x --max-memory; enlarge --shape")
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISONET_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else train_model(tmp, args.factor)
        src = tmp / "in.zarr"
        make_input(src, (Z, Y, X), args.factor)
        for sched in args.schedulers:
            out = tmp / f"out_{sched}.zarr"
            cmd = [*ISONET, "restore", str(src), "--model", str(model), "--backend", "onnx", "-o", str(out),
                   "--max-memory", args.max_memory, "--scheduler", sched, "--workers", str(args.workers),
                   "--precision", "fp32"]  # the fp32 engine under a memory cap (int8: int8.md)
            wall, peak, rc, per_proc, timeline = run_measured(cmd, tmp / f"{sched}.log")
            log = (tmp / f"{sched}.log").read_text()
            if rc != 0:
                print(log[-3000:])
                raise SystemExit(f"{sched}: isonet restore failed (rc {rc})")
            diff = check_against_in_memory(src, out, model, args.factor)
            chunks = list(io_zarr.open_zarr_volume(out).array.chunks)
            rows.append({"scheduler": sched, "wall_s": wall, "peak_rss": peak, "voxels_per_s": n_out * Y * X / wall,
                         "under_limit": peak <= budget, "max_abs_diff_normalized": diff, "shape": [Z, Y, X],
                         "max_memory": budget, "output_bytes": out_bytes, "zarr_chunks": chunks,
                         "peak_rss_per_process": per_proc, "memory_plan": _memory_plan(log),
                         "timeline_mib": timeline})
            print({k: v for k, v in rows[-1].items() if k != "timeline_mib"}, flush=True)
    old_json = Path(args.out).with_suffix(".json")
    if args.append and old_json.is_file():
        old = json.loads(old_json.read_text())
        for r in old["rows"]:  # rows carry their own shape and limit (older files: at the top)
            for k in ("shape", "max_memory", "output_bytes"):
                if k in old:
                    r.setdefault(k, old[k])
        rows = [r for r in old["rows"] if r["scheduler"] not in args.schedulers] + rows
    write_report(args, rows)


def write_report(args, rows):
    """``--out`` (Markdown) and its .json from the measured ``rows``."""
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Chunked restoration under a memory limit (`benchmarks/bench_chunked.py`)", "",
        f"{time.strftime('%Y-%m-%d')}, {psutil.cpu_count()} CPUs ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}.", "",
        f"Input: a uint16 OME-Zarr of blobs plus noise, factor {args.factor:g}, float32 output. "
        f"Model: IsoNet-1 trained 60 s on a nuclei phantom, exported to ONNX, onnxruntime in every worker "
        f"(`--backend onnx`, no TensorFlow import). Command: `isonet restore in.zarr --model model.onnx "
        f"--backend onnx -o out.zarr --max-memory M --scheduler S --workers {args.workers}`. "
        "Peak RSS: the summed RSS of the command and every process it starts (dask worker processes "
        "included), sampled every 0.1 s.", "",
        "| scheduler | input (z, y, x) | output MiB | `--max-memory` | output / limit | column (y, x) | wall s | "
        "output voxels/s | peak summed RSS MiB | under the limit | peak RSS per process MiB | "
        "max abs diff vs in-memory (normalized) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        col = "x".join(str(c) for c in r.get("zarr_chunks", [])[1:]) or "128x128"
        lines.append(f"| {r['scheduler']} | {'x'.join(map(str, r['shape']))} | {r['output_bytes'] / 2**20:.0f} | "
                     f"{r['max_memory'] / 2**20:.0f} MiB | {r['output_bytes'] / r['max_memory']:.2f}x | {col} | "
                     f"{r['wall_s']:.0f} | {r['voxels_per_s'] / 1e6:.2f} M | "
                     f"{r['peak_rss'] / 2**20:.0f} | {'yes' if r['under_limit'] else 'NO'} | "
                     f"{_per_process(r)} | {r['max_abs_diff_normalized']:.1e} |")
    lines += ["", "`threads`: one process, dask's threaded scheduler with N threads sharing one onnxruntime session. "
              "`processes`: a dask.distributed LocalCluster of N single-threaded worker processes started by the "
              "command (scheduler and nannies in the command's process), each loading the model once. "
              "The run measures what its processes hold with the model loaded and splits the rest of the "
              "budget between the workers (block + inference tiles), which sets the column size. "
              "Per-process peaks are each process's own maximum (not simultaneous); the memory plan "
              "is the run's log line.", ""]
    lines += [f"- {r['scheduler']} plan: {r['memory_plan']}" for r in rows if r.get("memory_plan")]
    if args.findings:
        lines += ["", "Findings:", "", args.findings]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps({"factor": args.factor, "rows": rows}, indent=1))
    print("\n".join(lines))


def _per_process(row) -> str:
    """``command 126, worker 195, worker 187, ...`` from a row's per-process peaks (if measured)."""
    peaks = row.get("peak_rss_per_process") or {}
    return ", ".join(f"{k.split(':')[0]} {v / 2**20:.0f}" for k, v in peaks.items()) or "not measured"


if __name__ == "__main__":
    main()
