"""``isonet synth``: write a synthetic test case (sec. 3.1 of the paper) to a folder."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)

#: Same as ``isonet_ij.phantoms.KINDS`` and ``DEFAULTS`` (kept here so that ``--help``
#: imports no numpy; a test checks they agree).
_KINDS = ("nuclei", "membranes", "nuclei-membranes")
_DEFAULTS = {"photons": 200.0, "read_noise": 3.0, "background": 5.0, "voxel_size": 0.1}

_DESCRIPTION = """\
Generate a synthetic anisotropic acquisition and its ground truth (IsoNet paper,
sec. 3.1): a phantom fluorophore density on an isotropic grid, blurred by a PSF, every
FACTOR-th z slice kept, with Poisson (photon) and Gaussian (detector) noise, eq. 1.

kinds and their default PSF / factor (Table 1 of the paper):
  nuclei            ~1500 textured nuclei per 512^3 (23 at 128^3);
                    gaussian sigma_xy/sigma_z = 2/8 voxels, factor 8
  membranes         packed epithelium, bright membranes on a 3D Voronoi tessellation;
                    confocal NA 1.1, factor 4
  nuclei-membranes  epithelium with one nucleus per cell;
                    light-sheet NA_detect 0.8 / NA_illum 0.1, factor 6
Optical PSFs: water immersion n = 1.33, excitation 488 nm, emission 520 nm.

Units: voxel sizes in micrometres (um); wavelengths in nm; PSF sigmas in voxels of the
isotropic grid; photons and read noise in photon counts.

Files written in DIR (all atomically; existing files need --force):
  gt.tif        (N, N, N) float32 phantom density in [0, 1], voxel size (dx, dx, dx)
  gt_iso.tif    gt convolved with the isotropic PSF h_iso, same units as gt
  input.tif     (ceil(N/F), N, N) float32 photon counts, z spacing = F x dx
                (calibration (F*dx, dx, dx)); slice i of input.tif lies at gt slice
                i*factor (slice 0 at slice 0)
  psf.tif       the PSF on the isotropic grid (odd sizes, sum 1), voxel size dx
  labels.tif    uint16 nuclei instance labels (nuclei kinds only; 0 = background)
  meta.json     every parameter, units and versions
  preview.png   with --preview: xy and xz slices of gt, gt_iso and input

