"""The benchmark harness: what the scripts of ``benchmarks/`` share.

Per-cell JSON cache (every benchmark caches each finished cell, one method on one volume,
so an interrupted run resumes where it stopped), synthetic cases with their references
(ground truth and isotropic ground truth cropped to the restoration grid), the real test
volumes, the train-and-restore cell of IsoNet-2, scoring, the machine line and report
writing. No benchmark script imports another: what two scripts need lives here.

A script run directly (``python benchmarks/bench_x.py``) has ``benchmarks/`` first on
``sys.path``, so its ``from common import ...`` finds this file; importing it puts this
checkout's ``isonet_ij`` first on ``sys.path`` (:data:`REPO`), so a benchmark measures the
code beside it, not another installed copy. Tests load the scripts with
``tests/conftest.py: load_benchmark``, which puts ``benchmarks/`` on ``sys.path`` the same way.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

#: the source checkout these benchmarks belong to (its ``isonet_ij`` is imported first)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: where the reports (Markdown + JSON) and the committed cells live
RESULTS = REPO / "benchmarks" / "results"
#: the real test volumes, ``../shared/data/real`` beside the checkout (``--data``)
REAL_DATA = REPO.parent / "shared" / "data" / "real"
#: real volumes: name -> (file in :data:`REAL_DATA`, z step kept in the thinned-stack
#: setting; 1: ~isotropic sampling, no ground truth)
REAL = {
    "A1": ("A1_arabidopsis_embryo_membrane_confocal_iso.tif", 4),
    "A3": ("A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif", 4),
    "B1": ("B1_cellseg3d_mesospim_brain_nuclei_c5image.tif", 1),
}
#: the real sources with an isotropic truth (``real_volume``; A1y: A1 turned), thinned and blurred into the
#: semi-synthetic cases of bench_psf_auto_real and bench_oracle
TRUTH_SOURCES = ("A1", "A3", "A1y")
#: PSF (voxels) of IsoNet-2 and RL on the thinned real volumes A1 / A3 (bench_real, bench_border)
THINNED_PSF = "gaussian:1,1"

log = logging.getLogger("benchmarks")


#: Revision of the training engine a trained cell was made with, appended to the keys of
#: cells that train a network (never to bicubic, RL or CSBDeep cells), so that a change of
#: training defaults retrains them instead of reusing results of another engine.
#: (no suffix): dropout 0.2, IsoNet-2 step without XLA. "e2": dropout 0 by default,
#: IsoNet-2's training step compiled with XLA. "e3": ``rounds="auto"`` by default (two
#: training rounds when the PSF's extra axial sigma is >= 1.5 voxels: the phantoms).
TRAIN_REV = "e3"
#: The revisions at which a run that sets ``rounds`` itself trained as at the one before
#: (only the default of ``rounds`` changed): bench_oracle pins every arm's rounds, so its
#: cells of "e2" are still its cells.
SAME_WITH_ROUNDS_PINNED = {"e3": "e2"}


def trained_key(key: str, *, rounds_pinned: bool = False) -> str:
    """``key`` of a cell that trains a network, tagged with :data:`TRAIN_REV`; ``rounds_pinned``:
    the cell's runs set ``Config.rounds`` themselves (:data:`SAME_WITH_ROUNDS_PINNED`)."""
    rev = SAME_WITH_ROUNDS_PINNED.get(TRAIN_REV, TRAIN_REV) if rounds_pinned else TRAIN_REV
    return f"{key}_{rev}"


def load_cell(cache: Path, key: str):
    """The cached cell ``key`` (a dict), or None."""
    p = Path(cache) / f"{key}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def save_cell(cache: Path, key: str, data: dict) -> None:
    """Write cell ``key`` atomically."""
    from isonet_ij.volume_io import write_json

    Path(cache).mkdir(parents=True, exist_ok=True)
    write_json(Path(cache) / f"{key}.json", data, force=True)


def synth_case(kind: str, size: int, seed: int):
    """``phantoms.synthesize`` plus ``{"gt_iso", "gt"}`` cropped to the restoration grid."""
    from isonet_ij import grid, phantoms

    log.info("synthesizing %s %d^3 seed %d", kind, size, seed)
    case = phantoms.synthesize(kind, size=size, seed=seed)
    n_z, f = case["input"].shape[0], float(case["meta"]["factor"])
    refs = {"gt_iso": grid.crop_to_grid(case["gt_iso"], n_z, f), "gt": grid.crop_to_grid(case["gt"], n_z, f)}
    return case, refs


def write_report(out, lines, results) -> None:
    """Write the Markdown ``lines`` to ``out`` and ``results`` beside it as JSON (atomically); print."""
    from isonet_ij.volume_io import atomic_path, write_json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, force=True) as tmp:
        tmp.write_text("\n".join(lines))
    write_json(out.with_suffix(".json"), results, force=True)
    print("\n".join(lines))


def save_figure(fig, path, *, dpi: int = 110) -> None:
    """Write a matplotlib figure to ``path`` as PNG atomically (``volume_io.atomic_path``), then close it."""
    import matplotlib.pyplot as plt

    from isonet_ij.volume_io import atomic_path

    try:
        with atomic_path(Path(path), force=True) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


