"""Baselines of the paper's Table 1, on the same grid and API as :func:`restore.restore`.

* :func:`bicubic`: z interpolation onto the isotropic grid (Keys cubic, the grid's
  kernel) -- the paper's "blurred (input)" column.
* :func:`richardson_lucy`: bicubic z interpolation, then 3D Richardson-Lucy deconvolution
  with the PSF (FFT convolutions on a reflect-padded volume, ``iterations`` option).
* :func:`srcnn`: IsoNet-1 trained on pairs made by subsampling only (mode ``"none"``: no
  PSF), then restored like any model -- the paper's SRCNN column.

All take a (Z, Y, X) volume of any real dtype and return
``(floor((Z-1)*f)+1, Y, X)`` float32 in the input's intensity units.
"""

from __future__ import annotations

import numpy as np

from . import grid, pairs

__all__ = ["bicubic", "richardson_lucy", "srcnn", "METHODS"]

METHODS = ("bicubic", "rl", "srcnn")


def _check(volume):
    from .volume_io import as_volume3d

    return as_volume3d(volume)


def bicubic(volume, factor) -> np.ndarray:
    """Interpolate along z onto the isotropic grid (Keys cubic, a = -0.5).

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
    factor : float
        Anisotropy factor (>= 1, not rounded).

    Returns
    -------
    (floor((Z-1)*f)+1, Y, X) ndarray of float32
    """
    return grid.upsample_z(_check(volume), factor)


def richardson_lucy(volume, psf, factor, *, iterations: int = 10, progress: bool = False):
    """Bicubic z interpolation followed by 3D Richardson-Lucy deconvolution.

    The interpolated volume is normalized by its 1/99.8 percentiles, shifted to be
    positive (RL needs non-negative data), reflect-padded by the PSF half-size on every
    axis, deconvolved with ``iterations`` multiplicative updates
    ``u <- u * (h^T * (g / (h * u)))`` (FFT convolutions), cropped and mapped back to the
    input's intensity units.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
    psf : (z, y, x) ndarray
        3D PSF on the isotropic grid (odd sizes, non-negative, positive sum).
    factor : float
    iterations : int
        Number of RL iterations (>= 1; default 10).

    Returns
    -------
    (floor((Z-1)*f)+1, Y, X) ndarray of float32
    """
    from scipy.signal import fftconvolve

    from .psf import validate_psf

    vol = _check(volume)
    h = validate_psf(psf).astype(np.float32)
    iterations = int(iterations)
    if iterations < 1:
        msg = f"`iterations` must be >= 1, got {iterations}"
        raise ValueError(msg)
    up = grid.upsample_z(vol, factor)
    lo, hi = pairs.percentiles(up)
    g = pairs.normalize(up, lo, hi)
    offset = float(max(0.0, -g.min())) + 1e-3
    g += np.float32(offset)
    pads = [(s // 2, s // 2) for s in h.shape]
    gp = np.pad(g, pads, mode="reflect")  # numpy reflects repeatedly if the PSF is larger
    h_t = h[::-1, ::-1, ::-1]
    u = gp.copy()
    rng = range(iterations)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc="richardson-lucy", unit="it")
    for _ in rng:
        est = fftconvolve(u, h, mode="same")
        ratio = gp / np.maximum(est, 1e-6)
        u *= np.maximum(fftconvolve(ratio, h_t, mode="same"), 0).astype(np.float32)
    crop = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, g.shape))
    res = u[crop] - np.float32(offset)
    return pairs.denormalize(res, lo, hi)


def srcnn(volume, factor, *, restore_kwargs=None, progress=False, **train_options) -> np.ndarray:
    """SRCNN baseline restoration: :func:`train_srcnn`, then :func:`isonet_ij.restoration.restore`.

    ``train_options`` go to :func:`train_srcnn`; returns (floor((Z-1)*f)+1, Y, X) float32.
    """
    from .restoration import restore

    result = train_srcnn(volume, factor, progress=progress, **train_options)
    return restore(_check(volume), result.model, progress=progress, **(restore_kwargs or {}))


def train_srcnn(volume, factor, *, config=None, time_budget=None, model_dir=None, progress=False,
                **train_kwargs):
    """SRCNN baseline: IsoNet-1 trained on subsampling-only pairs (no PSF).

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
    factor : float
    config : Config, optional
        Training options; ``arch``/``mode`` are forced to ``isonet1``/``none``.
    time_budget : float or str, optional
        Wall-clock limit of the training.
    model_dir : str or Path, optional
        Keep the trained model there.

    Returns
    -------
    TrainResult
        As :func:`isonet_ij.training.train` (``.model``: the trained SRCNN).
    """
    from .config import Config
    from .training import train

    vol = _check(volume)
    cfg = (config or Config(factor=grid.check_factor(factor))).replace(
        arch="isonet1", mode="none", psf="", factor=grid.check_factor(factor)
    )
    return train(vol, cfg, model_dir=model_dir, time_budget=time_budget, progress=progress, **train_kwargs)
