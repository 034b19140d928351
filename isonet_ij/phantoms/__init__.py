"""Synthetic volumes and the image-formation model (eq. 1 of Weigert et al. 2017).

Three phantom kinds mimic sec. 3.1 of the paper: textured nuclei (:func:`nuclei`), a
packed epithelium of bright membranes (:func:`membranes`) and both together
(:func:`nuclei_membranes`). :func:`forward_model` turns a fluorophore density ``f`` into
an anisotropic acquisition ``g = P[S_sigma(h * f)] + eta`` and :func:`synthesize` builds a
complete, documented test case (ground truth, isotropic ground truth, input, PSF,
labels, metadata).

Conventions
-----------
* Axes are ``(z, y, x)``; phantoms live on an isotropic grid of voxel size ``dx`` (um).
* Every random choice comes from one ``seed``: the same seed gives byte-identical arrays.
* Densities are float32 in ``[0, 1]`` (arbitrary fluorophore units); labels are uint16
  with 0 as background.
* Convolutions use half-sample symmetric ("reflect") padding (:func:`convolve`), so
  structures cut by the volume border do not fade into a dark rim and, for a
  point-symmetric PSF, the total intensity is exactly preserved.
* The axial slicing keeps every ``factor``-th slice starting at slice 0: slice ``i`` of
  the acquisition lies at slice ``i * factor`` of the isotropic grid.

Layout: ``_shapes`` (the phantom kinds and their texture), ``_geometry`` (points,
rotations, ellipsoids, Voronoi cells), ``_formation`` (blur, slicing, noise) and
``_synthesis`` (:func:`synthesize`); everything public is re-exported here.
"""

from ._formation import convolve, forward_model
from ._shapes import (
    KINDS,
    NUCLEI_PER_512_CUBE,
    membranes,
    nuclei,
    nuclei_membranes,
    smooth_noise,
    target_nuclei_count,
)
from ._synthesis import DEFAULTS, MIN_SIZE, synthesize

__all__ = [
    "KINDS",
    "DEFAULTS",
    "NUCLEI_PER_512_CUBE",
    "MIN_SIZE",
    "target_nuclei_count",
    "smooth_noise",
    "nuclei",
    "membranes",
    "nuclei_membranes",
    "convolve",
    "forward_model",
    "synthesize",
]
