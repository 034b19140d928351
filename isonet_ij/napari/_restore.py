"""IsoNet Restore dock widget: :func:`isonet_ij.workflow.restore_volume` on an image layer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui import widgets

from .. import workflow as wf
from ._base import IsoNetWidget
from ._fields import field_for, values_of
from ._jobs import Job
from ._layers import LayerError, factor_of, isotropic_scale, layer_input, result_kwargs

__all__ = ["RestoreWidget", "RESTORE_FIELDS", "restore_job"]

#: Fields of the widget after layer and model, in order (the ImageJ dialog's).
RESTORE_FIELDS = ("factor", "fusion", "normalization", "batch_size", "max_memory", "weights", "precision", "tta")
_COMMAND = "IsoNet Restore"


def restore_job(data, model_path, *, factor, factor_source, name, options) -> wf.Restored:
    """Load the model (cached) and restore a (Z, Y, X) volume, as ``isonet restore`` does."""
    wf.quiet_tensorflow()
    from ..model import load_model_cached

    tm = load_model_cached(model_path, weights=options.get("weights") or "best")
    return wf.restore_volume(
        data, "ZYX", tm, factor=factor, factor_source=factor_source,
        command=f"napari: {_COMMAND}", input=name, model_path=tm.path,
        fusion=options.get("fusion"), normalization=options.get("normalization") or "volume",
        batch_size=options.get("batch_size"), max_memory=options.get("max_memory"), progress=True,
        precision=options.get("precision") or "auto", tta=bool(options.get("tta")),
    )


def _model_path(text) -> Path:
    text = str(text or "").strip()
    if not text or text == ".":
        msg = (f"{_COMMAND}: no model given; choose a model folder (of IsoNet Train / `isonet train`), "
               "an exported .onnx or bioimage.io .zip, or press 'demo model'")
        raise LayerError(msg)
    path = Path(text).expanduser()
    if not path.exists():
        msg = f"{_COMMAND}: model {text!r} not found (a model folder, .onnx or bioimage.io .zip)"
        raise LayerError(msg)
    return path


class RestoreWidget(IsoNetWidget):
    """Restore an anisotropic image layer into a new layer with isotropic scale."""

    command = _COMMAND
    run_text = "Restore"

    def __init__(self, napari_viewer):
        settings = wf.RESTORE_SETTINGS
        self.model = widgets.FileEdit(name="model", label="model (folder, .onnx or .zip)",
                                      mode="r", filter="*.zip *.onnx *.json", value="")
        self.model.tooltip = settings["model"].ij_help
        self.demo = widgets.PushButton(name="demo", text="demo model (nuclei, factor 8)")
        fields = [field_for(settings[n], label="factor (0 = from layer scale)" if n == "factor" else None)
                  for n in RESTORE_FIELDS]
        super().__init__(napari_viewer, [self.model, self.demo, *fields])
        self.demo.changed.connect(self.use_demo_model)

    def use_demo_model(self, *_args) -> None:
        from ..artifacts import find_demo_package

        try:
            self.model.value = find_demo_package()
        except FileNotFoundError as exc:
            self.fail(f"{_COMMAND}: {exc}")

    def run(self, *_args):
        """Check the inputs here (errors as notifications), then restore in a worker."""
        from ..tiling import parse_memory

        try:
            inp = layer_input(self.layer.value, _COMMAND)
            path = _model_path(self.model.value)
            factor, source = factor_of(inp, self.factor.value, command=_COMMAND)
            options = values_of(self, wf.RESTORE_SETTINGS, RESTORE_FIELDS[1:])
            if options["max_memory"] is not None:
                parse_memory(options["max_memory"])
        except ValueError as exc:
            self._report(exc)
            return None
        job = Job(partial(restore_job, inp.data, path, factor=factor, factor_source=source,
                          name=inp.name, options=options), bar_desc="restore")
        return self.start(job, partial(self._add_result, inp, factor))

    def _add_result(self, inp, factor: float, restored: wf.Restored) -> None:
        kw = result_kwargs(inp, "isotropic", scale=isotropic_scale(inp, factor),
                           provenance=restored.provenance)
        colormap = getattr(getattr(inp.layer, "colormap", None), "name", "gray")
        self.result_layer = self.viewer.add_image(restored.data, colormap=colormap, **kw)
        self.tell(f"{_COMMAND}: {inp.name} -> {kw['name']} ({restored.data.shape[0]} slices, "
                  f"factor {factor:g}, {restored.seconds:g} s)")
