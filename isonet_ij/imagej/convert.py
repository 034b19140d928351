"""ImagePlus <-> numpy: 8/16/32-bit stacks and hyperstacks, with calibration.

ImageJ stores a hyperstack as one list of planes, channel fastest, then z, then time
(stack index ``c + z*C + t*C*Z``), i.e. a C-ordered ``(T, Z, C, Y, X)`` array: the axis
order of :mod:`isonet_ij.volume_io`. Planes are copied in bulk, one JNI call per plane (no
per-pixel Python): ImageJ -> numpy through the buffer of each Java array, numpy -> ImageJ
by constructing each Java array from a contiguous numpy plane. ImageJ's 16-bit pixels are
Java ``short`` (signed): the bits are reinterpreted as ``uint16``, never converted.

Calibration: ``Calibration.pixelDepth / pixelHeight / pixelWidth`` are ``(dz, dy, dx)``;
ImageJ's ``"µm"`` / ``"micron"`` becomes ``"um"`` (and back). An uncalibrated image
(``Calibration.scaled()`` false) gives ``voxel_size=None`` and unit ``"pixel"``.
"""

from __future__ import annotations

import numpy as np

from ..volume_io import Volume, VolumeError, normalize_voxel_size

__all__ = [
    "ImageError",
    "imageplus_to_volume",
    "array_to_imageplus",
    "calibration_of",
    "label_lut",
    "java_unit",
]

#: numpy dtype of each ImageJ bit depth, and the signed view used for the Java array.
_DTYPES = {8: (np.uint8, np.int8), 16: (np.uint16, np.int16), 32: (np.float32, np.float32)}
_MICRONS = {"um", "µm", "\u00b5m", "micron", "microns", "micrometer", "micrometre"}


class ImageError(VolumeError):
    """An ImagePlus that the command cannot use; the message says what to do in ImageJ."""


def _cls(name: str):
    import jpype

    return jpype.JClass(name)


def python_unit(unit) -> str:
    """ImageJ's length unit as isonet-ij writes it (``"µm"`` -> ``"um"``)."""
    text = str(unit or "pixel").strip()
    return "um" if text.lower() in _MICRONS or text in _MICRONS else text


def java_unit(unit) -> str:
    """isonet-ij's unit as ImageJ shows it (``"um"`` -> ``"µm"``)."""
    text = str(unit or "pixel").strip()
    return "\u00b5m" if text.lower() in _MICRONS else text


def calibration_of(imp) -> tuple[tuple[float, float, float] | None, str]:
    """``((dz, dy, dx) or None, unit)`` of an ImagePlus."""
    cal = imp.getCalibration()
    if not bool(cal.scaled()):
        return None, "pixel"
    vs = (float(cal.pixelDepth), float(cal.pixelHeight), float(cal.pixelWidth))
    return vs, python_unit(cal.getUnit())


def check_imageplus(imp, *, what: str = "image") -> None:
    """Raise :class:`ImageError` unless ``imp`` is an 8/16/32-bit grey ImagePlus."""
    if imp is None:
        msg = f"no {what}: open a 3D stack first (File > Open)"
        raise ImageError(msg)
    depth = int(imp.getBitDepth())
    if depth == 24:
        msg = (
            f"{str(imp.getTitle())!r} is an RGB image; convert it to grey levels first "
            "(Image > Type > 8-bit, or Image > Color > Split Channels)"
        )
        raise ImageError(msg)
    if depth not in _DTYPES:  # pragma: no cover - ImageJ has no other depths
        msg = f"{str(imp.getTitle())!r} has an unsupported bit depth {depth}"
        raise ImageError(msg)


def imageplus_to_volume(imp, *, channel: int | None = None, frame: int | None = None) -> Volume:
    """Copy an ImagePlus (stack or hyperstack) into a :class:`isonet_ij.volume_io.Volume`.

    Parameters
    ----------
    imp : ij.ImagePlus
        8-bit, 16-bit or 32-bit; any number of channels, slices, frames.
    channel, frame : int, optional
        Take only this channel / frame (0-based); all when None.

    Returns
    -------
    Volume
        ``data`` in the image's type (uint8, uint16, float32) with axes ``ZYX``, ``ZCYX``,
        ``TZYX`` or ``TZCYX`` (axes of length 1 other than Z dropped); ``voxel_size``
        ``(dz, dy, dx)`` or None; ``unit``; ``metadata`` with the title.

    Raises
    ------
    ImageError
        None, RGB, or a channel/frame out of range.
    """
    check_imageplus(imp)
    nc, nz, nt = int(imp.getNChannels()), int(imp.getNSlices()), int(imp.getNFrames())
    w, h = int(imp.getWidth()), int(imp.getHeight())
    dtype, jview = _DTYPES[int(imp.getBitDepth())]
    cs = range(nc) if channel is None else [_index(channel, nc, "channel", imp)]
    ts = range(nt) if frame is None else [_index(frame, nt, "frame", imp)]
    stack = imp.getStack()
    out = np.empty((len(ts), nz, len(cs), h, w), dtype)
    flat = out.reshape(-1, h * w).view(jview)
    i = 0
    for t in ts:
        for z in range(nz):
            for c in cs:
                flat[i] = np.asarray(stack.getPixels(int(imp.getStackIndex(c + 1, z + 1, t + 1))))
                i += 1
    axes = "TZCYX"
    if len(cs) == 1:
        out, axes = out[:, :, 0], axes.replace("C", "")
    if len(ts) == 1:
        out, axes = out[0], axes.replace("T", "")
    voxel_size, unit = calibration_of(imp)
    meta = {"title": str(imp.getTitle())}
    return Volume(data=out, voxel_size=voxel_size, unit=unit, axes=axes, metadata=meta)


