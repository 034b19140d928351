"""Isotropic restoration: tiled, batched application of a trained IsoNet to axial planes.

:func:`restore` takes a (Z, Y, X) volume and returns ``(floor((Z-1)*f)+1, Y, X)`` float32
on the grid of :mod:`isonet_ij.grid` (acquired slice ``i`` at output slice ``i*f``):

1. normalize by percentiles computed once for the whole volume (or the model's stored
   ones), never per tile or chunk;
2. interpolate along z (bicubic, the grid's Keys kernel) chunk by chunk;
3. apply the network to every xz plane (rows z, cols x) and every yz plane (rows z,
   cols y), reflect-padded by a small border (:func:`default_border`: 4 rows along z up to
   factor 4, 8 above, none along x / y; the network's own zero padding acts beyond it, as
   in a whole-plane pass), whole when a batch of such frames
   fits the memory budget, else cut into tiles of one fixed shape that overlap by a halo
   >= the receptive field, in fixed-size batches through a single ``tf.function`` (traced
   once per shape; no ``model.predict``) or onnxruntime session;
4. fuse the two passes (arithmetic mean by default, or geometric mean) and undo the
   normalization.

Tiles start at multiples of 4 of the frame, and keep only outputs at least a halo away
from their inner edges, so the U-Net's pooling grid is the same for every tiling and a
tiled result equals the whole-frame one (to float rounding).
``max_memory`` bounds the working memory of inference (one batch of tiles with its
activations, plus the chunk of planes in flight); the input and output volumes come on
top of it.

:func:`self_consistency` re-applies the forward model to a restoration (blur with the
PSF part the network removed, sample at the acquired slice positions) and compares with
the acquired slices: a score that needs no ground truth. It checks agreement with the
data, not quality (plain bicubic upsampling is perfectly consistent under mode ``none``);
:func:`restore` reports it next to the same score of bicubic interpolation, which a good
restoration beats (nuclei 128^3, gaussian 2/8, factor 8, 1 min of training: 28.9 dB vs
26.5 dB).

Fusion: measured on the three paper pairings (128^3, IsoNet-2 split), the arithmetic and
the geometric mean differ by 0.00-0.06 dB (geometric ahead on nuclei, tied otherwise), and
fusing adds 0.3-1.0 dB over a single pass. The arithmetic mean is the default: it is
linear in intensity (the geometric mean clips values below the low percentile to it).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
import weakref
from pathlib import Path

import numpy as np

from . import grid, pairs
from .volume_io import as_volume3d
from .config import FUSIONS, TrainedModel, load_model

__all__ = [
    "restore",
    "restore_stack",
    "plan_tiles",
    "parse_memory",
    "self_consistency",
    "forward_kernel",
    "fuse",
    "apply_to_planes",
    "default_border",
]

log = logging.getLogger(__name__)

#: Working bytes per tile pixel of one forward pass (float32 activations plus the
#: convolution workspace); measured peak-RSS growth on CPU was 540-640 B/px with TensorFlow
#: and 918-929 B/px with onnxruntime (IsoNet-2, batches of 128^2 to 512^2 tiles), rounded up.
BYTES_PER_PIXEL = {"isonet1": 1000, "isonet2": 1000}
DEFAULT_MAX_MEMORY = 1 << 30  # 1 GiB
#: Smallest tile core (rows, cols) :func:`plan_tiles` shrinks to before reducing the batch.
MIN_CORE = 16
#: Reflected margin at plane borders (pixels): (rows = z, cols = x or y). Beyond it the
#: network's own zero padding applies, as in a whole-plane pass. Measured on the three
#: pairings at 128^3 (benchmarks/results/border_z_only.md): a full receptive-field margin (36)
#: processes 2.4x the pixels for at most 0.05 dB; z rows are where a margin matters.
#: The margin of factors above 4; see :func:`default_border`.
BORDER = (8, 0)
DEFAULT_BATCH = 8


def parse_memory(text) -> int:
    """Bytes from ``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"100k"`` or a plain number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        import re

        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
        if m is None:
            msg = f"memory size must look like 2G, 512M or 100000 (bytes), got {text!r}"
            raise ValueError(msg)
        value = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_")
    if not math.isfinite(value) or value <= 0:
        msg = f"memory size must be positive, got {text!r}"
        raise ValueError(msg)
    return int(value)


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m)) * m


