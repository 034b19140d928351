"""Fingerprints that tell whether a run continues on the same data and the same model.

A resumed run (``isonet train --resume``, a chunked ``isonet restore --resume``) must use
the input and the model it was started with; these cheap hashes, stored when the run
starts, are compared when it resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

__all__ = ["file_sha256", "array_fingerprint", "volume_fingerprint", "model_fingerprint"]


def file_sha256(path, *, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def array_fingerprint(arr, *, max_values: int = 4_000_000) -> dict:
    """``{"shape", "dtype", "sha256"}`` of an in-memory array; arrays above ``max_values``
    values are hashed on an evenly strided sample of that many values (any change of the
    volume changes it, except edits confined between sample points)."""
    a = np.asarray(arr)
    flat = a.reshape(-1)
    sample = flat[:: max(1, -(-flat.size // max_values))]
    digest = hashlib.sha256(np.ascontiguousarray(sample).tobytes()).hexdigest()
    return {"shape": [int(n) for n in a.shape], "dtype": str(a.dtype), "sha256": digest}


def volume_fingerprint(vol, shape) -> str:
    """sha256 of a (Z, Y, X) volume read by regions (zarr, lazy TIFF) or in memory: its
    shape and dtype and its first, middle and last z slices (an array: a strided sample)."""
    h = hashlib.sha256(json.dumps([int(n) for n in shape]).encode())
    if isinstance(vol, np.ndarray):
        h.update(json.dumps(array_fingerprint(vol)).encode())
        return h.hexdigest()
    Z = int(shape[0])
    for z in sorted({0, Z // 2, Z - 1}):
        plane = np.ascontiguousarray(np.asarray(vol[z : z + 1, :, :]))
        h.update(str(plane.dtype).encode())
        h.update(plane.tobytes())
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """sha256 of a model's config and of its weights file (a model directory's checkpoint
    in use, the ``.onnx`` / ``.zip`` file); in-memory models: the config only."""
    from .config import WEIGHTS_BEST, WEIGHTS_LAST

    cfg = dict(model.config.to_dict())
    cfg.pop("versions", None)
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
    path = Path(model.path) if model.path is not None else None
    if path is not None and path.is_dir():
        path = path / (WEIGHTS_LAST if model.weights == "last" else WEIGHTS_BEST)
    if path is not None and path.is_file():
        h.update(file_sha256(path).encode())
    return h.hexdigest()
