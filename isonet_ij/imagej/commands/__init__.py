"""IsoNet Train / Restore / Segment / Estimate PSF on ImagePlus stacks: convert, call the workflow.

These functions are what the ImageJ commands (:mod:`isonet_ij.imagej.bridge`) and the Fiji
scripts (``fiji_scripts/*.py``) call. They take an ``ij.ImagePlus``, never modify it, and
return a new ImagePlus (or a summary for training). The work is done by
:mod:`isonet_ij.workflow` (factor, PSF, Config, training, restoration, provenance: the same
calls as ``isonet train`` / ``isonet restore``), :func:`isonet_ij.segment.segment_nuclei`
and :func:`isonet_ij.psf.estimate_axial_blur`; only conversion, checks and the
ImageJ wording of messages live here.

Bad input raises :class:`~isonet_ij.imagej.convert.ImageError` (a ``ValueError``) with a
message meant for an ImageJ user.
"""

from ..convert import ImageError
from ._common import (
    check_stack,
    derived_title,
    factor_of,
    load_model_cached,
    script_errors,
    training_progress,
)
from ._psf import (
    PSF_TABLE_TITLE,
    estimate_psf_imageplus,
    psf_estimate_message,
    psf_estimate_table,
    show_psf_estimate,
)
from ._restore import check_restore_memory, restore_imageplus, restore_memory_need
from ._segment import segment_imageplus
from ._train import train_imageplus

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
