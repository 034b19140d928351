"""isonet-ij: isotropic restoration of anisotropic 3D fluorescence microscopy volumes.

Implements IsoNet (Weigert, Royer, Jug, Myers, MICCAI 2017) with a numpy API, the
``isonet`` command line and a Fiji/ImageJ bridge. Axes are (z, y, x) everywhere.
"""

__version__ = "0.1.0"