def _halo(arch: str) -> int:
    from .nets import receptive_field

    return _round_up(receptive_field(arch), 4)


def min_inference_bytes(arch: str) -> int:
    """Working bytes of the smallest plan :func:`plan_tiles` makes: one MIN_CORE^2 tile."""
    side = MIN_CORE + 2 * _halo(arch)
    return side * side * BYTES_PER_PIXEL[arch]


def default_border(factor: float) -> tuple:
    """Reflected margin ``(rows = z, cols)`` of a restoration at ``factor``: (4, 0) up to
    factor 4, else :data:`BORDER` (8, 0).

    Why: the margin is worth what it covers of one acquisition interval (``factor`` output
    rows). Measured (benchmarks/results/border.md, PSNR of the first and last 16 output
    slices): at factors 6 and 8, 4 reflected rows are worse than none and 8 recover the
    margin's gain (+0.08 / +0.25 dB at the z ends); at factor 4 (membranes, A1, A3), 4 rows
    are within 0.04 dB of 8 at the z ends and 0.01 dB over the volume, and restore 6-8 %
    faster on 105-125-row planes, 17 % on A3's 57 rows.
    """
    return (4, 0) if float(factor) <= 4 else BORDER


def _border_pair(border) -> tuple:
    """``border`` (int, or (rows, cols)) as a (rows, cols) pair of non-negative multiples of 4."""
    pair = (border, border) if np.isscalar(border) else tuple(border)
    if len(pair) != 2 or any(int(b) != b or b < 0 or b % 4 for b in pair):
        msg = f"`border` must be a non-negative multiple of 4 or a (rows, cols) pair of them, got {border!r}"
        raise ValueError(msg)
    return int(pair[0]), int(pair[1])


def frame_size(n: int, border: int = 8) -> int:
    """Length of a plane axis of ``n`` pixels once reflect-padded by ``border`` on both sides
    and rounded up to a multiple of 4 (the U-Net's pooling grid)."""
    return _round_up(n + 2 * border, 4)


def _tile_length(F: int, n: int, halo: int) -> int:
    """Shortest tile (multiple of 4) of which ``n`` cover a frame of ``F`` (halos overlapping)."""
    return F if n == 1 else _round_up(math.ceil((F + 2 * halo * (n - 1)) / n), 4)


def tile_spans(F: int, T: int, halo: int) -> list:
    """Tiles of length ``T`` along a frame axis of length ``F``: ``(start, keep_from, keep_to)``.

    Every start is a multiple of 4 (``F`` and ``T`` are). A tile keeps its outputs at least
    ``halo`` (>= the receptive field) from its inner edges; at the frame's own edges it keeps
    everything, because a whole-frame pass sees the same zero padding there. So the tiled
    result equals the whole-frame one (to float rounding). ``T >= F``: one tile, the frame.
    """
    if T >= F:
        return [(0, 0, F)]
    core = T - 2 * halo
    if core <= 0:
        msg = f"tile length {T} leaves no core inside a halo of {halo}"
        raise ValueError(msg)
    n = 1 + math.ceil((F - T) / core)
    spans = []
    for i in range(n):
        start = i * core if i < n - 1 else F - T
        spans.append((start, 0 if i == 0 else start + halo, F if i == n - 1 else start + T - halo))
    return spans


