"""Chunked restoration of volumes larger than memory, on dask, OME-Zarr in and out.

:func:`restore_chunked` gives the same result as :func:`isonet_ij.restoration.restore`
(max abs difference at float rounding, no seams) while holding only a few blocks in memory:

1. normalization percentiles are computed once for the whole volume, from exactly the same
   strided sample as :func:`isonet_ij.pairs.percentiles` (read slab by slab);
2. the output is cut into columns of ``(all output z, cy, cx)``; a column needs the input
   region ``(all acquired z, y0-H:y1+H, x0-H:x1+H)`` with ``H = tiling.halo_of(arch)`` (>=
   the receptive field, a multiple of 4), clipped at the volume borders. Because every
   block holds all z, the cubic z interpolation needs no z halo and equals the in-memory one;
3. a block is restored by the in-memory engine's own function,
   :func:`isonet_ij.restoration.restore_region` (the xz planes ``y0:y1`` and the yz planes
   ``x0:x1`` of the region, fused), which :func:`isonet_ij.restoration.restore` runs on the
   whole volume. The
   block's frame edges inside the volume (reflected border, then the network's zero
   padding) differ from the in-memory frame, but a kept output lies >= H from them and
   sees only real data; at true volume borders both frames are the same. As ``cy``, ``cx``,
   ``H`` and the border are multiples of 4, the U-Net pooling grid is the in-memory one;
4. each finished column is written straight into its region of the output zarr (whole
   zarr chunks: no two tasks share a chunk) and then marked done in a small
   ``isonet_done`` array of the output group (one zarr chunk per column, so markers never
   race). ``resume=True`` skips marked columns.

Scheduling: ``"threads"`` (dask's threaded scheduler on a graph of column tasks in this
process; the model is shared),
``"processes"`` (a ``dask.distributed.LocalCluster`` with ``workers`` single-threaded
worker processes), a scheduler address (``"tcp://host:8786"``) or a
``distributed.Client``. A worker loads the model once (cached per process by source) and
runs batched inference over a whole block.

Memory: ``max_memory`` bounds the summed resident memory (RSS) of every process of the run:
this process and, with ``"processes"``, the worker processes it starts (with an external
scheduler: this process and the cluster's workers). The run first loads the model in
every worker, measures what the processes hold, and splits the rest evenly between the
workers: each gets a block (input region, upsampled region, planes, result; see
:func:`block_bytes`) and an inference working set (:func:`isonet_ij.tiling.plan_tiles`).
The default chunk size follows from that share. A budget the processes already fill
raises a ``MemoryBudgetError`` that names what they hold. Use the ONNX backend
(``backend="onnx"``) for small workers: it imports no TensorFlow (~100 MiB per worker
instead of ~600 MiB).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from . import grid
from .locks import exclusive_output
from .fingerprints import model_fingerprint, volume_fingerprint
from .model import IsoNetModel, load_model, load_model_cached
from .quantization import with_precision
from .restoration import check_options, region_plan, resolve_normalization, restore_region
from .sources import Source, open_source, percentiles_and_range, source_of
from .scheduling import (
    SchedulerError,
    make_executor,
    process_rss,
    release_free_memory,
    tree_rss,
)
from .tiling import default_border, halo_of, min_inference_bytes, parse_memory, round_up

__all__ = [
    "restore_chunked",
    "OutputExistsError",
    "SchedulerError",
    "MemoryBudgetError",
    "block_bytes",
    "process_rss",
    "tree_rss",
]

log = logging.getLogger(__name__)

DONE = "isonet_done"
ATTR = "isonet_chunked"
#: Parameters a resumed run must share with the run that started the output.
RESUME_KEYS = ("shape_in", "shape_out", "factor", "low", "high", "chunks", "fusion", "passes", "arch", "border",
               "model_fingerprint", "input_fingerprint", "precision", "tta")
#: How a resume mismatch names the fingerprints (and keys that outputs of earlier versions lack).
_KEY_WORDS = {"model_fingerprint": "model (config or weights)", "input_fingerprint": "input data",
              "tta": "test-time augmentation"}


class OutputExistsError(ValueError, FileExistsError):
    """The output store exists and neither ``resume`` nor ``force`` was given."""


class MemoryBudgetError(ValueError):
    """``max_memory`` cannot hold the run's processes plus one block per worker."""


