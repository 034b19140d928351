"""IsoNet Segment on an ImagePlus: conversion around :func:`isonet_ij.segment.segment_nuclei`."""

from __future__ import annotations

import json

from ...workflow import provenance
from ..convert import ImageError, array_to_imageplus, imageplus_to_volume, label_lut
from ._common import check_stack, derived_title, position_of

__all__ = ["segment_imageplus"]


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
    from ...segment import segment_nuclei_with_details

    check_stack(imp, "IsoNet Segment")
    c, t = position_of(imp, channel, frame)
    vol = imageplus_to_volume(imp, channel=c, frame=t)
    if isinstance(threshold, str) and threshold.strip().lower() not in ("intermodes", "otsu"):
        try:
            threshold = float(threshold)
        except ValueError:
            msg = f"threshold must be intermodes, otsu or a number, got {threshold!r}"
            raise ImageError(msg) from None
    elif isinstance(threshold, str):
        threshold = threshold.strip().lower()
    result = segment_nuclei_with_details(
        vol.data, voxel_size=vol.voxel_size, threshold=threshold, fill_holes_mode=fill_holes,
        dynamic=float(dynamic), connectivity=int(connectivity), min_size=int(min_size),
    )
    labels, details = result.labels, result.details
    n = int(details["n_objects"])
    cal = imp.getCalibration().copy()
    out = array_to_imageplus(
        labels, axes="ZYX", title=title or derived_title(imp, "labels"), calibration=cal,
        display_range=(0, max(255, n)),
    )
    out.setLut(label_lut())
    out.setDisplayRange(0, max(255, n))
    out.setProperty("Info", json.dumps(provenance(
        command="IsoNet Segment", input=str(imp.getTitle()), channel=c + 1, frame=t + 1, **details,
    ), default=str))
    return out