def plan_tiles(n_rows: int, n_cols: int, arch: str, *, batch_size: int = DEFAULT_BATCH,
               max_memory=DEFAULT_MAX_MEMORY, border=BORDER) -> dict:
    """Choose one tile shape for all planes of a restoration.

    A plane of ``(n_rows, n_cols)`` pixels is reflect-padded by ``border`` (the frame, see
    :func:`frame_size`); the whole frame is one tile when a batch of them fits
    ``max_memory``. Otherwise the batch is reduced first (halos cost compute, small batches
    hardly do), then the longer tile side is split into more tiles, each with a halo of the
    receptive field on its inner edges (:func:`tile_spans`), down to a core of ``MIN_CORE``. Halos cost only between tiles, not at the plane's borders: a 125x128 plane
    of IsoNet-2 runs as one 144x128 tile (border (8, 0)), not 200x200.

    Parameters
    ----------
    n_rows, n_cols : int
        Largest plane: rows (output z slices) and columns (max of X and Y).
    arch : str
        Network (for the halo and the memory per pixel).
    batch_size : int
        Tiles per network call (reduced when the memory budget is small).
    max_memory : int or str
        Working-memory budget in bytes (or ``"1G"``).
    border : int or (int, int)
        Reflected margin at the plane borders (rows = z, cols = x or y), multiples of 4
        (default :data:`BORDER`).

    Returns
    -------
    dict
        ``halo``, ``border``, ``frame`` (rows, cols), ``tile`` (rows, cols: the network's
        input shape), ``tiles`` (tiles per plane along rows, cols), ``batch``, ``bytes``
        (estimated working memory of one batch).

    Raises
    ------
    ValueError
        The budget cannot hold a single minimal tile.
    """
    budget = parse_memory(max_memory)
    halo = _halo(arch)
    border = _border_pair(border)
    bpp = BYTES_PER_PIXEL[arch]
    batch = max(1, int(batch_size))
    frame = [frame_size(n_rows, border[0]), frame_size(n_cols, border[1])]
    n = [1, 1]
    tile = list(frame)

    def cost(t, b):
        return b * t[0] * t[1] * bpp

    def split(min_core):
        """One more tile along the longer side whose core stays >= min_core; False if none."""
        for ax in sorted((0, 1), key=lambda a: -tile[a]):
            for k in range(n[ax] + 1, n[ax] + 9):  # the rounded-up length must really shrink
                t = _tile_length(frame[ax], k, halo)
                if t - 2 * halo < min_core:
                    break
                if t < tile[ax]:
                    n[ax], tile[ax] = k, t
                    return True
        return False

    # halos cost compute, a smaller batch does not (a 144x144 IsoNet-2 tile is ~18 ms of
    # convolutions per plane against ~1 ms per call): reduce the batch first, then split
    while cost(tile, batch) > budget and batch > 1:
        batch //= 2
    while cost(tile, batch) > budget:
        if not split(MIN_CORE):
            msg = (
                f"`max_memory` = {budget} bytes cannot hold one {tile[0]}x{tile[1]} tile of {arch} "
                f"(about {cost(tile, 1)} bytes); raise --max-memory"
            )
            raise ValueError(msg)
    tiles = [len(tile_spans(frame[a], tile[a], halo)) for a in (0, 1)]
    return {
        "halo": halo,
        "border": border,  # (rows, cols)
        "frame": tuple(frame),
        "tile": tuple(tile),
        "tiles": tuple(tiles),
        "batch": batch,
        "bytes": cost(tile, batch),
    }


def plane_layout(plan: dict, H: int, W: int):
    """Frame and tile spans of an ``(H, W)`` plane under ``plan`` (tiles capped at the frame)."""
    border, halo = _border_pair(plan["border"]), plan["halo"]
    F = (frame_size(H, border[0]), frame_size(W, border[1]))
    T = (min(plan["tile"][0], F[0]), min(plan["tile"][1], F[1]))
    return F, T, tile_spans(F[0], T[0], halo), tile_spans(F[1], T[1], halo)


# --------------------------------------------------------------------------- network call

_FN_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _predict_fn(net, batch: int, tile: tuple):
    """A tf.function of fixed input shape (batch, th, tw, 1), cached per network.

    An onnxruntime backend is called directly (no TensorFlow import: dask workers on the
    ONNX backend stay small); its (B, th, tw, 1) buffer is viewed as (B, 1, th, tw).
    """
    if getattr(net, "name", None) == "onnx":
        nchw = (batch, 1, tile[0], tile[1])
        return lambda x: net.predict_nchw(x.reshape(nchw)).reshape(x.shape)
    import tensorflow as tf

    per_net = _FN_CACHE.setdefault(net, {})
    key = (batch, tile)
    if key not in per_net:
        spec = tf.TensorSpec([batch, tile[0], tile[1], 1], tf.float32)

        @tf.function(input_signature=[spec])
        def fn(x):
            return net(x, training=False)

        per_net[key] = fn
    return per_net[key]