#: Default ``max_memory`` of a chunked run: all processes together.
DEFAULT_TOTAL_MEMORY = 4 << 30
#: Share of a worker's memory for the block in flight and for inference (the rest is slack
#: for zarr codec buffers and allocator fragmentation).
BLOCK_SHARE, INFERENCE_SHARE = 0.4, 0.4
#: Columns are multiples of this (the U-Net's pooling grid).
MULTIPLE = 4


# --------------------------------------------------------------------------- workers


def _warm_worker(model_spec, src=None):
    """Load the model and open the source in this worker process; return the process's RSS.

    Reading one voxel imports zarr and its codecs (or maps the TIFF), so that what every
    block needs besides its arrays is part of the measured resident memory.
    """
    _model_of(model_spec)
    if src is not None:
        import zarr  # noqa: F401 - the output store's codecs: imported by every block

        vol = open_source(src)
        np.asarray(vol[:1, :1, :1])
    release_free_memory()
    return process_rss()


def _model_of(spec) -> IsoNetModel:
    """The model of a spec: ("obj", model) in this process, or ("path", ...) loaded once per worker."""
    if spec[0] == "obj":
        return spec[1]
    _, source, backend, weights = spec
    return load_model_cached(source, backend=backend, weights=weights, threads=1)


def _model_spec(model, backend, weights, local: bool):
    """(what the tasks get, the model here): the object for threads, a path for processes."""
    if isinstance(model, IsoNetModel):
        model = load_model(model, backend=backend)
        if local:
            return ("obj", model), model
        if model.path is None:
            msg = ("`model` was trained in memory and cannot be sent to worker processes; "
                   "save it (or export a package) and pass its path, or use scheduler='threads'")
            raise ValueError(msg)
        return ("path", str(model.path), model.backend, model.weights if model.weights in ("best", "last") else "best"), model
    spec = ("path", str(model), backend, weights)
    here = _model_of(spec)
    return (("obj", here) if local else spec), here


def _normalization_of(src: Source, ex, config, normalization):
    """``(low, high)`` and the constant value of a constant volume (else None)."""
    if not (isinstance(normalization, str) and normalization == "volume"):
        return resolve_normalization(None, config, normalization), None
    # read by a worker (process) when the source is on disk: the slabs' transient memory
    # and what the readers keep stay out of this process, which holds the scheduler
    run = percentiles_and_range if isinstance(src.spec, np.ndarray) else partial(ex.run_one, percentiles_and_range)
    (lo, hi), (vmin, vmax) = run(src.spec, src.shape, low=config.normalization["p_low"],
                                 high=config.normalization["p_high"])
    return (lo, hi), (vmin if vmin == vmax else None)


# --------------------------------------------------------------------------- one block


def _run_block(src, model_spec, out_path, idx, geom, params):
    """Worker task: restore one column, write its region, mark it done. Returns idx."""
    import zarr

    g = zarr.open_group(out_path, mode="r+")
    arr, done = g["0"], g[DONE]
    y0, y1, x0, x1, ya, yb, xa, xb = geom
    if params["constant"] is not None:
        block = np.full((arr.shape[0], y1 - y0, x1 - x0), params["constant"], np.float32)
    else:
        region = np.asarray(open_source(src)[:, ya:yb, xa:xb])
        model = _model_of(model_spec)
        plan = region_plan(arr.shape[0], yb - ya, xb - xa, model.config.arch, passes=params["passes"],
                           batch_size=params["batch_size"], max_memory=params["max_memory"], border=params["border"])
        block = restore_region(region, model, factor=params["factor"], low=params["lo"], high=params["hi"],
                               keep=(y0 - ya, y1 - ya, x0 - xa, x1 - xa), fusion=params["fusion"],
                               passes=params["passes"], plan=plan, max_memory=params["max_memory"],
                               tta=params.get("tta", False))
    arr[:, y0:y1, x0:x1] = block
    done[idx[0], idx[1]] = 1
    del block
    release_free_memory()
    return idx


