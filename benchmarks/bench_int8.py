"""int8 vs fp32 restoration: speed on this CPU and PSNR on the phantoms and real volumes.

* **Speed** (one run, same CPU, same volume: the demo model on a 16 x 128 x 128 nuclei
  phantom at factor 8, 121 x 128 x 128 output): output voxels / s of fp32 TensorFlow, fp32
  onnxruntime, int8 onnxruntime (``--precision int8``; the one-time quantization is timed
  apart) and CSBDeep's IsotropicCARE where installed (``pip install -e .[bench]``), median
  of ``--repeat`` after a warm-up call.
* **Quality**: IsoNet-2 split trained ``--steps`` steps on each case, restored in fp32 and
  int8 (calibrated on the case's own planes): PSNR against the isotropic ground truth (the
  three Table 1 pairings at ``--size``) or against the original (A1 / A3 with every 4th
  slice kept, ``../shared/data/real``).

Writes ``benchmarks/results/int8.md`` and ``.json``::

    .venv/bin/python benchmarks/bench_int8.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import REAL, REAL_DATA, RESULTS, THINNED_PSF, case_psf_spec, command_line, gaussian, machine_line
from common import score, synth_case, train_isonet2, write_report

KINDS = ("nuclei", "membranes", "nuclei-membranes")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=96, help="phantom edge length (default 96)")
    p.add_argument("--steps", type=int, default=300, help="training steps per case (default 300)")
    p.add_argument("--repeat", type=int, default=3, help="timed restorations per setting (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-from", default=None, metavar="JSON",
                   help="reuse the quality rows of an earlier run's int8.json (rerun only the speed part)")
    p.add_argument("--out", default=str(RESULTS / "int8.md"))
    return p.parse_args(argv)


def timed(fn, repeat):
    fn()  # warm-up: compile, allocate
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return out, statistics.median(runs)


def csbdeep_speed(vol, factor, repeat):
    """Output voxels / s of an (untrained) IsotropicCARE on ``vol``, or None without csbdeep."""
    try:
        import csbdeep  # noqa: F401
    except ImportError:
        return None
    import warnings

    from csbdeep.models import Config as CareConfig
    from csbdeep.models import IsotropicCARE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        care = IsotropicCARE(CareConfig("YX", n_channel_in=1, n_channel_out=1, train_tensorboard=False), None,
                             basedir=None)  # in memory: no model folder
        out, sec = timed(lambda: care.predict(vol.astype(np.float32), "ZYX", factor), repeat)
    return out.size / sec


def speed(args) -> dict:
    from isonet_ij import load_model, restore, synthesize
    from isonet_ij.artifacts import find_demo_package

    vol = synthesize("nuclei", size=128, psf="gaussian:2,8", factor=8, seed=args.seed)["input"]
    pkg = find_demo_package()
    rows = {}
    for label, backend, precision in (("fp32 TensorFlow", "tensorflow", "fp32"),
                                      ("fp32 onnxruntime", "onnx", "fp32"), ("int8 onnxruntime", "onnx", "int8")):
        model = load_model(pkg, backend=backend)
        t0 = time.perf_counter()
        restore(vol, model, precision=precision)  # compile; int8: quantize once (then cached)
        first = time.perf_counter() - t0
        out, sec = timed(lambda m=model, p=precision: restore(vol, m, precision=p), args.repeat)
        rows[label] = {"voxels_per_s": out.size / sec, "seconds": sec, "first_call_s": first}
        print(label, rows[label], flush=True)
    care = csbdeep_speed(vol, 8.0, args.repeat)
    if care is not None:
        rows["CSBDeep IsotropicCARE (fp32 TensorFlow)"] = {"voxels_per_s": care}
    return {"shape_in": list(vol.shape), "rows": rows}


def cases(args):
    """(name, input volume, factor, PSF array, PSF spec, references) of every quality case."""
    from isonet_ij import grid
    from isonet_ij.volume_io import read_volume

    for kind in KINDS:
        case, refs = synth_case(kind, args.size, args.seed)
        yield kind, case["input"], float(case["meta"]["factor"]), case["psf"], case_psf_spec(case), \
            {"gt_iso": refs["gt_iso"]}, case["meta"]["psf"]
    for name in ("A1", "A3"):
        path = REAL_DATA / REAL[name][0]
        if not path.is_file():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        full = read_volume(path).data.astype(np.float32)
        step = REAL[name][1]
        thin = full[::step]
        ref = grid.crop_to_grid(full, thin.shape[0], step)
        yield f"{name} (every {step}th slice)", thin, float(step), gaussian(THINNED_PSF), THINNED_PSF, \
            {"original": ref}, {}


def all_nodes_int8(vol, model, factor):
    """Restoration with the first recipe: every node quantized, the residual Add and the
    output Conv included (the calibration and the rest as ``precision="int8"``)."""
    from isonet_ij import pairs, restore
    from isonet_ij.quantization import calibration_planes, quantize_model
    from isonet_ij.tiling import default_border

    lo, hi = pairs.percentiles(vol)
    planes = calibration_planes(vol, factor, lo, hi, border=default_border(factor))
    return restore(vol, quantize_model(model, planes, fp32_output=False))


def quality(args) -> list:
    from isonet_ij import restore_with_info

    rows = []
    for name, vol, factor, psf, spec, refs, psf_info in cases(args):
        res = train_isonet2(vol, factor, psf, spec, args.steps, args.seed, psf_info=psf_info)
        fp32 = restore_with_info(vol, res.model)
        int8 = restore_with_info(vol, res.model, precision="int8")
        ref_name = next(iter(refs))
        s32, s8 = score(fp32.volume, refs)[ref_name], score(int8.volume, refs)[ref_name]
        s8_all = score(all_nodes_int8(vol, res.model, factor), refs)[ref_name]
        rows.append({"case": name, "reference": ref_name, "psnr_fp32": s32, "psnr_int8": s8,
                     "loss_db": s32 - s8, "int8_vs_fp32_db": int8.info["precision"]["psnr_vs_fp32_db"],
                     "psnr_int8_all_nodes": s8_all, "loss_all_nodes_db": s32 - s8_all})
        print(rows[-1], flush=True)
    return rows


def report(args, sp, qu) -> list:
    from isonet_ij.quantization import cpu_int8_features

    base = sp["rows"]["fp32 onnxruntime"]["voxels_per_s"]
    tf = sp["rows"]["fp32 TensorFlow"]["voxels_per_s"]
    lines = ["# int8 vs fp32 restoration", "", f"`{command_line()}`", "",
             f"Machine: {machine_line()}; int8 features: {', '.join(cpu_int8_features()) or 'none'}.", "",
             f"## Speed (demo model, input {sp['shape_in']}, output voxels/s, median of {args.repeat})", "",
             "| network | output voxels/s | vs fp32 onnxruntime | vs fp32 TensorFlow | first call (s) |",
             "|---|---|---|---|---|"]
    for label, r in sp["rows"].items():
        first = f"{r['first_call_s']:.1f}" if "first_call_s" in r else ""
        lines.append(f"| {label} | {r['voxels_per_s']:,.0f} | {r['voxels_per_s'] / base:.2f}x | "
                     f"{r['voxels_per_s'] / tf:.2f}x | {first} |")
    if not any("CSBDeep" in k for k in sp["rows"]):
        lines.append("| CSBDeep IsotropicCARE | not installed here (`pip install -e .[bench]`) | | | |")
    lines += ["", "The first call of int8 includes quantizing the network (calibration on the volume's planes); "
              "later calls of the same model and volume reuse the cached graph.", "",
              f"## Quality (IsoNet-2 split, {args.steps} steps, PSNR in dB)", "",
              "int8: the network quantized except its output Conv and the residual Add (they add the "
              "correction to the input in fp32: quantized, the sum passes the input through at 8 bits); "
              "all nodes: the first recipe, every node quantized.", "",
              "| case | reference | fp32 | int8 | fp32 - int8 | int8 vs fp32 output | int8, all nodes | "
              "fp32 - int8 all nodes |", "|---|---|---|---|---|---|---|---|"]
    for r in qu:
        lines.append(f"| {r['case']} | {r['reference']} | {r['psnr_fp32']:.2f} | {r['psnr_int8']:.2f} | "
                     f"{r['loss_db']:+.3f} | {r['int8_vs_fp32_db']:.1f} | {r.get('psnr_int8_all_nodes', float('nan')):.2f} | "
                     f"{r.get('loss_all_nodes_db', float('nan')):+.3f} |")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    sp = speed(args)
    if args.quality_from:  # the quality part does not depend on machine load; speed does
        import json

        qu = json.loads(Path(args.quality_from).read_text())["quality"]
    else:
        qu = quality(args)
    write_report(args.out, report(args, sp, qu), {"speed": sp, "quality": qu, "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