def apply_to_planes(net, planes, plan: dict, *, bar=None) -> np.ndarray:
    """Apply ``net`` to a stack of planes through fixed-shape tiles (see module doc).

    Parameters
    ----------
    net : keras.Model or Backend
    planes : (N, H, W) ndarray of float32
        Normalized planes, rows axial.
    plan : dict
        From :func:`plan_tiles` (``halo``, ``border``, ``tile``, ``batch``); tiles longer
        than this stack's frame are cut to it.

    Returns
    -------
    (N, H, W) ndarray of float32
    """
    planes = np.asarray(planes, dtype=np.float32)
    n, H, W = planes.shape
    br, bc = _border_pair(plan["border"])
    B = plan["batch"]
    (Fr, Fc), (th, tw), rows, cols = plane_layout(plan, H, W)
    # one frame: reflect by the border on top/left, to the frame size bottom/right
    pad = ((0, 0), (br, Fr - H - br), (bc, Fc - W - bc))
    padded = np.pad(planes, pad, mode="reflect") if min(H, W) > 1 else np.pad(planes, pad, mode="edge")
    fn = _predict_fn(net, B, (th, tw))
    out = np.empty((n, Fr, Fc), np.float32)
    coords = [(k, r, c) for k in range(n) for r in rows for c in cols]
    buf = np.zeros((B, th, tw, 1), np.float32)
    for start in range(0, len(coords), B):
        chunk = coords[start : start + B]
        for t, (k, (r0, _, _), (c0, _, _)) in enumerate(chunk):
            buf[t, ..., 0] = padded[k, r0 : r0 + th, c0 : c0 + tw]
        if len(chunk) < B:
            buf[len(chunk) :] = 0
        pred = fn(buf)
        pred = pred.numpy() if hasattr(pred, "numpy") else pred
        for t, (k, (r0, ra, rb), (c0, ca, cb)) in enumerate(chunk):
            out[k, ra:rb, ca:cb] = pred[t, ra - r0 : rb - r0, ca - c0 : cb - c0, 0]
        if bar is not None:
            bar.update(len(chunk))
    return out[:, br : br + H, bc : bc + W]


def fuse(a, b, how: str = "mean", *, out=None) -> np.ndarray:
    """Fuse the xz and yz results (normalized units).

    ``"mean"``: ``(a + b) / 2``. ``"geometric"``: ``sqrt(max(a,0) * max(b,0))`` (values
    below 0, i.e. below the low percentile, become 0).
    """
    if how == "mean":
        res = np.add(a, b, out=out)
        res *= np.float32(0.5)
        return res
    if how == "geometric":
        res = np.multiply(np.maximum(a, 0), np.maximum(b, 0), out=out)
        return np.sqrt(res, out=res)
    msg = f"`fusion` must be one of {FUSIONS}, got {how!r}"
    raise ValueError(msg)


# --------------------------------------------------------------------------- restore


def _resolve_model(model, weights="best") -> TrainedModel:
    if isinstance(model, TrainedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model, weights=weights)
    msg = f"`model` must be a TrainedModel or a model directory, got {type(model).__name__}"
    raise TypeError(msg)


def _check_volume(volume, name="volume") -> np.ndarray:
    vol = as_volume3d(volume, name, hint_2d="a 2D image has no axial planes to restore")
    if vol.shape[0] < 2:
        msg = f"`{name}` has {vol.shape[0]} z slice; restoration needs at least 2"
        raise ValueError(msg)
    return vol


