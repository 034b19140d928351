"""IsoNet Estimate PSF and IsoNet Segment dock widgets (as ``isonet psf estimate`` / ``isonet segment``)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui import widgets

from ..workflow import provenance
from ._base import IsoNetWidget
from ._jobs import Job
from ._layers import LayerError, factor_of, layer_input, result_kwargs

__all__ = ["EstimatePSFWidget", "SegmentWidget", "estimate_job", "segment_job", "parse_threshold"]

_PSF = "IsoNet Estimate PSF"
_SEG = "IsoNet Segment"


def estimate_job(data, *, factor, sigma_xy, out, voxel_size, unit, name) -> dict:
    """:func:`isonet_ij.psf.estimate_axial_blur` and its summary; the Gaussian PSF written to ``out``."""
    from ..psf import estimate_axial_blur, estimate_summary, gaussian_psf

    rep = estimate_axial_blur(data, factor=factor, sigma_xy=sigma_xy)
    summary = estimate_summary(rep)
    summary.update(input=name, psf_output=None)
    if out is not None:
        from ..volume_io import write_volume

        dx = voxel_size[2] if voxel_size else 1.0
        write_volume(out, gaussian_psf(rep["sigma_xy"], rep["sigma_z"]), voxel_size=(dx, dx, dx),
                     unit=unit if voxel_size else "pixel", force=True,
                     metadata={"source": f"napari: {_PSF}", "input": name, "psf_spec": rep["psf_spec"]})
        summary["psf_output"] = str(out)
    return summary


def _psf_output(value) -> Path | None:
    text = str(value or "").strip()
    if not text or text == ".":
        return None
    out = Path(text).expanduser()
    if out.suffix.lower() not in (".tif", ".tiff") or out.is_dir():
        msg = f"{_PSF}: PSF output {text!r} must be a .tif file name (or empty: none)"
        raise LayerError(msg)
    return out


class EstimatePSFWidget(IsoNetWidget):
    """Estimate the axial blur of a layer: the ``psf`` spec to paste into IsoNet Train."""

    command = _PSF
    run_text = "Estimate"

    def __init__(self, napari_viewer):
        self.factor = widgets.FloatSpinBox(name="factor", label="factor (0 = from layer scale)",
                                           value=0.0, min=0.0, max=1e6, step=0.1)
        self.sigma_xy = widgets.FloatSpinBox(name="sigma_xy", label="sigma xy (voxels, 0 = fit)",
                                             value=0.0, min=0.0, max=100.0, step=0.1)
        self.psf_output = widgets.FileEdit(name="psf_output", label="write PSF .tif (optional)",
                                           mode="w", filter="*.tif", value="")
        self.summary: dict | None = None
        super().__init__(napari_viewer, [self.factor, self.sigma_xy, self.psf_output])
        self.cancel_button.visible = False  # seconds of work, no steps to stop at

    def run(self, *_args):
        try:
            inp = layer_input(self.layer.value, _PSF)
            factor, _ = factor_of(inp, self.factor.value, command=_PSF)
            out = _psf_output(self.psf_output.value)
        except ValueError as exc:
            self.fail(str(exc))
            return None
        unit = inp.layer.metadata.get("isonet_unit", "um") if isinstance(inp.layer.metadata, dict) else "um"
        job = Job(partial(estimate_job, inp.data, factor=factor, sigma_xy=self.sigma_xy.value or None,
                          out=out, voxel_size=inp.voxel_size, unit=unit, name=inp.name),
                  bar_desc="psf estimate")
        return self.start(job, self._done)

    def _done(self, summary: dict) -> None:
        self.summary = summary
        warn = " (at the bound: no extra axial blur found)" if summary.get("at_bound") else ""
        written = f"; PSF written to {summary['psf_output']}" if summary.get("psf_output") else ""
        self.tell(f"{_PSF}: sigma_xy {summary['sigma_xy']:.3g}, sigma_z {summary['sigma_z']:.3g} "
                  f"voxels{warn}; for IsoNet Train use psf {summary['psf_spec']}{written}")


def parse_threshold(text):
    """``intermodes`` / ``otsu`` or a number (voxels >= value are nuclei)."""
    value = str(text or "").strip().lower() or "intermodes"
    if value in ("intermodes", "otsu"):
        return value
    try:
        return float(value)
    except ValueError:
        msg = f"{_SEG}: threshold must be intermodes, otsu or a number, got {text!r}"
        raise LayerError(msg) from None


def segment_job(data, *, voxel_size, options: dict):
    """:func:`isonet_ij.segment.segment_nuclei_with_details` of a (Z, Y, X) volume."""
    from ..segment import segment_nuclei_with_details

    return segment_nuclei_with_details(data, voxel_size=voxel_size, **options)


class SegmentWidget(IsoNetWidget):
    """Segment nuclei (threshold, fill holes, 3D distance watershed) into a Labels layer."""

    command = _SEG
    run_text = "Segment"

    def __init__(self, napari_viewer):
        from ..segment import FILL_HOLES_MODES

        self.threshold = widgets.LineEdit(name="threshold", label="threshold (intermodes, otsu or value)",
                                          value="intermodes")
        self.fill_holes = widgets.ComboBox(name="fill_holes", label="fill holes",
                                           choices=list(FILL_HOLES_MODES), value="3d")
        self.dynamic = widgets.FloatSpinBox(name="dynamic", label="watershed dynamic", value=2.0,
                                            min=0.0, max=1000.0, step=0.5)
        self.connectivity = widgets.ComboBox(name="connectivity", choices=[6, 26], value=6)
        self.min_size = widgets.SpinBox(name="min_size", label="min size (voxels)", value=0, min=0,
                                        max=10**9)
        super().__init__(napari_viewer, [self.threshold, self.fill_holes, self.dynamic,
                                         self.connectivity, self.min_size])
        self.cancel_button.visible = False

    def run(self, *_args):
        try:
            inp = layer_input(self.layer.value, _SEG)
            options = {"threshold": parse_threshold(self.threshold.value),
                       "fill_holes_mode": self.fill_holes.value, "dynamic": float(self.dynamic.value),
                       "connectivity": int(self.connectivity.value), "min_size": int(self.min_size.value)}
        except ValueError as exc:
            self.fail(str(exc))
            return None
        job = Job(partial(segment_job, inp.data, voxel_size=inp.voxel_size, options=options),
                  bar_desc="segment")
        return self.start(job, partial(self._add_result, inp))

    def _add_result(self, inp, result) -> None:
        prov = provenance(command=f"napari: {_SEG}", input=inp.name, **result.details)
        kw = result_kwargs(inp, "labels", scale=inp.scale, provenance=prov)
        self.result_layer = self.viewer.add_labels(result.labels, **kw)
        self.tell(f"{_SEG}: {int(result.details['n_objects'])} nuclei in {inp.name}")
