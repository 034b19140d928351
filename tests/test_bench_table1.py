"""The Table 1 benchmark's report from cached cells (``--cached-only``): a full run spread
over sessions is rendered with each pairing's complete seeds, and nothing is trained."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_engine_quality.py"
_spec = importlib.util.spec_from_file_location("bench_engine_quality", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_engine_quality", bench)
_spec.loader.exec_module(bench)

METHODS = ["bicubic", "rl", "isonet2-split"]


def _argv(tmp_path, pairings="nuclei,membranes"):
    return ["--cached-only", "--size", "32", "--minutes", "1", "--seeds", "0,1", "--pairings", pairings,
            "--methods", ",".join(METHODS), "--rl-iterations", "10", "--cache", str(tmp_path / "cells"),
            "--out", str(tmp_path / "out" / "t1.md")]


def _write_cells(tmp_path, pairing, seed, scores):
    """Cache cells of ``pairing`` / ``seed``: method -> (PSNR vs isotropic GT, vs GT)."""
    args = bench.parse_args(_argv(tmp_path))
    for method, (iso, gt) in scores.items():
        key = bench.cell_key(args, pairing, seed, method, "_it10" if method == "rl" else "")
        cell = {"pairing": pairing, "method": method, "scores": {"gt_iso": iso, "gt": gt}, "seed": seed,
                "psf": "gaussian:2,8", "factor": 8.0}
        bench.save_cell(Path(args.cache), key, cell)


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("--cached-only must not synthesize or train")

    monkeypatch.setattr(bench, "synth_case", refuse)
    monkeypatch.setattr(bench, "run_method", refuse)


def test_cached_only_uses_complete_seeds_per_pairing(tmp_path, no_training):
    _write_cells(tmp_path, "nuclei", 0, {"bicubic": (22.0, 19.0), "rl": (24.0, 20.0), "isonet2-split": (29.0, 22.0)})
    _write_cells(tmp_path, "nuclei", 1, {"bicubic": (23.0, 19.5), "rl": (25.0, 20.5), "isonet2-split": (28.0, 21.0)})
    _write_cells(tmp_path, "membranes", 0, {"bicubic": (21.0, 19.0), "rl": (22.0, 20.0), "isonet2-split": (27.0, 22.0)})
    _write_cells(tmp_path, "membranes", 1, {"bicubic": (99.0, 99.0)})  # seed 1 not finished

    assert bench.main(_argv(tmp_path) + ["--note", "partial run"]) == 0
    text = (tmp_path / "out" / "t1.md").read_text()
    assert "> partial run" in text
    assert "nuclei 0, 1 (n=2); membranes 0 (n=1)" in text
    assert "Not yet complete, left out: membranes 1." in text
    rows = [line for line in text.splitlines() if line.startswith("| nuclei (") or line.startswith("| membranes (")]
    # nuclei: mean (std, ddof=1) over both seeds; IsoNet-2 split best
    assert rows[0].startswith("| nuclei (gaussian:2,8 / 8.0), n=2 | isotropic GT | 22.50 (0.71) | 24.50 (0.71) | **28.50 (0.71)** |")
    # membranes: seed 1's lone cell (99 dB) is not averaged in
    assert rows[1].startswith("| membranes (gaussian:2,8 / 8.0), n=1 | isotropic GT | 21.00 | 22.00 | **27.00** |")
    assert "99.00" not in text
    assert "- nuclei: IsoNet-2 split - max(bicubic, RL) vs isotropic GT = +4.00 dB" in text
    report = json.loads((tmp_path / "out" / "t1.json").read_text())
    assert report["seeds_used"] == {"nuclei": ["0", "1"], "membranes": ["0"]}


def test_cached_only_without_a_complete_seed_says_so(tmp_path, no_training):
    _write_cells(tmp_path, "nuclei", 0, {"bicubic": (22.0, 19.0)})
    with pytest.raises(SystemExit, match="no pairing has a complete seed"):
        bench.main(_argv(tmp_path, "nuclei"))


def test_command_line_elides_the_note():
    argv = ["bench_engine_quality.py", "--note", "a long line", "--seeds", "0", "--note=x y"]
    assert bench.command_line(argv) == "bench_engine_quality.py --note ... --seeds 0 --note=..."
