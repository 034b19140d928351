"""Before/after speed of the structural refactor (issue 25): restoration and training.

Runs the same work on two checkouts of isonet-ij, interleaved (A, B, A, B, ...) on the same
CPU so that machine load hits both alike, each run in a fresh subprocess whose
``PYTHONPATH`` is that checkout:

* in-memory restoration of a 16 x 128 x 128 nuclei phantom (factor 8) with the committed
  demo model, TensorFlow and onnxruntime backends: output voxels / s;
* chunked restoration of the same volume (dask threads, 64 x 64 columns, onnxruntime);
* training: IsoNet-2 (mode none), 3 epochs x 30 steps of 16 patches of 64^2: steps / s
  (whole ``train()`` call, pair sampling and validation included).

Writes ``benchmarks/results/refactor_speed.md`` and ``.json`` (medians over ``--repeat``)::

    git worktree add /tmp/before 652cfc7
    .venv/bin/python benchmarks/bench_refactor_speed.py --before /tmp/before --after .
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Work done in each subprocess; prints one JSON line. Works with the API before and after.
WORKER = r'''
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
import isonet_ij
from isonet_ij.phantoms import synthesize
from isonet_ij.chunked import restore_chunked
from isonet_ij.config import Config
# only modules of this checkout: a missing one would be found in the editable install's
if (Path(isonet_ij.__file__).parent / "model.py").is_file():
    from isonet_ij import load_model, restore, train
else:  # before the refactor
    import importlib
    load_model = importlib.import_module("isonet_ij.backends").trained_model
    restore = importlib.import_module("isonet_ij." + "restore").restore
    train = importlib.import_module("isonet_ij." + "train").train

pkg = sys.argv[1]
vol = synthesize("nuclei", size=128, psf="gaussian:2,8", factor=8, seed=0)["input"]
out = {}
for backend in ("tensorflow", "onnx"):
    model = load_model(pkg, backend=backend)
    restore(vol, model)  # warm-up: compile once
    t = time.perf_counter(); res = restore(vol, model); dt = time.perf_counter() - t
    out[f"restore_{backend}"] = res.size / dt
with tempfile.TemporaryDirectory() as tmp:
    model = load_model(pkg, backend="onnx")
    restore_chunked(vol, model, factor=8, out=f"{tmp}/warm.zarr", chunks=(64, 64))
    t = time.perf_counter()
    info = restore_chunked(vol, model, factor=8, out=f"{tmp}/o.zarr", chunks=(64, 64))
    out["chunked_onnx"] = np.prod(info["shape_out"]) / (time.perf_counter() - t)
cfg = Config(factor=8, arch="isonet2", mode="none", epochs=3, steps_per_epoch=30, patch_size=64,
             batch_size=16, seed=0)
t = time.perf_counter(); train(vol, cfg); out["train_steps"] = 90 / (time.perf_counter() - t)
out["isonet_ij"] = isonet_ij.__file__
print("RESULT " + json.dumps(out))
'''


def run_once(checkout: Path, package: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", WORKER, str(package)], env=env, cwd=str(checkout),
                          capture_output=True, text=True, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        msg = f"run in {checkout} failed:\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return json.loads(line[len("RESULT "):])


def render(results: dict, args) -> str:
    names = {"restore_tensorflow": "restore, TensorFlow (output voxels/s)",
             "restore_onnx": "restore, onnxruntime (output voxels/s)",
             "chunked_onnx": "chunked restore, threads, onnxruntime (output voxels/s)",
             "train_steps": "training, IsoNet-2 64^2 x 16 (steps/s)"}
    lines = [
        "# Structural refactor: speed before and after",
        "",
        f"`python benchmarks/bench_refactor_speed.py --before {args.before_label} --after {args.after_label} "
        f"--repeat {args.repeat}`; runs interleaved, each in a fresh process; median of {args.repeat}.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}.",
        "",
        "| measure | before | after | after / before |",
        "|---|---|---|---|",
    ]
    for key, label in names.items():
        a = statistics.median(r[key] for r in results["before"])
        b = statistics.median(r[key] for r in results["after"])
        fmt = "{:.3g}" if key == "train_steps" else "{:,.0f}"
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {b / a:.3f} |")
    lines += ["", "Each run: " + ", ".join(
        f"{side} {[round(r['restore_tensorflow']) for r in results[side]]}" for side in ("before", "after"))
        + " (TensorFlow restore, voxels/s)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="checkout before the refactor")
    p.add_argument("--after", default=str(REPO), help="checkout after it (default this one)")
    p.add_argument("--before-label", default="652cfc7")
    p.add_argument("--after-label", default="HEAD")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "refactor_speed.md"))
    args = p.parse_args(argv)
    package = REPO / "models" / "isonet2_nuclei_demo.bioimageio.zip"
    results = {"before": [], "after": []}
    for i in range(args.repeat):
        for side in ("before", "after"):
            results[side].append(run_once(Path(getattr(args, side)).resolve(), package))
            print(side, i, results[side][-1], flush=True)
    text = render(results, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
