"""Where the columns of a chunked restoration run: dask threads or dask.distributed.

Two executors with one interface (``run`` a list of tasks with a callback per finished
task, ``put`` a large argument once, ``run_one`` a function in a worker, ``resident``
memory of the run's processes, ``close``):

* :class:`ThreadExecutor`: dask's threaded scheduler in this process (the model is shared);
* :class:`DaskExecutor`: a ``LocalCluster`` of single-threaded worker processes
  (``"processes"``), a scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``.

Plus the process memory measurements a ``--max-memory`` plan rests on.
"""

from __future__ import annotations

import logging
import os
from functools import partial

import numpy as np

__all__ = [
    "SchedulerError",
    "SCHEDULER_RESERVE",
    "ThreadExecutor",
    "DaskExecutor",
    "make_executor",
    "process_rss",
    "tree_rss",
    "release_free_memory",
]

log = logging.getLogger(__name__)

#: Memory kept back for the growth of this process when it hosts the dask scheduler and the
#: nannies of a LocalCluster (task states, event logs, system monitors): +12 MiB over a
#: 34-minute, 441-column run (benchmarks/results/chunked.md), doubled.
SCHEDULER_RESERVE = 24 << 20


class SchedulerError(ValueError):
    """The dask scheduler cannot be reached."""


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


def release_free_memory() -> None:
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


class ThreadExecutor:
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

    def resident(self, warm, *args):
        """RSS of the run's processes once ``warm(*args)`` ran in each (here: this process)."""
        rss = warm(*args)
        return rss, {"this process": rss}

    def close(self):
        pass


class DaskExecutor:
    """dask.distributed: a LocalCluster of single-threaded worker processes, an address or a Client."""

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

    def resident(self, warm, *args):
        """RSS of the run's processes once ``warm(*args)`` ran in every worker."""
        per_worker = self.client.run(warm, *args)
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


def make_executor(scheduler, workers: int | None, timeout: float):
    """The executor of ``scheduler``: "threads", "processes", an address or a Client."""
    if isinstance(scheduler, str) and scheduler == "threads":
        return ThreadExecutor(workers or max(1, os.cpu_count() or 1))
    if isinstance(scheduler, str) and scheduler != "processes" and "://" not in scheduler and ":" not in scheduler:
        msg = f"`scheduler` must be 'threads', 'processes', an address like 'tcp://host:8786' or a Client, got {scheduler!r}"
        raise ValueError(msg)
    return DaskExecutor(scheduler, workers, timeout)
