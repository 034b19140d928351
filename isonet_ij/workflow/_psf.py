"""The PSF of a training run from the user's spec: ``gaussian:..``, optical models, a file, ``auto``."""

from __future__ import annotations

import logging
from pathlib import Path

from ._common import CLI_WORDS, Words

__all__ = ["is_auto_psf", "resolve_psf", "read_psf_file"]

log = logging.getLogger(__name__)


def is_auto_psf(spec) -> bool:
    """``auto`` or ``auto:MODEL``: a PSF estimated from the volume itself."""
    return isinstance(spec, str) and spec.strip().lower().partition(":")[0] == "auto"


def read_psf_file(spec: str):
    """Check a PSF.tif: one 3D (z, y, x) stack on the isotropic grid, odd, non-negative."""
    from ..psf import validate_psf
    from ..volume_io import read_volume

    raw = read_volume(Path(spec).expanduser())
    if raw.axes != "ZYX":
        msg = f"PSF file {spec!r} has axes {raw.axes}; a PSF is a single 3D (z, y, x) stack"
        raise ValueError(msg)
    validate_psf(raw.data, name=f"PSF file {spec}")


def _auto(spec: str, data, factor, voxel_size, words: Words) -> tuple[str, dict]:
    from ..psf import auto_psf_spec

    model = spec.partition(":")[2] or None
    try:
        found, estimate = auto_psf_spec(data, factor, model=model,
                                        xy_voxel_size=voxel_size[2] if voxel_size else None)
    except ValueError as exc:
        msg = f"{words.example('psf', spec)}: {exc}"
        raise ValueError(msg) from exc
    log.info("%s: estimated %s (sigma_xy %.2f, sigma_z %.2f voxels)", words.example("psf", spec),
             found, estimate["sigma_xy"], estimate["sigma_z"])
    return found, estimate


def resolve_psf(spec, data, factor, voxel_size, mode: str, *,
                words: Words = CLI_WORDS) -> tuple[str, object, dict]:
    """The PSF of a training run on the isotropic grid ``(dx, dy, dx)`` of ``data``.

    Parameters
    ----------
    spec : str or None
        ``gaussian:SXY,SZ``, ``confocal:...``, ``lightsheet:...``, ``widefield:...``, a
        ``PSF.tif`` path, ``auto`` (a Gaussian estimated from ``data``) or ``auto:MODEL``
        (an optical model fitted to that estimate).
    data : (Z, Y, X) ndarray
        The training volume (for ``auto``).
    factor : float
    voxel_size : (dz, dy, dx) or None
    mode : {"split", "full", "none"}
        ``none`` trains without a PSF: a given spec is ignored (with a warning).

    Returns
    -------
    (spec, h, info)
        The spec to record (``auto`` replaced by what was estimated; ``""`` for mode none),
        the PSF array (None for mode none) and what the parser reported (``auto_estimate``
        added for ``auto``).
    """
    spec = str(spec or "").strip()
    if mode == "none":
        if spec:
            log.warning("%s none ignores %s", words.opt("mode"), words.opt("psf"))
        return "", None, {}
    if not spec:
        msg = (f"{words.opt('psf')} is required for mode {mode} (e.g. "
               f"{words.example('psf', 'gaussian:2,8')}: sigmas in voxels, confocal:..., or a PSF "
               f".tif); {words.example('mode', 'none')} trains without a PSF")
        raise ValueError(msg)
    estimate = None
    if is_auto_psf(spec):
        spec, estimate = _auto(spec, data, factor, voxel_size, words)
    elif Path(spec).expanduser().is_file():
        # a bad PSF file is an error, not resampled
        read_psf_file(spec)
    from ..psf import psf_for_volume

    h, info = psf_for_volume(spec, voxel_size, calibration_hint=words.set_calibration)
    if estimate is not None:
        info = {**info, "auto_estimate": estimate}
    return spec, h, info
