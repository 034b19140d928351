"""What every IsoNet dock widget has: a layer choice, Run / Cancel, a progress bar, a status line.

A user mistake (a 2D, RGB or Labels layer, a missing model, a bad factor) is a
:class:`~isonet_ij.napari._layers.LayerError` or an engine ``ValueError``; it becomes a
napari error notification (:func:`napari.utils.notifications.show_error`) and changes
nothing. Work runs in a ``thread_worker`` (:func:`isonet_ij.napari._jobs.guarded`).
"""

from __future__ import annotations

import logging

from magicgui import widgets
from napari.utils.notifications import show_error, show_info

from ._jobs import Job, guarded

__all__ = ["IsoNetWidget", "USER_ERRORS"]

log = logging.getLogger(__name__)

#: Exceptions whose message is meant for the user (no traceback).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def _image_layers(widget) -> list:
    """Choices of the layer field: every layer (a wrong kind is refused with a message)."""
    viewer = getattr(widget, "_isonet_viewer", None)
    if viewer is None:
        return []
    return [(layer.name, layer) for layer in viewer.layers]


class IsoNetWidget(widgets.Container):
    """A dock widget: ``layer`` field, the command's fields, Run, Cancel, progress, status."""

    command = "IsoNet"
    run_text = "Run"

    def __init__(self, napari_viewer, fields: list):
        self.viewer = napari_viewer
        self.worker = None
        self.job: Job | None = None
        self.layer = widgets.ComboBox(name="layer", label="image layer", choices=_image_layers,
                                      nullable=True)
        self.layer._isonet_viewer = napari_viewer
        self.run_button = widgets.PushButton(name="run", text=self.run_text)
        self.cancel_button = widgets.PushButton(name="cancel", text="Cancel", enabled=False)
        self.progress = widgets.ProgressBar(name="progress", value=0, min=0, max=1, visible=False)
        self.status = widgets.Label(name="status", value="")
        super().__init__(widgets=[self.layer, *fields, self.run_button, self.cancel_button,
                                  self.progress, self.status], labels=True)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        events = napari_viewer.layers.events
        for name in ("inserted", "removed", "reordered"):
            getattr(events, name).connect(self._refresh_layers)
        self._refresh_layers()

    # ----------------------------------------------------------------- layers

    def _refresh_layers(self, event=None) -> None:
        self.layer.reset_choices()
        self._select_default()

    def _select_default(self) -> None:
        if self.layer.value is None:
            active = self.viewer.layers.selection.active
            if active is not None and type(active).__name__ == "Image":
                self.layer.value = active
            else:
                images = [lay for lay in self.viewer.layers if type(lay).__name__ == "Image"]
                if images:
                    self.layer.value = images[-1]

    # ----------------------------------------------------------------- messages

    def fail(self, message: str) -> None:
        """A user mistake or a failed run: an error notification and the status line."""
        self.status.value = message if len(message) < 120 else message[:117] + "..."
        show_error(message)

    def tell(self, message: str) -> None:
        self.status.value = message if len(message) < 120 else message[:117] + "..."
        show_info(message)

    # ----------------------------------------------------------------- runs

    def run(self, *_args) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, job: Job, on_result, *, model_dir=None):
        """Run ``job`` in a thread_worker; ``on_result(result)`` in the GUI thread when it succeeds."""
        from napari.qt.threading import create_worker

        if self.busy:
            self.fail(f"{self.command}: already running; wait or press Cancel")
            return None
        worker = create_worker(guarded, job, model_dir=model_dir, _start_thread=False,
                               _ignore_errors=True)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda outcome: self._on_outcome(outcome, on_result))
        worker.finished.connect(self._on_finished)
        self.job, self.worker = job, worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.visible = True
        self.progress.max, self.progress.value = 1, 0
        self.status.value = f"{self.command}: running..."
        worker.start()
        return worker

    def cancel(self, *_args) -> None:
        """Stop the run at the engine's next batch (restoration) or step (training)."""
        if self.job is not None:
            self.job.cancel()
            self.status.value = f"{self.command}: cancelling..."

    def _on_progress(self, info: dict) -> None:
        if info["total"]:
            self.progress.max = info["total"]
            self.progress.value = min(info["done"], info["total"])
        self.on_epochs(info.get("epochs") or [])

    def on_epochs(self, rows: list) -> None:
        """Training log rows as they come (training only)."""

    def _on_outcome(self, outcome, on_result) -> None:
        status, value = outcome
        if status == "cancelled":
            self.tell(f"{self.command}: cancelled")
        elif status == "error":
            self._report(value)
        else:
            try:
                on_result(value)
            except USER_ERRORS as exc:
                self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, USER_ERRORS):
            text = str(exc)
            self.fail(text if text.startswith(self.command) else f"{self.command}: {text}")
        else:
            log.error("%s failed", self.command, exc_info=(type(exc), exc, exc.__traceback__))
            self.fail(f"{self.command} failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.job = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.progress.visible = False
