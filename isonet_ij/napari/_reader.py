"""Reader of ImageJ / OME TIFFs that keeps the calibration as the layer scale.

napari's built-in TIFF reader opens ImageJ stacks with scale (1, 1, 1); this one uses
:func:`isonet_ij.read_volume` (voxel size ``(dz, dy, dx)`` from the ImageJ or OME
metadata) and splits channels into layers. TIFFs that are not 3D ImageJ / OME stacks
are left to other readers.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["napari_get_reader", "read_layers"]

_SUFFIXES = (".tif", ".tiff")


def _is_stack(path: Path) -> bool:
    """An ImageJ or OME TIFF with at least 3 dimensions (cheap: metadata only)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not (tif.is_imagej or tif.is_ome):
                return False
            return len(tif.series[0].shape) >= 3
    except (OSError, ValueError, IndexError, tifffile.TiffFileError):
        return False


def napari_get_reader(path):
    """:func:`read_layers` for one ImageJ / OME TIFF stack path, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    if p.suffix.lower() not in _SUFFIXES or not p.is_file() or not _is_stack(p):
        return None
    return read_layers


def read_layers(path) -> list:
    """Layer data tuples of a TIFF: one image layer per channel, scale = voxel size."""
    from ..volume_io import read_volume

    if isinstance(path, (list, tuple)):
        path = path[0]
    vol = read_volume(path)
    voxel = tuple(float(v) for v in vol.voxel_size) if vol.voxel_size else (1.0, 1.0, 1.0)
    axes = vol.axes
    scale = [1.0 if a == "T" else voxel["ZYX".index(a)] for a in axes if a != "C"]
    meta = {"isonet_voxel_size": list(vol.voxel_size) if vol.voxel_size else None,
            "isonet_unit": vol.unit, "isonet_axes": axes, "isonet_source": str(path), **vol.metadata}
    kw = {"name": Path(str(path)).stem, "scale": scale, "metadata": meta}
    if "C" in axes:
        kw["channel_axis"] = axes.index("C")
    return [(vol.data, kw, "image")]
