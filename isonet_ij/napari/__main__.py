"""``python -m isonet_ij.napari [FILE ...]``: napari with the four IsoNet widgets docked.

TensorFlow is imported before napari creates its OpenGL context: with Mesa's software
OpenGL (llvmpipe: Xvfb, VMs, machines without a GPU driver) loading TensorFlow 2.21's
library after the GL driver crashes the process, and the two abort in their destructors
at exit, so the process ends with ``os._exit`` once the viewer is closed. Starting plain
``napari`` and opening the widgets from Plugins > isonet-ij works where the OpenGL driver
is the GPU vendor's.
"""

from __future__ import annotations

import os
import sys


def main(argv=None) -> int:
    from ..workflow import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow  # noqa: F401 - before the GL context, see the module doc

    import napari

    from ._widgets import EstimatePSFWidget, RestoreWidget, SegmentWidget, TrainWidget

    files = list(sys.argv[1:] if argv is None else argv)
    viewer = napari.Viewer(title="isonet-ij")
    if files:
        viewer.open(files, plugin="isonet-ij")
    docks = [(RestoreWidget, "IsoNet Restore"), (TrainWidget, "IsoNet Train"),
             (EstimatePSFWidget, "IsoNet Estimate PSF"), (SegmentWidget, "IsoNet Segment")]
    for i, (cls, name) in enumerate(docks):
        viewer.window.add_dock_widget(cls(viewer), name=name, tabify=i > 0)
    napari.run()
    return 0


if __name__ == "__main__":  # pragma: no cover - interactive
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(main())
