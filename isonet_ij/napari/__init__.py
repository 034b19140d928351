"""napari plugin (npe2): dock widgets, a calibrated TIFF reader and phantom sample data.

Install with ``pip install "isonet-ij[napari]"``; napari finds the manifest
``napari.yaml`` through the ``napari.manifest`` entry point. Widgets
(Plugins > isonet-ij): **IsoNet Train**, **IsoNet Restore**, **IsoNet Estimate PSF**,
**IsoNet Segment**; they call :mod:`isonet_ij.workflow` like the CLI and ImageJ do.
The reader keeps the voxel size of ImageJ / OME TIFFs as the layer scale; File > Open
Sample > isonet-ij adds the three phantom pairings. Only this package imports napari
and Qt, lazily (importing :mod:`isonet_ij.napari` itself imports neither).
"""

__all__: list[str] = []
