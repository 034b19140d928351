"""Where outputs may be written: never onto (or into) an input, never over a file without
``--force``, and only where a file can really be created (checked before any computation).
Re-exported by :mod:`isonet_ij.volume_io`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_not_input", "check_output_path", "check_writable"]


def resolved(path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return Path(path).absolute()


def check_not_input(path, inputs=(), *, what: str = "output") -> Path:
    """Refuse an output that is one of ``inputs``, lies inside one (a model or zarr folder)
    or holds one (a folder that would be replaced). Paths are compared resolved.

    Returns the path as a ``Path``; creates nothing (:func:`check_writable` probes the folder).
    """
    path = Path(path)
    out = resolved(path)
    for inp in inputs:
        if inp is None:
            continue
        src = resolved(inp)
        same = out == src or (path.exists() and Path(inp).exists() and path.samefile(inp))
        if same or src in out.parents or out in src.parents:
            how = ("is the input " + ("folder" if src.is_dir() else "file") if same
                   else "lies inside the input" if src in out.parents else "holds the input")
            msg = (f"{what} {str(path)!r} {how} {str(inp)!r}; an output never replaces its inputs: "
                   "choose another output path")
            raise FileExistsError(msg)
    return path


def check_output_path(path, *, force: bool = False, inputs=()) -> Path:
    """Refuse to write onto (or into) an input, or onto an existing file unless ``force``.

    ``inputs`` are files or folders (a model directory, a zarr store) the computation
    reads; see :func:`check_not_input`. Returns the path as a ``Path``; creates nothing
    (:func:`check_writable` probes the folder).
    """
    path = check_not_input(path, inputs)
    if path.exists() and path.is_dir():
        msg = f"output {str(path)!r} is a directory; give a file name"
        raise FileExistsError(msg)
    if path.exists() and not force:
        msg = f"output {str(path)!r} exists; choose another path or pass --force to replace it"
        raise FileExistsError(msg)
    return check_writable(path)


def check_writable(path, *, what: str = "output") -> Path:
    """Raise unless a file can be created at ``path`` (its folder, or the nearest existing one).

    Probes by creating (and removing) a temporary file: permission bits alone do not tell
    (root, read-only mounts, ACLs). Missing folders are created later by the writer; the
    nearest existing one must then be writable. Raises PermissionError (a message naming
    the folder) or NotADirectoryError (a file where a folder is expected).
    """
    path = Path(path).expanduser()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        msg = (f"cannot write {what} {str(path)!r}: {str(folder)!r} is a file, not a folder; "
               "choose an output path inside a folder")
        raise NotADirectoryError(msg)
    try:
        fd, probe = tempfile.mkstemp(prefix=".isonet-probe-", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = (f"cannot write {what} {str(path)!r}: folder {str(folder)!r} is not writable "
               f"({reason.lower()}); choose a folder you can write to")
        raise PermissionError(msg) from None
    os.close(fd)
    os.unlink(probe)
    return path
