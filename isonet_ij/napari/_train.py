"""IsoNet Train dock widget: :func:`isonet_ij.workflow.train_volume` on an image layer, in a child process.

The PSF, Config and training follow the CLI and IsoNet Train in ImageJ
(:func:`~isonet_ij.workflow.resolve_psf` incl. ``auto``,
:func:`~isonet_ij.workflow.training_config`); the validation PSNR of each epoch shows in
the status line while the run goes on.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui import widgets

from .. import workflow as wf
from ._base import IsoNetWidget
from ._fields import field_for, value_of, values_of
from ._jobs import ProcessJob
from ._tasks import train_job
from ._layers import LayerError, factor_of, layer_input

__all__ = ["TrainWidget", "TRAIN_FIELDS", "train_job"]

#: Fields of the widget after the layer, in the ImageJ dialog's order.
TRAIN_FIELDS = ("factor", "psf", "arch", "mode", "epochs", "steps_per_epoch", "patch_size",
                "batch_size", "time_budget", "seed", "rounds", "force")
_CONFIG_FIELDS = ("arch", "epochs", "steps_per_epoch", "batch_size", "seed", "rounds")
_COMMAND = "IsoNet Train"


def _model_dir(value) -> Path:
    text = str(value or "").strip()
    if not text or text == ".":
        msg = f"{_COMMAND}: no model folder given; choose a new (or empty) folder to write the model into"
        raise LayerError(msg)
    return Path(text).expanduser()


class TrainWidget(IsoNetWidget):
    """Train a model on one anisotropic image layer (self-supervised) into a model folder."""

    command = _COMMAND
    run_text = "Train"

    def __init__(self, napari_viewer):
        settings = wf.TRAIN_SETTINGS
        self.model_dir = widgets.FileEdit(name="model_dir", label="model folder (output)", mode="d",
                                          value="")
        self.model_dir.tooltip = settings["model_dir"].ij_help
        labels = {"factor": "factor (0 = from layer scale)"}
        fields = [field_for(settings[n], label=labels.get(n)) for n in TRAIN_FIELDS]
        self.history: list = []
        self.summary: dict | None = None
        super().__init__(napari_viewer, [self.model_dir, *fields])

    def _options(self, shape) -> dict:
        settings = wf.TRAIN_SETTINGS
        mode = value_of(settings["mode"], self.mode.value) or wf.CONFIG_DEFAULTS["mode"]
        psf = str(self.psf.value or "").strip()
        minutes = value_of(settings["time_budget"], self.time_budget.value)
        return {"psf": psf, "mode": mode, "patch_size": value_of(settings["patch_size"], self.patch_size.value),
                "time_budget": float(minutes) * 60 if minutes else None,
                "force": bool(self.force.value),
                "options": values_of(self, settings, _CONFIG_FIELDS)}

    def run(self, *_args):
        """Check the inputs here (errors as notifications), then train in a worker."""
        try:
            inp = layer_input(self.layer.value, _COMMAND)
            model_dir = _model_dir(self.model_dir.value)
            factor, _ = factor_of(inp, self.factor.value, command=_COMMAND)
            opts = self._options(inp.data.shape)
            wf.patch_size_for(opts["patch_size"], inp.data.shape, factor)
        except ValueError as exc:
            self._report(exc)
            return None
        self.history, self.summary = [], None
        # a child process: TensorFlow's training (its XLA step's LLVM) and the viewer's OpenGL
        # driver crash when they share one process; Cancel ends the child, its checkpoints stay
        job = ProcessJob(partial(train_job, inp.data, inp.voxel_size, model_dir, factor=factor, name=inp.name,
                                 **opts), model_dir=model_dir, epochs=int(opts["options"]["epochs"]))
        return self.start(job, self._done, model_dir=model_dir)

    def on_epochs(self, rows: list) -> None:
        for row in rows:
            self.history.append(row)
            self.status.value = (f"epoch {row['epoch']}: validation PSNR {float(row['val_psnr']):.2f} dB "
                                 f"(input {float(row['val_psnr_input']):.2f} dB)")

    def _done(self, summary: dict) -> None:
        self.summary = summary
        best = summary.get("best_val_psnr")
        best_text = f", best validation PSNR {best:.2f} dB" if best is not None else ""
        self.tell(f"{_COMMAND}: model written to {summary['model_dir']} ({summary['epochs']} epochs, "
                  f"{summary['stop_reason']}{best_text}); restore with IsoNet Restore")
