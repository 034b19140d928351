"""Volume IO: ImageJ-TIFF / OME-TIFF in, ImageJ hyperstack TIFF out.

Arrays are (z, y, x) (or with channel/time axes: ``ZCYX``, ``TZCYX``), voxel sizes are
``(dz, dy, dx)`` in ``unit`` (micrometres by default). Writes are atomic: data goes to a
temporary file in the destination folder, which is renamed onto the target only when
complete, so a crash never leaves a partial file and an existing file is never replaced
unless ``force=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .calibration import ome_calibration, to_um

__all__ = [
    "RegionVolume",
    "LazyTiffVolume",
    "open_lazy_tiff",
    "Volume",
    "VolumeError",
    "read_volume",
    "write_volume",
    "write_json",
    "atomic_path",
    "check_output_path",
    "check_not_input",
    "check_writable",
    "check_intensity_dtype",
    "normalize_voxel_size",
    "available_memory",
    "as_volume3d",
]

#: Axes letters the engine understands, outermost first.
_KNOWN_AXES = "TZCYX"
#: dtypes an ImageJ hyperstack can hold (ImageJ has no int32/float64).
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)

from .output_checks import check_not_input, check_output_path, check_writable  # noqa: F401 - re-exported


class VolumeError(ValueError):
    """A volume (file or array) cannot be used as given; the message says what to do."""


@dataclass
class Volume:
    """An image volume with its calibration.

    Attributes
    ----------
    data : ndarray
        Pixel data in its native dtype, axes as in ``axes`` (always containing ``ZYX``).
    voxel_size : tuple of float, shape (3,)
        ``(dz, dy, dx)`` in ``unit``; ``None`` when the file carries no calibration.
    unit : str
        Length unit of ``voxel_size`` (``"um"`` for micrometres, ``"pixel"`` if unknown).
    axes : str
        Axes of ``data``, e.g. ``"ZYX"``, ``"ZCYX"``, ``"TZCYX"``.
    metadata : dict
        Extra key/value pairs found in the file (ImageJ ``Info`` JSON, if any).
    """

    data: np.ndarray
    voxel_size: tuple[float, float, float] | None
    unit: str = "um"
    axes: str = "ZYX"
    metadata: dict = field(default_factory=dict)

    @property
    def anisotropy(self) -> float | None:
        """``dz / dx`` from the calibration, or ``None`` when it is missing."""
        if self.voxel_size is None:
            return None
        return self.voxel_size[0] / self.voxel_size[2]

    def iter_zyx(self):
        """Yield ``(index, zyx_array)`` for each channel / timepoint.

        ``index`` is a dict such as ``{"T": 0, "C": 1}`` (empty for a plain ZYX volume).
        """
        extra = [a for a in self.axes if a not in "ZYX"]
        order = [self.axes.index(a) for a in extra] + [self.axes.index(a) for a in "ZYX"]
        arr = np.transpose(self.data, order)
        for idx in np.ndindex(*arr.shape[: len(extra)]):
            yield dict(zip(extra, idx)), arr[idx]


def normalize_voxel_size(voxel_size, *, name: str = "voxel_size") -> tuple[float, float, float]:
    """Return ``voxel_size`` as three positive finite floats ``(dz, dy, dx)``.

    A scalar is broadcast to all three axes.
    """
    vs = np.atleast_1d(np.asarray(voxel_size, dtype=float))
    if vs.size == 1:
        vs = np.repeat(vs, 3)
    if vs.shape != (3,) or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
        msg = f"`{name}` must be 3 positive numbers (dz, dy, dx), got {voxel_size!r}"
        raise VolumeError(msg)
    return tuple(float(v) for v in vs)


# --------------------------------------------------------------------------- reading


def read_volume(path, *, allow_nan: bool = False) -> Volume:
    """Read a 3D (or ZCYX / TZCYX) ImageJ-TIFF or OME-TIFF volume.

    Parameters
    ----------
    path : str or Path
        TIFF file.
    allow_nan : bool
        Float data with NaN/inf raise unless this is True.

    Returns
    -------
    Volume
        Data in native dtype with axes among ``TZCYX``, voxel size ``(dz, dy, dx)``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    VolumeError
        The file is not a readable TIFF, is 2D, has axes the engine cannot use, or holds
        NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"input file not found: {str(path)!r}"
        raise FileNotFoundError(msg)
    with _tiff_series(path) as (tif, series):
        axes = series.axes.upper()
        data = series.asarray()
        voxel_size, unit = _read_calibration(tif, axes)
        metadata = _read_info(tif)

    data, axes = _canonical_axes(data, axes, path)
    check_intensity_dtype(data.dtype, path)
    if data.dtype.kind == "f" and not allow_nan and not np.all(np.isfinite(data)):
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        msg = (
            f"{str(path)!r} contains {n_bad} NaN/inf voxels; replace them "
            "(e.g. Process > Math > Remove NaNs in Fiji) before using this volume"
        )
        raise VolumeError(msg)
    return Volume(data=data, voxel_size=voxel_size, unit=unit, axes=axes, metadata=metadata)


