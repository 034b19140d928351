"""Length units of calibrations: every voxel size isonet computes with is in micrometres.

ImageJ TIFFs name their unit (``unit=micron``, ``nm``, ...); OME-XML gives each
``PhysicalSize{X,Y,Z}`` its own ``PhysicalSize{X,Y,Z}Unit``; OME-Zarr axes carry a
``unit``. :func:`to_um` converts sizes in a known length unit to micrometres.
"""

from __future__ import annotations

__all__ = ["UNITS_UM", "to_um", "ome_calibration"]

#: Length units (lower case) and their size in micrometres: ImageJ, OME and NGFF spellings.
UNITS_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "mm": 1e3, "millimeter": 1e3,
    "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "angstrom": 1e-4, "å": 1e-4, "pm": 1e-6,
}


def to_um(sizes, unit) -> tuple[tuple, str]:
    """``(sizes in micrometres, "um")`` for a known length unit, else ``(sizes, unit)`` as given."""
    scale = UNITS_UM.get(str(unit).strip().lower()) if unit else None
    if scale is None:
        return tuple(float(s) for s in sizes), unit
    return tuple(float(s) * scale for s in sizes), "um"


def ome_calibration(ome_xml: str):
    """``((dz, dy, dx), unit)`` of an OME-XML's first Pixels, each size read in its own unit.

    Sizes are converted to micrometres (unit ``"um"``); None when a size is missing, the
    XML unreadable, or the axes' units cannot be brought to one unit.
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    out, units = [], set()
    for a in "ZYX":
        size = pixels.get(f"PhysicalSize{a}")
        if size is None:
            return None
        (v,), unit = to_um((float(size),), pixels.get(f"PhysicalSize{a}Unit", "µm"))
        out.append(v)
        units.add(unit)
    if len(units) != 1:
        return None
    return tuple(out), units.pop()
