"""Long work off the GUI thread, with progress and Cancel, without hooks in the engine.

The engine reports progress through tqdm bars (``progress=True``: one update per batch of
tiles in restoration, per optimizer step in training) and writes training's per-epoch
log row into the model folder. A :class:`Job` runs the engine call in its own thread and
watches the bars it opens (by their description); Cancel makes the next update of such a
bar raise :class:`Cancelled` inside the engine, which stops the call at the next batch or
step (a cancelled training keeps the checkpoints of its finished epochs: resume it with
``isonet train --resume``). :func:`watch` is the generator a
``napari.qt.threading.thread_worker`` runs: it yields progress while the job runs.
"""

from __future__ import annotations

import threading

__all__ = ["Cancelled", "Job", "ProcessJob", "watch", "guarded", "epoch_rows"]


class Cancelled(Exception):
    """The user pressed Cancel; the engine call stopped at its next batch or step."""


def _all_bars() -> list:
    from tqdm.std import tqdm

    with tqdm.get_lock():
        return list(getattr(tqdm, "_instances", ()))


class Job:
    """One engine call in a daemon thread; its progress bars; a cancel switch."""

    def __init__(self, fn, *, bar_desc: str):
        self.fn = fn
        self.bar_desc = bar_desc
        self.result = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._before = {id(b) for b in _all_bars()}
        self._hooked: dict[int, object] = {}
        self._thread = threading.Thread(target=self._run, name=f"isonet-{bar_desc}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread as is
            self.error = exc
        finally:
            self._done.set()

    def cancel(self) -> None:
        """Stop the engine call at its next progress update."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float) -> bool:
        """True once the call has returned or raised."""
        return self._done.wait(timeout)

    def _hook(self, bar) -> None:
        update = bar.update

        def checked_update(n=1):
            if self._cancel.is_set():
                raise Cancelled
            return update(n)

        bar.update = checked_update  # this bar only; the tqdm class is untouched
        self._hooked[id(bar)] = bar

    def progress(self) -> tuple[int, int]:
        """``(done, total)`` of the newest bar of this job (``(0, 0)`` before it opens)."""
        newest = None
        for bar in _all_bars():
            if id(bar) in self._before or not str(getattr(bar, "desc", "")).startswith(self.bar_desc):
                continue
            if id(bar) not in self._hooked:
                self._hook(bar)
            newest = bar
        if newest is None:
            return 0, 0
        return int(newest.n), int(newest.total or 0)

    def outcome(self):
        """The call's result, or its exception (:class:`Cancelled` after Cancel)."""
        if self.error is not None:
            raise self.error
        return self.result


def _run_in_child(fn, conn) -> None:
    """Child process: run ``fn``, send ``("ok", result)`` or ``("error", exception)``."""
    try:
        message = ("ok", fn())
    except BaseException as exc:  # noqa: BLE001 - handed to the parent as is
        message = ("error", exc)
    try:
        conn.send(message)
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
        conn.send(("error", RuntimeError(f"{type(message[1]).__name__}: {message[1]}")))
    conn.close()


class ProcessJob:
    """One engine call in a spawned child process, with :class:`Job`'s interface.

    For training: a fresh interpreter holds TensorFlow without the viewer's OpenGL driver
    (TensorFlow's XLA and Mesa's llvmpipe abort when they share a process). Progress is the
    training log's epochs against ``epochs``; Cancel terminates the child (the checkpoints of
    its finished epochs stay, written atomically).
    """

    def __init__(self, fn, *, model_dir, epochs: int):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_run_in_child, args=(fn, send), daemon=True, name="isonet-train")
        self._message = None
        self._cancel = False
        self.model_dir, self.epochs = model_dir, int(epochs)

    def start(self) -> ProcessJob:
        self._proc.start()
        return self

    def cancel(self) -> None:
        self._cancel = True
        if self._proc.is_alive():
            self._proc.terminate()

    @property
    def cancelled(self) -> bool:
        return self._cancel

    def wait(self, timeout: float) -> bool:
        if self._message is None and self._recv.poll(timeout):
            try:
                self._message = self._recv.recv()
            except EOFError:  # the child died without a word
                self._message = ("error", RuntimeError("the training process ended unexpectedly"))
        if self._message is not None:
            self._proc.join(10)
            return True
        return not self._proc.is_alive()

    def progress(self) -> tuple[int, int]:
        return len(epoch_rows(self.model_dir, 0)), self.epochs

    def outcome(self):
        if self._cancel:
            raise Cancelled
        if self._message is None:
            msg = f"the training process ended with exit code {self._proc.exitcode}"
            raise RuntimeError(msg)
        status, value = self._message
        if status == "error":
            raise value
        return value


def epoch_rows(model_dir, seen: int) -> list:
    """Rows of the run's training log after the first ``seen`` (none while it is written); a
    two-round run's first round (``round1/``) first, its epochs counted over the whole run."""
    from ..checkpoints import run_log

    try:
        rows = run_log(model_dir)
    except (OSError, ValueError, KeyError, TypeError):  # caught mid-write: read it at the next poll
        return []
    return rows[seen:]


def watch(job: Job, *, model_dir=None, poll: float = 0.2):
    """Run ``job``; yield ``{"done", "total", "epochs"}`` while it runs; return its result.

    ``epochs`` lists the training log rows (``epoch``, ``val_psnr``, ``val_psnr_input``, ...)
    new since the last yield when ``model_dir`` is given. Closing the generator cancels the job.
    """
    job.start()
    seen = 0
    try:
        while True:
            finished = job.wait(poll)
            done, total = job.progress()
            rows = epoch_rows(model_dir, seen) if model_dir is not None else []
            seen += len(rows)
            if rows or not finished:
                yield {"done": done, "total": total, "epochs": rows}
            if finished:
                break
    finally:
        if not job.wait(0):
            job.cancel()
    return job.outcome()


def guarded(job: Job, *, model_dir=None, poll: float = 0.2):
    """:func:`watch` that returns ``(status, value)`` instead of raising in the worker.

    ``("ok", result)``, ``("cancelled", None)`` or ``("error", exception)``: the widget
    words the error as a notification (napari would show a worker's exception with a
    traceback).
    """
    try:
        result = yield from watch(job, model_dir=model_dir, poll=poll)
    except Cancelled:
        return "cancelled", None
    except Exception as exc:  # noqa: BLE001 - shown as a notification by the widget
        return "error", exc
    return "ok", result