# --------------------------------------------------------------------------- planning


def block_bytes(n_out: int, Z: int, cy: int, cx: int, halo: int) -> int:
    """Working bytes of one block: input region, upsampled region, planes, results (float32)."""
    region = (cy + 2 * halo) * (cx + 2 * halo)
    return 4 * (Z * region + 3 * n_out * region + 2 * n_out * cy * cx)


def _default_chunks(n_out, Z, Y, X, halo, budget, mult):
    """Largest square column (<= 512, multiple of ``mult``) whose block fits ``budget``."""
    c = mult * max(1, 512 // mult)
    while c > mult and block_bytes(n_out, Z, c, c, halo) > budget:
        c -= mult
    return (min(c, round_up(Y, mult)), min(c, round_up(X, mult)))


def _stored_chunks(out):
    """The (cy, cx) columns of an earlier run's output, or None when unreadable."""
    try:
        import zarr

        meta = dict(zarr.open_group(str(out), mode="r").attrs).get(ATTR) or {}
        return tuple(int(c) for c in meta["chunks"])
    except Exception:  # noqa: BLE001 - not ours: the resume check below says so
        return None



def _column_size(chunks, out: Path, resume: bool, n_out, shape, halo, block_budget) -> tuple[int, int]:
    """(cy, cx): given, an earlier run's (resume), or the largest that fits the budget."""
    Z, Y, X = shape
    if chunks is None and resume and out.exists():
        # a resumed run keeps the columns of the first one (the measured RSS varies)
        chunks = _stored_chunks(out)
    if chunks is None:
        return _default_chunks(n_out, Z, Y, X, halo, block_budget, MULTIPLE)
    cy, cx = (int(c) for c in chunks[-2:])
    if cy < 1 or cx < 1:
        msg = f"`chunks` must be positive (cy, cx), got {chunks!r}"
        raise ValueError(msg)
    return round_up(cy, MULTIPLE), round_up(cx, MULTIPLE)


@dataclass
class _MemoryPlan:
    budget: int
    resident: int
    holders: dict
    share: int
    need: int = 0
    inference: int = 0


def _check_memory(mem: _MemoryPlan, model, n_out, cy, cx, halo, border, batch_size, workers) -> None:
    """Raise MemoryBudgetError, naming what the processes hold, when a block does not fit."""
    arch = model.config.arch
    try:
        if mem.share <= 0 or mem.need > mem.share * BLOCK_SHARE:
            raise ValueError
        region_plan(n_out, cy + 2 * halo, cx + 2 * halo, arch, batch_size=batch_size, max_memory=mem.inference,
                    border=border)
    except ValueError:
        held = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in mem.holders.items())
        least = mem.resident + workers * max(mem.need / BLOCK_SHARE, min_inference_bytes(arch) / INFERENCE_SHARE,
                                             32 << 20)
        onnx_hint = "" if model.backend == "onnx" else ", or --backend onnx (no TensorFlow per worker)"
        msg = (f"`max_memory` = {mem.budget / 2**20:.0f} MiB cannot hold this run: its processes already hold "
               f"{mem.resident / 2**20:.0f} MiB with the model loaded ({held}), leaving "
               f"{max(mem.share, 0) / 2**20:.0f} MiB per worker for a {n_out}x{cy}x{cx} block "
               f"(~{mem.need / BLOCK_SHARE / 2**20:.0f} MiB with inference). Raise --max-memory (at least "
               f"~{least / 2**20:.0f} MiB), or use fewer --workers{onnx_hint}")
        raise MemoryBudgetError(msg) from None


# --------------------------------------------------------------------------- output store


def _check_output(out: Path, resume: bool, force: bool) -> None:
    if resume and force:
        msg = "`resume` and `force` exclude each other: resume continues, force starts over"
        raise ValueError(msg)
    if out.exists() and not (resume or force):
        msg = f"output {str(out)!r} exists; pass resume=True (--resume) to continue it or force=True (--force) to overwrite"
        raise OutputExistsError(msg)


