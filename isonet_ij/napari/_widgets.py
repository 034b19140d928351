"""The dock widgets of the napari manifest: IsoNet Train, Restore, Estimate PSF, Segment."""

from __future__ import annotations

from ._restore import RestoreWidget
from ._tools import EstimatePSFWidget, SegmentWidget
from ._train import TrainWidget

__all__ = ["TrainWidget", "RestoreWidget", "EstimatePSFWidget", "SegmentWidget"]
