"""Hole filling of a foreground mask, in 3D or per z slice as ImageJ's *Fill Holes*."""

from __future__ import annotations

import numpy as np

#: ``fill_holes`` modes.
FILL_HOLES_MODES = ("3d", "2d", "off")


def fill_holes(mask, *, mode: str = "3d") -> np.ndarray:
    """Fill holes: background regions not connected to the volume border.

    Parameters
    ----------
    mask : (Z, Y, X) ndarray of bool
        Foreground.
    mode : {"3d", "2d", "off"}
        ``"3d"``: background connected through 6-neighbours to any face of the volume is
        kept, everything else becomes foreground. ``"2d"``: the same per z slice, with
        4-connected background and the slice's edges as border, voxel for voxel what
        ImageJ's *Process > Binary > Fill Holes* does on a stack. ``"off"``: a copy.

    Returns
    -------
    (Z, Y, X) ndarray of bool
    """
    from scipy import ndimage as ndi

    m = np.asarray(mask)
    if m.ndim != 3:
        msg = f"`mask` must be 3D (Z, Y, X), got shape {m.shape}"
        raise ValueError(msg)
    m = m.astype(bool, copy=False)
    key = str(mode).lower()
    if key not in FILL_HOLES_MODES:
        msg = f"`mode` must be one of {FILL_HOLES_MODES}, got {mode!r}"
        raise ValueError(msg)
    if key == "off" or m.size == 0:
        return m.copy()
    if key == "3d":
        structure = ndi.generate_binary_structure(3, 1)
    else:  # 4-connectivity within each slice, no links along z
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndi.generate_binary_structure(2, 1)
    lab, n = ndi.label(~m, structure=structure)
    if n == 0:
        return m.copy()
    faces = [lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]]
    if key == "3d":
        faces += [lab[0], lab[-1]]
    keep = np.zeros(n + 1, dtype=bool)
    for f in faces:
        keep[f.ravel()] = True
    keep[0] = True  # label 0 is the foreground itself
    return m | ~keep[lab]
