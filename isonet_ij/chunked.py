"""Chunked restoration of volumes larger than memory, on dask, OME-Zarr in and out.

:func:`restore_chunked` gives the same result as :func:`isonet_ij.restore.restore`
(max abs difference at float rounding, no seams) while holding only a few blocks in memory:

1. normalization percentiles are computed once for the whole volume, from exactly the same
   strided sample as :func:`isonet_ij.pairs.percentiles` (read slab by slab);
2. the output is cut into columns of ``(all output z, cy, cx)``; a column needs the input
   region ``(all acquired z, y0-H:y1+H, x0-H:x1+H)`` with ``H = restore._halo(arch)`` (>=
   the receptive field, a multiple of 4), clipped at the volume borders. Because every
   block holds all z, the cubic z interpolation needs no z halo and equals the in-memory one;
3. inside a block the in-memory engine runs unchanged (:func:`restore.apply_to_planes` on
   the xz planes ``y0:y1`` and the yz planes ``x0:x1``, then :func:`restore.fuse`). The
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
:func:`block_bytes`) and an inference working set (:func:`isonet_ij.restore.plan_tiles`).
The default chunk size follows from that share. A budget the processes already fill
raises a ``MemoryBudgetError`` that names what they hold. Use the ONNX backend
(``backend="onnx"``) for small workers: it imports no TensorFlow (~100 MiB per worker
instead of ~600 MiB).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from . import grid, pairs

__all__ = ["restore_chunked", "OutputExistsError", "SchedulerError", "MemoryBudgetError", "block_bytes"]

log = logging.getLogger(__name__)

DONE = "isonet_done"
ATTR = "isonet_chunked"


class OutputExistsError(ValueError, FileExistsError):
    """The output store exists and neither ``resume`` nor ``force`` was given."""


class SchedulerError(ValueError):
    """The dask scheduler cannot be reached."""


class MemoryBudgetError(ValueError):
    """``max_memory`` cannot hold the run's processes plus one block per worker."""


#: Default ``max_memory`` of a chunked run: all processes together.
DEFAULT_TOTAL_MEMORY = 4 << 30
#: Memory kept back for the growth of this process when it hosts the dask scheduler and the
#: nannies of a LocalCluster (task states, event logs, system monitors): +12 MiB over a
#: 34-minute, 441-column run (benchmarks/results/chunked.md), doubled.
SCHEDULER_RESERVE = 24 << 20
#: Share of a worker's memory for the block in flight and for inference (the rest is slack
#: for zarr codec buffers and allocator fragmentation).
BLOCK_SHARE, INFERENCE_SHARE = 0.4, 0.4


def process_rss(pid: int | None = None) -> int:
    """Resident bytes of a process (this one by default)."""
    try:
        import psutil
    except ImportError:  # psutil comes with dask.distributed; plain threads runs may lack it
        with open(f"/proc/{pid or 'self'}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process(pid).memory_info().rss


def tree_rss(pid: int | None = None) -> int:
    """Summed resident bytes of a process (this one by default) and all its descendants."""
    try:
        import psutil
    except ImportError:
        return process_rss(pid)
    try:
        me = psutil.Process(pid)
        procs = [me, *me.children(recursive=True)]
    except psutil.Error:  # the process has exited
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # a child that just exited
            pass
    return total


def _warm_worker(model_spec, src=None):
    """Load the model and open the source in this worker process; return the process's RSS.

    Reading one voxel imports zarr and its codecs (or maps the TIFF), so that what every
    block needs besides its arrays is part of the measured resident memory.
    """
    if model_spec[0] != "obj":
        _model_from_spec(model_spec)
    if src is not None:
        import zarr  # noqa: F401 - the output store's codecs: imported by every block

        vol = _open_source(src)
        np.asarray(vol[:1, :1, :1])
    _release_free_memory()
    return process_rss()


# --------------------------------------------------------------------------- model cache

_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()
#: Number of model loads in this process (tests check one load per worker).
LOADS = {"n": 0}


def _model_from_spec(spec):
    kind = spec[0]
    if kind == "obj":
        return spec[1]
    _, source, backend, weights = spec
    key = (str(source), backend, weights)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from .backends import trained_model

            _MODELS[key] = trained_model(source, backend=backend, weights=weights, threads=1)
            LOADS["n"] += 1
        return _MODELS[key]


def _model_spec(model, backend, weights, local: bool):
    from .config import TrainedModel

    if isinstance(model, TrainedModel):
        if local:
            return ("obj", model), model
        src = getattr(model.net, "source", None) or model.path
        if not src or src == "memory":
            msg = ("`model` was trained in memory and cannot be sent to worker processes; "
                   "save it (or export a package) and pass its path, or use scheduler='threads'")
            raise ValueError(msg)
        return ("path", str(src), backend, weights), model
    spec = ("path", str(model), backend, weights)
    return (("obj", _model_from_spec(spec)) if local else spec), _model_from_spec(spec)


# --------------------------------------------------------------------------- source


def _open_source(src):
    """ndarray / ZarrVolume / (path, dataset) / ("__tiff__", path) spec -> sliceable (z, y, x)."""
    if isinstance(src, tuple) and len(src) == 2 and src[0] == "__tiff__":
        from .volume_io import open_lazy_tiff

        return open_lazy_tiff(src[1])
    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], str):
        from .io_zarr import open_zarr_volume

        return open_zarr_volume(src[0], dataset=src[1] or None)
    return src


