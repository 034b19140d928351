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

A volume model (:mod:`isonet_ij.volume_graph`: an exported ONNX graph doing steps 1-4 on
the raw stack, ``model.net`` None) is run whole at one place (``_restore_whole``), after
:func:`check_volume_model_options` refused what its graph cannot do (normalization other
than ``"model"``, another factor, fusion, pass set or border, NaN, too small a stack).

One function restores a region: :func:`restore_region` (steps 2-4 on the planes of a box
of the volume, keeping an inner box). :func:`restore` calls it on the whole volume;
:func:`isonet_ij.chunked.restore_chunked` calls it per block (the large-volume path is the
in-memory path run per block). Tile geometry lives in :mod:`isonet_ij.tiling`, the
no-ground-truth score in :mod:`isonet_ij.consistency`.

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
from dataclasses import dataclass, field

import numpy as np

from . import grid, pairs
from .config import FUSIONS
from .consistency import self_consistency
from .model import IsoNetModel, load_model
from .quantization import PRECISIONS, with_precision
from .tiling import DEFAULT_BATCH, DEFAULT_MAX_MEMORY, border_pair, default_border, parse_memory, plan_tiles, plane_layout
from .volume_io import as_volume3d

__all__ = [
    "Restoration",
    "restore",
    "restore_with_info",
    "restore_region",
    "restore_stack",
    "apply_to_planes",
    "apply_flipped",
    "tta_flips",
    "fuse",
    "check_volume",
    "check_options",
    "check_volume_model_options",
    "resolve_normalization",
    "axial_weights",
]

log = logging.getLogger(__name__)

PASSES = ("xz", "yz")


@dataclass
class Restoration:
    """What :func:`restore_with_info` returns.

    Attributes
    ----------
    volume : (floor((Z-1)*f)+1, Y, X) ndarray of float32
        The restored volume, in the input's intensity units.
    info : dict
        ``factor``, ``shape_in``, ``shape_out``, ``fusion``, ``normalization`` (low, high,
        source), ``model`` (arch, mode, factor, psf, path, weights, backend), ``plan``,
        ``seconds``, ``voxels_per_second`` and, when asked for, ``consistency``.
    """

    volume: np.ndarray
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- network call


def apply_to_planes(net, planes, plan: dict, *, bar=None) -> np.ndarray:
    """Apply ``net`` to a stack of planes through fixed-shape tiles (see module doc).

    Parameters
    ----------
    net : Backend
        The model's plane network (:attr:`IsoNetModel.net`).
    planes : (N, H, W) ndarray of float32
        Normalized planes, rows axial.
    plan : dict
        From :func:`isonet_ij.tiling.plan_tiles` (``halo``, ``border``, ``tile``,
        ``batch``); tiles longer than this stack's frame are cut to it.
    bar : tqdm, optional
        Advanced by the number of tiles of each batch.

    Returns
    -------
    (N, H, W) ndarray of float32
    """
    planes = np.asarray(planes, dtype=np.float32)
    n, H, W = planes.shape
    br, bc = border_pair(plan["border"])
    B = plan["batch"]
    (Fr, Fc), (th, tw), rows, cols = plane_layout(plan, H, W)
    # one frame: reflect by the border on top/left, to the frame size bottom/right
    pad = ((0, 0), (br, Fr - H - br), (bc, Fc - W - bc))
    padded = np.pad(planes, pad, mode="reflect") if min(H, W) > 1 else np.pad(planes, pad, mode="edge")
    out = np.empty((n, Fr, Fc), np.float32)
    coords = [(k, r, c) for k in range(n) for r in rows for c in cols]
    buf = np.zeros((B, th, tw, 1), np.float32)  # one shape for every call: compiled once
    for start in range(0, len(coords), B):
        chunk = coords[start : start + B]
        for t, (k, (r0, _, _), (c0, _, _)) in enumerate(chunk):
            buf[t, ..., 0] = padded[k, r0 : r0 + th, c0 : c0 + tw]
        if len(chunk) < B:
            buf[len(chunk) :] = 0
        pred = net.predict_batch(buf)
        for t, (k, (r0, ra, rb), (c0, ca, cb)) in enumerate(chunk):
            out[k, ra:rb, ca:cb] = pred[t, ra - r0 : rb - r0, ca - c0 : cb - c0, 0]
        if bar is not None:
            bar.update(len(chunk))
    return out[:, br : br + H, bc : bc + W]


