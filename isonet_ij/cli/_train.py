"""``isonet train``: parse, pick the volume, call the workflow, print the summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..workflow import TRAIN_SETTINGS, add_arguments, values_from_args

__all__ = ["register", "cmd_train", "zyx_of"]

_DESCRIPTION = """\
Train IsoNet on the anisotropic volume itself (self-supervised, Weigert et al. 2017):
lateral slices are blurred with the rotated PSF (--mode full: h_rot) or its anisotropic
part (--mode split: h_split, h_rot = h_iso * h_split), subsampled along one lateral axis
by F and interpolated back (bicubic), for both lateral axes; the network learns to undo
that and is later applied to the axial (xz, yz) planes. --mode none trains on subsampling
only (SRCNN baseline). Intensities are normalized by the 1/99.8 percentiles of the volume.

MODEL_DIR receives config.json (arch, mode, factor, PSF, normalization, versions),
psf.tif, weights_best.weights.h5 (best validation loss), weights_last.weights.h5 (+
optimizer_last.npz, train_state.json: the resume point), training_log.csv and
training_curve.png, each written atomically after every epoch. --time-budget stops at a
wall-clock limit (e.g. 15m, 90s, 1.5h; pair preparation included) and keeps the best
checkpoint; --resume continues a stopped run.

Defaults: Adam lr 1e-3 (2 dB ahead of the paper's 5e-3 in our measurement), 64x64
patches, batch 16, no dropout (0.63 dB ahead of the paper's 0.2 for IsoNet-2 at a 3-min
budget), constant learning rate, 100 epochs x 50 steps, negative-PSNR loss (eq. 3).
"""

#: The CLI's options, in help order (declared in :mod:`isonet_ij.workflow`).
OPTIONS = ("factor", "psf", "arch", "mode", "epochs", "steps_per_epoch", "patch_size",
           "batch_size", "learning_rate", "dropout", "lr_schedule", "loss", "noise_match",
           "augment", "time_budget", "seed", "rounds", "channel", "timepoint", "threads", "allow_large_factor", "resume", "force")
#: The options that are Config fields (the rest steer the run).
CONFIG_OPTIONS = ("arch", "mode", "epochs", "steps_per_epoch", "batch_size", "learning_rate",
                  "dropout", "lr_schedule", "loss", "noise_match", "augment", "seed", "rounds")


def register(subparsers) -> None:
    """Add ``train``."""
    p = subparsers.add_parser("train", help="train IsoNet on an anisotropic volume (self-supervised)",
                              description=_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT.tif", help="anisotropic 3D volume (ZYX)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model directory")
    add_arguments(p, TRAIN_SETTINGS, OPTIONS)
    p.set_defaults(func=cmd_train)


def zyx_of(vol, channel, timepoint, path):
    """Pick one ZYX volume of a ZCYX/TZCYX stack (0-based ``channel`` / ``timepoint``)."""
    import numpy as np

    data, axes = vol.data, vol.axes
    for ax, idx in (("T", timepoint), ("C", channel)):
        if ax not in axes and idx is not None:
            opt, what = ("--channel", "channels") if ax == "C" else ("--timepoint", "timepoints")
            msg = f"{str(path)!r} has no {what} (axes {axes}); drop {opt}"
            raise ValueError(msg)
        if ax in axes:
            n = data.shape[axes.index(ax)]
            if idx is None:
                if n > 1:
                    opt = "--channel" if ax == "C" else "--timepoint"
                    msg = f"{str(path)!r} has {n} {'channels' if ax == 'C' else 'timepoints'}; choose one with {opt}"
                    raise ValueError(msg)
                idx = 0
            if not 0 <= idx < n:
                msg = f"{ax} index {idx} out of range 0..{n - 1} in {str(path)!r}"
                raise ValueError(msg)
            data = np.take(data, idx, axis=axes.index(ax))
            axes = axes.replace(ax, "")
    return data


def _given_pair_settings(v: dict) -> dict:
    """The options that define the training pairs, None where left at the CLI's default."""
    return {k: (v[k] if v[k] != TRAIN_SETTINGS[k].cli_value else None)
            for k in ("factor", "psf", "arch", "mode", "patch_size")}


def cmd_train(args) -> int:
    from .. import workflow as wf

    wf.quiet_tensorflow()
    from .. import volume_io as vio
    from ..training import parse_duration

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        msg = f"-o {str(out)!r} is a file; give a model directory"
        raise FileExistsError(msg)
    from ..checkpoints import MODEL_FILES

    for name in MODEL_FILES:  # --force replaces these: never the training input
        vio.check_not_input(out / name, [args.input])
    v = values_from_args(args, TRAIN_SETTINGS, OPTIONS)
    wf.check_settings(v, TRAIN_SETTINGS)
    vio.check_writable(out / "config.json", what="model folder")
    budget = parse_duration(v["time_budget"]) if v["time_budget"] else None
    vol = vio.read_volume(args.input)
    data = zyx_of(vol, v["channel"], v["timepoint"], args.input)
    h = None
    wf.check_model_folder(out, resume=v["resume"], force=v["force"])
    if v["resume"]:
        cfg = wf.resume_config(out, epochs=v["epochs"], given=_given_pair_settings(v))
    else:
        factor, _ = wf.resolve_factor(v["factor"], vol.voxel_size, what=str(args.input))
        wf.check_large_factor(factor, allow=v["allow_large_factor"])
        spec, h, psf_info = wf.resolve_psf(v["psf"], data, factor, vol.voxel_size, v["mode"])
        cfg = wf.training_config(
            data.shape, factor, psf=spec, psf_info=psf_info, patch_size=v["patch_size"],
            train_input=str(Path(args.input).resolve()), voxel_size=vol.voxel_size,
            **{k: v[k] for k in CONFIG_OPTIONS},
        )
    _, summary = wf.train_volume(data, cfg, model_dir=out, psf=h, time_budget=budget,
                                 resume=v["resume"], force=v["force"], progress=True,
                                 threads=v["threads"])
    print(json.dumps(summary, indent=2))
    return 0