def _percentiles_and_range(src, shape, *, low, high, max_samples=4_000_000, slab_bytes=64 << 20):
    """The strided sample of :func:`pairs.percentiles`, read slab by slab; plus min / max."""
    src = _open_source(src)
    Z, Y, X = shape
    size = Z * Y * X
    stride = int(math.ceil(size / max_samples)) if size > max_samples else 1
    plane = Y * X
    nz = max(1, int(slab_bytes // max(plane * 8, 1)))
    samples, vmin, vmax = [], math.inf, -math.inf
    for z0 in range(0, Z, nz):
        z1 = min(Z, z0 + nz)
        slab = np.asarray(src[z0:z1, :, :])
        if slab.dtype.kind == "f" and not np.all(np.isfinite(slab)):
            msg = (f"the volume holds NaN/inf voxels (in z slices {z0}-{z1 - 1}); replace them "
                   "(e.g. Process > Math > Remove NaNs in Fiji) before restoring")
            raise ValueError(msg)
        vmin, vmax = min(vmin, float(slab.min())), max(vmax, float(slab.max()))
        base = z0 * plane
        first = -base % stride
        # a copy: a strided view would keep every slab alive (the whole volume in memory)
        samples.append(slab.reshape(-1)[first::stride].copy())
        del slab
    flat = np.concatenate(samples)
    del samples
    lo, hi = pairs.percentiles(flat, low=low, high=high, max_samples=flat.size + 1)
    del flat
    _release_free_memory()  # the slabs' heap memory, before the run measures what it holds
    return (lo, hi), (vmin, vmax)


# --------------------------------------------------------------------------- one block


def _restore_block(vol, tm, W, geom, *, lo, hi, fusion, passes, batch_size, max_memory, border):
    """Restore output column ``(:, y0:y1, x0:x1)`` from input region ``ya:yb, xa:xb``."""
    from .restore import apply_to_planes, fuse, plan_tiles

    y0, y1, x0, x1, ya, yb, xa, xb = geom
    raw = np.asarray(vol[:, ya:yb, xa:xb]).astype(np.float32, copy=False)
    up = np.tensordot(W, raw, axes=(1, 0))  # (n_out, ny, nx)
    n_out = up.shape[0]
    scale, shift = np.float32(1.0 / (hi - lo)), np.float32(lo)
    plan = plan_tiles(n_out, max(yb - ya, xb - xa), tm.config.arch, batch_size=batch_size, max_memory=max_memory,
                      border=border)
    out = None
    for p in passes:
        if p == "xz":
            planes = (up[:, y0 - ya : y1 - ya, :].transpose(1, 0, 2) - shift) * scale
            res = apply_to_planes(tm.net, planes, plan)[:, :, x0 - xa : x1 - xa].transpose(1, 0, 2)
        else:
            planes = (up[:, :, x0 - xa : x1 - xa].transpose(2, 0, 1) - shift) * scale
            res = apply_to_planes(tm.net, planes, plan)[:, :, y0 - ya : y1 - ya].transpose(1, 2, 0)
        out = np.ascontiguousarray(res) if out is None else fuse(out, res, fusion)
    out *= np.float32(hi - lo)
    out += np.float32(lo)
    return out


def _run_block(src, model_spec, out_path, idx, geom, params):
    """Worker task: restore one column, write its region, mark it done. Returns idx."""
    import zarr

    vol = _open_source(src)
    g = zarr.open_group(out_path, mode="r+")
    arr, done = g["0"], g[DONE]
    y0, y1, x0, x1 = geom[:4]
    if params["constant"] is not None:
        block = np.full((arr.shape[0], y1 - y0, x1 - x0), params["constant"], np.float32)
    else:
        tm = _model_from_spec(model_spec)
        W = grid.interpolation_matrix(params["Z"], grid.output_coordinates(params["Z"], params["factor"])).astype(np.float32)
        block = _restore_block(vol, tm, W, geom, lo=params["lo"], hi=params["hi"], fusion=params["fusion"],
                               passes=params["passes"], batch_size=params["batch_size"], max_memory=params["max_memory"],
                               border=params["border"])
    arr[:, y0:y1, x0:x1] = block
    done[idx[0], idx[1]] = 1
    del block
    _release_free_memory()
    return idx


def _release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it per thread arena otherwise).

    Blocks of tens of MB are allocated and freed for every column; without this the RSS of
    a long run creeps above what its blocks need. No-op off glibc.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


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
    return (min(c, _ceil_to(Y, mult)), min(c, _ceil_to(X, mult)))


def _stored_chunks(out):
    """The (cy, cx) columns of an earlier run's output, or None when unreadable."""
    try:
        import zarr

        meta = dict(zarr.open_group(str(out), mode="r").attrs).get(ATTR) or {}
        return tuple(int(c) for c in meta["chunks"])
    except Exception:  # noqa: BLE001 - not ours: the resume check below says so
        return None


def _ceil_to(n, m):
    return int(math.ceil(n / m)) * m


# --------------------------------------------------------------------------- executors


class _ThreadExec:
    """Dask's threaded scheduler (``dask.threaded.get``) in this process; the model is shared."""

    def __init__(self, workers):
        import dask.threaded  # noqa: F401 - imported before the run measures what it holds

        self.workers = workers

    def run(self, tasks, on_done):
        """Run ``tasks`` [(key, fn, args)] as a dask graph, ``workers`` at a time; ``on_done(result)``
        is called in this thread as each finishes (a dask callback). An exception (one of a
        task's, or one ``on_done`` raises) returns only once the running tasks have finished."""
        from concurrent.futures import ThreadPoolExecutor

        import dask.threaded
        from dask.callbacks import Callback

        # partial: dask must not look into the arguments (tuples of ints look like tasks)
        graph = {key: (partial(fn, *args),) for key, fn, args in tasks}
        if not graph:
            return

        class _Done(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                on_done(result)

        pool = ThreadPoolExecutor(max_workers=self.workers)
        try:
            with _Done():
                # dask submits no more than num_workers (= the pool's) tasks at a time
                dask.threaded.get(graph, list(graph), pool=pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def put(self, obj):
        return obj

    def run_one(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def resident(self, model_spec, src=None):
        """RSS of the run's processes with the model loaded (here: this process)."""
        rss = _warm_worker(model_spec, src)
        return rss, {"this process": rss}

    def close(self):
        pass


class _DaskExec:
    def __init__(self, scheduler, workers, timeout):
        from distributed import Client

        self.own_cluster = self.own_client = None
        if isinstance(scheduler, Client):
            self.client = scheduler
        elif scheduler == "processes":
            import dask
            from distributed import LocalCluster

            # the workers' sampling profiler keeps growing histories: memory the plan cannot see
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                self.own_cluster = LocalCluster(n_workers=workers or max(1, (os.cpu_count() or 2) // 2),
                                                threads_per_worker=1, processes=True, dashboard_address=None,
                                                silence_logs=logging.WARNING)
            self.client = self.own_client = Client(self.own_cluster)
        else:
            try:
                self.client = self.own_client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                msg = (f"cannot reach the dask scheduler at `scheduler` = {scheduler!r} within {timeout:g} s "
                       f"({type(exc).__name__}); start it (`dask scheduler`) or use 'threads' / 'processes'")
                raise SchedulerError(msg) from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or (workers or 1))

    def run(self, tasks, on_done):
        """Submit ``tasks`` [(key, fn, args)] as futures, at most 2 per worker in flight (the
        scheduler holds no backlog of large arguments); ``on_done(result)`` as each finishes."""
        from distributed import wait

        window = 2 * self.workers
        pending, it = set(), iter(tasks)
        try:
            while True:
                while len(pending) < window:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    _, fn, args = nxt
                    pending.add(self.client.submit(fn, *args, pure=False))
                if not pending:
                    break
                for fut in wait(list(pending), return_when="FIRST_COMPLETED").done:
                    pending.discard(fut)
                    on_done(fut.result())
        except BaseException:
            self.client.cancel(list(pending))
            raise

    def put(self, obj):
        return self.client.scatter(obj, broadcast=True) if isinstance(obj, np.ndarray) else obj

    def run_one(self, fn, *args, **kwargs):
        """``fn`` in a worker (its transient memory stays out of this process)."""
        return self.client.submit(fn, *args, pure=False, **kwargs).result()

    def resident(self, model_spec, src=None):
        """RSS of the run's processes with the model loaded in every worker."""
        per_worker = self.client.run(_warm_worker, model_spec, None if isinstance(src, np.ndarray) else src)
        holders = {"this process": process_rss(), **per_worker}
        if self.own_cluster is not None:
            # the workers are children of this process (nannies and scheduler run here); the
            # scheduler's state, logs and monitors grow while the run goes on
            holders["scheduler growth reserve"] = SCHEDULER_RESERVE
            return tree_rss() + SCHEDULER_RESERVE, holders
        return sum(holders.values()), holders

    def close(self):
        if self.own_client is not None:
            self.own_client.close()
        if self.own_cluster is not None:
            self.own_cluster.close()


# --------------------------------------------------------------------------- main


def restore_chunked(
    source,
    model,
    *,
    factor=None,
    out,
    chunks=None,
    scheduler="threads",
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    max_memory=None,
    progress: bool = False,
    normalization="volume",
    fusion: str | None = None,
    passes=("xz", "yz"),
    batch_size: int = 8,
    backend: str | None = None,
    weights: str = "best",
    ngff: str = "0.4",
    timeout: float = 5.0,
    on_chunk=None,
    voxel_size=None,
):
    """Restore a (Z, Y, X) volume chunk by chunk into an OME-Zarr store.

    Parameters
    ----------
    source : (Z, Y, X) ndarray, str or Path (OME-Zarr / zarr array) or ZarrVolume
        Acquired volume; a zarr source is read region by region (never whole).
    model : TrainedModel or str or Path
        Model directory, ``.zip`` package, ``.onnx`` / ``.keras`` (see
        :func:`isonet_ij.backends.trained_model`). Worker processes need a path.
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
    import zarr

    from .io_zarr import ZarrVolume, create_ome_zarr, is_zarr, open_zarr_volume
    from .volume_io import LazyTiffVolume, open_lazy_tiff
    from .restore import _check_volume, _halo, _normalization, default_border, min_inference_bytes, parse_memory, plan_tiles

    t0 = time.perf_counter()
    out = Path(out)
    budget = parse_memory(DEFAULT_TOTAL_MEMORY if max_memory is None else max_memory)
    if resume and force:
        msg = "`resume` and `force` exclude each other: resume continues, force starts over"
        raise ValueError(msg)
    if out.exists() and not (resume or force):
        msg = f"output {str(out)!r} exists; pass resume=True (--resume) to continue it or force=True (--force) to overwrite"
        raise OutputExistsError(msg)

    # ---- source
    voxel = None
    if isinstance(source, (str, Path)):
        source = open_zarr_volume(source) if is_zarr(source) else open_lazy_tiff(source)
    if isinstance(source, (ZarrVolume, LazyTiffVolume)):
        vol, src_spec, voxel = source, source.spec(), source.voxel_size
        if factor is None:
            if voxel is not None:
                factor = source.anisotropy()
            elif isinstance(source, ZarrVolume):
                msg = (f"{source.path!r} has no OME-Zarr scale metadata (voxel sizes); give the anisotropy "
                       "factor with `factor` (--factor)")
                raise ValueError(msg)
            # an uncalibrated TIFF: the model's factor, as for an in-memory restoration
        shape = source.shape
    else:
        vol = _check_volume(source)
        src_spec, shape = vol, vol.shape
        # an in-memory array carries no calibration: take the caller's (dz, dy, dx)
        voxel = None if voxel_size is None else tuple(float(v) for v in voxel_size)
    Z, Y, X = shape
    if Z < 2:
        msg = f"`source` has {Z} z slice; restoration needs at least 2"
        raise ValueError(msg)

    # ---- scheduler first (fail fast on a bad address), model
    local = isinstance(scheduler, str) and scheduler == "threads"
    if not local and isinstance(scheduler, str) and scheduler != "processes" and "://" not in scheduler and ":" not in scheduler:
        msg = f"`scheduler` must be 'threads', 'processes', an address like 'tcp://host:8786' or a Client, got {scheduler!r}"
        raise ValueError(msg)
    ex = _ThreadExec(workers or max(1, os.cpu_count() or 1)) if local else _DaskExec(scheduler, workers, timeout)
    try:
        model_spec, tm = _model_spec(model, backend, weights, local)
        cfg = tm.config
        f = grid.check_factor(cfg.factor if factor is None else factor)
        fusion = cfg.fusion if fusion is None else fusion
        passes = tuple(passes)
        n_out = grid.n_output_slices(Z, f)
        halo = _halo(cfg.arch)
        border = default_border(f)  # the in-memory restoration's, so both give the same result
        if isinstance(normalization, str) and normalization == "volume":
            # read by a worker (process) when the source is on disk: the slabs' transient memory
            # and what the readers keep stay out of this process, which holds the scheduler
            run = _percentiles_and_range if isinstance(src_spec, np.ndarray) else partial(ex.run_one, _percentiles_and_range)
            (lo, hi), (vmin, vmax) = run(src_spec, shape, low=cfg.normalization["p_low"], high=cfg.normalization["p_high"])
        else:
            lo, hi = _normalization(None, cfg, normalization)
            vmin, vmax = None, None
        constant = vmin if (vmin is not None and vmin == vmax) else None

        # ---- memory: what the processes hold with the model loaded, the rest per worker
        resident, holders = ex.resident(model_spec, src_spec)
        share = (budget - resident) // ex.workers
        log.info("memory: %s MiB held with the model loaded (%s); %s MiB per worker of %d",
                 resident >> 20, ", ".join(f"{k} {v >> 20}" for k, v in holders.items()), share >> 20, ex.workers)
        mult = 4
        if chunks is None and resume and out.exists():
            # a resumed run keeps the columns of the first one (the measured RSS varies)
            chunks = _stored_chunks(out)
        if chunks is None:
            cy, cx = _default_chunks(n_out, Z, Y, X, halo, int(share * BLOCK_SHARE), mult)
        else:
            cy, cx = (int(c) for c in chunks[-2:])
            if cy < 1 or cx < 1:
                msg = f"`chunks` must be positive (cy, cx), got {chunks!r}"
                raise ValueError(msg)
            cy, cx = _ceil_to(cy, mult), _ceil_to(cx, mult)
        need = block_bytes(n_out, Z, cy, cx, halo)
        infer_budget = int(share * INFERENCE_SHARE)
        try:
            if share <= 0 or need > share * BLOCK_SHARE:
                raise ValueError
            plan_tiles(n_out, max(cy, cx) + 2 * halo, cfg.arch, batch_size=batch_size, max_memory=infer_budget,
                       border=border)
        except ValueError:
            held = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in holders.items())
            least = resident + ex.workers * max(need / BLOCK_SHARE, min_inference_bytes(cfg.arch) / INFERENCE_SHARE,
                                                32 << 20)
            onnx_hint = "" if getattr(tm.net, "name", None) == "onnx" else ", or --backend onnx (no TensorFlow per worker)"
            msg = (f"`max_memory` = {budget / 2**20:.0f} MiB cannot hold this run: its processes already hold "
                   f"{resident / 2**20:.0f} MiB with the model loaded ({held}), leaving "
                   f"{max(share, 0) / 2**20:.0f} MiB per worker for a {n_out}x{cy}x{cx} block "
                   f"(~{need / BLOCK_SHARE / 2**20:.0f} MiB with inference). Raise --max-memory (at least "
                   f"~{least / 2**20:.0f} MiB), use fewer --workers or smaller --chunks{onnx_hint}")
            raise MemoryBudgetError(msg) from None
        nby, nbx = math.ceil(Y / cy), math.ceil(X / cx)
        meta = {"shape_in": [Z, Y, X], "shape_out": [n_out, Y, X], "factor": f, "low": lo, "high": hi,
                "chunks": [cy, cx], "fusion": fusion, "passes": list(passes), "arch": cfg.arch, "border": list(border),
                "model": str(tm.path) if tm.path else None}
        out_voxel = None if voxel is None else (voxel[0] / f, voxel[1], voxel[2])

        # ---- output store
        if out.exists() and resume:
            try:
                g = zarr.open_group(str(out), mode="r+")
                old = dict(g.attrs).get(ATTR)
                done = np.asarray(g[DONE][...])
            except Exception as exc:  # noqa: BLE001
                msg = f"cannot resume {str(out)!r}: not an isonet chunked output ({exc}); use force=True (--force)"
                raise ValueError(msg) from None
            keys = ("shape_in", "shape_out", "factor", "low", "high", "chunks", "fusion", "passes", "arch", "border")
            diff = [k for k in keys if json.loads(json.dumps(old.get(k) if old else None)) != json.loads(json.dumps(meta[k]))]
            if diff:
                msg = (f"cannot resume {str(out)!r}: its {', '.join(diff)} differ from this run's; "
                       "use the same input, model and options, or force=True (--force) to start over")
                raise ValueError(msg)
        else:
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            g, _ = create_ome_zarr(out, (n_out, Y, X), chunks=(min(n_out, 64), cy, cx), voxel_size=out_voxel,
                                   ngff=ngff, extra_attrs={ATTR: meta})
            g.create_array(DONE, shape=(nby, nbx), chunks=(1, 1), dtype="uint8", fill_value=0)
            done = np.zeros((nby, nbx), np.uint8)

        params = {"Z": Z, "factor": f, "lo": lo, "hi": hi, "fusion": fusion, "passes": passes, "border": border,
                  "batch_size": batch_size, "max_memory": infer_budget, "constant": constant}
        todo = []
        for by in range(nby):
            for bx in range(nbx):
                if done[by, bx]:
                    continue
                y0, y1, x0, x1 = by * cy, min(Y, (by + 1) * cy), bx * cx, min(X, (bx + 1) * cx)
                geom = (y0, y1, x0, x1, max(0, y0 - halo), min(Y, y1 + halo), max(0, x0 - halo), min(X, x1 + halo))
                todo.append(((by, bx), geom))
        n_total = nby * nbx
        skipped = n_total - len(todo)
        computed = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_total, initial=skipped, unit="chunk", desc="restore", dynamic_ncols=True)
        src_arg = ex.put(src_spec)

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
    finally:
        ex.close()
    return {"out": str(out), "shape_out": [n_out, Y, X], "factor": f, "normalization": {"low": lo, "high": hi},
            "chunks": [cy, cx], "n_chunks": n_total, "computed": computed, "skipped": skipped,
            "voxel_size": out_voxel, "seconds": time.perf_counter() - t0,
            "memory": {"max_memory": budget, "resident_at_start": resident, "per_worker": share,
                       "block_bytes": need, "inference_bytes": infer_budget, "workers": ex.workers},
            "voxels_per_second": n_out * Y * X / max(time.perf_counter() - t0, 1e-9)}
