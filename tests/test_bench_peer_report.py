"""The peer benchmark's report from cached cells (``--cached-only``): cells run in earlier
sessions are rendered, missing ones are named, and nothing is synthesized or trained."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peer.py"
_spec = importlib.util.spec_from_file_location("bench_peer", _PATH)
bench_peer = sys.modules.get("bench_peer")
if bench_peer is None:
    bench_peer = importlib.util.module_from_spec(_spec)
    sys.modules["bench_peer"] = bench_peer
    _spec.loader.exec_module(bench_peer)


def _argv(tmp_path, pairings="nuclei,membranes"):
    return ["--cached-only", "--size", "32", "--minutes", "1", "--pairings", pairings,
            "--cache", str(tmp_path / "cells"), "--out", str(tmp_path / "out" / "peer.md")]


def _cell(pairing, method, iso, vox_per_s):
    cell = {"pairing": pairing, "method": method, "scores": {"gt_iso": iso, "gt": iso - 3}, "psf": "gaussian:2,8",
            "factor": 8.0, "restore_s": 1.0, "vox_per_s": vox_per_s, "peak_rss_mb": 900.0,
            "peak_rss_delta_mb": 50.0, "epochs": 3, "patch": 64}
    if method.startswith("care"):
        cell.update(n_patches=512, n_val=51, kernel_shape=[9, 9], data_s=0.5, best_val_loss=0.01,
                    predict_factor=8.0, care_output_slices=121)
    elif method != "bicubic":
        cell["best_val_psnr"] = 30.0
    return cell


def _write(tmp_path, pairing, cells):
    args = bench_peer.parse_args(_argv(tmp_path))
    for method, (iso, speed) in cells.items():
        bench_peer.save_cell(Path(args.cache), bench_peer.cell_key(args, pairing, method),
                             _cell(pairing, method, iso, speed))


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("--cached-only must not synthesize or train")

    monkeypatch.setattr(bench_peer, "synth_case", refuse)
    monkeypatch.setattr(bench_peer, "run_cell", refuse)


def test_cached_only_renders_what_is_cached_and_names_the_rest(tmp_path, no_training, monkeypatch):
    _write(tmp_path, "nuclei", {"bicubic": (22.0, 1e8), "isonet2-split": (29.0, 3e5),
                                "care-full": (27.0, 1e5), "care-split": (27.5, 1.2e5)})
    _write(tmp_path, "membranes", {"bicubic": (21.0, 1e8), "isonet2-split": (26.0, 3e5)})

    argv = _argv(tmp_path) + ["--note", "synthetic pairings still running"]
    monkeypatch.setattr(sys, "argv", ["bench_peer.py", *argv])  # the report's footer quotes sys.argv
    assert bench_peer.main(argv) == 0
    text = (tmp_path / "out" / "peer.md").read_text()
    assert text.splitlines()[2] == "> synthetic pairings still running"
    # the goal is computed against the better CSBDeep variant (split here: 27.5 dB, 1.2e5 vox/s)
    assert "- nuclei: isonet-ij - best CSBDeep (care-split) vs isotropic GT = +1.50 dB (PASS); " \
           "restore speed ratio 2.50x (PASS)" in text
    assert "Not yet run, left out: membranes / care-full, membranes / care-split." in text
    assert "| membranes (gaussian:2,8 / 8.0) | Bicubic (input) | 21.00 |" in text
    assert "--note ..." in text and "still running`" not in text  # the note is not repeated in the footer
    report = json.loads((tmp_path / "out" / "peer.json").read_text())
    assert set(report["membranes"]) == {"bicubic", "isonet2-split"}


def test_cached_only_with_no_cell_says_so(tmp_path, no_training):
    with pytest.raises(SystemExit, match="no cell of these pairings"):
        bench_peer.main(_argv(tmp_path, "nuclei"))