def _index(value: int, n: int, what: str, imp) -> int:
    value = int(value)
    if not 0 <= value < n:
        msg = (
            f"{what} {value + 1} does not exist in {str(imp.getTitle())!r}, which has {n} "
            f"{what}s (1..{n})"
        )
        raise ImageError(msg)
    return value


def _java_plane(plane: np.ndarray, jtype):
    import jpype

    return jpype.JArray(jtype)(plane)


def array_to_imageplus(
    data,
    *,
    axes: str | None = None,
    title: str = "image",
    voxel_size=None,
    unit: str = "um",
    calibration=None,
    display_range=None,
):
    """A new ImagePlus holding a copy of ``data``.

    Parameters
    ----------
    data : ndarray
        uint8, uint16 or float32 with axes ``axes``.
    axes : str, optional
        Subset of ``TZCYX`` containing ``YX`` (default: ``YX``, ``ZYX``, ``ZCYX``,
        ``TZCYX`` by ``data.ndim``).
    title : str
        Window title.
    voxel_size : tuple of float, optional
        ``(dz, dy, dx)`` in ``unit``; None leaves the image uncalibrated (unless
        ``calibration`` is given).
    unit : str
        Length unit (``"um"`` is shown as µm).
    calibration : ij.measure.Calibration, optional
        Copied first (frame interval, origin, value calibration ...), then ``voxel_size``
        and ``unit`` are applied on top.
    display_range : (float, float), optional
        Display minimum and maximum; default: the 0.1 / 99.9 percentiles (float data),
        the full data range (integer data).

    Returns
    -------
    ij.ImagePlus
        A hyperstack when it has several channels or frames.
    """
    data, depth = _as_tzcyx(data, axes)
    nt, nz, nc, _, _ = data.shape
    imp = _cls("ij.ImagePlus")(str(title), _image_stack(data, depth))
    imp.setDimensions(int(nc), int(nz), int(nt))
    if nc > 1 or nt > 1:
        imp.setOpenAsHyperStack(True)
    cal = calibration.copy() if calibration is not None else _cls("ij.measure.Calibration")()
    if voxel_size is not None:
        dz, dy, dx = normalize_voxel_size(voxel_size)
        cal.pixelDepth, cal.pixelHeight, cal.pixelWidth = dz, dy, dx
        cal.setUnit(java_unit(unit))
    imp.setCalibration(cal)
    if display_range is None:
        display_range = _auto_range(data)
    lo, hi = display_range
    if hi > lo:
        imp.setDisplayRange(float(lo), float(hi))
    return imp


def _as_tzcyx(data, axes: str | None) -> tuple[np.ndarray, int]:
    """``(data as a (T, Z, C, Y, X) view, ImageJ bit depth)``; missing axes get length 1."""
    data = np.asarray(data)
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}.get(data.dtype)
    if depth is None:
        msg = (
            f"ImageJ holds uint8, uint16 or float32 pixels, got {data.dtype}; convert first "
            "(e.g. data.astype(np.float32))"
        )
        raise ImageError(msg)
    axes = (axes or {2: "YX", 3: "ZYX", 4: "ZCYX", 5: "TZCYX"}.get(data.ndim, "")).upper()
    if (len(axes) != data.ndim or not {"Y", "X"} <= set(axes) or len(set(axes)) != len(axes)
            or any(a not in "TZCYX" for a in axes)):
        msg = f"`axes` {axes!r} does not describe data of shape {data.shape} (subset of TZCYX)"
        raise ImageError(msg)
    for a in "TZC":
        if a not in axes:
            data, axes = data[np.newaxis], a + axes
    order = ["TZCYX".index(a) for a in axes]
    return np.transpose(data, np.argsort(order)), depth


def _image_stack(data: np.ndarray, depth: int):
    """An ``ij.ImageStack`` of the planes of a (T, Z, C, Y, X) array, in ImageJ's order."""
    import jpype

    h, w = data.shape[-2:]
    _, jview = _DTYPES[depth]
    jtype = {8: jpype.JByte, 16: jpype.JShort, 32: jpype.JFloat}[depth]
    planes = np.ascontiguousarray(data).reshape(-1, h * w).view(jview)
    stack = _cls("ij.ImageStack")(int(w), int(h))
    for plane in planes:
        stack.addSlice("", _java_plane(plane, jtype))
    return stack


def _auto_range(data: np.ndarray) -> tuple[float, float]:
    if data.size == 0:
        return 0.0, 0.0
    sample = data.ravel()[:: max(1, data.size // 1_000_000)]
    if data.dtype.kind == "f":
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:
            return 0.0, 0.0
        lo, hi = np.percentile(finite, (0.1, 99.9))
        return float(lo), float(hi)
    return float(sample.min()), float(sample.max())


def label_lut():
    """A 256-entry ImageJ LUT for label images: 0 black, labels in distinct bright colours.

    Colours follow the golden-angle hue sequence (neighbouring labels differ strongly),
    saturation and value alternating between two levels.
    """
    import colorsys

    import jpype

    rgb = np.zeros((256, 3), np.uint8)
    for i in range(1, 256):
        hue = (i * 0.618033988749895) % 1.0
        sat = 0.65 if i % 2 else 0.9
        val = 1.0 if i % 3 else 0.8
        rgb[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255)
    planes = [jpype.JArray(jpype.JByte)(np.ascontiguousarray(rgb[:, k]).view(np.int8)) for k in range(3)]
    return _cls("ij.process.LUT")(*planes)
