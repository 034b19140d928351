"""Reference restorations for the structural refactor (issue 25), made with main at 652cfc7.

The committed demo package restores the committed phantom (``isonet synth nuclei --size 48
--seed 7``, 6 x 48 x 48 at factor 8) in memory and chunked, on both backends:

* ``memory_<backend>``: ``isonet restore input.tif --model DEMO --backend B -o out.tif``;
* ``chunked_<backend>``: ``isonet restore ... -o out.zarr`` (one column at this size);
* ``blocks_<backend>``: ``restore_chunked(input, DEMO, chunks=(24, 40))`` (2 x 2 columns).

``tests/test_restore_baseline.py`` reruns the same calls and compares with ``baseline.npz``.
Run from the repository root: ``.venv/bin/python tests/data/restore_baseline/make_baseline.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = HERE.parents[2] / "models" / "isonet2_nuclei_demo.bioimageio.zip"
BACKENDS = ("tensorflow", "onnx")
BLOCK_CHUNKS = (24, 40)


def make_input(path: Path) -> None:
    from isonet_ij.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        assert main(["synth", "nuclei", "--size", "48", "--seed", "7", "-o", f"{tmp}/synth"]) == 0
        path.write_bytes(Path(tmp, "synth", "input.tif").read_bytes())


def restorations(input_tif: Path, workdir: Path) -> dict:
    """Every reference restoration of ``input_tif``, by name (float32 (Z', Y, X) arrays)."""
    import tifffile
    import zarr

    from isonet_ij.cli import main
    from isonet_ij.chunked import restore_chunked

    out = {}
    for backend in BACKENDS:
        tif = workdir / f"memory_{backend}.tif"
        args = ["restore", str(input_tif), "--model", str(MODEL), "--backend", backend, "--no-consistency"]
        assert main([*args, "-o", str(tif)]) == 0
        out[f"memory_{backend}"] = tifffile.imread(tif)
        store = workdir / f"chunked_{backend}.zarr"
        assert main([*args, "-o", str(store)]) == 0  # default --max-memory (4G): room for a loaded test process
        out[f"chunked_{backend}"] = np.asarray(zarr.open_group(str(store), mode="r")["0"])
        blocks = workdir / f"blocks_{backend}.zarr"
        restore_chunked(tifffile.imread(input_tif), str(MODEL), factor=8.0, out=str(blocks),
                        chunks=BLOCK_CHUNKS, backend=backend)
        out[f"blocks_{backend}"] = np.asarray(zarr.open_group(str(blocks), mode="r")["0"])
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    input_tif = HERE / "input.tif"
    if not input_tif.is_file():
        make_input(input_tif)
    with tempfile.TemporaryDirectory() as tmp:
        refs = restorations(input_tif, Path(tmp))
    np.savez_compressed(target / "baseline.npz", **refs)
    for k, v in refs.items():
        print(f"{k}: shape {v.shape}, range {v.min():.3f}..{v.max():.3f}")
