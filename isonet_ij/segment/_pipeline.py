"""The paper's segmentation pipeline: :func:`segment_nuclei`, :func:`segment_nuclei_with_details`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..volume_io import normalize_voxel_size
from ._holes import fill_holes
from ._threshold import THRESHOLD_METHODS, auto_threshold, threshold_mask
from ._watershed import distance_watershed


@dataclass
class Segmentation:
    """What :func:`segment_nuclei_with_details` returns.

    Attributes
    ----------
    labels : (Z, Y, X) ndarray of uint16
        0 background, objects 1..n.
    details : dict
        Threshold, foreground fraction (before and after filling holes), object count and
        the options used.
    """

    labels: np.ndarray
    details: dict = field(default_factory=dict)


def segment_nuclei(volume, **options) -> np.ndarray:
    """Nuclei labels of a volume: ``segment_nuclei_with_details(volume, **options).labels``."""
    return segment_nuclei_with_details(volume, **options).labels


def segment_nuclei_with_details(
    volume,
    *,
    voxel_size=None,
    threshold="intermodes",
    fill_holes_mode: str = "3d",
    dynamic: float = 2.0,
    connectivity: int = 6,
    min_size: int = 0,
) -> Segmentation:
    """The paper's pipeline: global threshold, fill holes, distance-transform watershed.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Intensities, bright nuclei on a dark background; uint8, uint16 or float (see
        :func:`imagej_histogram`).
    voxel_size : float or tuple of float, optional
        ``(dz, dy, dx)``, used by the distance transform. Default isotropic.
    threshold : {"intermodes", "otsu"} or float
        Automatic ImageJ method ("dark stack"), or a value: voxels ``>= value`` are
        foreground.
    fill_holes_mode : {"3d", "2d", "off"}
        See :func:`fill_holes`.
    dynamic, connectivity, min_size
        See :func:`distance_watershed`.

    Returns
    -------
    Segmentation
        ``labels`` (Z, Y, X) uint16, 0 background, objects 1..n; ``details``.

    Raises
    ------
    ValueError
        Not 3D, empty or constant volume, a threshold that makes every voxel foreground
        (nothing to separate from), or more than 65535 objects (uint16 cannot hold them).

    Notes
    -----
    A threshold that selects no voxel is not an error: the result has no objects (and a
    warning is issued).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        msg = f"`volume` must be 3D (Z, Y, X), got shape {vol.shape}"
        raise ValueError(msg)
    if vol.size == 0:
        msg = f"`volume` is empty (shape {vol.shape}); give a non-empty 3D array"
        raise ValueError(msg)
    mask, thr_info = _threshold(vol, threshold)
    n_fg = _check_foreground(mask, thr_info)
    mask = _filled(mask, fill_holes_mode)
    lab = distance_watershed(
        mask,
        voxel_size=voxel_size,
        dynamic=dynamic,
        connectivity=connectivity,
        min_size=min_size,
    )
    details = {
        "threshold": thr_info,
        "foreground_fraction": n_fg / mask.size,
        "foreground_fraction_filled": float(np.count_nonzero(mask)) / mask.size,
        "n_objects": int(lab.max()) if lab.size else 0,
        "fill_holes": fill_holes_mode,
        "dynamic": float(dynamic),
        "connectivity": int(connectivity),
        "min_size": int(min_size),
        "voxel_size": None if voxel_size is None else list(normalize_voxel_size(voxel_size)),
    }
    return Segmentation(_as_uint16_labels(lab), details)


def _as_uint16_labels(lab: np.ndarray) -> np.ndarray:
    """``lab`` as uint16; ``ValueError`` when it has more objects than uint16 holds."""
    n = int(lab.max()) if lab.size else 0
    if n > 65535:
        msg = (
            f"{n} objects found, more than a uint16 label image holds (65535); raise "
            "--min-size or --dynamic, or segment a crop"
        )
        raise ValueError(msg)
    return lab.astype(np.uint16)


def _filled(mask: np.ndarray, mode: str) -> np.ndarray:
    """:func:`fill_holes`; ``ValueError`` when no background is left."""
    mask = fill_holes(mask, mode=mode)
    if mask.all():
        msg = (
            "after filling holes every voxel is foreground (the background touches no "
            "border of the volume); use --fill-holes off or a higher threshold"
        )
        raise ValueError(msg)
    return mask


def _threshold(vol: np.ndarray, threshold) -> tuple[np.ndarray, dict]:
    """``(foreground mask, threshold summary)`` for a method name or a lower value."""
    if isinstance(threshold, str) and threshold.lower() in THRESHOLD_METHODS:
        thr = auto_threshold(vol, method=threshold)
        return threshold_mask(vol, thr), thr.as_dict()
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        msg = f"`threshold` must be one of {THRESHOLD_METHODS} or a number, got {threshold!r}"
        raise ValueError(msg) from None
    return threshold_mask(vol, value), {"method": "value", "lower": value}


def _check_foreground(mask: np.ndarray, thr_info: dict) -> int:
    """Foreground voxel count; an all-foreground mask is an error, an empty one a warning."""
    n_fg = int(np.count_nonzero(mask))
    if n_fg == mask.size:
        msg = (
            f"the threshold ({thr_info.get('method')}, lower={thr_info.get('lower')!r}) "
            "makes every voxel foreground, so there is no background to separate nuclei "
            "from; give a higher value (--threshold VALUE) or check the input"
        )
        raise ValueError(msg)
    if n_fg == 0:
        warnings.warn(
            f"the threshold (lower={thr_info.get('lower')!r}) selects no voxel: "
            "no objects",
            RuntimeWarning,
            stacklevel=3,  # the caller of segment_nuclei
        )
    return n_fg