@contextlib.contextmanager
def _tiff_series(path: Path):
    """Open a TIFF's first series, checked complete; TIFF errors become a VolumeError."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_complete(tif, series, path)
            yield tif, series
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        if isinstance(exc, VolumeError):
            raise
        msg = (
            f"cannot read {str(path)!r} as a TIFF volume ({exc}); "
            "the file may be truncated or not a TIFF: re-export it from Fiji as TIFF"
        )
        raise VolumeError(msg) from exc


def _check_complete(tif: tifffile.TiffFile, series, path: Path) -> None:
    """Raise if the file is shorter than its own headers say (a truncated copy).

    tifffile reads what it can of a damaged file; a silently shortened stack must not
    pass for a valid volume.
    """
    size = path.stat().st_size
    images = (tif.imagej_metadata or {}).get("images")
    n_planes = int(np.prod(series.shape[: -2])) if len(series.shape) > 2 else 1
    if images is not None and int(images) > n_planes:
        msg = f"header announces {images} images, only {n_planes} found"
        raise tifffile.TiffFileError(msg)
    offset = series.dataoffset
    if offset is not None:
        if offset + series.nbytes > size:
            msg = f"data ends at byte {offset + series.nbytes}, file has {size}"
            raise tifffile.TiffFileError(msg)
        return
    for page in tif.pages:
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > size:
            msg = f"a page's data ends at byte {max(ends)}, file has {size}"
            raise tifffile.TiffFileError(msg)


def _check_labelled(shape, axes: str, path: Path) -> None:
    """Refuse 4D+ data whose extra axes the file does not name (tifffile's Q / I / planar S)."""
    unlabelled = sum(a in "QI" for a in axes) + (1 if "S" in axes[:-1] else 0)
    if len(shape) < 4 or unlabelled < 2 and not ("S" in axes[:-1] and "Q" in axes):
        return
    lead = " x ".join(str(n) for n in shape[:-2])
    msg = (f"{str(path)!r} holds {len(shape)}D data {tuple(shape)} without axes labels: the {lead} could be "
           f"{' or '.join(_readings(len(shape) - 2))}; save it with ImageJ hyperstack axes (Fiji: Image > "
           "Hyperstacks > Stack to Hyperstack; tifffile: imwrite(..., imagej=True, metadata={'axes': 'ZCYX'}))")
    raise VolumeError(msg)


def _readings(n_lead: int) -> list[str]:
    """The axes an unlabelled stack with ``n_lead`` leading axes could have (before YX)."""
    return {2: ["ZC (z slices x channels)", "CZ", "TZ (time points x z slices)"]}.get(n_lead, ["TZC", "TCZ", "ZCT"])


def _canonical_axes(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str]:
    """Map tifffile's axes to a subset of ``TZCYX`` in that order; reject 2D images."""
    _check_labelled(data.shape, axes, path)
    # tifffile names an unlabelled leading axis 'Q' (or 'I'); ImageJ stacks are Z.
    axes = axes.replace("Q", "Z").replace("I", "Z")
    if "S" in axes:
        msg = (
            f"{str(path)!r} is an RGB image (axes {axes}); convert it to a grey-level "
            "stack first (Image > Type > 8-bit or Image > Color > Split Channels in Fiji)"
        )
        raise VolumeError(msg)
    unknown = [a for a in axes if a not in _KNOWN_AXES]
    if unknown or len(set(axes)) != len(axes):
        msg = f"{str(path)!r} has axes {axes!r}; expected a subset of {_KNOWN_AXES!r}"
        raise VolumeError(msg)
    if "Z" not in axes or data.shape[axes.index("Z")] < 2:
        msg = (
            f"{str(path)!r} is a 2D image (shape {data.shape}, axes {axes}); isonet-ij needs "
            "a 3D stack with at least 2 z slices"
        )
        raise VolumeError(msg)
    if "Y" not in axes or "X" not in axes:
        msg = f"{str(path)!r} has no Y/X axes (axes {axes!r})"
        raise VolumeError(msg)
    order = sorted(range(len(axes)), key=lambda i: _KNOWN_AXES.index(axes[i]))
    data = np.transpose(data, order)
    return data, "".join(axes[i] for i in order)


def _read_calibration(tif: tifffile.TiffFile, axes: str):
    """Return ``((dz, dy, dx) or None, unit)`` from OME or ImageJ metadata, in um when known.

    A file is calibrated when it names a length unit (ImageJ ``unit``) or has resolution
    tags other than 1 pixel per unit: 1.0 um pixels with ``unit=micron`` are calibrated,
    as in ImageJ's ``Calibration.scaled()``.
    """
    if tif.is_ome and tif.ome_metadata:
        cal = ome_calibration(tif.ome_metadata)
        if cal is not None:
            return cal
    page = tif.pages.first
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit") or "pixel")
    named = unit.lower() not in ("pixel", "pixels", "")
    dx = _resolution_to_size(page.tags.get("XResolution"), named)
    dy = _resolution_to_size(page.tags.get("YResolution"), named)
    dz = ij.get("spacing")
    if dx is None or dz is None:
        # Without an explicit z spacing the file has no usable 3D calibration.
        return None, to_um((), unit)[1] if dx is not None else "pixel"
    dy = dy if dy is not None else dx
    return to_um((dz, dy, dx), unit)


def _resolution_to_size(tag, named_unit: bool = False) -> float | None:
    """Pixel size of a resolution tag; 1 pixel per unit counts only with a named unit."""
    if tag is None:
        return None
    num, den = tag.value
    if num == 0:
        return None
    size = den / num
    return None if (size == 1.0 and not named_unit) else float(size)


def _read_info(tif: tifffile.TiffFile) -> dict:
    info = (tif.imagej_metadata or {}).get("Info")
    if not info:
        return {}
    try:
        parsed = json.loads(info)
    except (TypeError, json.JSONDecodeError):
        return {"Info": info}
    return parsed if isinstance(parsed, dict) else {"Info": info}


# --------------------------------------------------------------------------- writing


def check_intensity_dtype(dtype, path) -> None:
    """Refuse booleans (a mask) and complex numbers: an input must hold real intensities."""
    kind = np.dtype(dtype).kind
    if kind in "bc":
        what = "booleans (a mask)" if kind == "b" else f"complex numbers ({np.dtype(dtype)})"
        msg = (f"{str(path)!r} holds {what}, not intensities; give the grey-level acquisition "
               "(8/16-bit or float), or convert it (Image > Type in Fiji)")
        raise VolumeError(msg)


#: Temporary files of :func:`atomic_path` left by a killed writer are removed after this.
STALE_PART_S = 60.0


@contextlib.contextmanager
def atomic_path(path, *, force: bool = False, inputs=()):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. The
    temporary file is ``.NAME.<pid>.<random>.part``: a process killed while writing
    leaves it behind, and the next write to the same target removes the ones of dead
    processes (older than :data:`STALE_PART_S`).
    """
    from .locks import remove_stale

    path = check_output_path(path, force=force, inputs=inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.", min_age_s=STALE_PART_S, suffix=".part")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600; give the file the mode a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_volume(
    path,
    data,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    unit: str = "um",
    axes: str | None = None,
    metadata: dict | None = None,
    force: bool = False,
    inputs=(),
) -> Path:
    """Write an ImageJ hyperstack TIFF atomically, with spacing and unit.

    Parameters
    ----------
    path : str or Path
        Output file (``.tif``). Must not exist unless ``force``; never one of ``inputs``.
    data : (Z, Y, X) or (Z, C, Y, X) or (T, Z, C, Y, X) ndarray
        uint8, uint16 or float32 (other dtypes raise; convert explicitly).
    voxel_size : float or tuple of float
        ``(dz, dy, dx)`` in ``unit``.
    unit : str
        Length unit, e.g. ``"um"``.
    axes : str, optional
        Axes of ``data``; default from ``data.ndim`` (``ZYX``, ``ZCYX``, ``TZCYX``).
    metadata : dict, optional
        JSON-serialisable provenance stored in the ImageJ ``Info`` property.
    force : bool
        Replace an existing output file.
    inputs : sequence of paths
        Files that must never be overwritten (the inputs of the computation).

    Returns
    -------
    Path
        The written file.
    """
    data = np.asarray(data)
    if data.dtype.type not in _IMAGEJ_DTYPES:
        msg = (
            f"ImageJ TIFF cannot store dtype {data.dtype}; convert to float32, uint16 or "
            "uint8 first"
        )
        raise VolumeError(msg)
    axes = axes or {3: "ZYX", 4: "ZCYX", 5: "TZCYX"}.get(data.ndim)
    if axes is None or len(axes) != data.ndim or not set("ZYX") <= set(axes):
        msg = f"cannot write data of shape {data.shape} with axes {axes!r}"
        raise VolumeError(msg)
    order = sorted(range(len(axes)), key=lambda i: _KNOWN_AXES.index(axes[i]))
    data = np.transpose(data, order)
    axes = "".join(axes[i] for i in order)
    dz, dy, dx = normalize_voxel_size(voxel_size)
    ij_meta = {"spacing": dz, "unit": unit, "axes": axes}
    if metadata:
        ij_meta["Info"] = json.dumps(metadata, default=str)
    with atomic_path(path, force=force, inputs=inputs) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / dx, 1.0 / dy),
            metadata=ij_meta,
            photometric="minisblack",
        )
    return Path(path)


def write_json(path, obj, *, force: bool = True) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path, force=force) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    return Path(path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# --------------------------------------------------------------------------- lazy reading


class RegionVolume:
    """Base of the (Z, Y, X) volumes read region by region (lazy TIFF, zarr).

    Subclasses set ``shape``, ``dtype``, ``voxel_size`` and ``index`` (one entry per axis of
    the stored array: ``slice(None)`` for z, y, x, an int for a singleton t / c axis) and
    implement ``_read(selection)`` on the stored array.
    """

    ndim = 3
    voxel_size = None

    def __getitem__(self, sel):
        sel = list(sel) if isinstance(sel, tuple) else [sel]
        spatial = iter(sel + [slice(None)] * (3 - len(sel)))
        return self._read(tuple(next(spatial) if isinstance(i, slice) else i for i in self.index))

    def __array__(self, dtype=None, copy=None):
        a = self[:, :, :]
        return a if dtype is None else a.astype(dtype)

    def anisotropy(self):
        """``dz / mean(dy, dx)``, or None without a voxel size."""
        if self.voxel_size is None:
            return None
        dz, dy, dx = self.voxel_size
        return dz / ((dy + dx) / 2)


class LazyTiffVolume(RegionVolume):
    """A (Z, Y, X) TIFF read region by region, for volumes larger than memory.

    Uncompressed contiguous files (ImageJ / tifffile default) are memory-mapped, so a
    region read touches only its rows; other layouts are read through tifffile's zarr
    store (whole strips or tiles of the region's pages).

    Attributes
    ----------
    path : str
    shape : (Z, Y, X) tuple
    dtype : numpy dtype
    voxel_size : (dz, dy, dx) or None
    unit : str
    """

    def __init__(self, path):
        self.path = str(path)
        p = Path(path)
        if not p.is_file():
            msg = f"input file not found: {self.path!r}"
            raise FileNotFoundError(msg)
        with _tiff_series(p) as (tif, series):
            axes = series.axes.upper().replace("Q", "Z").replace("I", "Z")
            self.voxel_size, self.unit = _read_calibration(tif, axes)
            shape, self.dtype = tuple(series.shape), np.dtype(series.dtype)
            contiguous = series.dataoffset is not None
        check_intensity_dtype(self.dtype, p)
        squeezed = [(a, n) for a, n in zip(axes, shape) if not (a in "TC" and n == 1)]
        if "".join(a for a, _ in squeezed) != "ZYX":
            msg = (f"{self.path!r} has axes {axes} {shape}; reading by regions takes one ZYX stack "
                   "(split channels / time points first, or read it whole)")
            raise VolumeError(msg)
        self.shape = tuple(int(n) for _, n in squeezed)
        # the memmap is reshaped to (Z, Y, X); tifffile's zarr store keeps singleton T / C axes
        self.index = (slice(None),) * 3 if contiguous else tuple(slice(None) if a in "ZYX" else 0 for a in axes)
        self._contiguous = contiguous
        self._array = None

    def _open(self):
        if self._array is None:
            if self._contiguous:
                self._array = tifffile.memmap(self.path, mode="r").reshape(self.shape)
            else:
                import zarr

                store = tifffile.imread(self.path, aszarr=True)
                self._array = zarr.open(store, mode="r")
        return self._array

    def _read(self, selection):
        return np.array(self._open()[selection])  # a copy, not a view of the mapped file

    def spec(self):
        """Picklable description to reopen the file in a worker."""
        return ("__tiff__", self.path)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"] = None  # a memmap / zarr store reopens in the worker
        return state


def open_lazy_tiff(path) -> LazyTiffVolume:
    """Open a TIFF stack for region reads (see :class:`LazyTiffVolume`)."""
    return LazyTiffVolume(path)


def available_memory() -> int | None:
    """Physical memory available to this process in bytes (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def as_volume3d(volume, name: str = "volume", *, hint_2d: str = "") -> np.ndarray:
    """``volume`` as a (z, y, x) ndarray of real numbers (no copy), else a ValueError.

    ``hint_2d`` is appended to the message when a 2D image was given.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        hint = f"; {hint_2d}" if hint_2d and vol.ndim == 2 else ""
        msg = f"`{name}` must be 3D (z, y, x), got shape {vol.shape}{hint}"
        raise ValueError(msg)
    if vol.dtype.kind not in "fiub":
        msg = f"`{name}` must hold real numbers, got dtype {vol.dtype}"
        raise ValueError(msg)
    return vol
