"""Speed benchmark of the restoration engine (CPU or GPU, whatever TensorFlow sees).

Measures, for IsoNet-1 and IsoNet-2:

* restoration throughput: output voxels per second of :func:`isonet_ij.restoration.restore`
  (both planes, fusion, normalization, interpolation included; the network traced once
  in a warm-up call first), and the network's share of the time;
* training steps per second at batch 16 of 64x64 and 128x128 patches (the fixed-shape
  ``tf.function`` step of :mod:`isonet_ij.training`);
* the achieved convolution FLOP rate (analytic multiply-adds x 2 of the network per tile
  pixel, halo and padding included, / network time; a training step counted as 3 forward
  passes) as a fraction of the machine's measured float32 matmul FLOP rate
  (``tf.matmul`` of 2048x2048 matrices).

Writes ``benchmarks/results/engine_speed.md`` (and ``.json``). Medians of ``--repeat`` runs.

    .venv/bin/python benchmarks/bench_engine_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, cpu_name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="32,128,128", help="restored input volume Z,Y,X (default 32,128,128)")
    p.add_argument("--factor", type=float, default=4.0, help="anisotropy factor (default 4)")
    p.add_argument("--batch", type=int, default=8, help="restoration tiles per call (default 8)")
    p.add_argument("--max-memory", default="1G", help="restoration working memory (default 1G)")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per setting")
    p.add_argument("--repeat", type=int, default=3, help="repetitions (median)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default all cores)")
    p.add_argument("--out", default=str(RESULTS / "engine_speed.md"))
    return p.parse_args(argv)


def matmul_flops(repeat: int) -> float:
    import numpy as np
    import tensorflow as tf

    n = 2048
    a = tf.constant(np.random.default_rng(0).random((n, n), dtype=np.float32))
    b = tf.constant(np.random.default_rng(1).random((n, n), dtype=np.float32))
    f = tf.function(lambda x, y: tf.matmul(x, y))
    f(a, b).numpy()
    times = []
    for _ in range(max(3, repeat)):
        t = time.perf_counter()
        f(a, b).numpy()
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / statistics.median(times)


def bench_restore(arch, args, peak):
    import numpy as np

    from isonet_ij import grid, nets
    from isonet_ij import Config, restore, restore_with_info
    from isonet_ij.model import model_from_keras
    from isonet_ij.tiling import plane_layout

    shape = tuple(int(v) for v in args.shape.split(","))
    vol = np.random.default_rng(0).random(shape).astype(np.float32)
    tm = model_from_keras(nets.build_model(arch, seed=0), Config(factor=args.factor, arch=arch, mode="none"))
    restore(vol, tm, batch_size=args.batch, max_memory=args.max_memory, precision="fp32")  # trace
    runs = []
    for _ in range(args.repeat):
        info = restore_with_info(vol, tm, batch_size=args.batch, max_memory=args.max_memory, precision="fp32").info
        runs.append(info)
    info = sorted(runs, key=lambda i: i["seconds"])[len(runs) // 2]
    n_out = grid.n_output_slices(shape[0], args.factor)
    vox = n_out * shape[1] * shape[2]
    plan = info["plan"]
    th, tw = plan["tile"]
    px = 0  # pixels the network actually processed (last batches of a pass padded)
    for n_planes, width in ((shape[1], shape[2]), (shape[2], shape[1])):
        _, (tr, tc), rows, cols = plane_layout(plan, n_out, width)
        n_tiles = n_planes * len(rows) * len(cols)
        px += -(-n_tiles // plan["batch"]) * plan["batch"] * tr * tc
    flops = px * nets.flops_per_pixel(arch)
    return {
        "arch": arch, "input_shape": list(shape), "output_shape": [n_out, shape[1], shape[2]],
        "seconds": info["seconds"], "seconds_network": info["seconds_network"],
        "voxels_per_s": vox / info["seconds"], "tile": [th, tw], "batch": plan["batch"],
        "network_gflops": flops / info["seconds_network"] / 1e9,
        "fraction_of_matmul": flops / info["seconds_network"] / peak,
        "useful_fraction": (2 * vox * nets.flops_per_pixel(arch)) / info["seconds"] / peak,
    }


def bench_train(arch, patch, args, peak):
    import keras
    import numpy as np

    from isonet_ij import nets
    from isonet_ij.train_steps import training_step_for

    net = nets.build_model(arch, seed=0)  # the engine's defaults (no dropout)
    opt = keras.optimizers.Adam(1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((16, patch, patch, 1)).astype(np.float32)
    y = rng.random((16, patch, patch, 1)).astype(np.float32)
    kind, step, _ = training_step_for(arch, net, opt, "psnr", 16, patch, x, y)  # as train() does
    rates = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for _ in range(args.train_steps):
            v = step(x, y)
        float(v)
        rates.append(args.train_steps / (time.perf_counter() - t))
    rate = statistics.median(rates)
    flops = 3 * 16 * patch * patch * nets.flops_per_pixel(arch) * rate
    return {"arch": arch, "patch": patch, "batch": 16, "step": kind, "steps_per_s": rate,
            "gflops": flops / 1e9, "fraction_of_matmul": flops / peak}


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from isonet_ij.nets import set_threads

    set_threads(args.threads)
    import tensorflow as tf

    from isonet_ij import __version__
    from isonet_ij.config import versions
    from isonet_ij.volume_io import atomic_path, write_json

    peak = matmul_flops(args.repeat)
    restore_rows = [bench_restore(a, args, peak) for a in ("isonet1", "isonet2")]
    train_rows = [bench_train(a, p, args, peak) for a in ("isonet1", "isonet2") for p in (64, 128)]
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU: {', '.join(g.name for g in gpus)}" if gpus else f"CPU: {cpu_name()}, {os.cpu_count()} cores"
    lines = [
        "# Engine speed",
        "",
        f"{device}; TensorFlow threads: {args.threads or 'default (all cores)'}; "
        f"float32 matmul (2048^2, tf.matmul): **{peak / 1e9:.1f} GFLOP/s**.",
        "",
        "## Restoration (both planes, fusion included)",
        "",
        f"Input {args.shape} (Z,Y,X), factor {args.factor:g}, batch {args.batch} tiles, "
        f"max memory {args.max_memory}; median of {args.repeat} after a warm-up (trace) call.",
        "",
        "| network | output voxels | tile | s total | s network | output voxels/s | network GFLOP/s | of matmul rate | useful FLOP share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in restore_rows:
        lines.append(
            f"| {r['arch']} | {'x'.join(map(str, r['output_shape']))} | {r['tile'][0]}x{r['tile'][1]} | "
            f"{r['seconds']:.2f} | {r['seconds_network']:.2f} | {r['voxels_per_s'] / 1e6:.3f} M | "
            f"{r['network_gflops']:.1f} | {100 * r['fraction_of_matmul']:.0f} % | {100 * r['useful_fraction']:.0f} % |"
        )
    lines += [
        "",
        "Network GFLOP/s counts every pixel the network processed (tiles with halo and padding); "
        "the useful share counts only 2 passes x output voxels over the total time.",
        "",
        "## Training (batch 16, negative-PSNR loss, Adam)",
        "",
        "Step: the one `train()` picks on this machine (`training_step_for`: IsoNet-2's step "
        "plain or XLA-compiled, whichever is faster here; IsoNet-1 always plain).",
        "",
        "| network | patch | step | steps/s | GFLOP/s (3 x forward) | of matmul rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in train_rows:
        lines.append(f"| {r['arch']} | {r['patch']}x{r['patch']} | {r['step']} | {r['steps_per_s']:.2f} | "
                     f"{r['gflops']:.1f} | {100 * r['fraction_of_matmul']:.0f} % |")
    lines += ["", f"isonet-ij {__version__}; {json.dumps(versions())}; command: `{' '.join(sys.argv)}`", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, force=True) as tmp:
        tmp.write_text("\n".join(lines))
    write_json(out.with_suffix(".json"), {"matmul_flops": peak, "device": device,
                                          "restore": restore_rows, "train": train_rows}, force=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
