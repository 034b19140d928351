"""Up-front checks shared by every interface: refuse what cannot be meant, before computing.

* :func:`check_counts` -- integer options below their minimum (``--batch 0``), never clamped;
* :func:`check_large_factor` -- an anisotropy factor above :data:`MAX_FACTOR` without the
  confirming option (``--allow-large-factor``);
* :func:`check_contrast` -- a constant (e.g. all-zero) training volume;
* :func:`warn_if_resampled` -- a training volume whose z axis was interpolated before (a
  warning: the stack should come as acquired);
* :func:`check_writable` -- an output folder that cannot be written, before any work;
* :func:`missing_extra` -- which optional extra provides a missing module.

Messages name the option as the interface calls it (:class:`~isonet_ij.workflow.Words`).
"""

from __future__ import annotations


import warnings

from ..volume_io import check_writable
from ._common import CLI_WORDS, Words

__all__ = ["MAX_FACTOR", "EXTRAS", "check_counts", "check_large_factor", "check_contrast",
           "check_writable", "missing_extra", "warn_if_resampled"]

#: The largest anisotropy factor accepted without the confirming option: z spacing 16x the
#: xy spacing is already extreme for light microscopy; a larger one is usually a mistyped
#: factor, and multiplies the output size and the run time by the factor.
MAX_FACTOR = 16.0

#: Optional modules -> the extra of ``pip install isonet-ij[EXTRA]`` that installs them.
EXTRAS = {
    "onnx": "export", "tf2onnx": "export", "onnxruntime": "export", "bioimageio": "export",
    "pydantic": "export", "zarr": "dask", "dask": "dask", "distributed": "dask",
    "scyjava": "imagej", "jpype": "imagej", "imagej": "imagej", "tensorflow": "cpu",
    "keras": "cpu", "csbdeep": "bench", "ctc_metrics": "test",
}


def check_counts(values: dict, minimums: dict, *, words: Words = CLI_WORDS) -> None:
    """Raise ValueError for a value of ``values[name]`` below ``minimums[name]`` (None: unset).

    ``minimums`` maps a name to ``(option name, minimum)``; e.g.
    ``{"batch_size": ("batch", 1)}`` refuses ``batch_size=0`` as "--batch must be an
    integer >= 1, got 0".
    """
    for name, (option, minimum) in minimums.items():
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or int(value) != value or value < minimum:
            what = "a positive integer (>= 1)" if minimum == 1 else f"an integer >= {minimum}"
            msg = f"{words.opt(option)} must be {what}, got {value!r}"
            raise ValueError(msg)


def check_large_factor(factor: float, *, allow: bool = False, words: Words = CLI_WORDS,
                       confirm: str = "allow-large-factor") -> float:
    """``factor`` unless it exceeds :data:`MAX_FACTOR` without ``allow`` (ValueError)."""
    from ..grid import check_factor

    if factor is not None and factor > MAX_FACTOR:
        factor = check_factor(factor, name=words.opt("factor"))
    if factor is not None and factor > MAX_FACTOR and not allow:
        msg = (f"factor {factor:g} is above the largest accepted without confirmation "
               f"({MAX_FACTOR:g}): it would make a {factor:g}x larger volume (and take as much "
               f"longer); check the factor (z spacing / xy spacing) or pass {words.opt(confirm)}")
        raise ValueError(msg)
    return factor


def check_contrast(data, *, what: str = "the volume") -> None:
    """Refuse a volume whose voxels are all equal: training would learn nothing."""
    import numpy as np

    arr = np.asarray(data)
    if arr.size == 0:
        msg = f"{what} is empty; give a 3D stack with data"
        raise ValueError(msg)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if lo == hi:
        kind = "all-zero" if lo == 0 else f"constant (every voxel = {lo:g})"
        msg = (f"{what} is {kind}: there is nothing to learn from; check that the file holds "
               "the acquisition (not an empty channel) and give the right stack")
        raise ValueError(msg)


#: fewest z slices on which :func:`warn_if_resampled` looks for interpolation knots
MIN_SLICES_RESAMPLING = 48


def warn_if_resampled(data, factor, *, what: str = "the training volume", words: Words = CLI_WORDS):
    """Warn (``warnings.warn``: the ImageJ Log, stderr) when the z axis of ``data`` (Z, Y, X) looks interpolated from coarser slices.

    A stack rescaled along z before training (Fiji's Image > Scale, or Image > Adjust > Size
    with interpolation, to make it look isotropic) holds no more axial detail than its
    original slices, and with the rescaled factor IsoNet learns to undo an upsampling that
    did not happen. Detected by :func:`isonet_ij.grid.resampling_period` on the central
    128 x 128 voxels of stacks with at least :data:`MIN_SLICES_RESAMPLING` slices; a
    warning, not a refusal (training goes on). Returns the check (None: not run).
    """
    import numpy as np

    from ..grid import resampling_period

    arr = np.asarray(data)
    if arr.ndim != 3 or arr.shape[0] < MIN_SLICES_RESAMPLING:
        return None
    cy, cx = max((arr.shape[1] - 128) // 2, 0), max((arr.shape[2] - 128) // 2, 0)
    check = resampling_period(arr[:, cy:cy + 128, cx:cx + 128], 0)
    if check["resampled"]:
        period = check["period"]
        warnings.warn(
            f"{what} looks interpolated along z from slices about {period:.1f} slices apart (its second "
            "differences repeat with that period): IsoNet learns from the slices as acquired. If the stack was "
            "rescaled along z (e.g. Image > Scale or Image > Adjust > Size in Fiji), train on the original "
            f"stack, whose {words.opt('factor')} is about {period * float(factor):.3g} "
            f"({period:.1f} x {float(factor):g})", stacklevel=3)
    return check


def missing_extra(exc: ImportError) -> str | None:
    """The advice for a missing optional module (None: not one of :data:`EXTRAS`)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return (f"this needs the optional package {name!r}, which is not installed; install the "
            f"'{extra}' extra: pip install 'isonet-ij[{extra}]' (from a checkout: "
            f"pip install -e '.[{extra}]')")