def tta_flips(config, p: str, tta: bool) -> list:
    """The ``(flip rows, flip columns)`` whose predictions pass ``p`` averages.

    Without ``tta`` only the plane as is. With it, every combination of the flips the
    model's training kernels commute with (``config.psf_info["flips"]``, stored at
    training: rows = z only for an axially symmetric PSF); column flips only when unknown.
    """
    if not tta:
        return [(False, False)]
    fr, fc = ((config.psf_info or {}).get("flips") or {}).get(p, (False, True))
    return [(r, c) for r in ((False, True) if fr else (False,)) for c in ((False, True) if fc else (False,))]


def apply_flipped(net, planes, plan: dict, flips: list, *, bar=None) -> np.ndarray:
    """Mean of :func:`apply_to_planes` over flipped copies of ``planes`` (each flipped back)."""
    acc = None
    for fr, fc in flips:
        view = (slice(None), slice(None, None, -1 if fr else 1), slice(None, None, -1 if fc else 1))
        res = apply_to_planes(net, planes[view], plan, bar=bar)[view]
        acc = res if acc is None else np.add(acc, res, out=acc)
    if len(flips) > 1:
        acc *= np.float32(1.0 / len(flips))
    return acc


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

# --------------------------------------------------------------------------- checks


def check_volume(volume, name="volume") -> np.ndarray:
    """``volume`` as a (Z, Y, X) real array with at least 2 z slices, else a ValueError."""
    vol = as_volume3d(volume, name, hint_2d="a 2D image has no axial planes to restore")
    if vol.shape[0] < 2:
        msg = f"`{name}` has {vol.shape[0]} z slice; restoration needs at least 2"
        raise ValueError(msg)
    return vol


def check_options(model: IsoNetModel, factor, fusion, passes, precision="fp32") -> tuple[float, str, tuple]:
    """Validated ``(factor, fusion, passes)`` of a restoration (and ``precision``); defaults from the model."""
    if precision not in PRECISIONS:
        msg = f"`precision` must be one of {PRECISIONS}, got {precision!r}"
        raise ValueError(msg)
    cfg = model.config
    f = grid.check_factor(cfg.factor if factor is None else factor)
    if abs(f - cfg.factor) > 0.02 * cfg.factor:
        warnings.warn(
            f"restoring with factor {f:g} a model trained for factor {cfg.factor:g}: the "
            "network learned the other factor's degradation; retrain for best results",
            stacklevel=3,
        )
    fusion = cfg.fusion if fusion is None else fusion
    if fusion not in FUSIONS:
        msg = f"`fusion` must be one of {FUSIONS}, got {fusion!r}"
        raise ValueError(msg)
    passes = tuple(passes)
    if not passes or any(p not in PASSES for p in passes):
        msg = f"`passes` must be a non-empty subset of ('xz', 'yz'), got {passes!r}"
        raise ValueError(msg)
    return f, fusion, passes


def resolve_normalization(vol, config, normalization) -> tuple[float, float]:
    """``(low, high)`` intensities mapped to 0 and 1: see :func:`restore`'s ``normalization``."""
    if isinstance(normalization, str):
        if normalization == "volume":
            return pairs.percentiles(vol, low=config.normalization["p_low"], high=config.normalization["p_high"])
        if normalization == "model":
            lo, hi = config.normalization.get("low"), config.normalization.get("high")
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


