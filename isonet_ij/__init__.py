"""isonet-ij: isotropic restoration of anisotropic 3D fluorescence microscopy volumes.

Implements IsoNet (Weigert, Royer, Jug, Myers, MICCAI 2017) with a numpy API, the
``isonet`` command line and a Fiji/ImageJ bridge. Axes are (z, y, x) everywhere, voxel
sizes ``(dz, dy, dx)`` in micrometres.

The public API is flat and lazy: ``from isonet_ij import restore`` imports only what
restoration needs, and importing ``isonet_ij`` itself starts no TensorFlow::

    from isonet_ij import read_volume, load_model, restore, write_volume

    vol = read_volume("stack.tif")                  # vol.data (z, y, x), vol.voxel_size
    model = load_model("model_dir")                 # or MODEL.onnx, PACKAGE.zip
    iso = restore(vol.data, model, factor=vol.anisotropy)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first use)
_API = {
    "read_volume": "volume_io",
    "write_volume": "volume_io",
    "Volume": "volume_io",
    "VolumeError": "volume_io",
    "synthesize": "phantoms",
    "Config": "config",
    "train": "training",
    "IsoNetModel": "model",
    "load_model": "model",
    "restore": "restoration",
    "restore_with_info": "restoration",
    "Restoration": "restoration",
    "restore_stack": "restoration",
    "restore_chunked": "chunked",
    "segment_nuclei": "segment",
    "estimate_axial_blur": "psf",
    "psf_from_beads": "psf",
    "export": "model_export",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        msg = f"module 'isonet_ij' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
