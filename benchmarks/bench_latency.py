"""Latencies the tests check only functionally: how fast a call returns or fails.

A test that asserts "within N seconds" fails a correct build on a busy machine, so the
tests check what happens (the error, the order of events) and this script measures how
long it takes:

* ``scheduler``: seconds until ``chunked.restore_chunked`` raises ``SchedulerError`` for
  an unreachable dask scheduler (``tcp://127.0.0.1:9``, ``timeout=--timeout``) with the
  demo model (``tests/test_chunked.py`` checks the error; it used to assert < 20 s);
* ``gui``: seconds for the IsoNet Restore menu item to return while its dialog is open
  (the command runs off ImageJ's event thread), measured by the GUI child of
  ``tests/test_imagej_gui.py`` under ``xvfb-run`` with ``--model`` (a model directory
  trained at factor 3, e.g. ``isonet train STACK.tif --factor 3 -o MODEL``; the test
  checks that the call returns before the dialog is closed; it used to assert < 2 s).
  Needs Java, ImageJ's jar, xvfb-run and ``--model``; skipped without them.

Nothing is trained. Results: ``--out`` (Markdown) and the same name with ``.json``.

    .venv/bin/python benchmarks/bench_latency.py                  # scheduler: ~10 s on 2 cores
    .venv/bin/python benchmarks/bench_latency.py --model MODEL_DIR   # and the GUI, ~1 min per run
    .venv/bin/python benchmarks/bench_latency.py --parts scheduler --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS, machine_line, write_report

PARTS = ("scheduler", "gui")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS))
    p.add_argument("--repeats", type=int, default=3, help="runs of each part (default 3)")
    p.add_argument("--timeout", type=float, default=1.0, help="scheduler connection timeout, s (default 1)")
    p.add_argument("--model", default=None, help="model directory for the gui part (skipped without)")
    p.add_argument("--out", default=str(RESULTS / "latency.md"))
    return p.parse_args(argv)


def scheduler_failure_seconds(timeout: float) -> float:
    """Seconds until ``restore_chunked`` gives up on an unreachable scheduler."""
    import numpy as np

    from isonet_ij import chunked
    from isonet_ij import load_model
    from isonet_ij.artifacts import find_demo_package

    model = load_model(find_demo_package(), backend="onnx")
    vol = np.random.default_rng(0).normal(100, 5, (8, 48, 44)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
            chunked.restore_chunked(vol, model, factor=4, out=Path(tmp) / "o.zarr",
                                    scheduler="tcp://127.0.0.1:9", timeout=timeout)
        except chunked.SchedulerError:
            return time.perf_counter() - t0
    raise RuntimeError("restore_chunked reached a scheduler at tcp://127.0.0.1:9")


def gui_menu_seconds(model) -> float | None:
    """The IsoNet Restore menu call's return time in the GUI child of test_imagej_gui.py (None: skipped)."""
    xvfb = shutil.which("xvfb-run")
    if model is None or xvfb is None or shutil.which("java") is None:
        return None
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    import numpy as np
    from scipy.ndimage import gaussian_filter

    with tempfile.TemporaryDirectory() as tmp:
        # the child's input: (8, 48, 48) uint16, opened with voxel (0.6, 0.2, 0.2) um (factor 3)
        blobs = gaussian_filter(np.random.default_rng(0).random((24, 48, 48)), 2)[::3]
        np.save(Path(tmp) / "stack.npy", (100 + 1000 * (blobs - blobs.min()) / np.ptp(blobs)).astype(np.uint16))
        proc = subprocess.run([xvfb, "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
                               str(REPO / "tests" / "test_imagej_gui.py"), tmp, str(Path(model).resolve())],
                              cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"GUI child failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
        got = json.loads((Path(tmp) / "gui.json").read_text())
    if not got["event_thread_free"]:
        raise RuntimeError("the menu call did not return while its dialog was open")
    return float(got["menu_call_s"])


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parts = [p for p in args.parts.split(",") if p]
    for p in parts:
        if p not in PARTS:
            raise SystemExit(f"unknown part {p!r}; choose from {', '.join(PARTS)}")
    measure = {"scheduler": lambda: scheduler_failure_seconds(args.timeout), "gui": lambda: gui_menu_seconds(args.model)}
    what = {"scheduler": f"`restore_chunked` to raise `SchedulerError`, unreachable scheduler, timeout {args.timeout:g} s",
            "gui": "IsoNet Restore menu item to return, dialog still open (GUI under xvfb)"}
    was = {"scheduler": "< 20 s (tests/test_chunked.py)", "gui": "< 2 s (tests/test_imagej_gui.py)"}
    results = {}
    for p in parts:
        runs = []
        for _ in range(max(1, args.repeats)):
            s = measure[p]()
            if s is None:
                break
            runs.append(round(s, 3))
            print(f"{p}: {s:.3f} s", flush=True)
        results[p] = runs
    lines = ["# Latencies the tests no longer time (`benchmarks/bench_latency.py`)", "",
             f"Machine / date: {machine_line()}. Seconds per run, {args.repeats} runs each; nothing trained.", "",
             "| what | median s | max s | runs | former test bound |", "|---|---|---|---|---|"]
    for p, runs in results.items():
        if runs:
            lines.append(f"| {what[p]} | {statistics.median(runs):.2f} | {max(runs):.2f} | "
                         f"{', '.join(f'{r:.2f}' for r in runs)} | {was[p]} |")
        else:
            lines.append(f"| {what[p]} | | | not run (needs `--model`, Java, ij.jar and xvfb-run) | {was[p]} |")
    lines += ["", "The tests check the behaviour only (the error; the call returning before the dialog closes), "
              "so a busy machine cannot fail a correct build; rerun this script to see the times "
              "(`.venv/bin/python benchmarks/bench_latency.py [--model MODEL_DIR]`; the scheduler part takes "
              "seconds, the GUI about a minute per run).", "",
              f"command: `{' '.join(['benchmarks/bench_latency.py', *(argv if argv is not None else sys.argv[1:])])}`", ""]
    write_report(args.out, lines, {"args": vars(args), "seconds": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
