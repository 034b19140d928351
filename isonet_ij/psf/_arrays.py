"""Helpers on centred, odd-sized arrays: padding/cropping, border shells, robust noise."""

from __future__ import annotations

import numpy as np

__all__ = ["pad_to", "crop_negligible", "border_shell", "robust_noise"]


def pad_to(a: np.ndarray, shape) -> np.ndarray:
    """Centre-crop / zero-pad odd-sized ``a`` to odd ``shape`` (dtype kept)."""
    out = np.zeros(shape, dtype=a.dtype)
    src, dst = [], []
    for n_in, n_out in zip(a.shape, shape):
        m = min(n_in, n_out)
        src.append(slice(n_in // 2 - m // 2, n_in // 2 - m // 2 + m))
        dst.append(slice(n_out // 2 - m // 2, n_out // 2 - m // 2 + m))
    out[tuple(dst)] = a[tuple(src)]
    return out


def crop_negligible(a: np.ndarray, mass: float) -> np.ndarray:
    """Symmetrically crop borders of odd-sized ``a`` holding at most ``mass`` of its sum.

    The budget is shared equally between the axes.
    """
    total = float(a.sum())
    budget = mass * total / a.ndim
    for ax in range(a.ndim):
        prof = a.sum(axis=tuple(i for i in range(a.ndim) if i != ax)).astype(np.float64)
        n = prof.size
        both = np.cumsum(prof[: n // 2]) + np.cumsum(prof[::-1][: n // 2])
        t = int(np.searchsorted(both, budget, side="right"))  # trims within budget
        if t > 0:
            sl = [slice(None)] * a.ndim
            sl[ax] = slice(t, n - t)
            a = a[tuple(sl)]
    return a


def border_shell(data: np.ndarray, width: int) -> np.ndarray:
    """The voxels of ``data`` within ``width`` of its border, flattened (all when it is thin)."""
    mask = np.ones(data.shape, dtype=bool)
    inner = tuple(slice(min(width, s // 2), max(s - width, s // 2 + 1)) for s in data.shape)
    mask[inner] = False
    return data[mask] if mask.any() else data.ravel()


def robust_noise(a: np.ndarray) -> tuple[float, float]:
    """(median, MAD-based sd) of ``a``: the background level and noise of mostly-empty data."""
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med)))
    return med, 1.4826 * mad
