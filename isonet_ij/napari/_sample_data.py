"""Sample data (File > Open Sample > isonet-ij): the paper's three phantom pairings, small.

Each sample is the anisotropic input with its calibration (scale ``(factor * dx, dx, dx)``
um) and, hidden, the isotropic ground truth to compare a restoration with.
"""

from __future__ import annotations

__all__ = ["SAMPLE_SIZE", "phantom_layers", "nuclei", "membranes", "nuclei_membranes"]

#: Edge of the isotropic phantom, voxels (inputs of 8 to 16 slices of 64 x 64).
SAMPLE_SIZE = 64


def phantom_layers(kind: str, *, size: int = SAMPLE_SIZE, seed: int = 0) -> list:
    """Layer data tuples of one pairing: input (calibrated) and ground truth (hidden)."""
    from ..phantoms import synthesize

    syn = synthesize(kind, size=size, seed=seed)
    meta = syn["meta"]
    factor = syn["input_voxel_size"][0] / syn["voxel_size"][0]
    info = {"isonet_phantom": meta, "isonet_voxel_size": list(syn["input_voxel_size"]), "isonet_unit": "um"}
    return [
        (syn["input"], {"name": f"{kind} (input, factor {factor:g})", "scale": syn["input_voxel_size"],
                        "metadata": info, "colormap": "gray"}, "image"),
        (syn["gt_iso"], {"name": f"{kind} (isotropic ground truth)", "scale": syn["voxel_size"],
                         "metadata": {"isonet_phantom": meta}, "visible": False,
                         "colormap": "gray"}, "image"),
    ]


def nuclei() -> list:
    """Nuclei, Gaussian PSF (sigma 2 / 8 voxels), factor 8."""
    return phantom_layers("nuclei")


def membranes() -> list:
    """Membranes, confocal PSF (NA 1.1), factor 4."""
    return phantom_layers("membranes")


def nuclei_membranes() -> list:
    """Nuclei and membranes, light-sheet PSF, factor 6."""
    return phantom_layers("nuclei-membranes")