def _path_of(obj):
    """The file or folder behind a source / model argument (None for an in-memory one)."""
    if isinstance(obj, (str, Path)):
        return obj
    return getattr(obj, "path", None)


@contextlib.contextmanager
def _claimed_output(out: Path, resume: bool, force: bool, inputs):
    """Refuse an output that is (inside / holds) an input, claim it, then check it exists."""
    from .volume_io import check_not_input

    if resume and force:
        _check_output(out, resume, force)
    check_not_input(out, [_path_of(i) for i in inputs])
    with exclusive_output(out):
        _check_output(out, resume, force)  # after the claim: a run that just finished wrote it
        yield


def _resumed_done(out: Path, meta: dict) -> np.ndarray:
    """The done markers of an earlier run with the same parameters, else a ValueError."""
    import zarr

    try:
        g = zarr.open_group(str(out), mode="r+")
        old = dict(g.attrs).get(ATTR)
        done = np.asarray(g[DONE][...])
    except Exception as exc:  # noqa: BLE001
        msg = f"cannot resume {str(out)!r}: not an isonet chunked output ({exc}); use force=True (--force)"
        raise ValueError(msg) from None
    old = old or {}
    # outputs of earlier versions carry no fingerprints: those two are checked when stored
    diff = [_KEY_WORDS.get(k, k) for k in RESUME_KEYS if (k in old or k not in _KEY_WORDS)
            and json.loads(json.dumps(old.get(k))) != json.loads(json.dumps(meta[k]))]
    if diff:
        was = f" (started with model {old.get('model')!r}, input {old.get('input')!r})" if old else ""
        msg = (f"cannot resume {str(out)!r}: its {', '.join(diff)} differ from this run's{was}; "
               "use the same input, model and options, or force=True (--force) to start over")
        raise ValueError(msg)
    return done


def _open_output(out: Path, resume: bool, meta: dict, n_blocks, voxel, ngff) -> np.ndarray:
    """Create (or reopen, on resume) the output store; the done markers of its columns."""
    from .io_zarr import create_ome_zarr

    if out.exists() and resume:
        return _resumed_done(out, meta)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    n_out, Y, X = meta["shape_out"]
    cy, cx = meta["chunks"]
    g, _ = create_ome_zarr(out, (n_out, Y, X), chunks=(min(n_out, 64), cy, cx), voxel_size=voxel,
                           ngff=ngff, extra_attrs={ATTR: meta})
    g.create_array(DONE, shape=n_blocks, chunks=(1, 1), dtype="uint8", fill_value=0)
    return np.zeros(n_blocks, np.uint8)


def _columns(shape, cy, cx, halo, done) -> list:
    """[(idx, geom)] of the columns not yet done; geom = kept box, then the region with halo."""
    _, Y, X = shape
    todo = []
    for by, bx in np.ndindex(*done.shape):
        if done[by, bx]:
            continue
        y0, y1, x0, x1 = by * cy, min(Y, (by + 1) * cy), bx * cx, min(X, (bx + 1) * cx)
        geom = (y0, y1, x0, x1, max(0, y0 - halo), min(Y, y1 + halo), max(0, x0 - halo), min(X, x1 + halo))
        todo.append(((by, bx), geom))
    return todo


# --------------------------------------------------------------------------- main


