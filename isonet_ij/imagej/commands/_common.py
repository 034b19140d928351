"""What every ImageJ command needs: checks, titles, the factor, the model, script errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...workflow import IMAGEJ_WORDS, quiet_tensorflow, resolve_factor
from ..convert import ImageError, calibration_of, check_imageplus

__all__ = ["check_stack", "derived_title", "factor_of", "position_of", "load_model_cached",
           "training_progress", "script_errors", "as_image_error"]

log = logging.getLogger(__name__)


def check_stack(imp, command: str) -> None:
    """Raise :class:`ImageError` unless ``imp`` is a grey 3D stack (>= 2 z slices)."""
    check_imageplus(imp, what=f"image for {command}")
    nz = int(imp.getNSlices())
    if nz < 2:
        nc, nt = int(imp.getNChannels()), int(imp.getNFrames())
        hint = ""
        if nt > 1 or nc > 1:
            hint = (
                f" (it has {nc} channel(s) and {nt} frame(s): if those are z slices, fix the "
                "dimensions with Image > Properties or Image > Hyperstacks > Re-order)"
            )
        msg = (
            f"{command} needs a 3D stack with at least 2 z slices; "
            f"{str(imp.getTitle())!r} is a 2D image{hint}"
        )
        raise ImageError(msg)


def derived_title(imp, suffix: str, *, unique: bool = True) -> str:
    """``"<title without extension>_<suffix>"``, made unique as ImageJ does for duplicates
    (``..._isotropic-1``, ``-2``, ...) so that a recorded ``selectWindow`` picks this one."""
    title = _base_title(imp, suffix)
    if unique:
        import jpype

        WM = jpype.JClass("ij.WindowManager")
        if WM.getImage(title) is not None:
            title = str(WM.getUniqueName(title))
    return title


def _base_title(imp, suffix: str) -> str:
    title = str(imp.getTitle())
    stem, ext = os.path.splitext(title)
    if ext.lower() in (".tif", ".tiff", ".ome", ".png", ".zip", ".czi", ".lsm", ".nd2", ".ims"):
        title = stem
        if title.lower().endswith(".ome"):
            title = title[:-4]
    return f"{title}_{suffix}"


def factor_of(imp, factor=None, *, fallback=None) -> tuple[float, str]:
    """Anisotropy factor to use and where it came from (:func:`isonet_ij.workflow.resolve_factor`).

    ``factor`` when given (> 0; None or 0: not given), else the calibration's
    ``pixelDepth / pixelWidth``, else ``fallback`` (the model's factor).
    """
    vs, _ = calibration_of(imp)
    with as_image_error():
        return resolve_factor(factor or None, vs, fallback=fallback, what=str(imp.getTitle()),
                              words=IMAGEJ_WORDS)


class as_image_error:  # noqa: N801 - used as a statement: `with as_image_error():`
    """Turn a ValueError of the workflow into an :class:`ImageError` (a message, no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, ValueError) and not isinstance(exc, ImageError):
            raise ImageError(str(exc)) from exc
        return False


def position_of(imp, channel, frame) -> tuple[int, int]:
    """0-based (channel, frame): given 1-based values, else the image's current position."""
    c = int(channel) if channel else int(imp.getC())
    t = int(frame) if frame else int(imp.getT())
    return c - 1, t - 1


def load_model_cached(path, *, weights: str = "best"):
    """:func:`isonet_ij.model.load_model_cached` with the dialog's words for a missing model."""
    quiet_tensorflow()
    from ...model import load_model_cached as cached

    path = Path(str(path)).expanduser()
    if not path.exists():
        msg = (f"model folder {str(path)!r} does not exist; give the folder written by IsoNet Train, "
               "an exported .onnx or a bioimage.io .zip")
        raise FileNotFoundError(msg)
    return cached(path, weights=weights)


def training_progress(model_dir, epochs: int) -> float | None:
    """Fraction of ``epochs`` finished according to ``train_state.json`` (None if unknown).

    A two-round run counts both rounds: its first round's state is in ``round1/``.
    """
    import json

    from ...checkpoints import FIRST_ROUND_DIR
    from ...config import TRAIN_STATE

    done = None
    for folder in (Path(str(model_dir)) / FIRST_ROUND_DIR, Path(str(model_dir))):
        try:
            done = (done or 0) + int(json.loads((folder / TRAIN_STATE).read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None if done is None else min(1.0, done / max(1, int(epochs)))


class script_errors:  # noqa: N801 - used as a statement: `with script_errors(name):`
    """Show an error of a script command as ``IJ.error`` (traceback in the Log window).

    For the ``fiji_scripts``: user errors (bad image, options, model folder) become one
    plain message; anything else also logs its traceback. The exception is consumed, so
    Fiji shows the message instead of a Python traceback; Java exceptions (a canceled
    macro) pass through.
    """

    def __init__(self, name: str):
        self.name = name
        self.message = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        import traceback

        import jpype

        if isinstance(exc, jpype.JException) or not isinstance(exc, Exception):
            return False
        IJ = jpype.JClass("ij.IJ")
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, (ValueError, FileNotFoundError, FileExistsError)):
            self.message = text
            IJ.log(f"{self.name}: {text}")
        else:
            self.message = f"{type(exc).__name__}: {text} (details in the Log window)"
            IJ.log(f"{self.name} failed:\n" + "".join(traceback.format_exception(exc_type, exc, tb)))
        IJ.error(self.name, self.message)
        return True
