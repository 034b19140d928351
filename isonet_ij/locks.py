"""Exclusive claims on outputs being written, and the leftovers of killed processes.

:func:`exclusive_output` claims an output that a run writes in place over a long time
(a chunked ``.zarr`` restoration, a training model folder): an OS lock (``fcntl.flock``,
non-blocking) on a lock file beside the output, ``.NAME.isonet.lock`` in the output's
folder. The kernel releases the lock when the process ends, however it ends, so a
``kill -9`` never leaves a claim that blocks ``--resume``; the lock file itself is removed
on a clean exit, and a file left by a killed run is simply locked again by the next one.
A second run on the same output gets :class:`OutputLockedError` (one line naming the
output and saying another isonet run is writing it).

Shared cluster file systems: ``flock`` is only as good as the file system's lock support.
Local disks and NFSv4 (and NFSv3 with a running lock manager; Linux maps ``flock`` onto
NFS byte-range locks) lock across machines. Lustre locks across clients only when mounted
with ``-o flock`` (``localflock`` locks within one node only; without either option,
``flock`` fails); BeeGFS / GPFS follow their own mount settings. Where the file system
refuses the lock (``ENOLCK``, ``ENOSYS``, ``EOPNOTSUPP``), the run goes on unclaimed with
a warning: do not start two runs on the same output there.

:func:`pid_alive` and :func:`remove_stale` clean up what a killed process left behind
(temporary files and folders that carry the writer's PID in their name).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from pathlib import Path

__all__ = ["OutputLockedError", "exclusive_output", "lock_path", "pid_alive", "remove_stale"]

log = logging.getLogger(__name__)

#: Errors of a file system without (working) flock support: the run goes on unclaimed.
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class OutputLockedError(FileExistsError):
    """Another running process holds the claim on an output."""


def lock_path(output) -> Path:
    """The lock file of ``output``: ``.NAME.isonet.lock`` in the output's folder."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.isonet.lock"


def _try_lock(path: Path):
    """An fd holding an exclusive flock on ``path`` (the file on disk), None when another holds it."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        # the holder before us may have removed the file after unlocking it: lock the one on disk
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def exclusive_output(output, *, what: str = "output"):
    """Hold an exclusive claim on ``output`` for the ``with`` block.

    Raises
    ------
    OutputLockedError
        Another process (another isonet run) is writing ``output``.
    """
    output = Path(output)
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = _try_lock(path)
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise
        log.warning("cannot lock %s (%s): this file system has no flock support; "
                    "make sure no other isonet run writes %s", path, exc, output)
        yield None
        return
    if fd is None:
        msg = (f"{what} {str(output)!r} is being written by another isonet run (it holds {str(path)!r}); "
               "wait for it to finish or stop it, or choose another output")
        raise OutputLockedError(msg)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before unlocking: a waiting run then locks a fresh file
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale(folder, prefix: str, *, min_age_s: float = 0.0, suffix: str = "") -> list[Path]:
    """Remove ``folder``'s entries named ``PREFIX<pid>...SUFFIX`` whose writer ``pid`` is dead.

    Entries younger than ``min_age_s`` seconds are kept (a PID may be reused). Returns what
    was removed; errors (another process cleaning up at the same time) are ignored.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        name = p.name
        if not name.startswith(prefix) or not name.endswith(suffix):
            continue
        digits = name[len(prefix):].split("_", 1)[0].split(".", 1)[0]
        if not digits.isdigit() or int(digits) == os.getpid() or pid_alive(int(digits)):
            continue
        try:
            if now - p.lstat().st_mtime < min_age_s:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed
