"""napari layers in and out: which layers the engine takes, their factor, the result layers.

A layer's ``scale`` is its calibration ``(dz, dy, dx)``; a scale whose axes are all equal
(napari's default ``(1, 1, 1)``) carries none, and the widgets then ask for the factor
instead of guessing. Results keep the input's ``translate`` and get an isotropic
``scale`` (z spacing divided by the factor); the input layer is never modified.
"""

from __future__ import annotations

import numpy as np

from ..workflow import NAPARI_WORDS, resolve_factor

__all__ = ["LayerError", "LayerInput", "layer_input", "factor_of", "isotropic_scale", "result_kwargs"]


class LayerError(ValueError):
    """A layer or a field the engine cannot use as given; the message says what to do."""


class LayerInput:
    """The (Z, Y, X) data of an image layer with its calibration (None when 1:1)."""

    def __init__(self, layer, data, voxel_size):
        self.layer = layer
        self.name = str(layer.name)
        self.data = data
        self.voxel_size = voxel_size

    @property
    def scale(self) -> tuple:
        return tuple(float(s) for s in self.layer.scale)

    @property
    def translate(self) -> tuple:
        return tuple(float(t) for t in self.layer.translate)


def _kind(layer) -> str:
    return type(layer).__name__


def layer_input(layer, command: str) -> LayerInput:
    """Check that ``layer`` is a 3D single-channel image layer; its data as a numpy array.

    Raises
    ------
    LayerError
        No layer, not an Image layer (Labels, Points, ...), RGB, multiscale, not 3D.
    """
    if layer is None:
        msg = f"{command}: no image layer; open a 3D stack (File > Open, or File > Open Sample > isonet-ij)"
        raise LayerError(msg)
    if _kind(layer) != "Image":
        msg = (f"{command}: {layer.name!r} is a {_kind(layer)} layer; choose an image layer "
               "(a 3D fluorescence stack)")
        raise LayerError(msg)
    if getattr(layer, "rgb", False):
        msg = (f"{command}: {layer.name!r} is an RGB image; IsoNet needs one fluorescence channel "
               "(split the channels, e.g. open the stack with the isonet-ij reader)")
        raise LayerError(msg)
    if getattr(layer, "multiscale", False):
        msg = f"{command}: {layer.name!r} is multiscale; open its full-resolution level as a layer"
        raise LayerError(msg)
    if layer.ndim != 3:
        what = "a 2D image has no axial planes" if layer.ndim == 2 else f"it has {layer.ndim} dimensions"
        msg = (f"{command}: {layer.name!r} is not a 3D (z, y, x) stack ({what}); choose a z stack "
               "(split channels and time points into 3D layers)")
        raise LayerError(msg)
    data = np.asarray(layer.data)
    if data.shape[0] < 2:
        msg = f"{command}: {layer.name!r} has a single z slice; IsoNet needs a z stack"
        raise LayerError(msg)
    scale = tuple(float(s) for s in layer.scale)
    calibrated = not np.allclose(scale, scale[0])
    return LayerInput(layer, data, scale if calibrated else None)


def factor_of(inp: LayerInput, factor, *, command: str) -> tuple[float, str]:
    """The anisotropy factor: the field when > 0, else the layer scale's dz / dx.

    A layer without calibration (scale 1:1) needs the field: no guess from a model.
    """
    given = float(factor) if factor else None
    try:
        return resolve_factor(given, inp.voxel_size, what=inp.name, words=NAPARI_WORDS)
    except ValueError as exc:
        msg = f"{command}: {exc}"
        raise LayerError(msg) from exc


def isotropic_scale(inp: LayerInput, factor: float) -> tuple:
    """The result's scale: the input's with the z spacing divided by ``factor``.

    A layer without calibration (1:1, the factor from the field) gets ``(dx, dy, dx)``:
    its z spacing was never the displayed 1.
    """
    dz, dy, dx = inp.scale
    if inp.voxel_size is None:
        return (dx, dy, dx)
    return (dz / float(factor), dy, dx)


def result_kwargs(inp: LayerInput, name: str, *, scale, provenance: dict) -> dict:
    """``add_image`` / ``add_labels`` keywords of a result layer of ``inp``."""
    return {"name": f"{inp.name}_{name}", "scale": tuple(scale), "translate": inp.translate,
            "metadata": {"isonet_provenance": provenance, "isonet_input": inp.name}}
