"""Training from user options: one Config rule, one run, one summary for every interface."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

from ._common import CLI_WORDS, Words

__all__ = ["check_model_folder", "patch_size_for", "training_config", "resume_config", "train_volume", "training_summary"]

#: Patch side when none is given: the measured best (see :class:`isonet_ij.config.Config`).
DEFAULT_PATCH = 64


def patch_size_for(patch_size, shape, factor) -> int:
    """``patch_size``, or by default 64 capped to what the volume's lateral planes hold.

    ``None`` or 0 picks ``min(64, max_patch_size(shape, factor))``; a volume that holds
    less than 16 x 16 patches is an error. An explicit size is returned as given (training
    checks that it fits).
    """
    if patch_size:
        return int(patch_size)
    from ..pairs import max_patch_size

    fits = max_patch_size(shape, factor)
    if fits < 16:
        msg = (
            f"the volume {tuple(shape)} is too small to train on: its lateral planes hold at most "
            f"{fits}x{fits} patches on the factor-{factor:g} grid (16x16 needed)"
        )
        raise ValueError(msg)
    return min(DEFAULT_PATCH, fits)


def training_config(shape, factor, *, psf: str = "", psf_info=None, patch_size=None,
                    train_input: str = "", voxel_size=None, **options):
    """A validated :class:`~isonet_ij.config.Config` of a new training run.

    ``options`` are Config fields (``arch``, ``mode``, ``epochs``, ``batch_size``, ...);
    a value of None takes Config's default. ``patch_size`` follows :func:`patch_size_for`.
    """
    from ..config import Config, rounds_value

    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(options) - names)
    if unknown:
        msg = f"unknown training options {unknown}"
        raise TypeError(msg)
    given = {k: v for k, v in options.items() if v is not None}
    if "rounds" in given:  # the interfaces' text ("auto", "1", "2")
        given["rounds"] = rounds_value(given["rounds"])
    return Config(
        factor=factor, psf=psf, psf_info=dict(psf_info or {}),
        patch_size=patch_size_for(patch_size, shape, factor), train_input=train_input,
        voxel_size=list(voxel_size) if voxel_size else None, **given,
    ).validate()


def resume_config(model_dir, *, epochs=None, given=None, words=None):
    """The stored Config of an interrupted run; ``epochs`` (when given) is the new total.

    ``given``: the settings that define the training pairs as the user set them (``factor``,
    ``psf``, ``arch``, ``mode``, ``patch_size``; None: not set). One that differs from the
    stored run's is an error: a resumed run keeps the pairs it was started with.
    """
    from ..config import read_config

    cfg = read_config(Path(model_dir))
    diff = [f"{_opt(k, words)} {v} (the model's: {getattr(cfg, k)})" for k, v in (given or {}).items()
            if v is not None and _differs(k, v, getattr(cfg, k))]
    if diff:
        msg = (f"cannot resume {str(model_dir)!r} with other training settings: {', '.join(diff)}; "
               "resume without them (the stored ones are used), or train into a new model folder (another -o)")
        raise ValueError(msg)
    return cfg if epochs is None else cfg.replace(epochs=int(epochs))


def _opt(name: str, words) -> str:
    flag = {"patch_size": "patch", "factor": "factor", "psf": "psf", "arch": "arch", "mode": "mode"}[name]
    return words.opt(flag) if words is not None else f"--{flag}"


def _differs(name: str, given, stored) -> bool:
    if name == "factor":
        return abs(float(given) - float(stored)) > 1e-6 * float(stored)
    if name == "psf":
        given = str(given).strip()
        return bool(given) and given.lower() != "auto" and given.replace(" ", "") != str(stored).replace(" ", "")
    return given != stored


def training_summary(result, model_dir, *, seconds=None) -> dict:
    """What a run did: ``model_dir, stop_reason, epochs, rounds, steps, best_val_psnr, val_psnr_input``
    (``rounds``: 1 or 2, what ``rounds`` auto chose; ``epochs`` counts both rounds).

    ``result`` is :func:`isonet_ij.training.train`'s result, or None for a pretrained model
    (then ``{"pretrained": model_dir}``). ``seconds`` is added when given.
    """
    if result is None:
        return {"pretrained": str(model_dir)}
    hist = result.history
    out = {
        "model_dir": str(model_dir), "stop_reason": result.stop_reason, "epochs": len(hist),
        "rounds": int(result.model.config.rounds),
        "steps": int(sum(r.get("steps", 0) for r in hist)),
        "best_val_psnr": max((r["val_psnr"] for r in hist), default=None),
        "val_psnr_input": hist[-1].get("val_psnr_input") if hist else None,
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 1)
    return out


def check_model_folder(model_dir, *, resume: bool, force: bool, words: Words = CLI_WORDS) -> None:
    """Refuse a model folder training cannot use, naming the options as ``words``' interface does.

    Resuming needs a checkpoint; a new run needs an empty (or no) folder unless ``force``.
    """
    from ..checkpoints import TRAIN_STATE, WEIGHTS_LAST, can_resume
    from ._options import TRAIN

    model_dir = Path(model_dir)
    where = words.field(TRAIN["model_dir"], "-o")
    if model_dir.exists() and not model_dir.is_dir():
        msg = f"model folder {str(model_dir)!r} is a file; choose a folder path for {where}"
        raise FileExistsError(msg)
    if resume:
        if not can_resume(model_dir):  # its own checkpoint, or its first round's (two rounds)
            msg = (f"cannot resume: {str(model_dir)!r} holds no interrupted training ({TRAIN_STATE} "
                   f"+ {WEIGHTS_LAST}); untick {words.switch(TRAIN['resume'])} to start a new one")
            raise FileNotFoundError(msg)
    elif model_dir.is_dir() and any(model_dir.iterdir()) and not force:
        msg = (f"model folder {str(model_dir)!r} is not empty; tick {words.switch(TRAIN['resume'])} "
               f"to continue its training, {words.switch(TRAIN['force'])} to replace it, or choose "
               f"another folder for {where}")
        raise FileExistsError(msg)


def new_run_config(data, factor, voxel_size, *, psf, mode, patch_size, train_input, words: Words,
                   **options) -> tuple[object, object]:
    """``(Config, PSF array or None)`` of a new run from a dialog's values (ImageJ, napari).

    The dialogs always hold a PSF spec; with ``mode="none"`` it is not used (so not parsed,
    and not warned about, as ``isonet train`` would).
    """
    from ._psf import resolve_psf

    spec, h, psf_info = resolve_psf(psf if mode != "none" else "", data, factor, voxel_size, mode, words=words)
    cfg = training_config(data.shape, factor, psf=spec, psf_info=psf_info, patch_size=patch_size, mode=mode,
                          train_input=train_input, voxel_size=voxel_size, **options)
    return cfg, h


def train_volume(data, config, *, model_dir, psf=None, time_budget=None, resume: bool = False,
                 force: bool = False, progress: bool = False, threads=None,
                 words: Words = CLI_WORDS) -> tuple[object, dict]:
    """Train on ``data`` into ``model_dir``; ``(result, training_summary(...))``.

    ``time_budget`` in seconds (None: no limit). A constant (e.g. all-zero) volume is refused
    before anything is written (:func:`~isonet_ij.workflow.check_contrast`); a z axis that
    looks interpolated is warned about (:func:`~isonet_ij.workflow.warn_if_resampled`).
    """
    from ..training import train
    from ._checks import check_contrast, warn_if_resampled

    check_model_folder(model_dir, resume=resume, force=force, words=words)
    check_contrast(data, what="the training volume")
    warn_if_resampled(data, config.factor, words=words)
    t0 = time.monotonic()
    with warnings.catch_warnings():
        # Keras passes copy= to numpy's __array__ of its own tensors on every step: not ours
        # to fix, and dozens of them would bury the summary (ImageJ logs every warning)
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy",
                                category=DeprecationWarning)
        res = train(data, config, psf=psf, model_dir=Path(model_dir), time_budget=time_budget,
                    resume=resume, force=force, progress=progress, threads=threads)
    return res, training_summary(res, model_dir, seconds=time.monotonic() - t0)
