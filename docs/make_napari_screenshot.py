"""Screenshot of the napari plugin: the four IsoNet widgets docked beside a restored volume.

Run under a (virtual) display from the repository root::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_napari_screenshot.py

The restoration runs in a child process (``isonet restore``), as training does in the
plugin: TensorFlow and a software OpenGL driver (Mesa) abort when they share a process.
Writes ``docs/napari_restore.png``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from isonet_ij import read_volume, synthesize, write_volume
    from isonet_ij.artifacts import find_demo_package

    syn = synthesize("nuclei", size=96, psf="gaussian:2,8", factor=8, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "nuclei.tif"), Path(tmp, "restored.tif")
        write_volume(src, syn["input"], voxel_size=syn["input_voxel_size"])
        subprocess.run([sys.executable, "-m", "isonet_ij", "restore", str(src), "--model", str(find_demo_package()),
                        "-o", str(out), "--no-consistency"], check=True, capture_output=True)
        restored = read_volume(out)
    import warnings

    warnings.filterwarnings("ignore", message=".*PyQt5.*")  # napari's notice about its Qt binding
    import napari
    from qtpy.QtWidgets import QApplication

    from isonet_ij.napari._widgets import EstimatePSFWidget, RestoreWidget, SegmentWidget, TrainWidget

    viewer = napari.Viewer(title="isonet-ij in napari")
    viewer.add_image(syn["input"], name="nuclei (acquired, factor 8)", scale=syn["input_voxel_size"],
                     colormap="gray", blending="additive")
    viewer.add_image(restored.data, name="nuclei_isotropic", scale=restored.voxel_size, colormap="magma",
                     blending="additive")
    for cls in (TrainWidget, EstimatePSFWidget, SegmentWidget, RestoreWidget):  # Restore in front
        viewer.window.add_dock_widget(cls(viewer), name=cls.__name__.replace("Widget", ""), area="right",
                                      tabify=True)
    viewer.grid.enabled = True  # acquired and restored side by side
    viewer.dims.order = (1, 0, 2)  # an xz view: z vertical, where the restoration shows
    viewer.dims.set_point(1, restored.voxel_size[1] * restored.data.shape[1] / 2)
    viewer.reset_view()
    viewer.window._qt_window.resize(1500, 900)
    for _ in range(20):
        QApplication.processEvents()
    for widget in QApplication.allWidgets():  # napari's start-up notices: not part of the picture
        if type(widget).__name__ == "NapariQtNotification":
            widget.close()
    for _ in range(5):
        QApplication.processEvents()
    path = HERE / "napari_restore.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
