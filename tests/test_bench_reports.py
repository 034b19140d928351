"""Benchmark reports rendered from cached cells (``--cached-only``), nothing synthesized or
trained: Table 1 (a full run spread over sessions is rendered with each pairing's complete
seeds) and the peer benchmark (cells run so far are rendered, missing ones named)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import load_benchmark

bench = load_benchmark("bench_engine_quality")
bench_peer = load_benchmark("bench_peer")


def _refuse(*a, **k):
    raise AssertionError("--cached-only must not synthesize or train")


@pytest.fixture
def no_training(monkeypatch):
    for module, names in ((bench, ("synth_case", "run_method")), (bench_peer, ("synth_case", "run_cell"))):
        for name in names:
            monkeypatch.setattr(module, name, _refuse)


# --------------------------------------------------------------------------- Table 1

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


def test_ordering_is_also_checked_seed_by_seed(tmp_path, no_training):
    # IsoNet-2 split wins on the mean (+0.25 dB) but loses on seed 1; full > split vs GT on both.
    methods = ["bicubic", "rl", "isonet2-full", "isonet2-split"]
    _write_cells(tmp_path, "nuclei", 0, {"bicubic": (22.0, 19.0), "rl": (24.0, 20.0),
                                         "isonet2-full": (28.0, 21.6), "isonet2-split": (29.0, 21.5)})
    _write_cells(tmp_path, "nuclei", 1, {"bicubic": (23.0, 19.5), "rl": (25.0, 20.5),
                                         "isonet2-full": (28.5, 21.2), "isonet2-split": (28.0, 21.0)})
    argv = _argv(tmp_path, "nuclei")
    argv[argv.index("--methods") + 1] = ",".join(methods)
    assert bench.main(argv) == 0
    text = (tmp_path / "out" / "t1.md").read_text()
    assert "- nuclei: IsoNet-2 split best vs isotropic GT (margin over IsoNet-2 full +0.25 dB): PASS" in text
    assert "### Seed by seed" in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| nuclei | ")}
    assert rows["IsoNet-2 split best vs isotropic GT"] == (
        "| nuclei | IsoNet-2 split best vs isotropic GT | +1.00 | -0.50 (x) | 1 of 2 |")
    assert rows["IsoNet-2 full > split vs GT"] == "| nuclei | IsoNet-2 full > split vs GT | +0.10 | +0.20 | 2 of 2 |"


def test_full_and_split_are_compared_with_and_without_noise_matching(tmp_path, no_training):
    # With noise matching full and split tie against the GT; without it full wins by 0.3 dB
    # (IsoNet-1) and 0.2 dB (IsoNet-2) and falls well behind split against the isotropic GT.
    scores = {"bicubic": (22.0, 18.0), "rl": (23.0, 18.5), "srcnn": (23.5, 18.1),
              "isonet1-full": (25.0, 18.50), "isonet1-split": (25.5, 18.50),
              "isonet2-full": (26.0, 18.80), "isonet2-split": (27.0, 18.80),
              "isonet1-full-nonoise": (21.0, 18.90), "isonet1-split-nonoise": (22.5, 18.60),
              "isonet2-full-nonoise": (20.5, 18.50), "isonet2-split-nonoise": (22.0, 18.30)}
    _write_cells(tmp_path, "nuclei-membranes", 0, scores)
    argv = _argv(tmp_path, "nuclei-membranes")
    argv[argv.index("--seeds") + 1] = "0"
    argv[argv.index("--methods") + 1] = ",".join(m for m in scores if not m.endswith("-nonoise"))
    assert bench.main(argv + ["--paper-recipe"]) == 0
    text = (tmp_path / "out" / "t1.md").read_text()
    section = text.split("## Full vs split with and without noise matching")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    # full - split: vs GT (noise matching, without, paper), then vs isotropic GT
    assert rows == ["| nuclei-membranes | IsoNet-1 | +0.00 | +0.30 | +0.79 | -0.50 | -1.50 | -4.64 |",
                    "|  | IsoNet-2 | +0.00 | +0.20 | +1.19 | -1.00 | -1.50 | -5.55 |"]
    checks = [line for line in section.splitlines() if line.startswith("- ")]
    assert checks == [
        "- nuclei-membranes: IsoNet-2 split best vs isotropic GT (margin over SRCNN -1.50 dB): FAIL",
        "- nuclei-membranes: IsoNet-1 full > split vs GT (18.90 vs 18.60, +0.30 dB; paper 26.86 vs 26.07): PASS",
        "- nuclei-membranes: IsoNet-2 full > split vs GT (18.50 vs 18.30, +0.20 dB; paper 27.85 vs 26.66): PASS"]
    # the main ordering still judges the default (noise-matched) networks
    assert "- nuclei-membranes: IsoNet-1 full > split vs GT (18.50 vs 18.50, +0.00 dB" in text
    head = next(line for line in text.splitlines() if line.startswith("| Volume (PSF / factor) |"))
    assert head.endswith("| IsoNet-1 full, no noise matching | IsoNet-1 split, no noise matching "
                         "| IsoNet-2 full, no noise matching | IsoNet-2 split, no noise matching |")


def test_no_recipe_section_without_every_network_both_ways(tmp_path, no_training):
    _write_cells(tmp_path, "nuclei", 0, {"bicubic": (22.0, 19.0), "rl": (24.0, 20.0), "isonet2-split": (29.0, 22.0),
                                         "isonet2-split-nonoise": (25.0, 21.0)})
    argv = _argv(tmp_path, "nuclei")
    argv[argv.index("--seeds") + 1] = "0"
    assert bench.main(argv + ["--ablations"]) == 0
    text = (tmp_path / "out" / "t1.md").read_text()
    assert "IsoNet-2 split, no noise matching" in text
    assert "with and without noise matching" not in text


def test_axial_detail_counts_only_what_matches_the_gt_in_phase():
    import numpy as np
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(0)
    gt = rng.random((129, 64))
    # itself, in any intensity units: all of it, in both bands
    assert bench.axial_detail(3 * gt + 5, gt, 4) == pytest.approx((1.0, 1.0), abs=1e-9)
    # independent noise on top adds no detail (about 3 % spread over the terms of a band)
    noisy = bench.axial_detail(gt + rng.normal(0, 0.3, gt.shape), gt, 4)
    assert noisy == pytest.approx((1.0, 1.0), abs=0.08)
    # a blur along z keeps the Gaussian transfer exp(-2 pi^2 s^2 k^2), lower in the upper band
    s = 1.5
    low, high = bench.axial_detail(gaussian_filter1d(gt, s, axis=0, mode="wrap"), gt, 4)
    k = np.fft.rfftfreq(129) * 8
    transfer = np.exp(-2 * np.pi**2 * s**2 * (k / 8) ** 2)
    ref = transfer[(k > 0) & (k < 0.5)].mean()
    for share, (lo, hi) in ((low, (0.5, 1)), (high, (1, 2))):
        band = (k >= lo) & (k < hi)
        assert share == pytest.approx(transfer[band].mean() / ref, abs=0.05)
    assert high < low < 1
    # too few rows for a well-sampled band below 0.5 x the acquisition's Nyquist: no number
    assert all(np.isnan(v) for v in bench.axial_detail(gt[:25], gt[:25], 8))
    # a blur along x only is no loss of axial detail (it lowers every z band alike; without the
    # low-band reference this would read 0.2)
    assert bench.axial_detail(gaussian_filter1d(gt, 2.0, axis=1), gt, 4) == pytest.approx((1.0, 1.0), abs=0.25)


def test_report_has_the_axial_detail_of_every_seed_with_references(tmp_path, no_training):
    import numpy as np
    from scipy.ndimage import gaussian_filter1d

    args = bench.parse_args(_argv(tmp_path))
    cache = Path(args.cache)
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        gt = rng.random((57, 32)).astype(np.float32)
        slices = {"bicubic": gaussian_filter1d(gt, 3.0, axis=0), "rl": gaussian_filter1d(gt, 1.0, axis=0),
                  "isonet2-split": gt}
        for method, xz in slices.items():
            key = bench.cell_key(args, "nuclei", seed, method, "_it10" if method == "rl" else "")
            bench.save_cell(cache, key, {"pairing": "nuclei", "method": method, "seed": seed,
                                         "scores": {"gt_iso": 25.0, "gt": 20.0}, "psf": "gaussian:2,8",
                                         "factor": 8.0, "xz": bench.encode_slice(xz), "xz_affine_gt_iso": [1.0, 0.0]})
        ref = {"xz": bench.encode_slice(gt), "xz_affine_gt_iso": [1.0, 0.0]}
        bench.save_cell(cache, bench.refs_key(args, "nuclei", seed), {"gt_iso": ref, "gt": ref})

    assert bench.main(_argv(tmp_path, "nuclei")) == 0
    text = (tmp_path / "out" / "t1.md").read_text()
    assert "## Axial detail recovered (central xz slice)" in text
    rows = [line.split(" | ") for line in text.splitlines() if "| [0.5, 1) |" in line or "| [1, 2) |" in line]
    assert [r[2] for r in rows] == ["2", "2"]  # both seeds' references were used
    for r in rows:  # columns: isotropic GT, bicubic, RL, IsoNet-2 split
        iso, bic, rl, split = (float(v.strip(" |")) for v in r[3:7])
        assert iso == split == 1.0
        assert bic < rl < 1.0
    assert (tmp_path / "out" / "t1_montage_nuclei.png").stat().st_size > 0  # named after the report


def test_command_line_elides_the_note():
    argv = ["bench_engine_quality.py", "--note", "a long line", "--seeds", "0", "--note=x y"]
    assert bench.command_line(argv) == "bench_engine_quality.py --note ... --seeds 0 --note=..."


# --------------------------------------------------------------------------- peer


def _peer_argv(tmp_path, pairings="nuclei,membranes"):
    return ["--cached-only", "--size", "32", "--minutes", "1", "--pairings", pairings,
            "--cache", str(tmp_path / "cells"), "--out", str(tmp_path / "out" / "peer.md")]


def _peer_cell(pairing, method, iso, vox_per_s):
    cell = {"pairing": pairing, "method": method, "scores": {"gt_iso": iso, "gt": iso - 3}, "psf": "gaussian:2,8",
            "factor": 8.0, "restore_s": 1.0, "vox_per_s": vox_per_s, "peak_rss_mb": 900.0,
            "peak_rss_delta_mb": 50.0, "epochs": 3, "patch": 64}
    if method.startswith("care"):
        cell.update(n_patches=512, n_val=51, kernel_shape=[9, 9], data_s=0.5, best_val_loss=0.01,
                    predict_factor=8.0, care_output_slices=121)
    elif method != "bicubic":
        cell["best_val_psnr"] = 30.0
    return cell


def _write_peer_cells(tmp_path, pairing, cells):
    args = bench_peer.parse_args(_peer_argv(tmp_path))
    for method, (iso, speed) in cells.items():
        bench_peer.save_cell(Path(args.cache), bench_peer.cell_key(args, pairing, method),
                             _peer_cell(pairing, method, iso, speed))


def test_peer_cached_only_renders_what_is_cached_and_names_the_rest(tmp_path, no_training, monkeypatch):
    _write_peer_cells(tmp_path, "nuclei", {"bicubic": (22.0, 1e8), "isonet2-split": (29.0, 3e5),
                                "care-full": (27.0, 1e5), "care-split": (27.5, 1.2e5)})
    _write_peer_cells(tmp_path, "membranes", {"bicubic": (21.0, 1e8), "isonet2-split": (26.0, 3e5)})

    argv = _peer_argv(tmp_path) + ["--note", "synthetic pairings still running"]
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


def test_peer_cached_only_with_no_cell_says_so(tmp_path, no_training):
    with pytest.raises(SystemExit, match="no cell of these pairings"):
        bench_peer.main(_peer_argv(tmp_path, "nuclei"))


# --------------------------------------------------------------------------- isonet bench


def test_bench_outside_a_source_checkout_says_what_to_do(tmp_path, monkeypatch, capsys):
    from isonet_ij.cli import _bench, main

    # an installed copy: isonet_ij/ without benchmarks/ beside it
    monkeypatch.setattr(_bench, "__file__", str(tmp_path / "site-packages" / "isonet_ij" / "cli" / "_bench.py"))
    assert main(["bench", "table1", "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert "needs a source checkout" in err and str(tmp_path / "site-packages" / "benchmarks") in err
    assert "bash scripts/install.sh" in err and ".venv/bin/isonet bench NAME" in err


def test_oracle_profiles_write_beside_not_over_the_committed_quick_table():
    from isonet_ij.cli._bench import command_lines

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    lines = {profile: command_lines("oracle", profile)[0] for profile in ("quick", "full")}
    outs = {}
    for profile, line in lines.items():
        out = Path(line[line.index("--out") + 1])
        outs[profile] = (out if out.is_absolute() else results.parents[1] / out).resolve()  # run from the repo
    # oracle.md (the script's default) is the committed quick profile of every case; the full
    # profile is oracle_full.md with its test-time-augmentation columns, as committed
    assert outs["full"] == results / "oracle_full.md"
    assert outs["quick"].parent == results / "quick"
    assert lines["full"][lines["full"].index("--variants") + 1] == "tta"


def test_no_benchmark_script_imports_another():
    import re

    for script in sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")):
        text = script.read_text()
        assert not re.search(r"^\s*(from|import) bench_", text, re.M), script.name
        assert "sys.path" not in text or script.name == "common.py", script.name


# --------------------------------------------------------------------------- the oracle (issue 28)

bench_oracle = load_benchmark("bench_oracle")


def _oracle_cells(tmp_path, seed, psnr):
    """Cells of the nuclei case, ``seed``: method -> held-out PSNR (dB); SSIM, steps and time made up."""
    from common import save_cell

    cid = f"nuclei_s32_seed{seed}"
    for method, value in psnr.items():
        key = f"{cid}_{method}" if method in ("bicubic", "rl10") else bench_oracle.trained_key(f"{cid}_m15_{method}",
                                                                                       rounds_pinned=True)
        save_cell(tmp_path / "cells", key, {"psnr": value, "ssim": 0.9, "steps": 100, "train_s": 900.0})


def _oracle_argv(tmp_path):
    return ["--cached-only", "--size", "32", "--minutes", "15", "--seeds", "0,1", "--cases", "nuclei",
            "--engine", "rounds2", "--cache", str(tmp_path / "cells"), "--models", str(tmp_path / "models"),
            "--out", str(tmp_path / "out" / "oracle.md")]


def test_oracle_cached_only_renders_complete_seeds_and_names_the_rest(tmp_path, monkeypatch):
    for name in ("load_case", "train_arm", "variant_score"):
        monkeypatch.setattr(bench_oracle, name, _refuse)
    _oracle_cells(tmp_path, 0, {"bicubic": 25.0, "rl10": 26.0, "isonet2": 29.0, "oracle": 30.5,
                                "isonet2_rounds2": 30.0})
    _oracle_cells(tmp_path, 1, {"bicubic": 25.0, "isonet2": 28.0})  # its oracle not run yet
    assert bench_oracle.main(_oracle_argv(tmp_path)) == 0
    text = (tmp_path / "out" / "oracle.md").read_text()
    assert "left out: nuclei_s32_seed1." in text
    row = next(line for line in text.splitlines() if line.startswith("| nuclei (n=1) |"))  # one seed of two
    assert "29.00 / 0.900" in row and "**1.50**" in row and "28.00" not in row  # seed 0 alone: gap 30.5 - 29
    change = [line for line in text.splitlines() if line.startswith("| nuclei |")][-1]
    assert change.startswith("| nuclei | 1.50 | 1.00 | 0.50 |")  # two rounds: +1.00, gap left 0.50
    _oracle_cells(tmp_path, 1, {"oracle": 29.5, "isonet2_rounds2": 29.0})  # seed 1 complete: nothing left out
    assert bench_oracle.main(_oracle_argv(tmp_path)) == 0
    text = (tmp_path / "out" / "oracle.md").read_text()
    assert "every case and seed asked for has its cells." in text and "left out" not in text
    assert "(n=1)" not in text and "**1.50 (0.00)**" in text  # both seeds: gaps 30.5 - 29 and 29.5 - 28


def test_oracle_cached_only_with_no_complete_case_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_oracle, "load_case", _refuse)
    _oracle_cells(tmp_path, 0, {"bicubic": 25.0, "isonet2": 28.0})
    with pytest.raises(SystemExit, match="no case has all of bicubic, isonet2, oracle"):
        bench_oracle.main(_oracle_argv(tmp_path))
