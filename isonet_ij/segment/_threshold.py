"""Global stack thresholds computed and applied exactly as ImageJ 1.x does it.

The 256-bin stack histogram (:func:`imagej_histogram`), the Intermodes and Otsu bins of
``AutoThresholder`` (:func:`intermodes_bin`, :func:`otsu_bin`), the bin-to-value rule of
``IJ.setAutoThreshold(imp, "<Method> dark stack")`` (:func:`auto_threshold`) and
*Convert to Mask* (:func:`threshold_mask`). The exact rules are listed in the docstring of
:mod:`isonet_ij.segment`; ``tests/test_intermodes_imagej.py`` checks them against ``ij.jar``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..volume_io import VolumeError

#: Automatic threshold methods (names as in ImageJ's AutoThresholder, lower case).
THRESHOLD_METHODS = ("intermodes", "otsu")

#: ImageJ's iteration limit for Intermodes (AutoThresholder: ``if (iter > 10000)``).
_INTERMODES_MAX_ITER = 10000
_NBINS = 256


# --------------------------------------------------------------------------- histogram


def _as_imagej_data(volume) -> np.ndarray:
    """Return ``volume`` as ImageJ would hold it: uint8, uint16 or float32."""
    vol = np.asarray(volume)
    if vol.size == 0:
        msg = f"`volume` is empty (shape {vol.shape}); give a non-empty 3D array"
        raise VolumeError(msg)
    if vol.dtype == bool:
        return vol.astype(np.uint8) * np.uint8(255)
    if vol.dtype in (np.uint8, np.uint16, np.float32):
        return vol
    if vol.dtype.kind in "iu":
        lo, hi = int(vol.min()), int(vol.max())
        if lo >= 0 and hi <= 65535:
            return vol.astype(np.uint16)
        return vol.astype(np.float32)
    if vol.dtype.kind == "f":
        return vol.astype(np.float32)
    msg = f"`volume` must be a real-valued array, got dtype {vol.dtype}"
    raise VolumeError(msg)


def imagej_histogram(volume) -> tuple[np.ndarray, float, float]:
    """256-bin stack histogram exactly as ImageJ's ``StackStatistics`` builds it.

    Parameters
    ----------
    volume : ndarray
        Any shape. uint8, uint16 and float32 are used as ImageJ uses them; bool becomes
        0/255 uint8, other integers uint16 when they fit in ``[0, 65535]`` (else float32),
        float64 becomes float32 (ImageJ has no 64-bit images).

    Returns
    -------
    histogram : (256,) ndarray of int64
        Voxel counts per bin (NaN and infinite voxels are not counted).
    hist_min, hist_max : float
        The value range the bins span and that a bin maps back through: ``(0, 255)`` for
        8-bit, the data's min and max otherwise.

    Raises
    ------
    VolumeError
        Empty volume, or float data that are all NaN/inf.
    """
    vol = _as_imagej_data(volume)
    if vol.dtype == np.uint8:
        hist = np.bincount(vol.ravel(), minlength=_NBINS).astype(np.int64)
        return hist, 0.0, 255.0
    if vol.dtype == np.uint16:
        counts = np.bincount(vol.ravel(), minlength=65536).astype(np.int64)
        present = np.flatnonzero(counts)
        vmin, vmax = int(present[0]), int(present[-1])
        idx = np.zeros(present.size, dtype=np.int64)
        if vmax > vmin:
            bin_size = (vmax - vmin) / float(_NBINS)
            scale = 1.0 / bin_size
            idx = (scale * (present - vmin).astype(np.float64)).astype(np.int64)
            idx = np.minimum(idx, _NBINS - 1)
        hist = np.bincount(idx, weights=counts[present], minlength=_NBINS)
        return np.rint(hist).astype(np.int64), float(vmin), float(vmax)
    # float32: ImageJ works on the float values widened to double and skips NaN and
    # +-inf (StackStatistics only counts -Float.MAX_VALUE <= v <= Float.MAX_VALUE).
    flat = vol.ravel()
    finite = np.isfinite(flat)
    if not finite.any():
        msg = "`volume` contains only NaN/inf values; nothing to threshold"
        raise VolumeError(msg)
    if not finite.all():
        flat = flat[finite]
    vmin, vmax = float(flat.min()), float(flat.max())
    if vmax > vmin:
        scale = _NBINS / (vmax - vmin)
        hist = np.zeros(_NBINS, dtype=np.int64)
        # chunks keep the float64 temporaries small for large volumes
        step = 1 << 22
        for start in range(0, flat.size, step):
            chunk = flat[start : start + step].astype(np.float64)
            idx = (scale * (chunk - vmin)).astype(np.int64)
            np.minimum(idx, _NBINS - 1, out=idx)
            hist += np.bincount(idx, minlength=_NBINS)
    else:  # Java: (int)(Infinity * 0.0) == (int)NaN == 0
        hist = np.zeros(_NBINS, dtype=np.int64)
        hist[0] = flat.size
    return hist, vmin, vmax


# --------------------------------------------------------------------------- methods


def _check_histogram(histogram) -> np.ndarray:
    hist = np.asarray(histogram)
    if hist.shape != (_NBINS,):
        msg = f"`histogram` must have 256 bins (ImageJ's AutoThresholder), got shape {hist.shape}"
        raise ValueError(msg)
    if hist.dtype.kind not in "iu" and not np.all(hist == np.floor(hist)):
        msg = "`histogram` must hold integer counts"
        raise ValueError(msg)
    if np.any(hist < 0):
        msg = "`histogram` counts must be >= 0"
        raise ValueError(msg)
    if not np.any(hist > 0):
        msg = "`histogram` is empty (all counts 0); there is nothing to threshold"
        raise ValueError(msg)
    return hist


def _n_strict_maxima(h: np.ndarray) -> int:
    mid = h[1:-1]
    return int(np.count_nonzero((h[:-2] < mid) & (h[2:] < mid)))


def _intermodes_raw(histogram) -> tuple[int, int]:
    """ImageJ's ``AutoThresholder.Intermodes``: ``(bin or -1, smoothing iterations)``."""
    data = _check_histogram(histogram)
    nz = np.flatnonzero(data > 0)
    minbin, maxbin = int(nz[0]), int(nz[-1])
    length = maxbin - minbin + 1
    # ImageJ copies the int counts into a double[] (exact for counts < 2**53)
    cur = data[minbin : maxbin + 1].astype(np.float64)
    pad = np.zeros(length + 2, dtype=np.float64)
    tmp = np.empty(length, dtype=np.float64)
    it = 0
    while _n_strict_maxima(cur) != 2:
        # hist[i] = (previous + current + next) / 3 with zeros beyond both ends, evaluated
        # left to right exactly as Java does: ((p + c) + n) / 3
        pad[1:-1] = cur
        np.add(pad[:-2], pad[1:-1], out=tmp)
        np.add(tmp, pad[2:], out=tmp)
        np.divide(tmp, 3.0, out=cur)
        it += 1
        if it > _INTERMODES_MAX_ITER:
            return -1, it
    mid = cur[1:-1]
    modes = np.flatnonzero((cur[:-2] < mid) & (cur[2:] < mid)) + 1
    tt = int(modes.sum())
    return int(math.floor(tt / 2.0)) + minbin, it