def restore(
    volume,
    model,
    *,
    factor=None,
    fusion: str | None = None,
    normalization="volume",
    batch_size: int = DEFAULT_BATCH,
    max_memory=DEFAULT_MAX_MEMORY,
    passes=("xz", "yz"),
    consistency: bool = False,
    progress: bool = False,
    return_info: bool = False,
    weights: str = "best",
    border=None,
):
    """Restore isotropic resolution of a (Z, Y, X) volume with a trained IsoNet.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Anisotropic volume, any real dtype; z spacing = ``factor`` x xy spacing.
    model : TrainedModel or str or Path
        Trained model (or its directory).
    factor : float, optional
        Anisotropy factor; default the model's. Not rounded.
    fusion : {"mean", "geometric"}, optional
        Combination of the xz and yz passes; default the model config's (``"mean"``).
    normalization : "volume" or "model" or (float, float)
        Percentiles of this volume (computed once), the training volume's stored values,
        or explicit ``(low, high)`` intensities mapped to 0 and 1.
    batch_size : int
        Tiles per network call.
    max_memory : int or str
        Working-memory budget for inference (``"1G"``); see :func:`plan_tiles`.
    passes : tuple of {"xz", "yz"}
        Which planes to process (both by default; one pass skips fusion).
    consistency : bool
        Compute :func:`self_consistency` (needs the model's PSF for modes full/split).
    progress : bool
        tqdm bar over tiles.
    return_info : bool
        Also return a dict (factor, normalization, plan, timings, consistency).
    weights : {"best", "last"}
        When ``model`` is a directory.
    border : int or (int, int), optional
        Reflected margin (pixels, multiples of 4; rows = z, cols = x or y) around each plane before the network's
        own zero padding; only outputs within the receptive field of a border depend on it
        (see :func:`plan_tiles`). Default :func:`default_border` of the factor.

    Returns
    -------
    restored : (floor((Z-1)*f)+1, Y, X) ndarray of float32
        In the input's intensity units; acquired slice ``i`` at output slice ``i*f``.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        A 2D volume, a non-positive factor, unknown fusion, a memory budget below one tile.
    """
    t0 = time.perf_counter()
    vol = _check_volume(volume)
    tm = _resolve_model(model, weights)
    cfg = tm.config
    f = grid.check_factor(cfg.factor if factor is None else factor)
    if abs(f - cfg.factor) > 0.02 * cfg.factor:
        warnings.warn(
            f"restoring with factor {f:g} a model trained for factor {cfg.factor:g}: the "
            "network learned the other factor's degradation; retrain for best results",
            stacklevel=2,
        )
    fusion = cfg.fusion if fusion is None else fusion
    if fusion not in FUSIONS:
        msg = f"`fusion` must be one of {FUSIONS}, got {fusion!r}"
        raise ValueError(msg)
    passes = tuple(passes)
    if not passes or any(p not in ("xz", "yz") for p in passes):
        msg = f"`passes` must be a non-empty subset of ('xz', 'yz'), got {passes!r}"
        raise ValueError(msg)
    border = default_border(f) if border is None else border
    lo, hi = _normalization(vol, cfg, normalization)
    Z, Y, X = vol.shape
    n_out = grid.n_output_slices(Z, f)
    info = {
        "factor": f, "shape_in": [Z, Y, X], "shape_out": [n_out, Y, X], "fusion": fusion,
        "normalization": {"low": lo, "high": hi, "source": normalization if isinstance(normalization, str) else "explicit"},
        "model": {"arch": cfg.arch, "mode": cfg.mode, "factor": cfg.factor, "psf": cfg.psf,
                  "path": str(tm.path) if tm.path else None, "weights": tm.weights},
    }
    vmin, vmax = float(vol.min()), float(vol.max())
    if vmin == vmax:
        # A constant volume carries no structure: its restoration is the same constant.
        out = np.full((n_out, Y, X), vmin, np.float32)
        info.update(plan=None, seconds=time.perf_counter() - t0, constant=True)
        return (out, info) if return_info else out

    plan = plan_tiles(n_out, max(X, Y) if len(passes) == 2 else (X if passes == ("xz",) else Y),
                      cfg.arch, batch_size=batch_size, max_memory=max_memory, border=border)
    info["plan"] = {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()}
    budget = parse_memory(max_memory)
    W = grid.interpolation_matrix(Z, grid.output_coordinates(Z, f)).astype(np.float32)
    # rows of W sum to 1, so normalizing after the interpolation is the same as before it
    # and needs no normalized copy of the whole volume
    scale, shift = np.float32(1.0 / (hi - lo)), np.float32(lo)

    n_tiles = {"xz": Y * math.prod(len(sp) for sp in plane_layout(plan, n_out, X)[2:]),
               "yz": X * math.prod(len(sp) for sp in plane_layout(plan, n_out, Y)[2:])}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(n_tiles[p] for p in passes), unit="tile", desc="restore", dynamic_ncols=True)
    out = np.empty((n_out, Y, X), np.float32)
    # planes in flight: upsampled chunk + padded + result, ~4 copies of a plane each
    plane_bytes = 4 * 4 * n_out * max(X, Y) + 4 * plan["tile"][0] * plan["tile"][1]
    chunk = max(1, int(max(budget - plan["bytes"], budget // 4) // plane_bytes))
    t_net = 0.0
    try:
        for p_i, p in enumerate(passes):
            n_planes = Y if p == "xz" else X
            for s in range(0, n_planes, chunk):
                e = min(n_planes, s + chunk)
                if p == "xz":
                    raw = vol[:, s:e, :].astype(np.float32, copy=False)
                    up = np.tensordot(W, raw, axes=(1, 0))  # (n_out, k, X)
                    planes = up.transpose(1, 0, 2)
                else:
                    raw = vol[:, :, s:e].astype(np.float32, copy=False)
                    up = np.tensordot(W, raw, axes=(1, 0))  # (n_out, Y, k)
                    planes = up.transpose(2, 0, 1)
                planes = (planes - shift) * scale
                t1 = time.perf_counter()
                res = apply_to_planes(tm.net, planes, plan, bar=bar)
                t_net += time.perf_counter() - t1
                if p == "xz":
                    target = out[:, s:e, :]
                    res = res.transpose(1, 0, 2)
                else:
                    target = out[:, :, s:e]
                    res = res.transpose(1, 2, 0)
                if p_i == 0:
                    target[...] = res
                else:
                    target[...] = fuse(target, res, fusion)
    finally:
        if bar is not None:
            bar.close()
    out *= np.float32(hi - lo)
    out += np.float32(lo)
    info["seconds"] = time.perf_counter() - t0
    info["seconds_network"] = t_net
    info["voxels_per_second"] = out.size / max(info["seconds"], 1e-9)
    if consistency:
        t1 = time.perf_counter()
        info["consistency"] = self_consistency(out, vol, tm, f, lo=lo, hi=hi, max_memory=budget)
        # the same score of plain bicubic interpolation, for reference (no ground truth)
        bic = self_consistency(grid.upsample_z(vol, f), vol, tm, f, lo=lo, hi=hi, max_memory=budget)
        info["consistency"]["psnr_bicubic"] = bic["psnr"]
        info["seconds_consistency"] = time.perf_counter() - t1
    return (out, info) if return_info else out


def _normalization(vol, cfg, normalization):
    if isinstance(normalization, str):
        if normalization == "volume":
            return pairs.percentiles(vol, low=cfg.normalization["p_low"], high=cfg.normalization["p_high"])
        if normalization == "model":
            lo, hi = cfg.normalization.get("low"), cfg.normalization.get("high")
            if lo is None or hi is None:
                msg = "the model stores no normalization values; use normalization='volume'"
                raise ValueError(msg)
            return float(lo), float(hi)
        msg = f"`normalization` must be 'volume', 'model' or (low, high), got {normalization!r}"
        raise ValueError(msg)
    lo, hi = (float(v) for v in normalization)
    if not hi > lo:
        msg = f"`normalization` (low, high) needs high > low, got {normalization!r}"
        raise ValueError(msg)
    return lo, hi


# --------------------------------------------------------------------------- stacks


def restore_stack(data, axes: str, model, *, progress: bool = False, **kwargs):
    """Restore a ZYX / ZCYX / TZCYX stack channel by channel, timepoint by timepoint.

    Normalization percentiles are computed once per channel over all its timepoints, so
    intensities stay comparable over time. Returns the stack with the same axes (Z
    replaced by the isotropic grid) and a list of per-volume info dicts.
    """
    data = np.asarray(data)
    if len(axes) != data.ndim or not set("ZYX") <= set(axes) or any(a not in "TZCYX" for a in axes):
        msg = f"`axes` {axes!r} does not describe data of shape {data.shape} (expected ZYX, ZCYX or TZCYX)"
        raise ValueError(msg)
    extra = [a for a in axes if a not in "ZYX"]
    order = [axes.index(a) for a in extra] + [axes.index(a) for a in "ZYX"]
    arr = np.transpose(data, order)
    lead = arr.shape[: len(extra)]
    c_axis = extra.index("C") if "C" in extra else None
    norm = kwargs.pop("normalization", "volume")
    tm = _resolve_model(model, kwargs.pop("weights", "best"))
    cfg = tm.config
    per_channel = {}
    if norm == "volume":
        n_c = lead[c_axis] if c_axis is not None else 1
        for c in range(n_c):
            sub = arr if c_axis is None else np.take(arr, c, axis=c_axis)
            per_channel[c] = pairs.percentiles(sub, low=cfg.normalization["p_low"], high=cfg.normalization["p_high"])
    results, infos = None, []
    for idx in np.ndindex(*lead):
        c = idx[c_axis] if c_axis is not None else 0
        nrm = per_channel.get(c, norm)
        res, info = restore(arr[idx], tm, normalization=nrm, progress=progress, return_info=True, **kwargs)
        info["index"] = dict(zip(extra, idx))
        infos.append(info)
        if results is None:
            results = np.empty(lead + res.shape, np.float32)
        results[idx] = res
    inv = np.argsort(order)
    return np.transpose(results, inv), infos


# --------------------------------------------------------------------------- consistency


def forward_kernel(tm: TrainedModel):
    """3D kernel the restoration removed: ``h`` (full), ``h_split`` (split), None (none).

    For split, ``h_split`` solves ``h = h_iso * h_split`` in the unrotated frame (the xz
    solution of :func:`isonet_ij.psf.split_psf` rotated back). Cached on the model.
    """
    cfg = tm.config
    if cfg.mode == "none" or tm.psf is None:
        return None
    cached = getattr(tm, "_forward_kernel", None)
    if cached is not None:
        return cached
    from .psf import split_psf, validate_psf

    h = validate_psf(tm.psf)
    k = h if cfg.mode == "full" else np.swapaxes(split_psf(h, "xz"), 0, 1)
    k = np.ascontiguousarray(k, dtype=np.float32)
    tm._forward_kernel = k
    return k


def self_consistency(restored, acquired, model, factor, *, lo=None, hi=None,
                     kernel="auto", max_memory=DEFAULT_MAX_MEMORY) -> dict:
    """Agreement of a restoration with the acquired slices under the forward model.

    The restoration is blurred with the kernel the network removed
    (:func:`forward_kernel`), sampled at the acquired positions ``i*f`` and compared with
    the acquired slices, both normalized by ``(lo, hi)``.

    Parameters
    ----------
    restored : (Z', Y, X) ndarray
        Output of :func:`restore` (isotropic grid of ``Z`` acquired slices).
    acquired : (Z, Y, X) ndarray
        The input volume.
    model : TrainedModel or None
        For the kernel (``kernel="auto"``).
    factor : float
    lo, hi : float, optional
        Normalization; default the acquired volume's percentiles.
    kernel : "auto" or ndarray or None
        Explicit 3D kernel (None: sampling only).

    Returns
    -------
    dict
        ``psnr`` (dB, data range 1 after normalization), ``nrmse`` (RMS error / RMS of the
        normalized acquired volume), ``kernel_shape``.
    """
    from scipy.signal import fftconvolve

    acquired = _check_volume(acquired, "acquired")
    Z, Y, X = acquired.shape
    restored = np.asarray(restored, np.float32)
    if restored.shape != (grid.n_output_slices(Z, factor), Y, X):
        msg = f"`restored` shape {restored.shape} is not the grid of {acquired.shape} with factor {factor}"
        raise ValueError(msg)
    if lo is None or hi is None:
        lo, hi = pairs.percentiles(acquired)
    k = forward_kernel(model) if isinstance(kernel, str) and kernel == "auto" else kernel
    budget = parse_memory(max_memory)
    S = grid.interpolation_matrix(restored.shape[0], grid.acquired_positions(Z, factor)).astype(np.float32)
    err2 = 0.0
    ref2 = 0.0
    if k is None:
        rz, ry, rx = 0, 0, 0
    else:
        k = np.asarray(k, np.float32)
        rz, ry, rx = (s // 2 for s in k.shape)
    per_y = (restored.shape[0] + 2 * rz) * (X + 2 * rx) * 4 * 6
    cy = max(1, int(budget // max(per_y, 1)) - 2 * ry)
    for y0 in range(0, Y, cy):
        y1 = min(Y, y0 + cy)
        sub = pairs.normalize(restored[:, y0:y1, :], lo, hi)
        if k is not None:
            ya, yb = y0 - ry, y1 + ry
            idx = np.arange(ya, yb)
            idx = grid.mirror_indices(idx, Y)
            slab = pairs.normalize(restored[:, idx, :], lo, hi)
            slab = np.pad(slab, ((rz, rz), (0, 0), (rx, rx)), mode="reflect" if min(slab.shape[0], X) > 1 else "edge")
            sub = fftconvolve(slab, k, mode="valid").astype(np.float32)
        sim = np.tensordot(S, sub, axes=(1, 0))
        ref = pairs.normalize(acquired[:, y0:y1, :], lo, hi)
        err2 += float(np.sum((sim - ref) ** 2, dtype=np.float64))
        ref2 += float(np.sum(ref**2, dtype=np.float64))
    mse = err2 / acquired.size
    return {
        "psnr": float(10 * np.log10(1.0 / max(mse, 1e-20))),
        "nrmse": float(math.sqrt(err2 / max(ref2, 1e-20))),
        "kernel_shape": None if k is None else list(k.shape),
    }
