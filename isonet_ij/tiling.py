"""Tile geometry of a restoration: frames, tiles with halos, batches under a memory budget.

An axial plane of ``(rows, cols)`` pixels (rows = output z) is reflect-padded by a small
border (:func:`default_border`) and rounded up to the U-Net's pooling grid (the *frame*,
:func:`frame_size`). The frame is processed whole when a batch of frames fits the memory
budget, else cut into tiles of one fixed shape that overlap by a halo >= the receptive
field (:func:`tile_spans`). Tiles start at multiples of 4 of the frame and keep only
outputs at least a halo away from their inner edges, so the pooling grid is the same for
every tiling and a tiled result equals the whole-frame one (to float rounding).
:func:`plan_tiles` picks the tile shape and batch for a whole run; :func:`plane_layout`
applies it to one stack of planes. Pure geometry: no network, no TensorFlow.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = [
    "BYTES_PER_PIXEL",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_BATCH",
    "MIN_CORE",
    "BORDER",
    "parse_memory",
    "round_up",
    "halo_of",
    "min_inference_bytes",
    "default_border",
    "border_pair",
    "frame_size",
    "tile_length",
    "tile_spans",
    "plan_tiles",
    "plane_layout",
]

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
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
        if m is None:
            msg = f"memory size must look like 2G, 512M or 100000 (bytes), got {text!r}"
            raise ValueError(msg)
        value = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_")
    if not math.isfinite(value) or value <= 0:
        msg = f"memory size must be positive, got {text!r}"
        raise ValueError(msg)
    return int(value)


def round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m)) * m


def halo_of(arch: str) -> int:
    from .nets import receptive_field

    return round_up(receptive_field(arch), 4)


def min_inference_bytes(arch: str) -> int:
    """Working bytes of the smallest plan :func:`plan_tiles` makes: one MIN_CORE^2 tile."""
    side = MIN_CORE + 2 * halo_of(arch)
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


def border_pair(border) -> tuple:
    """``border`` (int, or (rows, cols)) as a (rows, cols) pair of non-negative multiples of 4."""
    pair = (border, border) if np.isscalar(border) else tuple(border)
    if len(pair) != 2 or any(int(b) != b or b < 0 or b % 4 for b in pair):
        msg = f"`border` must be a non-negative multiple of 4 or a (rows, cols) pair of them, got {border!r}"
        raise ValueError(msg)
    return int(pair[0]), int(pair[1])


def frame_size(n: int, border: int = 8) -> int:
    """Length of a plane axis of ``n`` pixels once reflect-padded by ``border`` on both sides
    and rounded up to a multiple of 4 (the U-Net's pooling grid)."""
    return round_up(n + 2 * border, 4)


def tile_length(F: int, n: int, halo: int) -> int:
    """Shortest tile (multiple of 4) of which ``n`` cover a frame of ``F`` (halos overlapping)."""
    return F if n == 1 else round_up(math.ceil((F + 2 * halo * (n - 1)) / n), 4)


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


def _split_longer_side(frame: list, tile: list, n: list, halo: int, min_core: int) -> bool:
    """One more tile along the longer tile side whose core stays >= ``min_core``.

    Updates ``tile`` (lengths) and ``n`` (tiles per axis) in place; False when no axis can
    be split further.
    """
    for ax in sorted((0, 1), key=lambda a: -tile[a]):
        for k in range(n[ax] + 1, n[ax] + 9):  # the rounded-up length must really shrink
            t = tile_length(frame[ax], k, halo)
            if t - 2 * halo < min_core:
                break
            if t < tile[ax]:
                n[ax], tile[ax] = k, t
                return True
    return False


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
    halo = halo_of(arch)
    border = border_pair(border)
    bpp = BYTES_PER_PIXEL[arch]
    batch = max(1, int(batch_size))
    frame = [frame_size(n_rows, border[0]), frame_size(n_cols, border[1])]
    n = [1, 1]
    tile = list(frame)

    def cost(t, b):
        return b * t[0] * t[1] * bpp

    # halos cost compute, a smaller batch does not (a 144x144 IsoNet-2 tile is ~18 ms of
    # convolutions per plane against ~1 ms per call): reduce the batch first, then split
    while cost(tile, batch) > budget and batch > 1:
        batch //= 2
    while cost(tile, batch) > budget:
        if not _split_longer_side(frame, tile, n, halo, MIN_CORE):
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
    border, halo = border_pair(plan["border"]), plan["halo"]
    F = (frame_size(H, border[0]), frame_size(W, border[1]))
    T = (min(plan["tile"][0], F[0]), min(plan["tile"][1], F[1]))
    return F, T, tile_spans(F[0], T[0], halo), tile_spans(F[1], T[1], halo)