def axial_weights(n_slices: int, factor: float) -> np.ndarray:
    """(n_out, n_slices) float32 Keys-cubic interpolation onto the isotropic grid (rows sum to 1)."""
    return grid.interpolation_matrix(n_slices, grid.output_coordinates(n_slices, factor)).astype(np.float32)


def check_volume_model_options(vol, model: IsoNetModel, factor, fusion, passes, normalization, border) -> None:
    """ValueError unless a volume model (``model.net`` None) can do what was asked.

    Its graph bakes in the factor, the fusion, both passes, the z border and the training
    normalization (``normalization="model"``); the volume must be finite and large enough.
    """
    from .volume_graph import check_volume_input

    vnet = model.volume_net
    what = f"{model.source!r} is a volume model (the whole pipeline in one ONNX graph)"
    if not (isinstance(normalization, str) and normalization == "model"):
        msg = (f"{what}: it normalizes with the training volume's stored percentiles only; use "
               "normalization='model' (--normalization model), or restore with the model directory or "
               "a plane model (`isonet export --plane`) for per-volume or explicit normalization")
        raise ValueError(msg)
    if abs(factor - vnet.factor) > 1e-9 or fusion != vnet.fusion or tuple(passes) != PASSES:
        msg = (f"{what} with factor {vnet.factor:g}, fusion {vnet.fusion!r} and both passes baked in; got "
               f"factor {factor:g}, fusion {fusion!r}, passes {tuple(passes)}: leave them at the model's values")
        raise ValueError(msg)
    if border is not None and border_pair(border) != (vnet.border, 0):
        msg = f"{what} with a z border of {vnet.border} rows baked in; got border {border!r}"
        raise ValueError(msg)
    check_volume_input(vol.shape, vnet.factor, vnet.border, "volume")
    if not np.isfinite(vol).all():
        msg = "`volume` holds NaN or infinite values; the volume model needs finite intensities"
        raise ValueError(msg)


# --------------------------------------------------------------------------- one region


def _plane_width(ny: int, nx: int, passes) -> int:
    """Longest plane of a region: both passes, or the one pass's."""
    return max(nx, ny) if len(passes) == 2 else (nx if passes == ("xz",) else ny)


def region_plan(n_out: int, ny: int, nx: int, arch: str, *, passes=PASSES, batch_size=DEFAULT_BATCH,
                max_memory=DEFAULT_MAX_MEMORY, border=(8, 0)) -> dict:
    """The tile plan of a ``(Z, ny, nx)`` region: :func:`isonet_ij.tiling.plan_tiles`."""
    return plan_tiles(n_out, _plane_width(ny, nx, passes), arch, batch_size=batch_size,
                      max_memory=max_memory, border=border)


def count_tiles(plan: dict, n_out: int, keep_y: int, keep_x: int, ny: int, nx: int, passes, copies=None) -> int:
    """Network tiles of :func:`restore_region` (for progress bars); ``copies``: pass -> flips run."""
    n = 0
    for p in passes:
        planes, width = (keep_y, nx) if p == "xz" else (keep_x, ny)
        n += planes * math.prod(len(sp) for sp in plane_layout(plan, n_out, width)[2:]) * (copies or {}).get(p, 1)
    return n


