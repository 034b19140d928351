"""The files training keeps in a model directory: checkpoints, log and curve.

``weights_last`` with the optimizer state and ``train_state.json`` form the resume point,
``weights_best`` the best epoch by validation loss; ``training_log.csv`` has one row per
epoch (:data:`LOG_FIELDS`) and ``training_curve.png`` plots it. Every write is atomic (a
temporary file renamed over the target), so an interrupted run leaves the previous
checkpoint intact. matplotlib is imported only when a curve is drawn.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np

from .config import (
    CONFIG_JSON,
    OPTIMIZER_LAST,
    PSF_TIF,
    TRAIN_STATE,
    TRAINING_CURVE,
    TRAINING_LOG,
    WEIGHTS_BEST,
    WEIGHTS_LAST,
)
from .volume_io import atomic_path, write_json

__all__ = [
    "LOG_FIELDS",
    "MODEL_FILES",
    "FIRST_ROUND_DIR",
    "has_checkpoint",
    "can_resume",
    "prepare_model_dir",
    "remove_new_run",
    "join_rounds",
    "run_log",
    "write_checkpoint",
    "restore_checkpoint",
    "save_weights_atomic",
    "copy_atomic",
    "save_optimizer",
    "load_optimizer",
    "write_log",
    "read_log",
    "write_curve",
]

log = logging.getLogger(__name__)

#: Columns of ``training_log.csv`` (``elapsed_s``: wall-clock seconds, resumed runs included).
LOG_FIELDS = ["epoch", "steps", "loss", "val_loss", "val_psnr", "val_psnr_input", "lr", "elapsed_s"]
#: The files training writes in a model directory: :func:`prepare_model_dir` removes these
#: with ``force`` (nothing else is touched), and an input must not be one of them.
MODEL_FILES = (CONFIG_JSON, WEIGHTS_BEST, WEIGHTS_LAST, OPTIMIZER_LAST, TRAIN_STATE, TRAINING_LOG,
               TRAINING_CURVE, PSF_TIF)
#: A two-round run (``Config.rounds = 2``) trains and checkpoints its first round in this
#: subfolder of the model directory (so a kill in either round loses at most an epoch).
FIRST_ROUND_DIR = "round1"


def write_checkpoint(model_dir: Path, net, opt, history: list, state: dict, *, improved: bool,
                     title: str, loss: str) -> None:
    """Write the resume point of an epoch, then the log and the curve.

    ``state`` goes to ``train_state.json`` (``epoch``, ``best_val_loss``, ``best_epoch``,
    ``elapsed_s``, ``partial_epoch``); ``improved`` also copies the weights to
    ``weights_best``.
    """
    save_weights_atomic(net, model_dir / WEIGHTS_LAST)
    save_optimizer(opt, model_dir / OPTIMIZER_LAST)
    if improved:
        copy_atomic(model_dir / WEIGHTS_LAST, model_dir / WEIGHTS_BEST)
    write_json(model_dir / TRAIN_STATE, state, force=True)
    write_log(model_dir / TRAINING_LOG, history)
    write_curve(model_dir / TRAINING_CURVE, history, title, loss=loss)


def restore_checkpoint(model_dir: Path, net, opt) -> dict:
    """Load the last weights and optimizer state into ``net`` and ``opt``.

    Returns
    -------
    dict
        ``epoch`` (epochs done), ``best_val_loss``, ``best_epoch``, ``elapsed_s`` (seconds
        trained so far) and ``history`` (the log rows up to ``epoch``).
    """
    net.load_weights(model_dir / WEIGHTS_LAST)
    load_optimizer(opt, net, model_dir / OPTIMIZER_LAST)
    state = json.loads((model_dir / TRAIN_STATE).read_text())
    epoch = int(state["epoch"])
    return {
        "epoch": epoch,
        "best_val_loss": float(state.get("best_val_loss", math.inf)),
        "best_epoch": state.get("best_epoch"),
        "elapsed_s": float(state.get("elapsed_s", 0.0)),
        "history": [r for r in read_log(model_dir / TRAINING_LOG) if r["epoch"] <= epoch],
    }


def save_weights_atomic(net, path: Path) -> None:
    """``net.save_weights`` to a temporary file, then renamed onto ``path``."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        net.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` onto ``dst`` through a temporary file."""
    with atomic_path(dst, force=True) as tmp:
        shutil.copyfile(src, tmp)


def save_optimizer(opt, path: Path) -> None:
    """The optimizer's variables (Adam moments, step count) as an ``.npz``, in order."""
    arrays = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(opt.variables)}
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_optimizer(opt, net, path: Path) -> bool:
    """Restore :func:`save_optimizer`'s variables; False (Adam starts afresh) if unusable."""
    if not path.is_file():
        return False
    opt.build(net.trainable_variables)
    with np.load(path) as data:
        values = [data[k] for k in sorted(data.files)]
    if len(values) != len(opt.variables):
        log.warning("optimizer state in %s does not match; starting Adam afresh", path)
        return False
    for var, val in zip(opt.variables, values):
        var.assign(val)
    return True


def write_log(path: Path, history: list) -> None:
    """``training_log.csv``: one row per epoch, columns :data:`LOG_FIELDS`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    w.writeheader()
    for row in history:
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(buf.getvalue())


def read_log(path: Path) -> list:
    """Rows of :func:`write_log` (``epoch`` and ``steps`` int, other fields float); [] when missing."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        out.append({k: (float(v) if k != "epoch" and v not in ("", None) else v) for k, v in r.items()})
        out[-1]["epoch"] = int(r["epoch"])
        if r.get("steps") not in ("", None):  # a resumed run writes its log again: "2", not "2.0"
            out[-1]["steps"] = int(float(r["steps"]))
    return out


def join_rounds(first: list, second: list) -> list:
    """The history of a two-round run: ``first``'s rows then ``second``'s, each with its ``round``
    (1 or 2) and ``epoch`` counted over the whole run (the second round's logs restart at 1)."""
    done = len(first)
    return ([{**row, "round": 1} for row in first]
            + [{**row, "round": 2, "epoch": done + int(row["epoch"])} for row in second])


def run_log(model_dir) -> list:
    """The training log of the run in ``model_dir`` (:func:`read_log` rows); a two-round run's
    first round (``round1/``) first, joined as :func:`join_rounds` does."""
    model_dir = Path(model_dir)
    first = read_log(model_dir / FIRST_ROUND_DIR / TRAINING_LOG)
    rows = read_log(model_dir / TRAINING_LOG)
    return join_rounds(first, rows) if first else rows


def write_curve(path: Path, history: list, title: str, *, loss: str = "psnr") -> None:
    """``training_curve.png``: validation PSNR per epoch (dB), training -loss for PSNR loss."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ep = [r["epoch"] for r in history]
    if loss == "psnr" and history and history[0].get("loss") not in ("", None):
        ax.plot(ep, [-float(r["loss"]) if r.get("loss") not in ("", None) else np.nan for r in history],
                label="training (-loss)")
    ax.plot(ep, [float(r["val_psnr"]) for r in history], label="validation PSNR")
    if history:
        ax.axhline(float(history[-1]["val_psnr_input"]), color="gray", ls="--",
                   label="validation, input (bicubic)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("PSNR per patch (dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png")


def has_checkpoint(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a resume point (``train_state.json`` + ``weights_last``)."""
    return (model_dir / TRAIN_STATE).is_file() and (model_dir / WEIGHTS_LAST).is_file()


def can_resume(model_dir: Path) -> bool:
    """Whether a run in ``model_dir`` can be resumed: a checkpoint of its own or of its first round."""
    return has_checkpoint(model_dir) or has_checkpoint(model_dir / FIRST_ROUND_DIR)


def prepare_model_dir(model_dir: Path, *, resume: bool, force: bool) -> bool:
    """Check ``model_dir`` for a new run or a resume; True when resuming.

    Raises ``FileNotFoundError`` when resuming without a checkpoint, ``FileExistsError``
    when the directory is a file or is not empty (without ``force``); ``force`` removes
    only the files training writes (a first round's folder included).
    """
    if model_dir.exists() and not model_dir.is_dir():
        msg = f"model directory {str(model_dir)!r} is a file; choose a directory path"
        raise FileExistsError(msg)
    if resume:
        if not has_checkpoint(model_dir):
            msg = (
                f"cannot resume: {str(model_dir)!r} holds no checkpoint "
                f"({TRAIN_STATE} + {WEIGHTS_LAST}); train without --resume"
            )
            raise FileNotFoundError(msg)
        return True
    if model_dir.is_dir() and any(model_dir.iterdir()):
        if not force:
            msg = (
                f"model directory {str(model_dir)!r} is not empty; pass --resume to continue "
                "its training, --force to replace it, or choose another -o"
            )
            raise FileExistsError(msg)
        for name in MODEL_FILES:
            p = model_dir / name
            if p.is_file():
                p.unlink()
        _remove_first_round(model_dir)
    return False


def _remove_first_round(model_dir: Path) -> None:
    first_round = model_dir / FIRST_ROUND_DIR
    if first_round.is_dir():
        prepare_model_dir(first_round, resume=False, force=True)
        if not any(first_round.iterdir()):
            first_round.rmdir()


def remove_new_run(model_dir: Path, *, remove_folder: bool) -> None:
    """Undo the start of a run that failed before its first checkpoint: the files training
    writes (:data:`MODEL_FILES`, a first round's folder), and ``model_dir`` itself when
    ``remove_folder`` (the run created it) and it is then empty. Other files are never touched."""
    for name in MODEL_FILES:
        (model_dir / name).unlink(missing_ok=True)
    _remove_first_round(model_dir)
    if remove_folder and model_dir.is_dir() and not any(model_dir.iterdir()):
        model_dir.rmdir()