def intermodes_bin(histogram) -> int:
    """Intermodes threshold bin, identical to ImageJ's ``AutoThresholder``.

    ``AutoThresholder().getThreshold(Method.Intermodes, histogram)`` of ImageJ 1.53t:
    crop to the non-empty bin range, smooth with a 3-point running mean (zero padding)
    until exactly two strict local maxima ``j < k`` remain, return
    ``floor((j + k) / 2)`` (plus the crop offset). Flat peaks (equal neighbours) are not
    maxima, as in ImageJ.

    Parameters
    ----------
    histogram : (256,) array_like of int
        Bin counts.

    Returns
    -------
    int
        Bin index in ``[0, 255]``; foreground ("dark background") is the bins above it.
        When ImageJ finds no two modes within 10000 smoothings it returns 0; so does this
        function, with a ``RuntimeWarning``.

    Raises
    ------
    ValueError
        Not 256 bins, negative counts, or all counts 0 (ImageJ fails there too).

    Examples
    --------
    >>> h = np.zeros(256, int); h[50:60] = 100; h[150:170] = 40
    >>> intermodes_bin(h)
    107
    """
    t, it = _intermodes_raw(histogram)
    if t < 0:
        warnings.warn(
            f"Intermodes found no two histogram modes after {_INTERMODES_MAX_ITER} "
            "smoothings (the histogram is unimodal or too flat); like ImageJ, bin 0 is "
            "used. Consider --threshold otsu or an explicit value",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0
    return t


def otsu_bin(histogram) -> int:
    """Otsu threshold bin, identical to ImageJ 1.53t's ``AutoThresholder`` (``Method.Otsu``).

    Maximises the between-class variance ``((N1/N) S - S1)^2 / (N1 (N - N1))`` over
    ``k = 1..254`` (``N1``, ``S1``: count and first moment of bins ``0..k``; ``N``, ``S``:
    totals); on ties the largest ``k`` wins (ImageJ uses ``>=``). Foreground is the bins
    above the returned one.

    Parameters
    ----------
    histogram : (256,) array_like of int

    Returns
    -------
    int
    """
    data = _check_histogram(histogram).astype(np.float64)
    k = np.arange(_NBINS, dtype=np.float64)
    n_total = 0.0
    s_total = 0.0
    for i in range(_NBINS):  # same accumulation order as ImageJ (sums of exact ints)
        s_total += k[i] * data[i]
        n_total += data[i]
    # running sums over k = 1..254 (exact in float64 for counts < 2**53)
    s_k = np.cumsum(k[1:255] * data[1:255])
    n_1 = data[0] + np.cumsum(data[1:255])
    denom = n_1 * (n_total - n_1)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = (n_1 / n_total) * s_total - s_k
        bcv = np.where(denom != 0, num * num / np.where(denom != 0, denom, 1.0), 0.0)
    return int(np.flatnonzero(bcv == bcv.max())[-1]) + 1


_BIN_METHODS = {"intermodes": intermodes_bin, "otsu": otsu_bin}


# --------------------------------------------------------------------------- threshold


@dataclass(frozen=True)
class Threshold:
    """A global threshold as ImageJ computes and applies it ("dark background").

    Foreground is ``float32(lower) <= float32(v) <= float32(upper)``.

    Attributes
    ----------
    method : str
        ``"intermodes"``, ``"otsu"`` or ``"value"`` (user-given lower threshold).
    bin : int or None
        The AutoThresholder bin (0..255); None for ``"value"``.
    lower, upper : float
        What ImageJ's ``getMinThreshold()`` / ``getMaxThreshold()`` return after
        ``IJ.setAutoThreshold(imp, "<Method> dark stack")``, in data units.
    hist_min, hist_max : float
        Range spanned by the 256-bin histogram.
    dtype : str
        The data type ImageJ would see (``uint8``, ``uint16``, ``float32``).
    converged : bool
        False when Intermodes gave up (ImageJ's fallback bin 0 was used).
    histogram : (256,) ndarray or None
    """

    method: str
    bin: int | None
    lower: float
    upper: float
    hist_min: float
    hist_max: float
    dtype: str
    converged: bool = True
    histogram: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        """JSON-friendly summary (without the histogram)."""
        return {
            "method": self.method,
            "bin": self.bin,
            "lower": self.lower,
            "upper": self.upper,
            "hist_min": self.hist_min,
            "hist_max": self.hist_max,
            "dtype": self.dtype,
            "converged": self.converged,
        }


def _java_round(x: float) -> float:
    """``Math.round(double)`` of Java (round half up), as a float."""
    f = math.floor(x)
    return float(f + 1 if x - f >= 0.5 else f)


def _bin_to_thresholds(t: int, hist_min: float, hist_max: float, dtype) -> tuple[float, float]:
    """``IJ.setStackThreshold`` for a dark background and a normal LUT, then setThreshold."""
    lower, upper = float(t + 1), 255.0
    if lower > 255.0:
        lower = 255.0
    if dtype != np.uint8:
        if hist_max > hist_min:
            lower = hist_min + (lower / 255.0) * (hist_max - hist_min)
            upper = hist_min + (upper / 255.0) * (hist_max - hist_min)
        else:
            lower = upper = hist_min
    if dtype == np.uint16:  # ShortProcessor.setThreshold: clamp, then Math.round
        lower = _java_round(max(lower, 0.0))
        upper = _java_round(min(upper, 65535.0))
    elif dtype == np.uint8:  # ByteProcessor.setThreshold: clamp
        lower, upper = max(lower, 0.0), min(upper, 255.0)
    return lower, upper


def auto_threshold(volume, *, method: str = "intermodes") -> Threshold:
    """Global stack threshold, identical to ImageJ's ``"<Method> dark stack"``.

    Equals ``IJ.setAutoThreshold(imp, "Intermodes dark stack")`` followed by
    ``imp.getProcessor().getMinThreshold()`` / ``getMaxThreshold()`` in ImageJ 1.53t,
    for 8-, 16- and 32-bit stacks (see :mod:`isonet_ij.segment` for the exact rules).

    Parameters
    ----------
    volume : ndarray
        Intensities, any shape (normally (Z, Y, X)); see :func:`imagej_histogram` for
        how dtypes are treated.
    method : {"intermodes", "otsu"}

    Returns
    -------
    Threshold

    Raises
    ------
    ValueError
        Unknown method; empty, all-NaN or constant volume (no threshold can separate
        anything: ImageJ would select every voxel).
    """
    key = str(method).lower()
    if key not in _BIN_METHODS:
        msg = f"`method` must be one of {THRESHOLD_METHODS}, got {method!r}"
        raise ValueError(msg)
    vol = _as_imagej_data(volume)
    hist, hmin, hmax = imagej_histogram(vol)
    constant = np.count_nonzero(hist) == 1 if vol.dtype == np.uint8 else hmax == hmin
    if constant:
        value = hmin if vol.dtype != np.uint8 else int(np.flatnonzero(hist)[0])
        msg = (
            f"`volume` is constant (every voxel = {value!r}): an automatic threshold "
            "cannot separate nuclei from background (ImageJ would select every voxel "
            "or none); check the input file"
        )
        raise ValueError(msg)
    converged = True
    if key == "intermodes":
        t, _ = _intermodes_raw(hist)
        if t < 0:
            converged = False
            t = 0
            warnings.warn(
                f"Intermodes found no two histogram modes after {_INTERMODES_MAX_ITER} "
                "smoothings (unimodal or flat histogram); like ImageJ, bin 0 is used. "
                "Consider threshold='otsu' or an explicit value",
                RuntimeWarning,
                stacklevel=2,
            )
    else:
        t = otsu_bin(hist)
    lower, upper = _bin_to_thresholds(t, hmin, hmax, vol.dtype.type)
    return Threshold(
        method=key,
        bin=int(t),
        lower=lower,
        upper=upper,
        hist_min=hmin,
        hist_max=hmax,
        dtype=str(vol.dtype),
        converged=converged,
        histogram=hist,
    )


def threshold_mask(volume, threshold) -> np.ndarray:
    """Foreground mask as ImageJ's *Convert to Mask* makes it ("dark background").

    Parameters
    ----------
    volume : ndarray
        Intensities.
    threshold : Threshold or float
        A :class:`Threshold` (``lower <= v <= upper``), or a number ``lower``
        (``v >= lower``). Comparisons are in float32, as in ImageJ; NaN is background.

    Returns
    -------
    ndarray of bool
        Same shape as ``volume``.
    """
    vol = _as_imagej_data(volume)
    if isinstance(threshold, Threshold):
        lower, upper = threshold.lower, threshold.upper
    else:
        try:
            lower = float(threshold)
        except (TypeError, ValueError):
            msg = f"`threshold` must be a Threshold or a number, got {threshold!r}"
            raise ValueError(msg) from None
        if not math.isfinite(lower):
            msg = f"`threshold` must be finite, got {threshold!r}"
            raise ValueError(msg)
        upper = math.inf
    if vol.dtype == np.uint8 and isinstance(threshold, Threshold):
        return (vol >= lower) & (vol <= upper)
    v32 = vol if vol.dtype == np.float32 else vol.astype(np.float32)
    mask = v32 >= np.float32(lower)
    if math.isfinite(upper):
        mask &= v32 <= np.float32(upper)
    return mask