def _planes_per_chunk(plan: dict, n_out: int, width: int, budget: int) -> int:
    """Planes interpolated and sent through the network at once under ``budget``."""
    # planes in flight: upsampled chunk + padded + result, ~4 copies of a plane each
    plane_bytes = 4 * 4 * n_out * width + 4 * plan["tile"][0] * plan["tile"][1]
    return max(1, int(max(budget - plan["bytes"], budget // 4) // plane_bytes))


def _pass_planes(region, weights, p: str, s: int, e: int) -> np.ndarray:
    """Axial planes ``s:e`` of pass ``p`` of the kept box, interpolated: (k, n_out, width)."""
    if p == "xz":
        raw = np.asarray(region[:, s:e, :]).astype(np.float32, copy=False)
        return np.tensordot(weights, raw, axes=(1, 0)).transpose(1, 0, 2)  # (k, n_out, nx)
    raw = np.asarray(region[:, :, s:e]).astype(np.float32, copy=False)
    return np.tensordot(weights, raw, axes=(1, 0)).transpose(2, 0, 1)  # (k, n_out, ny)


def restore_region(region, model: IsoNetModel, *, factor: float, low: float, high: float, keep=None,
                   fusion: str = "mean", passes=PASSES, plan: dict, max_memory=DEFAULT_MAX_MEMORY,
                   tta: bool = False, bar=None, stats: dict | None = None) -> np.ndarray:
    """Restore the inner box ``keep`` of a region that holds every acquired z slice.

    Steps 2-4 of the module doc: z interpolation (no z halo needed: the region holds all
    z), normalization by ``(low, high)``, the network on the xz planes of the kept rows
    and the yz planes of the kept columns, fusion, denormalization. Outputs within the
    network's halo of a region edge that is not a volume edge see the region's padding:
    callers keep a box at least ``plan["halo"]`` inside such edges (``restore_chunked``).

    Parameters
    ----------
    region : (Z, ny, nx) array_like
        Acquired slices of a box of the volume (any real dtype; read plane chunk by chunk).
    model : IsoNetModel
    factor : float
        Anisotropy factor (validated by the caller).
    low, high : float
        Intensities mapped to 0 and 1 (:func:`resolve_normalization`).
    keep : (y0, y1, x0, x1), optional
        Box to return, in region coordinates; default the whole region.
    fusion, passes
        As :func:`restore` (validated by the caller: :func:`check_options`).
    plan : dict
        :func:`region_plan` of the region.
    max_memory : int or str
        Working-memory budget; sets how many planes are interpolated at once.
    tta : bool
        Test-time augmentation: average the network over the flips of :func:`tta_flips`.
    bar : tqdm, optional
        Advanced per tile.
    stats : dict, optional
        ``seconds_network`` (time in the network calls) is added to it.

    Returns
    -------
    (floor((Z-1)*factor)+1, y1-y0, x1-x0) ndarray of float32
    """
    if model.net is None:
        msg = (f"{model.source!r} is a volume model: it restores whole volumes only (no regions or chunks); "
               "use the model directory or a plane model (`isonet export --plane`)")
        raise ValueError(msg)
    Z, ny, nx = region.shape
    y0, y1, x0, x1 = (0, ny, 0, nx) if keep is None else keep
    weights = axial_weights(Z, factor)
    n_out = weights.shape[0]
    # rows of the weights sum to 1, so normalizing after the interpolation is the same as
    # before it and needs no normalized copy of the region
    scale, shift = np.float32(1.0 / (high - low)), np.float32(low)
    budget = parse_memory(max_memory)
    out = np.empty((n_out, y1 - y0, x1 - x0), np.float32)
    for p_i, p in enumerate(passes):
        lo_i, hi_i = (y0, y1) if p == "xz" else (x0, x1)
        chunk = _planes_per_chunk(plan, n_out, max(ny, nx), budget)
        for s in range(lo_i, hi_i, chunk):
            e = min(hi_i, s + chunk)
            planes = (_pass_planes(region, weights, p, s, e) - shift) * scale
            t_net = time.perf_counter()
            res = apply_flipped(model.net, planes, plan, tta_flips(model.config, p, tta), bar=bar)
            if stats is not None:
                stats["seconds_network"] = stats.get("seconds_network", 0.0) + time.perf_counter() - t_net
            if p == "xz":
                target, res = out[:, s - y0 : e - y0, :], res[:, :, x0:x1].transpose(1, 0, 2)
            else:
                target, res = out[:, :, s - x0 : e - x0], res[:, :, y0:y1].transpose(1, 2, 0)
            target[...] = res if p_i == 0 else fuse(target, res, fusion)
    out *= np.float32(high - low)
    out += np.float32(low)
    return out


# --------------------------------------------------------------------------- restore


def restore(volume, model, **options) -> np.ndarray:
    """Restore isotropic resolution of a (Z, Y, X) volume with a trained IsoNet.

    ``restore(volume, model, **options)`` is ``restore_with_info(...).volume``; see
    :func:`restore_with_info` for the options.

    Examples
    --------
    >>> import numpy as np
    >>> from isonet_ij import load_model, restore
    >>> model = load_model("models/isonet2_nuclei_demo.bioimageio.zip", backend="onnx")
    >>> volume = np.random.default_rng(0).poisson(50, (3, 16, 16)).astype(np.uint16)
    >>> restore(volume, model).shape  # factor 8: slice i at output slice 8*i
    (17, 16, 16)
    """
    return restore_with_info(volume, model, **options).volume


def restore_with_info(volume, model, *, factor=None, fusion: str | None = None, normalization="volume",
                      batch_size: int = DEFAULT_BATCH, max_memory=DEFAULT_MAX_MEMORY, passes=PASSES,
                      consistency: bool = False, progress: bool = False, weights: str = "best", border=None,
                      precision: str = "auto", tta: bool = False) -> Restoration:
    """Restore isotropic resolution of a (Z, Y, X) volume; the volume and what was done.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Anisotropic volume, any real dtype; z spacing = ``factor`` x xy spacing.
    model : IsoNetModel or str or Path
        Trained model, or the path of any artifact :func:`isonet_ij.model.load_model` reads
        (model directory, ``.onnx``, bioimage.io ``.zip``).
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
        Working-memory budget for inference (``"1G"``); see :func:`isonet_ij.tiling.plan_tiles`.
    passes : tuple of {"xz", "yz"}
        Which planes to process (both by default; one pass skips fusion).
    consistency : bool
        Compute :func:`isonet_ij.consistency.self_consistency` (needs the model's PSF for
        modes full/split), and the same score of bicubic interpolation for reference.
    progress : bool
        tqdm bar over tiles.
    weights : {"best", "last"}
        When ``model`` is a model directory.
    border : int or (int, int), optional
        Reflected margin (pixels, multiples of 4; rows = z, cols = x or y) around each plane
        before the network's zero padding; default :func:`isonet_ij.tiling.default_border`.
    precision : {"auto", "fp32", "int8"}
        The network's arithmetic (:func:`isonet_ij.quantization.with_precision`: auto is int8
        only for >= 16 M output voxels, measured faster); ``info["precision"]``.
    tta : bool
        Test-time augmentation (opt-in; :func:`tta_flips`, up to 4x the network time);
        ``info["tta"]``. Not in exported volume models.

    Returns
    -------
    Restoration
        ``volume``: (floor((Z-1)*f)+1, Y, X) float32 in the input's intensity units,
        acquired slice ``i`` at output slice ``i*f``; ``info``: see :class:`Restoration`.

    Raises
    ------
    ValueError
        A 2D volume, a non-positive factor, unknown fusion, a memory budget below one tile.
    """
    t0 = time.perf_counter()
    vol = check_volume(volume)
    model = load_model(model, weights=weights)
    f, fusion, passes = _checked_options(vol, model, factor, fusion, passes, precision, normalization, border)
    if tta and model.net is None:
        raise ValueError(f"{model.source!r} is a volume model: its graph has no test-time augmentation; "
                         "restore without tta (--tta), or with the model directory or a plane model")
    lo, hi = resolve_normalization(vol, model.config, normalization)
    Z, Y, X = vol.shape
    n_out = grid.n_output_slices(Z, f)
    info = _describe(model, f, vol.shape, n_out, fusion, lo, hi, normalization)
    info["tta"] = bool(tta)
    vmin, vmax = float(vol.min()), float(vol.max())
    if vmin == vmax:
        # A constant volume carries no structure: its restoration is the same constant.
        info.update(plan=None, seconds=time.perf_counter() - t0, constant=True)
        return Restoration(np.full((n_out, Y, X), vmin, np.float32), info)
    border = default_border(f) if border is None else border
    model, info["precision"] = with_precision(model, precision, vol, f, lo, hi, border=border)
    out = _restore_whole(vol, model, factor=f, low=lo, high=hi, fusion=fusion, passes=passes, batch_size=batch_size,
                         max_memory=max_memory, border=border, tta=tta, progress=progress, info=info)
    info["seconds"] = time.perf_counter() - t0
    info["voxels_per_second"] = out.size / max(info["seconds"], 1e-9)
    if consistency:
        info.update(_consistency(out, vol, model, f, lo, hi, parse_memory(max_memory)))
    return Restoration(out, info)


def _checked_options(vol, model, factor, fusion, passes, precision, normalization, border):
    """:func:`check_options`, and what an exported volume model cannot change."""
    f, fusion, passes = check_options(model, factor, fusion, passes, precision)
    if model.net is None:
        check_volume_model_options(vol, model, f, fusion, passes, normalization, border)
    return f, fusion, passes


def _restore_whole(vol, model: IsoNetModel, *, factor, low, high, fusion, passes, batch_size, max_memory, border,
                   tta, progress, info) -> np.ndarray:
    """The one branch between the two restoration paths: a volume model runs its graph
    (options checked by :func:`check_volume_model_options`; no tile plan), else
    :func:`restore_region` on the whole volume under a tile plan (``info["plan"]``), with a
    progress bar over its tiles."""
    if model.net is None:
        info["plan"] = None
        return model.volume_net.predict(vol)
    Z, Y, X = vol.shape
    n_out = grid.n_output_slices(Z, factor)
    plan = region_plan(n_out, Y, X, model.config.arch, passes=passes, batch_size=batch_size,
                       max_memory=max_memory, border=border)
    info["plan"] = {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()}
    copies = {p: len(tta_flips(model.config, p, tta)) for p in passes}
    bar = _tile_bar(count_tiles(plan, n_out, Y, X, Y, X, passes, copies)) if progress else None
    try:
        return restore_region(vol, model, factor=factor, low=low, high=high, fusion=fusion, passes=passes,
                              plan=plan, max_memory=max_memory, tta=tta, bar=bar, stats=info)
    finally:
        if bar is not None:
            bar.close()


def _describe(model: IsoNetModel, factor, shape, n_out, fusion, lo, hi, normalization) -> dict:
    cfg = model.config
    Z, Y, X = shape
    return {
        "factor": factor, "shape_in": [Z, Y, X], "shape_out": [n_out, Y, X], "fusion": fusion,
        "normalization": {"low": lo, "high": hi,
                          "source": normalization if isinstance(normalization, str) else "explicit"},
        "model": {"arch": cfg.arch, "mode": cfg.mode, "factor": cfg.factor, "psf": cfg.psf,
                  "path": str(model.path) if model.path else None, "weights": model.weights,
                  "backend": model.backend},
    }


def _tile_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tile", desc="restore", dynamic_ncols=True)


def _consistency(out, vol, model, factor, lo, hi, budget) -> dict:
    """The self-consistency of ``out`` and, for reference, of bicubic interpolation."""
    t1 = time.perf_counter()
    score = self_consistency(out, vol, model, factor, lo=lo, hi=hi, max_memory=budget)
    bicubic = self_consistency(grid.upsample_z(vol, factor), vol, model, factor, lo=lo, hi=hi, max_memory=budget)
    score["psnr_bicubic"] = bicubic["psnr"]
    return {"consistency": score, "seconds_consistency": time.perf_counter() - t1}


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
    tm = load_model(model, weights=kwargs.pop("weights", "best"))
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
        result = restore_with_info(arr[idx], tm, normalization=nrm, progress=progress, **kwargs)
        res, info = result.volume, result.info
        info["index"] = dict(zip(extra, idx))
        infos.append(info)
        if results is None:
            results = np.empty(lead + res.shape, np.float32)
        results[idx] = res
    inv = np.argsort(order)
    return np.transpose(results, inv), infos