def restore_chunked(source, model, *, factor=None, out, chunks=None, scheduler="threads",
                    workers: int | None = None, resume: bool = False, force: bool = False, max_memory=None,
                    progress: bool = False, normalization="volume", fusion: str | None = None,
                    passes=("xz", "yz"), batch_size: int = 8, backend: str | None = None,
                    weights: str = "best", ngff: str = "0.4", timeout: float = 5.0, on_chunk=None,
                    voxel_size=None, precision: str = "auto", tta: bool = False) -> dict:
    """Restore a (Z, Y, X) volume chunk by chunk into an OME-Zarr store.

    Parameters
    ----------
    source : (Z, Y, X) ndarray, str or Path (OME-Zarr / zarr array) or ZarrVolume
        Acquired volume; a zarr source is read region by region (never whole).
    model : IsoNetModel or str or Path
        Model directory, ``.zip`` package or ``.onnx`` (see :func:`isonet_ij.model.load_model`).
        Worker processes need a path.
    factor : float, optional
        Anisotropy factor. Default: from the OME-Zarr voxel sizes (dz / mean(dy, dx));
        a zarr without scale metadata needs it; an ndarray defaults to the model's.
    out : str or Path
        Output OME-Zarr (``.zarr``), float32, ``(floor((Z-1)f)+1, Y, X)``.
    chunks : (cy, cx), optional
        Output column size in y and x (rounded up to multiples of 4); default from
        ``max_memory``. The output zarr chunks are ``(min(n_out, 64), cy, cx)``.
    scheduler : "threads", "processes", address str or distributed.Client
    workers : int, optional
        Threads (``"threads"``) or worker processes (``"processes"``).
    resume, force : bool
        Continue an interrupted run (skip finished columns) / overwrite an existing output.
    max_memory : int or str, optional
        Summed RSS of every process of the run (default 4 GiB; see the module doc).
    progress : bool
        tqdm bar over columns (driven by a dask callback with threads, by finished futures
        with dask.distributed).
    on_chunk : callable(idx, n_done, n_total), optional
        Called in this process after each finished column (raising stops the run: the
        finished columns stay marked for ``resume``).
    precision, tta
        As :func:`isonet_ij.restoration.restore_with_info` (int8: quantized once, here).

    Returns
    -------
    dict
        ``out``, ``shape_out``, ``factor``, ``normalization``, ``chunks``, ``n_chunks``,
        ``computed`` (list of (by, bx) computed in this call), ``skipped``, ``seconds``.

    Raises
    ------
    OutputExistsError
        ``out`` exists and neither ``resume`` nor ``force``.
    SchedulerError
        An unreachable scheduler address (after ``timeout`` seconds).
    ValueError
        Bad input, missing factor, a resumed run whose parameters differ.
    """
    t0 = time.perf_counter()
    out = Path(out)
    budget = parse_memory(DEFAULT_TOTAL_MEMORY if max_memory is None else max_memory)
    with _claimed_output(out, resume, force, (source, model)):
        src = source_of(source, factor, voxel_size)
        local = isinstance(scheduler, str) and scheduler == "threads"
        ex = make_executor(scheduler, workers, timeout)  # first: fail fast on a bad address
        try:
            model_spec, model = _model_spec(model, backend, weights, local)
            run = _plan_run(src, model, model_spec, ex, budget, local=local, out=out, chunks=chunks, resume=resume,
                            normalization=normalization, fusion=fusion, passes=passes, batch_size=batch_size,
                            precision=precision, tta=tta)
            done = _open_output(out, resume, run.meta, run.n_blocks, run.voxel_size, ngff)
            todo = _columns(src.shape, *run.meta["chunks"], run.halo, done)
            skipped = done.size - len(todo)
            computed = _run_columns(ex, todo, src, run.model_spec, out, run.params, progress=progress,
                                    on_chunk=on_chunk, skipped=skipped, n_total=done.size)
        finally:
            ex.close()
    seconds = time.perf_counter() - t0
    n_out, Y, X = run.meta["shape_out"]
    return {"out": str(out), "shape_out": [n_out, Y, X], "factor": run.meta["factor"],
            "normalization": {"low": run.meta["low"], "high": run.meta["high"]}, "chunks": run.meta["chunks"],
            "n_chunks": done.size, "computed": computed, "skipped": skipped, "voxel_size": run.voxel_size,
            "seconds": seconds, "memory": run.memory_report(ex.workers), "precision": run.precision,
            "voxels_per_second": n_out * Y * X / max(seconds, 1e-9)}


@dataclass
class _RunPlan:
    """Everything a run decided before its first column: store metadata, task parameters, memory."""

    meta: dict
    params: dict
    mem: _MemoryPlan
    halo: int
    voxel_size: tuple | None
    model_spec: tuple
    precision: dict

    @property
    def n_blocks(self) -> tuple[int, int]:
        _, Y, X = self.meta["shape_out"]
        cy, cx = self.meta["chunks"]
        return math.ceil(Y / cy), math.ceil(X / cx)

    def memory_report(self, workers: int) -> dict:
        m = self.mem
        return {"max_memory": m.budget, "resident_at_start": m.resident, "per_worker": m.share,
                "block_bytes": m.need, "inference_bytes": m.inference, "workers": workers}