Same --seed, same options: byte-identical TIFF files.
"""


def register(subparsers) -> None:
    """Add the ``synth`` sub-command."""
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic test volume (gt, gt_iso, input, psf, labels, meta)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", metavar="{" + ",".join(_KINDS) + "}", help="phantom kind")
    p.add_argument(
        "--size", type=int, default=128, metavar="N",
        help="edge length of the cubic isotropic volume, voxels (>= 32; default 128)",
    )
    p.add_argument(
        "--psf", default=None, metavar="SPEC",
        help=(
            "PSF on the isotropic grid: gaussian:SXY,SZ (sigmas in voxels of the isotropic "
            "grid), confocal:na=1.1,n=1.33,ex=488,em=520 (wavelengths nm), "
            "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520, "
            "widefield:na=1.1,n=1.33,em=520, or a PSF TIFF path; missing keys take the "
            "paper's values; default: the paper's PSF for KIND"
        ),
    )
    p.add_argument(
        "--factor", type=float, default=None, metavar="F",
        help=(
            "axial subsampling factor, integer >= 1: keep every F-th z slice; slice i of "
            "input.tif lies at gt slice i*factor (default per kind: 8, 4, 6)"
        ),
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--photons", type=float, default=_DEFAULTS["photons"], metavar="P",
        help="expected photon count at the brightest blurred voxel (default 200)",
    )
    p.add_argument(
        "--read-noise", type=float, default=_DEFAULTS["read_noise"], metavar="R",
        help="sd of the Gaussian detector noise, photon counts (default 3)",
    )
    p.add_argument(
        "--background", type=float, default=_DEFAULTS["background"], metavar="B",
        help="uniform background, photons per voxel, before Poisson noise (default 5)",
    )
    p.add_argument(
        "--voxel-size", type=float, default=_DEFAULTS["voxel_size"], metavar="DXY",
        help=(
            "lateral voxel size dx = dy of gt and input, um (default 0.1); the isotropic "
            "grid has voxel size DXY, input.tif has z spacing F x DXY"
        ),
    )
    p.add_argument("--preview", action="store_true", help="also write preview.png")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="output folder (created if needed)"
    )
    p.set_defaults(func=run)


def _factor_arg(value):
    """``--factor`` as an int when it is integral (the phantoms module validates it)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def run(args) -> int:
    """Synthesize, then write every file atomically (all or nothing)."""
    from .. import volume_io as vio
    from .. import phantoms

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        msg = f"output {str(out)!r} is a file; give a folder with -o"
        raise FileExistsError(msg)
    has_labels = args.kind != "membranes"
    names = ["gt.tif", "gt_iso.tif", "input.tif", "psf.tif", "meta.json"]
    names += ["labels.tif"] if has_labels else []
    names += ["preview.png"] if args.preview else []
    for name in names:  # refuse before computing anything
        vio.check_output_path(out / name, force=args.force)

    res = phantoms.synthesize(
        args.kind,
        size=args.size,
        psf=args.psf,
        factor=_factor_arg(args.factor),
        seed=args.seed,
        photons=args.photons,
        read_noise=args.read_noise,
        background=args.background,
        voxel_size=args.voxel_size,
        progress=True,
    )
    meta = res["meta"]
    tag = {"kind": meta["kind"], "seed": meta["seed"], "factor": meta["factor"]}
    volumes = [
        ("gt.tif", res["gt"], res["voxel_size"]),
        ("gt_iso.tif", res["gt_iso"], res["voxel_size"]),
        ("input.tif", res["input"], res["input_voxel_size"]),
        ("psf.tif", res["psf"], res["voxel_size"]),
    ]
    if has_labels:
        volumes.append(("labels.tif", res["labels"], res["voxel_size"]))
    elif (out / "labels.tif").exists():
        log.warning("%s is left from an earlier run; membranes have no labels", out / "labels.tif")

    # Write everything to temporary files first; rename onto the targets only when all
    # of them are complete (ExitStack exits rename each; an error removes them all).
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for name, data, vs in volumes:
            tmp = stack.enter_context(vio.atomic_path(out / name, force=args.force))
            vio.write_volume(
                tmp, data, voxel_size=vs, unit="um", force=True,
                metadata=dict(tag, role=name[:-4], units=meta["units"].get(name[:-4])),
            )
        tmp = stack.enter_context(vio.atomic_path(out / "meta.json", force=args.force))
        vio.write_json(tmp, meta, force=True)
        if args.preview:
            tmp = stack.enter_context(vio.atomic_path(out / "preview.png", force=args.force))
            _write_preview(res, tmp)
    log.info("wrote %s to %s", ", ".join(names), out)
    return 0


def _scaled(img):
    """Display range: 0.1-99.9 percentiles to [0, 1]."""
    import numpy as np

    lo, hi = np.percentile(img, (0.1, 99.9))
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def _write_preview(res, path) -> None:
    """xy and xz slices of gt, gt_iso and input (input's xz nearest-upsampled in z)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gt, gt_iso, g = res["gt"], res["gt_iso"], res["input"]
    f = res["meta"]["factor"]
    n_z, n_y, _ = gt.shape
    i = g.shape[0] // 2
    z = i * f  # input slice i lies at gt slice i*factor
    y = n_y // 2
    rows = np.clip(np.rint(np.arange(n_z) / f).astype(int), 0, g.shape[0] - 1)
    panels = [
        (f"gt  xy (z={z})", gt[z]),
        (f"gt_iso  xy (z={z})", gt_iso[z]),
        (f"input  xy (slice {i})", g[i]),
        (f"gt  xz (y={y})", gt[:, y]),
        (f"gt_iso  xz (y={y})", gt_iso[:, y]),
        (f"input  xz (nearest x{f} in z)", g[rows, y]),
    ]
    fig = Figure(figsize=(8.4, 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    for ax, (title, img) in zip(axes.ravel(), panels):
        ax.imshow(_scaled(img), cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("y")
    axes[1, 0].set_ylabel("z")
    for ax in axes[1]:
        ax.set_xlabel("x")
    psf = res["meta"]["psf"]
    fig.suptitle(
        f"{res['meta']['kind']}  size {n_y}  factor {f}  psf {psf.get('kind', '?')}  "
        f"seed {res['meta']['seed']}",
        fontsize=10,
    )
    fig.savefig(path, format="png", dpi=80)
