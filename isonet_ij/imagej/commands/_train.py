"""IsoNet Train on an ImagePlus: conversion around :func:`isonet_ij.workflow.train_volume`."""

from __future__ import annotations

from pathlib import Path

from ... import workflow as wf
from ..convert import ImageError, imageplus_to_volume
from ._common import as_image_error, check_stack, factor_of, position_of

__all__ = ["train_imageplus"]


def _config(imp, vol, c, t, *, factor, psf, mode, patch_size, options):
    """``(Config, PSF array, factor)`` of a new run; factor and PSF errors as ImageError."""
    f, _ = factor_of(imp, factor)
    with as_image_error():  # PSF errors
        cfg, h = wf.new_run_config(
            vol.data, f, vol.voxel_size, psf=psf, mode=mode, patch_size=patch_size, words=wf.IMAGEJ_WORDS,
            train_input=f"ImageJ: {imp.getTitle()} (channel {c + 1}, frame {t + 1})", **options,
        )
    return cfg, h, f


def train_imageplus(imp, *, model_dir, psf=None, mode=None, arch=None, factor=None, epochs=None,
                    steps_per_epoch=None, patch_size=None, batch_size=None, time_budget=None,
                    seed=None, channel: int | None = None, frame: int | None = None,
                    resume: bool = False, force: bool = False, **config_overrides) -> dict:
    """Train IsoNet on one channel / frame of an ImagePlus stack; write a model directory.

    Parameters
    ----------
    imp : ij.ImagePlus
        Anisotropic 8/16/32-bit stack; not modified.
    model_dir : str or Path
        Output model directory (``isonet restore --model`` reads it).
    psf, mode, arch, epochs, steps_per_epoch, patch_size, batch_size, seed
        As ``isonet train``; None: the defaults of :class:`isonet_ij.config.Config` (PSF:
        the dialog's ``gaussian:2,8``; patch: 64 or the largest that fits).
        ``psf="auto"`` estimates a Gaussian PSF from the stack itself.
    factor : float, optional
        Default: the calibration's voxel depth / pixel width.
    time_budget : float, optional
        Seconds (None or 0: no limit).
    channel, frame : int, optional
        1-based; default the image's current channel / frame.
    resume, force
        Continue from / replace an existing model directory; on resume ``epochs`` (when
        given) is the new total, else the stored one.
    **config_overrides
        Other :class:`isonet_ij.config.Config` fields (e.g. ``n_validation``).

    Returns
    -------
    dict
        :func:`isonet_ij.workflow.training_summary` plus ``factor``.
    """
    wf.quiet_tensorflow()
    check_stack(imp, "IsoNet Train")
    if not str(model_dir or "").strip():
        msg = "no model folder given: model=[/path/to/new model folder]"
        raise ImageError(msg)
    model_dir = Path(str(model_dir)).expanduser()
    c, t = position_of(imp, channel, frame)
    vol = imageplus_to_volume(imp, channel=c, frame=t)
    wf.check_model_folder(model_dir, resume=resume, force=force, words=wf.IMAGEJ_WORDS)
    if resume:
        cfg, h = wf.resume_config(model_dir, epochs=epochs), None
        f = cfg.factor
    else:
        mode = mode or wf.CONFIG_DEFAULTS["mode"]
        psf = wf.TRAIN_SETTINGS["psf"].ij_value if psf is None else str(psf)
        options = dict(arch=arch, epochs=epochs, steps_per_epoch=steps_per_epoch,
                       batch_size=batch_size, seed=seed, **config_overrides)
        cfg, h, f = _config(imp, vol, c, t, factor=factor, psf=psf, mode=mode,
                            patch_size=patch_size, options=options)
    _, summary = wf.train_volume(vol.data, cfg, model_dir=model_dir, psf=h,
                                 time_budget=float(time_budget) if time_budget else None,
                                 resume=resume, force=force, words=wf.IMAGEJ_WORDS)
    return {**summary, "factor": f}
