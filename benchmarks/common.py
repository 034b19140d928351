"""Pieces shared by the benchmark scripts: per-cell JSON cache, synthetic cases with references.

Every benchmark caches each finished cell (one method on one volume) as a JSON file, so an
interrupted run resumes where it stopped; synthetic cases come with their references
(ground truth and isotropic ground truth) cropped to the restoration grid.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("benchmarks")


#: Revision of the training engine a trained cell was made with, appended to the keys of
#: cells that train a network (never to bicubic, RL or CSBDeep cells), so that a change of
#: training defaults retrains them instead of reusing results of another engine.
#: (no suffix): dropout 0.2, IsoNet-2 step without XLA. "e2": dropout 0 by default,
#: IsoNet-2's training step compiled with XLA.
TRAIN_REV = "e2"


def trained_key(key: str) -> str:
    """``key`` of a cell that trains a network, tagged with :data:`TRAIN_REV`."""
    return f"{key}_{TRAIN_REV}"


def load_cell(cache: Path, key: str):
    """The cached cell ``key`` (a dict), or None."""
    p = Path(cache) / f"{key}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def save_cell(cache: Path, key: str, data: dict) -> None:
    """Write cell ``key`` atomically."""
    from isonet_ij.volume_io import write_json

    Path(cache).mkdir(parents=True, exist_ok=True)
    write_json(Path(cache) / f"{key}.json", data, force=True)


def synth_case(kind: str, size: int, seed: int):
    """``phantoms.synthesize`` plus ``{"gt_iso", "gt"}`` cropped to the restoration grid."""
    from isonet_ij import grid, phantoms

    log.info("synthesizing %s %d^3 seed %d", kind, size, seed)
    case = phantoms.synthesize(kind, size=size, seed=seed)
    n_z, f = case["input"].shape[0], float(case["meta"]["factor"])
    refs = {"gt_iso": grid.crop_to_grid(case["gt_iso"], n_z, f), "gt": grid.crop_to_grid(case["gt"], n_z, f)}
    return case, refs


def write_report(out, lines, results) -> None:
    """Write the Markdown ``lines`` to ``out`` and ``results`` beside it as JSON (atomically); print."""
    from isonet_ij.volume_io import atomic_path, write_json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, force=True) as tmp:
        tmp.write_text("\n".join(lines))
    write_json(out.with_suffix(".json"), results, force=True)
    print("\n".join(lines))


def command_line(argv=None) -> str:
    """This run's command line, the ``--note`` text elided (it heads the report already)."""
    argv = list(sys.argv if argv is None else argv)
    for i, a in enumerate(argv):
        if a == "--note" and i + 1 < len(argv):
            argv[i + 1] = "..."
        elif a.startswith("--note="):
            argv[i] = "--note=..."
    return " ".join(argv)