def command_line(argv=None) -> str:
    """This run's command line, the ``--note`` text elided (it heads the report already)."""
    argv = list(sys.argv if argv is None else argv)
    for i, a in enumerate(argv):
        if a == "--note" and i + 1 < len(argv):
            argv[i + 1] = "..."
        elif a.startswith("--note="):
            argv[i] = "--note=..."
    return " ".join(argv)


def cached(cache: Path, key: str, compute):
    """The cached cell ``key``, or ``compute()`` timed (``"seconds"``) and cached."""
    cell = load_cell(cache, key)
    if cell is None:
        t = time.monotonic()
        cell = compute()
        cell["seconds"] = round(time.monotonic() - t, 1)
        save_cell(cache, key, cell)
    return cell


# --------------------------------------------------------------------------- cases, PSFs, scores


def case_psf_spec(case) -> str:
    """The PSF spec of a synthetic case (``meta.psf.spec``, else its kind)."""
    return case["meta"]["psf"].get("spec", str(case["meta"]["psf"].get("kind")))


def real_volume(name: str, data=REAL_DATA):
    """A real volume of :data:`REAL` as float64 (Z, Y, X); ``NAMEy`` (e.g. ``A1y``): that volume turned
    so that its original y axis is z, a control whose thinned axis was acquired (A1's own z was
    interpolated, ``isonet_ij.grid.resampling_period``)."""
    import numpy as np

    from isonet_ij import read_volume

    vol = np.asarray(read_volume(Path(data) / REAL[name.removesuffix("y")][0]).data, np.float64)
    return np.ascontiguousarray(vol.transpose(1, 0, 2)) if name.endswith("y") else vol


def semi_synthetic(vol, sigma: float, factor: int, *, photons: float, background: float,
                   read_noise: float, seed: int):
    """``vol`` blurred along z by ``sigma`` voxels, every ``factor``-th slice, with noise (float32): scaled
    to ``photons`` at its 99.9th percentile over ``background``, Poisson and Gaussian read noise (sd
    ``read_noise``). The semi-synthetic real cases of bench_psf_auto_real and bench_oracle."""
    import numpy as np
    from scipy.ndimage import gaussian_filter1d

    vol = np.asarray(vol, np.float64)
    blurred = (gaussian_filter1d(vol, sigma, axis=0, mode="reflect") if sigma > 0 else vol)[::factor]
    lo, hi = np.percentile(blurred, [0.1, 99.9])
    expected = background + photons * np.clip((blurred - lo) / (hi - lo), 0, None)
    rng = np.random.default_rng(seed)
    return (rng.poisson(expected) + rng.normal(0, read_noise, expected.shape)).astype(np.float32)


def gaussian(spec):
    """The PSF array of a ``gaussian:SXY,SZ`` spec in voxels."""
    from isonet_ij.psf import parse_psf_spec

    return parse_psf_spec(spec, voxel_size=(1.0, 1.0, 1.0))[0]


def estimate(vol, factor):
    """``psf_estimate``'s summary of the axial blur of ``vol`` at ``factor``."""
    from isonet_ij.psf import estimate_axial_blur, estimate_summary

    return estimate_summary(estimate_axial_blur(vol, factor=factor))


def score(vol, refs):
    """PSNR (affine fit) of ``vol`` against each reference: ``{name: dB}``."""
    from isonet_ij import metrics

    return {name: float(metrics.psnr_affine(vol, ref)) for name, ref in refs.items()}


def central_xz(vol):
    """The central xz slice (rows z, columns x) of a (z, y, x) volume."""
    import numpy as np

    return np.asarray(vol)[:, vol.shape[1] // 2, :]


# --------------------------------------------------------------------------- train and restore


def train_isonet2(vol, factor, psf, psf_spec, steps, seed, *, psf_info=None, progress=False):
    """IsoNet-2 split trained ``steps`` steps (batches of 16, epochs of 50) on ``vol`` itself."""
    from isonet_ij.config import Config
    from isonet_ij.pairs import max_patch_size
    from isonet_ij.training import train

    steps_per_epoch = 50
    epochs = max(1, round(steps / steps_per_epoch))
    patch = min(64, max_patch_size(vol.shape, factor))
    cfg = Config(factor=factor, arch="isonet2", mode="split", psf=psf_spec, psf_info=psf_info or {}, epochs=epochs,
                 steps_per_epoch=min(steps_per_epoch, steps), seed=seed, patch_size=patch)
    return train(vol, cfg, psf=psf, force=True, progress=progress)


def train_restore(vol, factor, psf, psf_spec, args, steps):
    """IsoNet-2 split, ``steps`` training steps (seed ``args.seed``); returns (restored, info)."""
    from isonet_ij.restoration import restore

    t = time.monotonic()
    res = train_isonet2(vol, factor, psf, psf_spec, steps, args.seed, progress=sys.stderr.isatty())
    t_train = time.monotonic() - t
    out = restore(vol, res.model)
    return out, {"train_s": round(t_train, 1), "steps": int(sum(r["steps"] for r in res.history)),
                 "best_val_psnr": max(r["val_psnr"] for r in res.history)}


# --------------------------------------------------------------------------- machine, reports


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_line() -> str:
    """Date (UTC), host, CPU, logical CPUs, RAM and Python of this run, on one line."""
    import psutil

    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.node()}; {cpu_name()}; "
            f"{os.cpu_count()} logical CPUs; {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
            f"Python {platform.python_version()}")