def _plan_run(src: Source, model, model_spec, ex, budget, *, local, out, chunks, resume, normalization, fusion,
              passes, batch_size, precision, tta=False) -> _RunPlan:
    """Options, normalization, precision, memory plan and column size of a run (nothing written yet)."""
    f, fusion, passes = check_options(model, src.factor, fusion, passes, precision)
    Z, Y, X = src.shape
    n_out = grid.n_output_slices(Z, f)
    halo = halo_of(model.config.arch)
    border = default_border(f)  # the in-memory restoration's, so both give the same result
    (lo, hi), constant = _normalization_of(src, ex, model.config, normalization)
    # the in-memory restoration's quantization (same calibration planes), sent to the workers
    model, prec = with_precision(model, precision, open_source(src.spec), f, lo, hi, border=border)
    if prec["precision"] == "int8":
        model_spec = ("obj", model) if local else ("path", str(model.path), "onnx", "best")
    mem = _memory_plan(ex, model_spec, src, budget, local)
    cy, cx = _column_size(chunks, out, resume, n_out, src.shape, halo, int(mem.share * BLOCK_SHARE))
    mem.need, mem.inference = block_bytes(n_out, Z, cy, cx, halo), int(mem.share * INFERENCE_SHARE)
    _check_memory(mem, model, n_out, cy, cx, halo, border, batch_size, ex.workers)
    meta = {"shape_in": [Z, Y, X], "shape_out": [n_out, Y, X], "factor": f, "low": lo, "high": hi,
            "chunks": [cy, cx], "fusion": fusion, "passes": list(passes), "arch": model.config.arch,
            "border": list(border), "model": str(model.path) if model.path else None,
            "model_fingerprint": model_fingerprint(model), "input": src.path,
            "input_fingerprint": volume_fingerprint(open_source(src.spec), src.shape),
            "precision": prec["precision"], "tta": bool(tta)}
    params = {"factor": f, "lo": lo, "hi": hi, "fusion": fusion, "passes": passes, "border": border,
              "batch_size": batch_size, "max_memory": mem.inference, "constant": constant, "tta": bool(tta)}
    voxel = None if src.voxel_size is None else (src.voxel_size[0] / f, *src.voxel_size[1:])
    return _RunPlan(meta, params, mem, halo, voxel, model_spec, prec)


def _memory_plan(ex, model_spec, src: Source, budget: int, local: bool) -> _MemoryPlan:
    """What the processes hold with the model loaded, and the rest per worker."""
    # workers open an on-disk source themselves; an array is not shipped just to warm them
    warm_src = src.spec if (local or not isinstance(src.spec, np.ndarray)) else None
    resident, holders = ex.resident(_warm_worker, model_spec, warm_src)
    share = (budget - resident) // ex.workers
    log.info("memory: %s MiB held with the model loaded (%s); %s MiB per worker of %d",
             resident >> 20, ", ".join(f"{k} {v >> 20}" for k, v in holders.items()), share >> 20, ex.workers)
    return _MemoryPlan(budget, resident, holders, share)


def _run_columns(ex, todo, src: Source, model_spec, out: Path, params, *, progress, on_chunk, skipped,
                 n_total) -> list:
    """Run the column tasks; the (by, bx) of every column computed, in finishing order."""
    computed = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, initial=skipped, unit="chunk", desc="restore", dynamic_ncols=True)
    src_arg = ex.put(src.spec)

    def on_done(idx):
        computed.append(tuple(idx))
        if bar is not None:
            bar.update(1)
        if on_chunk is not None:
            on_chunk(tuple(idx), skipped + len(computed), n_total)

    try:
        ex.run([(("col", *idx), _run_block, (src_arg, model_spec, str(out), idx, geom, params))
                for idx, geom in todo], on_done)
    finally:
        if bar is not None:
            bar.close()
    return computed
