"""OME-Zarr in and out (NGFF 0.4 on zarr v2 by default, NGFF 0.5 on zarr v3 on request).

Reading accepts NGFF 0.4 (``multiscales`` in ``.zattrs``), NGFF 0.5 (``ome.multiscales``
in ``zarr.json``) and plain zarr arrays (no metadata: no voxel size, the caller must give
the anisotropy factor). Axes must be z, y, x plus optional singleton t / c axes. Voxel
sizes come from ``multiscales[0].datasets[0].coordinateTransformations`` (type
``scale``), times the multiscale-level scale when present, converted to micrometres.

Writing: NGFF 0.4 on zarr v2 is the default because it is what most readers (Fiji /
MoBIE / BigDataViewer, napari-ome-zarr, older ome-zarr-py) open today; ``ngff="0.5"``
writes zarr v3. Both are written by zarr 3.1 and round-trip in the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .calibration import UNITS_UM
from .volume_io import RegionVolume

__all__ = ["is_zarr", "open_zarr_volume", "create_ome_zarr", "write_ome_zarr", "ZarrVolume"]


def is_zarr(path) -> bool:
    """True for a path ending in ``.zarr`` (or ``.zarr/``) or a folder holding zarr metadata."""
    p = Path(path)
    if p.suffix.lower() == ".zarr":
        return True
    return p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zgroup", ".zarray"))


class ZarrVolume(RegionVolume):
    """A lazily read (Z, Y, X) view of a zarr array.

    Attributes
    ----------
    array : zarr.Array
    shape : (Z, Y, X) tuple
    voxel_size : (dz, dy, dx) in micrometres, or None (plain array / no scale)
    index : tuple of int or slice placed before the spatial selection (singleton t/c)
    """

    def __init__(self, array, voxel_size, index, path, dataset):
        self.array = array
        self.voxel_size = voxel_size
        self.index = index
        self.path = str(path)
        self.dataset = dataset
        sp = [s for s, i in zip(array.shape, index) if isinstance(i, slice)]
        self.shape = tuple(int(s) for s in sp)
        self.dtype = array.dtype

    def _read(self, selection):
        return np.asarray(self.array[selection])

    def spec(self):
        """Picklable (path, dataset) to reopen in a worker."""
        return (self.path, self.dataset)


def _scale_of(transforms, n):
    scale = np.ones(n)
    for t in transforms or ():
        if t.get("type") == "scale":
            scale = scale * np.asarray(t["scale"], float)
    return scale


def open_zarr_volume(path, *, dataset: str | None = None) -> ZarrVolume:
    """Open an OME-Zarr image (first resolution level) or a plain zarr array.

    Raises
    ------
    ValueError
        Not a zarr store, non-spatial axes that are not singleton, not 3D.
    """
    import zarr

    p = Path(path)
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types
        msg = f"cannot open {str(p)!r} as zarr ({exc}); expected an OME-Zarr image or a zarr array"
        raise ValueError(msg) from None
    voxel = None
    axes = None
    if isinstance(node, zarr.Array):
        arr, ds = node, ""
    else:
        attrs = dict(node.attrs)
        ms = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
        if not ms:
            if dataset is None:
                msg = f"{str(p)!r} is a zarr group without OME-Zarr `multiscales` metadata; give the array path"
                raise ValueError(msg)
            arr, ds = node[dataset], dataset
        else:
            m = ms[0]
            d0 = m["datasets"][0]
            ds = dataset or d0["path"]
            arr = node[ds]
            axes = [a["name"] if isinstance(a, dict) else a for a in m.get("axes", [])] or None
            units = [a.get("unit") if isinstance(a, dict) else None for a in m.get("axes", [])]
            n = arr.ndim
            scale = _scale_of(d0.get("coordinateTransformations"), n) * _scale_of(m.get("coordinateTransformations"), n)
            if axes is None:
                axes = list("tczyx"[-n:])
                units = [None] * n
            sp = [axes.index(a) for a in "zyx" if a in axes]
            has_scale = any(t.get("type") == "scale" for t in d0.get("coordinateTransformations") or ())
            if len(sp) == 3 and has_scale:
                conv = [UNITS_UM.get(str(units[i]).lower(), 1.0) if units[i] else 1.0 for i in sp]
                voxel = tuple(float(scale[i] * c) for i, c in zip(sp, conv))
    n = arr.ndim
    if axes is None:
        axes = ["z", "y", "x"][-n:] if n <= 3 else list("tczyx"[-n:])
    if n < 3 or not {"z", "y", "x"} <= set(axes):
        msg = f"{str(p)!r} holds a {n}D array (axes {axes}); restoration needs a 3D (z, y, x) volume"
        raise ValueError(msg)
    index = []
    for a, s in zip(axes, arr.shape):
        if a in ("z", "y", "x"):
            index.append(slice(None))
        elif s == 1:
            index.append(0)
        else:
            msg = f"{str(p)!r}: axis {a!r} has {s} entries; only z, y, x (and singleton t/c) are supported"
            raise ValueError(msg)
    if [a for a in axes if a in "zyx"] != ["z", "y", "x"]:
        msg = f"{str(p)!r}: spatial axes must be ordered z, y, x, got {axes}"
        raise ValueError(msg)
    return ZarrVolume(arr, voxel, tuple(index), p, ds)


def create_ome_zarr(path, shape, *, chunks, voxel_size=None, dtype="float32", ngff: str = "0.4",
                    name: str = "isonet", extra_attrs: dict | None = None):
    """Create an empty OME-Zarr image (one level, path ``"0"``); returns (group, array).

    ``voxel_size`` (dz, dy, dx) in micrometres (None: scale 1). The caller handles existing
    outputs (this overwrites).
    """
    import zarr

    if ngff not in ("0.4", "0.5"):
        msg = f"`ngff` must be '0.4' (zarr v2) or '0.5' (zarr v3), got {ngff!r}"
        raise ValueError(msg)
    fmt = 2 if ngff == "0.4" else 3
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    chunks = tuple(int(min(c, s)) for c, s in zip(chunks, shape))
    arr = g.create_array("0", shape=tuple(int(s) for s in shape), chunks=chunks, dtype=dtype,
                         fill_value=0)
    scale = [float(v) for v in (voxel_size or (1.0, 1.0, 1.0))]
    ms = {
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    attrs = dict(extra_attrs or {})
    if fmt == 2:
        ms["version"] = "0.4"
        attrs["multiscales"] = [ms]
    else:
        attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    g.attrs.update(attrs)
    return g, arr


def write_ome_zarr(path, data, *, voxel_size=None, chunks=(64, 256, 256), ngff: str = "0.4"):
    """Write a (Z, Y, X) array as a one-level OME-Zarr image."""
    data = np.asarray(data)
    _, arr = create_ome_zarr(path, data.shape, chunks=chunks, voxel_size=voxel_size, dtype=data.dtype, ngff=ngff)
    arr[...] = data
    return Path(path)
