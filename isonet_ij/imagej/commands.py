"""IsoNet Train / Restore / Segment / Estimate PSF on ImagePlus stacks: convert, call the engine.

These functions are what the ImageJ commands (:mod:`isonet_ij.imagej.bridge`) and the Fiji
scripts (``fiji_scripts/*.py``) call. They take an ``ij.ImagePlus``, never modify it, and
return a new ImagePlus (or a summary for training). The work is done by the engine
(:func:`isonet_ij.restoration.restore_stack`, :func:`isonet_ij.segment.segment_nuclei`,
:func:`isonet_ij.training.train`, :func:`isonet_ij.psf.estimate_axial_blur`); only
conversion and checks live here.

Bad input raises :class:`~isonet_ij.imagej.convert.ImageError` (a ``ValueError``) with a
message meant for an ImageJ user.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .convert import (
    ImageError,
    array_to_imageplus,
    calibration_of,
    check_imageplus,
    imageplus_to_volume,
    label_lut,
)

__all__ = [
    "ImageError",
    "restore_imageplus",
    "segment_imageplus",
    "train_imageplus",
    "estimate_psf_imageplus",
    "psf_estimate_table",
    "psf_estimate_message",
    "show_psf_estimate",
    "PSF_TABLE_TITLE",
    "check_stack",
    "check_restore_memory",
    "restore_memory_need",
    "factor_of",
    "derived_title",
    "load_model_cached",
    "training_progress",
    "script_errors",
]

log = logging.getLogger(__name__)



def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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


def derived_title(imp, suffix: str) -> str:
    """``"<title without extension>_<suffix>"``."""
    title = str(imp.getTitle())
    stem, ext = os.path.splitext(title)
    if ext.lower() in (".tif", ".tiff", ".ome", ".png", ".zip", ".czi", ".lsm", ".nd2", ".ims"):
        title = stem
        if title.lower().endswith(".ome"):
            title = title[:-4]
    return f"{title}_{suffix}"


def factor_of(imp, factor=None, *, fallback=None) -> tuple[float, str]:
    """Anisotropy factor to use and where it came from.

    ``factor`` when given (> 0), else the calibration's ``pixelDepth / pixelWidth`` when the
    image is calibrated, else ``fallback`` (the model's factor).
    """
    from ..grid import check_factor

    if factor:
        return check_factor(factor, name="factor"), "option"
    vs, _ = calibration_of(imp)
    if vs is not None:
        dz, _, dx = vs
        ratio = dz / dx
        if ratio > 1.0 + 1e-9:
            return check_factor(ratio, name="factor (voxel depth / pixel width)"), "calibration"
        if fallback is None:
            msg = (
                f"the calibration of {str(imp.getTitle())!r} gives voxel depth / pixel width = "
                f"{dz:g} / {dx:g} = {ratio:.3g}, not an anisotropic stack; set the voxel depth "
                "(Image > Properties) or give factor=F"
            )
            raise ImageError(msg)
    if fallback is None:
        msg = (
            f"{str(imp.getTitle())!r} has no calibration, so voxel depth / pixel width is "
            "unknown; set it in Image > Properties or give factor=F (e.g. factor=8 for 0.8 um "
            "z steps at 0.1 um pixels)"
        )
        raise ImageError(msg)
    return check_factor(fallback, name="factor (the model's)"), "model"


# --------------------------------------------------------------------------- memory


def _java_free_bytes() -> int:
    """Bytes the JVM can still allocate: max heap minus what is in use."""
    import jpype

    rt = jpype.JClass("java.lang.Runtime").getRuntime()
    return int(rt.maxMemory()) - (int(rt.totalMemory()) - int(rt.freeMemory()))


def _python_available_bytes() -> int | None:
    """Physical memory available to this process (Linux ``MemAvailable``), or None."""
    from ..volume_io import available_memory

    return available_memory()


def restore_memory_need(imp, factor: float, max_memory) -> dict:
    """Bytes a restoration of ``imp`` needs in the JVM heap and in Python.

    The restored stack is float32 with ``floor((Z-1)*f)+1`` slices per channel and frame;
    it lives once in Python (engine output) and once in the Java heap (the new ImagePlus).
    Python also holds a float32 copy of the input and the engine's inference budget.
    """
    from ..grid import n_output_slices
    from ..tiling import parse_memory

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


# --------------------------------------------------------------------------- model


def load_model_cached(path, *, weights: str = "best"):
    """:func:`isonet_ij.model.load_model_cached` with the dialog's words for a missing model."""
    _quiet_tf()
    from ..model import load_model_cached as cached

    path = Path(str(path)).expanduser()
    if not path.exists():
        msg = (f"model {str(path)!r} does not exist; give the folder written by IsoNet Train, "
               "an exported .onnx or a bioimage.io .zip")
        raise FileNotFoundError(msg)
    return cached(path, weights=weights)


# --------------------------------------------------------------------------- restore


def restore_imageplus(
    imp,
    *,
    model,
    factor=None,
    fusion=None,
    normalization: str = "volume",
    weights: str = "best",
    max_memory="1G",
    batch_size: int = 8,
    title: str | None = None,
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
    fusion, normalization, weights, max_memory, batch_size
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
    _quiet_tf()
    from ..model import IsoNetModel
    from ..restoration import restore_stack
    from ..tiling import parse_memory

    check_stack(imp, "IsoNet Restore")
    parse_memory(max_memory)
    if isinstance(model, IsoNetModel):
        tm = model
    else:
        if not str(model).strip():
            msg = "no model folder given: model=[/path/to/model] (the folder written by IsoNet Train)"
            raise ImageError(msg)
        tm = load_model_cached(model, weights=weights)
    f, source = factor_of(imp, factor, fallback=tm.config.factor)
    if source == "model":
        log.info("%s has no calibration; using the model's factor %g", imp.getTitle(), f)
    check_restore_memory(imp, f, max_memory)
    vol = imageplus_to_volume(imp)
    restored, infos = restore_stack(
        vol.data, vol.axes, tm, factor=f, fusion=fusion, normalization=normalization,
        batch_size=int(batch_size), max_memory=max_memory,
    )
    cal = imp.getCalibration().copy()
    cal.pixelDepth = float(cal.pixelDepth) / f
    out = array_to_imageplus(
        restored, axes=vol.axes, title=title or derived_title(imp, "isotropic"), calibration=cal,
    )
    out.setProperty("Info", _provenance_text(
        command="IsoNet Restore", input=str(imp.getTitle()), model=str(tm.path) if tm.path else None,
        factor=f, factor_source=source, model_factor=tm.config.factor, arch=tm.config.arch,
        mode=tm.config.mode, psf=tm.config.psf, fusion=infos[0]["fusion"], weights=tm.weights,
        normalization=[i["normalization"] for i in infos],
        z_grid=f"acquired slice i at output slice i*{f:g}",
        seconds=round(sum(i["seconds"] for i in infos), 2),
    ))
    return out


def _provenance_text(**kw) -> str:
    import json

    from .. import __version__

    return json.dumps({"software": f"isonet-ij {__version__}", **kw}, default=str)


# --------------------------------------------------------------------------- segment


def _position(imp, channel, frame) -> tuple[int, int]:
    """0-based (channel, frame): given 1-based values, else the image's current position."""
    c = int(channel) if channel else int(imp.getC())
    t = int(frame) if frame else int(imp.getT())
    return c - 1, t - 1


def segment_imageplus(
    imp,
    *,
    threshold="intermodes",
    fill_holes: str = "3d",
    dynamic: float = 2.0,
    connectivity: int = 6,
    min_size: int = 0,
    channel: int | None = None,
    frame: int | None = None,
    title: str | None = None,
):
    """Segment nuclei of one channel / frame of an ImagePlus stack.

    Parameters
    ----------
    imp : ij.ImagePlus
        8/16/32-bit stack, >= 2 z slices; not modified.
    threshold : {"intermodes", "otsu"} or float or str
        ImageJ method name or an intensity (voxels >= value are nuclei).
    fill_holes, dynamic, connectivity, min_size
        As :func:`isonet_ij.segment.segment_nuclei`; the watershed uses the image's
        calibrated voxel size.
    channel, frame : int, optional
        1-based; default (None or 0) the image's current channel / frame.
    title : str, optional
        Default ``<input>_labels``.

    Returns
    -------
    ij.ImagePlus
        16-bit label stack (0 background, nuclei 1..n) with a label LUT and the input's
        spatial calibration.
    """
    from ..segment import segment_nuclei

    check_stack(imp, "IsoNet Segment")
    c, t = _position(imp, channel, frame)
    vol = imageplus_to_volume(imp, channel=c, frame=t)
    if isinstance(threshold, str) and threshold.strip().lower() not in ("intermodes", "otsu"):
        try:
            threshold = float(threshold)
        except ValueError:
            msg = f"threshold must be intermodes, otsu or a number, got {threshold!r}"
            raise ImageError(msg) from None
    elif isinstance(threshold, str):
        threshold = threshold.strip().lower()
    labels, details = segment_nuclei(
        vol.data, voxel_size=vol.voxel_size, threshold=threshold, fill_holes_mode=fill_holes,
        dynamic=float(dynamic), connectivity=int(connectivity), min_size=int(min_size),
        return_details=True,
    )
    n = int(details["n_objects"])
    cal = imp.getCalibration().copy()
    out = array_to_imageplus(
        labels, axes="ZYX", title=title or derived_title(imp, "labels"), calibration=cal,
        display_range=(0, max(255, n)),
    )
    out.setLut(label_lut())
    out.setDisplayRange(0, max(255, n))
    out.setProperty("Info", _provenance_text(
        command="IsoNet Segment", input=str(imp.getTitle()), channel=c + 1, frame=t + 1, **details,
    ))
    return out


# --------------------------------------------------------------------------- train


def _psf_for(spec: str, imp, mode: str):
    """The PSF of a spec on the isotropic grid (dx, dy, dx) of the image."""
    if mode == "none":
        return None, {}
    if not spec or not str(spec).strip():
        msg = "mode split/full needs a PSF: psf=gaussian:2,8 (sigmas in voxels), confocal:..., or a PSF .tif"
        raise ImageError(msg)
    from ..psf import psf_for_volume

    vs, _ = calibration_of(imp)
    try:
        return psf_for_volume(str(spec).strip(), vs, calibration_hint="set it (Image > Properties)")
    except ValueError as exc:
        raise ImageError(str(exc)) from exc


def _auto_psf(spec, data, factor, voxel_size) -> tuple[str, dict]:
    """``psf=auto[:MODEL]``: the PSF spec estimated from the volume's own spectra."""
    from ..psf import auto_psf_spec

    model = str(spec).strip().partition(":")[2] or None
    try:
        spec, estimate = auto_psf_spec(data, factor, model=model,
                                       xy_voxel_size=voxel_size[2] if voxel_size else None)
    except ValueError as exc:
        msg = f"psf=auto: {exc}"
        raise ImageError(msg) from exc
    log.info("psf=auto: estimated %s", spec)
    return spec, estimate


def train_imageplus(
    imp,
    *,
    model_dir,
    psf: str = "gaussian:2,8",
    mode: str = "split",
    arch: str = "isonet2",
    factor=None,
    epochs: int = 100,
    steps_per_epoch: int = 50,
    patch_size: int = 64,
    batch_size: int = 16,
    time_budget=None,
    seed: int = 0,
    channel: int | None = None,
    frame: int | None = None,
    resume: bool = False,
    force: bool = False,
    **config_overrides,
) -> dict:
    """Train IsoNet on one channel / frame of an ImagePlus stack; write a model directory.

    Parameters
    ----------
    imp : ij.ImagePlus
        Anisotropic 8/16/32-bit stack; not modified.
    model_dir : str or Path
        Output model directory (``isonet restore --model`` reads it).
    psf, mode, arch, epochs, steps_per_epoch, patch_size, batch_size, seed
        As ``isonet train``; ``psf="auto"`` estimates a Gaussian PSF from the stack itself
        (as IsoNet Estimate PSF and ``isonet train --psf auto``).
    factor : float, optional
        Default: the calibration's voxel depth / pixel width.
    time_budget : float, optional
        Seconds (None or 0: no limit).
    channel, frame : int, optional
        1-based; default the image's current channel / frame.
    resume, force
        Continue from / replace an existing model directory.
    **config_overrides
        Other :class:`isonet_ij.config.Config` fields (e.g. ``n_validation``).

    Returns
    -------
    dict
        ``model_dir``, ``stop_reason``, ``epochs``, ``best_val_psnr``, ``val_psnr_input``,
        ``seconds``, ``factor``.
    """
    _quiet_tf()
    from ..config import Config
    from ..training import train

    check_stack(imp, "IsoNet Train")
    if not str(model_dir or "").strip():
        msg = "no model folder given: model=[/path/to/new model folder]"
        raise ImageError(msg)
    model_dir = Path(str(model_dir)).expanduser()
    c, t = _position(imp, channel, frame)
    vol = imageplus_to_volume(imp, channel=c, frame=t)
    t0 = time.monotonic()
    if resume:
        from ..config import read_config

        stored = read_config(model_dir)
        cfg = stored.replace(epochs=max(int(epochs), stored.epochs))
        h, f = None, stored.factor
    else:
        f, _ = factor_of(imp, factor)
        estimate = None
        if mode != "none" and str(psf or "").strip().lower().partition(":")[0] == "auto":
            psf, estimate = _auto_psf(psf, vol.data, f, vol.voxel_size)
        h, psf_info = _psf_for(psf, imp, mode)
        if estimate is not None:
            psf_info = {**psf_info, "auto_estimate": estimate}
        cfg = Config(
            factor=f, arch=arch, mode=mode, psf=str(psf).strip() if mode != "none" else "",
            psf_info=psf_info, patch_size=int(patch_size), batch_size=int(batch_size),
            epochs=int(epochs), steps_per_epoch=int(steps_per_epoch), seed=int(seed),
            train_input=f"ImageJ: {imp.getTitle()} (channel {c + 1}, frame {t + 1})",
            voxel_size=list(vol.voxel_size) if vol.voxel_size else None, **config_overrides,
        ).validate()
    budget = float(time_budget) if time_budget else None
    res = train(vol.data, cfg, psf=h, model_dir=model_dir, time_budget=budget, resume=resume,
                force=force)
    hist = res.history
    return {
        "model_dir": str(model_dir),
        "stop_reason": res.stop_reason,
        "epochs": len(hist),
        "best_val_psnr": max((r["val_psnr"] for r in hist), default=None),
        "val_psnr_input": hist[-1]["val_psnr_input"] if hist else None,
        "seconds": round(time.monotonic() - t0, 1),
        "factor": f,
    }


# --------------------------------------------------------------------------- estimate PSF

#: Title of the ResultsTable of IsoNet Estimate PSF.
PSF_TABLE_TITLE = "IsoNet PSF estimate"
_TABLE_COLUMNS = ("sigma_xy", "sigma_z", "sigma_extra", "factor", "psf_spec", "n_cells",
                  "residual", "at_bound")


def _psf_output_path(path, imp) -> Path | None:
    """The PSF file to write (None: none); refuses non-TIFF names and the image's own file."""
    from ..volume_io import check_output_path

    text = str(path or "").strip()
    if not text:
        return None
    out = Path(text).expanduser()
    if out.suffix.lower() not in (".tif", ".tiff"):
        msg = f"psf_output {text!r} must be a .tif file (the PSF is written as an ImageJ TIFF)"
        raise ImageError(msg)
    if out.is_dir():
        msg = f"psf_output {text!r} is a folder; give a file name ending in .tif"
        raise ImageError(msg)
    source = None
    info = imp.getOriginalFileInfo()
    if info is not None and info.directory is not None and info.fileName is not None:
        source = os.path.join(str(info.directory), str(info.fileName))
    return check_output_path(out, force=True, inputs=[source])


def estimate_psf_imageplus(
    imp,
    *,
    factor=None,
    sigma_xy=None,
    psf_output=None,
    plot: bool = False,
    channel: int | None = None,
    frame: int | None = None,
):
    """Estimate the axial Gaussian blur of one channel / frame of an ImagePlus stack.

    Parameters
    ----------
    imp : ij.ImagePlus
        Anisotropic 8/16/32-bit stack, >= 4 z slices and >= 16 x 16 pixels, not constant;
        not modified.
    factor : float, optional
        Anisotropy factor; default (None or 0) the calibration's voxel depth / pixel width.
    sigma_xy : float, optional
        Lateral sigma in voxels if known; None or 0: fitted to the lateral spectrum.
    psf_output : str or Path, optional
        Write the Gaussian PSF on the isotropic grid there (a ``.tif``, replaced if it
        exists; never the image's own file), as ``isonet psf estimate -o`` does.
    plot : bool
        Also return the spectra plot (:func:`isonet_ij.psf.plot_spectra`) as an
        RGB ImagePlus.
    channel, frame : int, optional
        1-based; default the image's current channel / frame.

    Returns
    -------
    summary : dict
        :func:`isonet_ij.psf.estimate_summary` of the estimate (``sigma_xy``,
        ``sigma_z``, ``sigma_extra`` in voxels of the isotropic grid, ``psf_spec``, ...)
        plus ``factor_source``, ``channel``, ``frame``, ``input`` and ``psf_output``
        (the written file or None).
    plot_imp : ij.ImagePlus or None
        The spectra plot when ``plot``.

    Raises
    ------
    ImageError
        No image, RGB, 2D, no usable factor, a bad output path.
    ValueError
        The engine's message: fewer than 4 slices, too small, constant, too noisy.
    """
    from ..psf import gaussian_psf
    from ..psf import estimate_axial_blur, estimate_summary

    command = "IsoNet Estimate PSF"
    check_stack(imp, command)
    f, source = factor_of(imp, factor)
    out = _psf_output_path(psf_output, imp)
    c, t = _position(imp, channel, frame)
    vol = imageplus_to_volume(imp, channel=c, frame=t)
    try:
        rep = estimate_axial_blur(vol.data, factor=f,
                                  sigma_xy=float(sigma_xy) if sigma_xy else None)
    except ValueError as exc:  # the engine's message is meant for the user: no traceback
        raise ImageError(str(exc)) from exc
    summary = estimate_summary(rep)
    summary.update(factor_source=source, channel=c + 1, frame=t + 1, input=str(imp.getTitle()),
                   psf_output=None)
    if out is not None:
        from ..volume_io import write_volume

        _, unit = calibration_of(imp)
        dx = vol.voxel_size[2] if vol.voxel_size else 1.0
        write_volume(out, gaussian_psf(rep["sigma_xy"], rep["sigma_z"]), voxel_size=(dx, dx, dx),
                     unit=unit if vol.voxel_size else "pixel", force=True,
                     metadata={"source": command, "input": str(imp.getTitle()),
                               "psf_spec": rep["psf_spec"]})
        summary["psf_output"] = str(out)
    plot_imp = _spectra_imageplus(rep, derived_title(imp, "psf_spectra")) if plot else None
    return summary, plot_imp


def _spectra_imageplus(report: dict, title: str):
    """The spectra plot of an estimate as an ImagePlus (through a temporary PNG)."""
    import tempfile

    import jpype

    from ..psf import plot_spectra

    with tempfile.TemporaryDirectory(prefix="isonet_psf_") as tmp:
        png = Path(tmp) / "spectra.png"
        plot_spectra(report, png)
        plot_imp = jpype.JClass("ij.IJ").openImage(str(png))
    if plot_imp is None:  # pragma: no cover - ImageJ reads every PNG matplotlib writes
        msg = "ImageJ could not open the spectra plot"
        raise RuntimeError(msg)
    plot_imp.setTitle(title)
    return plot_imp


def psf_estimate_table(summary: dict):
    """An ``ij.measure.ResultsTable`` with one row of an estimate (not shown).

    Columns ``sigma_xy, sigma_z, sigma_extra, factor, psf_spec`` (text), ``n_cells,
    residual, at_bound`` (1 or 0); show it with ``table.show(PSF_TABLE_TITLE)``.
    """
    import jpype

    rt = jpype.JClass("ij.measure.ResultsTable")()
    rt.setPrecision(4)
    rt.incrementCounter()
    for key in _TABLE_COLUMNS:
        value = summary[key]
        if isinstance(value, str):
            rt.addValue(key, jpype.JString(value))
        else:
            rt.addValue(key, jpype.JDouble(float(value)))
    return rt


def show_psf_estimate(summary: dict, plot_imp=None):
    """Show an estimate: the table :data:`PSF_TABLE_TITLE`, a Log line, the plot; return the table.

    Headless ImageJ shows no table window (the table is still returned).
    """
    import jpype

    IJ = jpype.JClass("ij.IJ")
    table = psf_estimate_table(summary)
    table.show(PSF_TABLE_TITLE)
    IJ.log(psf_estimate_message(summary))
    if summary.get("psf_output"):
        IJ.log(f"IsoNet Estimate PSF: PSF written to {summary['psf_output']}")
    if plot_imp is not None:
        plot_imp.show()
    return table


def psf_estimate_message(summary: dict) -> str:
    """The Log line of an estimate: the ``psf=`` spec to paste into IsoNet Train."""
    warn = " (at the bound: no extra axial blur found)" if summary.get("at_bound") else ""
    return (
        f"IsoNet Estimate PSF: {summary['input']}: sigma_xy {summary['sigma_xy']:.3g}, "
        f"sigma_z {summary['sigma_z']:.3g} voxels (factor {summary['factor']:g}){warn}; "
        f"for IsoNet Train use psf=[{summary['psf_spec']}] (CLI: --psf {summary['psf_spec']})"
    )


def training_progress(model_dir, epochs: int) -> float | None:
    """Fraction of ``epochs`` finished according to ``train_state.json`` (None if unknown)."""
    import json

    try:
        state = json.loads((Path(str(model_dir)) / "train_state.json").read_text())
        return min(1.0, int(state["epoch"]) / max(1, int(epochs)))
    except (OSError, ValueError, KeyError, TypeError):
        return None



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
