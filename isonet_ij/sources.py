"""The input of a chunked restoration: opened lazily, never read whole.

A source is an in-memory (Z, Y, X) array, an OME-Zarr / zarr array, or a TIFF (memory-mapped,
or read strip by strip when compressed). :func:`source_of` opens one and records its shape,
calibration and factor; tasks receive its picklable spec and reopen it with
:func:`open_source` in their process. :func:`percentiles_and_range` computes the
restoration's normalization from exactly the strided sample of
:func:`isonet_ij.pairs.percentiles`, slab by slab.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import pairs
from .restoration import check_volume
from .scheduling import release_free_memory

__all__ = ["Source", "open_source", "source_of", "percentiles_and_range"]


def open_source(src):
    """ndarray / ZarrVolume / (path, dataset) / ("__tiff__", path) spec -> sliceable (z, y, x)."""
    if isinstance(src, tuple) and len(src) == 2 and src[0] == "__tiff__":
        from .volume_io import open_lazy_tiff

        return open_lazy_tiff(src[1])
    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], str):
        from .io_zarr import open_zarr_volume

        return open_zarr_volume(src[0], dataset=src[1] or None)
    return src


@dataclass
class Source:
    """The input of a run: what tasks read (``spec``), its shape, calibration and factor."""

    spec: object
    shape: tuple
    voxel_size: tuple | None
    factor: float | None
    path: str | None = None


def source_of(source, factor, voxel_size) -> Source:
    """Open a path / zarr / TIFF lazily (never whole) or check an in-memory array."""
    from .io_zarr import ZarrVolume, is_zarr, open_zarr_volume
    from .volume_io import LazyTiffVolume, open_lazy_tiff

    if isinstance(source, (str, Path)):
        source = open_zarr_volume(source) if is_zarr(source) else open_lazy_tiff(source)
    if isinstance(source, (ZarrVolume, LazyTiffVolume)):
        voxel = source.voxel_size
        if factor is None and voxel is not None:
            factor = source.anisotropy()
        elif factor is None and isinstance(source, ZarrVolume):
            msg = (f"{source.path!r} has no OME-Zarr scale metadata (voxel sizes); give the anisotropy "
                   "factor with `factor` (--factor)")
            raise ValueError(msg)
        # an uncalibrated TIFF: the model's factor, as for an in-memory restoration
        src = Source(source.spec(), tuple(source.shape), voxel, factor, str(Path(source.path).resolve()))
    else:
        vol = check_volume(source, "source")
        # an in-memory array carries no calibration: take the caller's (dz, dy, dx)
        voxel = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        src = Source(vol, vol.shape, voxel, factor)
    if src.shape[0] < 2:
        msg = f"`source` has {src.shape[0]} z slice; restoration needs at least 2"
        raise ValueError(msg)
    return src


def percentiles_and_range(src, shape, *, low, high, max_samples=4_000_000, slab_bytes=64 << 20):
    """The strided sample of :func:`pairs.percentiles`, read slab by slab; plus min / max."""
    src = open_source(src)
    Z, Y, X = shape
    size = Z * Y * X
    stride = int(math.ceil(size / max_samples)) if size > max_samples else 1
    plane = Y * X
    nz = max(1, int(slab_bytes // max(plane * 8, 1)))
    samples, vmin, vmax = [], math.inf, -math.inf
    for z0 in range(0, Z, nz):
        z1 = min(Z, z0 + nz)
        slab = np.asarray(src[z0:z1, :, :])
        if slab.dtype.kind == "f" and not np.all(np.isfinite(slab)):
            msg = (f"the volume holds NaN/inf voxels (in z slices {z0}-{z1 - 1}); replace them "
                   "(e.g. Process > Math > Remove NaNs in Fiji) before restoring")
            raise ValueError(msg)
        vmin, vmax = min(vmin, float(slab.min())), max(vmax, float(slab.max()))
        base = z0 * plane
        first = -base % stride
        # a copy: a strided view would keep every slab alive (the whole volume in memory)
        samples.append(slab.reshape(-1)[first::stride].copy())
        del slab
    flat = np.concatenate(samples)
    del samples
    lo, hi = pairs.percentiles(flat, low=low, high=high, max_samples=flat.size + 1)
    del flat
    release_free_memory()  # the slabs' heap memory, before the run measures what it holds
    return (lo, hi), (vmin, vmax)
