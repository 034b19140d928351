"""IsoNet Estimate PSF on an ImagePlus: the estimate, its table, Log line and plot."""

from __future__ import annotations

import os
from pathlib import Path

from ..convert import ImageError, imageplus_to_volume
from ._common import check_stack, derived_title, factor_of, position_of

__all__ = ["estimate_psf_imageplus", "psf_estimate_table", "psf_estimate_message",
           "show_psf_estimate", "PSF_TABLE_TITLE"]


#: Title of the ResultsTable of IsoNet Estimate PSF.
PSF_TABLE_TITLE = "IsoNet PSF estimate"
_TABLE_COLUMNS = ("sigma_xy", "sigma_z", "sigma_extra", "factor", "psf_spec", "n_cells",
                  "residual", "at_bound")


def _psf_output_path(path, imp) -> Path | None:
    """The PSF file to write (None: none); refuses non-TIFF names and the image's own file."""
    from ...volume_io import check_output_path

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
    from ...psf import gaussian_psf
    from ...psf import estimate_axial_blur, estimate_summary

    command = "IsoNet Estimate PSF"
    check_stack(imp, command)
    f, source = factor_of(imp, factor)
    out = _psf_output_path(psf_output, imp)
    c, t = position_of(imp, channel, frame)
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
        from ...volume_io import write_volume

        dx = vol.voxel_size[2] if vol.voxel_size else 1.0
        write_volume(out, gaussian_psf(rep["sigma_xy"], rep["sigma_z"]), voxel_size=(dx, dx, dx),
                     unit=vol.unit, force=True,  # the image's calibration_of: "pixel" when uncalibrated
                     metadata={"source": command, "input": str(imp.getTitle()),
                               "psf_spec": rep["psf_spec"]})
        summary["psf_output"] = str(out)
    plot_imp = _spectra_imageplus(rep, derived_title(imp, "psf_spectra")) if plot else None
    return summary, plot_imp


def _spectra_imageplus(report: dict, title: str):
    """The spectra plot of an estimate as an ImagePlus (through a temporary PNG)."""
    import tempfile

    import jpype

    from ...psf import plot_spectra

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
