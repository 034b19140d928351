"""IsoNet Restore on an ImagePlus: memory checks, conversion, :func:`isonet_ij.workflow.restore_volume`."""

from __future__ import annotations

import json
import logging

from ...workflow import IMAGEJ_WORDS, RESTORE_DEFAULTS, check_not_restored, quiet_tensorflow, restore_volume
from ..convert import ImageError, array_to_imageplus, imageplus_to_volume
from ._common import as_image_error, check_stack, derived_title, factor_of, load_model_cached

__all__ = ["restore_imageplus", "check_restore_memory", "restore_memory_need"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- memory


def _java_free_bytes() -> int:
    """Bytes the JVM can still allocate: max heap minus what is in use."""
    import jpype

    rt = jpype.JClass("java.lang.Runtime").getRuntime()
    return int(rt.maxMemory()) - (int(rt.totalMemory()) - int(rt.freeMemory()))


def _python_available_bytes() -> int | None:
    """Physical memory available to this process (Linux ``MemAvailable``), or None."""
    from ...volume_io import available_memory

    return available_memory()


def restore_memory_need(imp, factor: float, max_memory) -> dict:
    """Bytes a restoration of ``imp`` needs in the JVM heap and in Python.

    The restored stack is float32 with ``floor((Z-1)*f)+1`` slices per channel and frame;
    it lives once in Python (engine output) and once in the Java heap (the new ImagePlus).
    Python also holds a float32 copy of the input and the engine's inference budget.
    """
    from ...grid import n_output_slices
    from ...tiling import parse_memory

    nc, nz, nt = int(imp.getNChannels()), int(imp.getNSlices()), int(imp.getNFrames())
    w, h = int(imp.getWidth()), int(imp.getHeight())
    n_out = n_output_slices(nz, factor)
    out = 4 * n_out * h * w * nc * nt
    inp = 4 * nz * h * w * nc * nt
    return {
        "output_shape": (nt, n_out, nc, h, w),
        "output_bytes": out,
        "java_bytes": out,
        "python_bytes": out + 2 * inp + parse_memory(max_memory),
    }


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**28 else f"{n / 2**20:.0f} MB"


def check_restore_memory(imp, factor: float, max_memory) -> dict:
    """Refuse (ImageError) when the restored stack cannot fit the heap or the memory."""
    need = restore_memory_need(imp, factor, max_memory)
    nt, n_out, nc, h, w = need["output_shape"]
    shape = f"{w} x {h} x {n_out} slices" + (f" x {nc} channels" if nc > 1 else "") + (
        f" x {nt} frames" if nt > 1 else "")
    java_free = _java_free_bytes()
    if java_free < need["java_bytes"] * 1.05:
        import jpype

        jpype.JClass("java.lang.System").gc()
        java_free = _java_free_bytes()
    if java_free < need["java_bytes"] * 1.05:
        msg = (
            f"the restored stack ({shape}, 32-bit, factor {factor:g}) needs {_gb(need['java_bytes'])} "
            f"but ImageJ has only {_gb(max(java_free, 0))} of memory left; raise ImageJ's memory "
            "(Edit > Options > Memory & Threads, or `isonet imagej --heap 16g`), close images, "
            "or restore a crop"
        )
        raise ImageError(msg)
    avail = _python_available_bytes()
    if avail is not None and avail < need["python_bytes"]:
        msg = (
            f"the restoration ({shape}, factor {factor:g}) needs about "
            f"{_gb(need['python_bytes'])} of memory besides ImageJ's heap but only "
            f"{_gb(avail)} is available; restore a crop or free memory"
        )
        raise ImageError(msg)
    return need


def restore_imageplus(
    imp,
    *,
    model,
    factor=None,
    fusion=None,
    normalization: str = RESTORE_DEFAULTS["normalization"],
    weights: str = RESTORE_DEFAULTS["weights"],
    max_memory=RESTORE_DEFAULTS["max_memory"],
    batch_size: int = RESTORE_DEFAULTS["batch_size"],
    title: str | None = None,
    precision: str = RESTORE_DEFAULTS["precision"],
    tta: bool = RESTORE_DEFAULTS["tta"],
):
    """Restore isotropic resolution of an ImagePlus stack (all channels and frames).

    Parameters
    ----------
    imp : ij.ImagePlus
        8/16/32-bit stack or hyperstack with >= 2 z slices; not modified.
    model : str or Path or IsoNetModel
        Model directory (of IsoNet Train / ``isonet train``), ``.onnx``, bioimage.io ``.zip``,
        or a loaded model.
    factor : float, optional
        Anisotropy factor; default ``pixelDepth / pixelWidth`` of the calibration, else the
        model's factor (uncalibrated image).
    fusion, normalization, weights, max_memory, batch_size, precision, tta
        As :func:`isonet_ij.restoration.restore` (``fusion=None``: the model's).
    title : str, optional
        Title of the result; default ``<input>_isotropic``.

    Returns
    -------
    ij.ImagePlus
        32-bit, same channels and frames, ``floor((Z-1)*f)+1`` slices (acquired slice ``i``
        at slice ``i*f``); calibration of the input with the voxel depth divided by ``f``;
        provenance in the ``Info`` property.

    Raises
    ------
    ImageError
        No image, RGB, 2D, no usable factor, or a result too large for memory.
    FileNotFoundError, ValueError
        A missing or invalid model directory, bad options.
    """
    quiet_tensorflow()
    from ...model import IsoNetModel
    from ...tiling import parse_memory

    check_stack(imp, "IsoNet Restore")
    parse_memory(max_memory)
    if isinstance(model, IsoNetModel):
        tm = model
    else:
        if not str(model).strip():
            msg = "no model folder given: model=[/path/to/model] (the folder written by IsoNet Train)"
            raise ImageError(msg)
        tm = load_model_cached(model, weights=weights)
    with as_image_error():
        check_not_restored(imp.getProperty("Info"), factor, calibrated=bool(imp.getCalibration().scaled()),
                           what=str(imp.getTitle()), words=IMAGEJ_WORDS)
    f, source = factor_of(imp, factor, fallback=tm.config.factor)
    if source == "model":
        log.info("%s has no calibration; using the model's factor %g", imp.getTitle(), f)
    check_restore_memory(imp, f, max_memory)
    vol = imageplus_to_volume(imp)
    res = restore_volume(
        vol.data, vol.axes, tm, factor=f, factor_source=source, command="IsoNet Restore",
        input=str(imp.getTitle()), model_path=tm.path, fusion=fusion,
        normalization=normalization, batch_size=int(batch_size), max_memory=max_memory,
        precision=precision, tta=bool(tta),
    )
    cal = imp.getCalibration().copy()
    cal.pixelDepth = float(cal.pixelDepth) / f
    out = array_to_imageplus(
        res.data, axes=vol.axes, title=title or derived_title(imp, "isotropic"), calibration=cal,
    )
    out.setProperty("Info", json.dumps(res.provenance, default=str))
    return out
