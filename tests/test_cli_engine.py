"""``isonet train | restore | baseline | score``: workflow and bad input (clear errors, nothing written)."""

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("tensorflow")

from isonet_ij import volume_io as vio  # noqa: E402
from isonet_ij.cli import main  # noqa: E402
from isonet_ij.config import read_config  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A calibrated 6x32x32 input (dz = 2 dx) and a small model trained on it by the CLI."""
    from scipy.ndimage import gaussian_filter

    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    iso = gaussian_filter(rng.random((11, 32, 32)), 1.0)
    vol = (100 + 2000 * (iso - iso.min()) / np.ptp(iso)).astype(np.float32)[::2]
    vio.write_volume(d / "in.tif", vol, voxel_size=(0.2, 0.1, 0.1))
    vio.write_volume(d / "gt.tif", (100 + 2000 * (iso - iso.min()) / np.ptp(iso)).astype(np.float32),
                     voxel_size=0.1)
    rc = main(["train", str(d / "in.tif"), "--psf", "gaussian:1,2", "--patch", "16", "--batch", "4",
               "--epochs", "2", "--steps-per-epoch", "2", "-o", str(d / "model")])
    assert rc == 0
    return d


def run(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_train_writes_the_model_dir_with_factor_from_the_calibration(workdir):
    cfg = read_config(workdir / "model")
    assert cfg.factor == pytest.approx(2.0) and cfg.arch == "isonet2" and cfg.mode == "split"
    assert cfg.psf == "gaussian:1,2" and cfg.psf_info["kind"] == "gaussian"
    for name in ("weights_best.weights.h5", "training_log.csv", "training_curve.png", "psf.tif"):
        assert (workdir / "model" / name).is_file()


def test_restore_then_score(workdir, capsys):
    out = workdir / "out.tif"
    rc, stdout, err = run(["restore", workdir / "in.tif", "--model", workdir / "model", "-o", out], capsys)
    assert rc == 0, err
    v = vio.read_volume(out)
    assert v.data.shape == (11, 32, 32) and v.data.dtype == np.float32
    assert v.voxel_size == pytest.approx((0.1, 0.1, 0.1))
    prov = v.metadata
    assert prov["arch"] == "isonet2" and prov["factor"] == 2.0 and prov["psf"] == "gaussian:1,2"
    assert prov["version"] and isinstance(prov["self_consistency_psnr_db"], (list, float))
    rc, stdout, _ = run(["score", out, "--gt", workdir / "gt.tif"], capsys)
    res = json.loads(stdout)
    assert rc == 0 and res["n_slices"] == 11 and res["psnr_affine"] > 20
    # existing output: refused without --force
    rc, _, err = run(["restore", workdir / "in.tif", "--model", workdir / "model", "-o", out], capsys)
    assert rc == 2 and "--force" in err


def test_restore_keeps_input_dtype_on_request(workdir, capsys):
    vol = vio.read_volume(workdir / "in.tif").data
    vio.write_volume(workdir / "in16.tif", vol.astype(np.uint16), voxel_size=(0.2, 0.1, 0.1))
    out = workdir / "out16.tif"
    rc, _, err = run(["restore", workdir / "in16.tif", "--model", workdir / "model", "-o", out,
                      "--dtype", "input", "--no-consistency"], capsys)
    assert rc == 0, err
    assert vio.read_volume(out).data.dtype == np.uint16


def test_baselines_bicubic_and_rl(workdir, capsys):
    for method, extra in (("bicubic", []), ("rl", ["--psf", "gaussian:1,2", "--iterations", "2"])):
        out = workdir / f"{method}.tif"
        rc, _, err = run(["baseline", method, workdir / "in.tif", "-o", out, *extra], capsys)
        assert rc == 0, err
        assert vio.read_volume(out).data.shape == (11, 32, 32)


def write_psf(path, data):
    vio.write_volume(path, np.asarray(data, np.float32), voxel_size=0.1)
    return path


@pytest.mark.parametrize(
    ("psf", "match"),
    [
        (np.ones((4, 5, 5)), "odd"),
        (np.pad(np.ones((3, 3, 3)), 1) - 0.5, "negative"),
        (np.zeros((5, 5, 5)), "sum"),
    ],
)
def test_bad_psf_files_are_clear_errors_and_nothing_is_written(workdir, capsys, tmp_path, psf, match):
    p = write_psf(tmp_path / "psf.tif", psf)
    rc, _, err = run(["train", workdir / "in.tif", "--psf", p, "-o", tmp_path / "m"], capsys)
    assert rc == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()
    rc, _, err = run(["baseline", "rl", workdir / "in.tif", "--psf", p, "-o", tmp_path / "o.tif"], capsys)
    assert rc == 2 and match in err and not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("factor", ["0", "-2", "nan"])
def test_non_positive_factor_is_a_clear_error(workdir, capsys, tmp_path, factor):
    rc, _, err = run(["train", workdir / "in.tif", "--factor", factor, "--psf", "gaussian:1,2",
                      "-o", tmp_path / "m"], capsys)
    assert rc == 2 and "--factor" in err and not (tmp_path / "m").exists()
    rc, _, err = run(["restore", workdir / "in.tif", "--model", workdir / "model", "--factor", factor,
                      "-o", tmp_path / "o.tif"], capsys)
    assert rc == 2 and "factor" in err and not (tmp_path / "o.tif").exists()


def test_volume_smaller_than_a_patch_is_a_clear_error(workdir, capsys, tmp_path):
    rc, _, err = run(["train", workdir / "in.tif", "--psf", "gaussian:1,2", "--patch", "64",
                      "-o", tmp_path / "m"], capsys)
    assert rc == 2 and "patch" in err and not (tmp_path / "m").exists()


def test_2d_image_is_a_clear_error(capsys, tmp_path, workdir):
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((32, 32), np.float32))
    rc, _, err = run(["train", tmp_path / "img.tif", "--factor", "2", "--psf", "gaussian:1,2",
                      "-o", tmp_path / "m"], capsys)
    assert rc == 2 and "2D" in err and not (tmp_path / "m").exists()
    rc, _, err = run(["restore", tmp_path / "img.tif", "--model", workdir / "model", "-o", tmp_path / "o.tif"],
                     capsys)
    assert rc == 2 and "2D" in err and not (tmp_path / "o.tif").exists()


def test_model_dir_from_another_version_is_a_clear_error(workdir, capsys, tmp_path):
    import shutil

    m = tmp_path / "old_model"
    shutil.copytree(workdir / "model", m)
    cfg = json.loads((m / "config.json").read_text())
    cfg["format_version"] = 0
    cfg["versions"]["isonet_ij"] = "0.0.1"
    (m / "config.json").write_text(json.dumps(cfg))
    rc, _, err = run(["restore", workdir / "in.tif", "--model", m, "-o", tmp_path / "o.tif"], capsys)
    assert rc == 2 and "format version 0" in err and "0.0.1" in err
    assert not (tmp_path / "o.tif").exists()


def test_missing_calibration_without_factor_is_a_clear_error(capsys, tmp_path):
    tifffile.imwrite(tmp_path / "raw.tif", np.zeros((6, 32, 32), np.float32), imagej=True,
                     metadata={"axes": "ZYX"})  # no spacing, no resolution
    rc, _, err = run(["train", tmp_path / "raw.tif", "--psf", "gaussian:1,2", "-o", tmp_path / "m"], capsys)
    assert rc == 2 and "--factor" in err and "calibration" in err
    assert not (tmp_path / "m").exists()


def test_help_lists_the_engine_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "restore", "baseline", "score", "demo"):
        assert cmd in out


def test_resume_continues_to_the_requested_total_epochs(workdir, capsys, tmp_path):
    import shutil

    m = tmp_path / "model"
    shutil.copytree(workdir / "model", m)
    rc, stdout, err = run(["train", workdir / "in.tif", "--resume", "--epochs", "3", "-o", m], capsys)
    assert rc == 0, err
    assert json.loads(stdout)["epochs"] == 3
    # the fixture's run has two rounds (rounds auto, gaussian:1,2): its first round's log is in round1/
    logs = [m / "training_log.csv", m / "round1" / "training_log.csv"]
    assert sum(len(p.read_text().splitlines()) - 1 for p in logs if p.is_file()) == 3


def test_srcnn_baseline_picks_a_patch_that_fits_and_stops_at_its_budget(workdir, capsys, tmp_path):
    rc, _, err = run(["baseline", "srcnn", workdir / "in.tif", "--time-budget", "4s",
                      "--model-dir", tmp_path / "srcnn", "-o", tmp_path / "s.tif"], capsys)
    assert rc == 0, err
    cfg = read_config(tmp_path / "srcnn")
    assert cfg.arch == "isonet1" and cfg.mode == "none" and cfg.patch_size == 28  # 31 rows -> 28
    assert vio.read_volume(tmp_path / "s.tif").data.shape == (11, 32, 32)


def test_restore_with_the_demo_package_gives_the_same_volume_on_both_backends(tmp_path, capsys):
    """The committed bioimage.io package restores through the CLI; onnxruntime == TensorFlow."""
    from isonet_ij import grid
    from isonet_ij.artifacts import find_demo_package
    from isonet_ij.baselines import bicubic
    from isonet_ij.metrics import psnr_affine
    from isonet_ij.phantoms import synthesize

    syn = synthesize("nuclei", size=64, seed=3)
    vio.write_volume(tmp_path / "in.tif", syn["input"], voxel_size=syn["input_voxel_size"])
    outs = {}
    for backend in ("tensorflow", "onnx"):
        out = tmp_path / f"{backend}.tif"
        rc, _, err = run(["restore", tmp_path / "in.tif", "--model", find_demo_package(),
                          "--backend", backend, "-o", out], capsys)
        assert rc == 0, err
        outs[backend] = vio.read_volume(out).data
    lo, hi = np.percentile(outs["tensorflow"], (1, 99.8))
    assert np.abs(outs["tensorflow"] - outs["onnx"]).max() / (hi - lo) <= 1e-4
    gt_iso = grid.crop_to_grid(syn["gt_iso"], syn["input"].shape[0], 8)
    gain = psnr_affine(outs["onnx"], gt_iso) - psnr_affine(bicubic(syn["input"], 8), gt_iso)
    assert gain > 1.0  # the package restores, it does not just run


def test_demo_pretrained_restores_without_training(tmp_path, capsys):
    rc, stdout, err = run(["demo", "--pretrained", "--size", "64", "-o", tmp_path / "d"], capsys)
    assert rc == 0, err
    summary = json.loads((tmp_path / "d" / "scores.json").read_text())
    assert "pretrained" in summary["training"]
    s = summary["scores"]
    assert s["isonet2 split"]["psnr_affine_vs_gt_iso"] > s["bicubic"]["psnr_affine_vs_gt_iso"] + 1.0
    assert (tmp_path / "d" / "montage.png").stat().st_size > 10_000


def test_train_with_psf_auto_records_the_estimate(tmp_path, capsys):
    """--psf auto estimates a Gaussian PSF from the input and records it in config.json."""
    from isonet_ij.phantoms import synthesize

    syn = synthesize("nuclei", size=96, seed=0)  # gaussian 2/8, factor 8
    vio.write_volume(tmp_path / "in.tif", syn["input"], voxel_size=syn["input_voxel_size"])
    rc, _, err = run(["train", tmp_path / "in.tif", "--psf", "auto", "--patch", "32", "--batch", "4",
                      "--epochs", "1", "--steps-per-epoch", "1", "-o", tmp_path / "m"], capsys)
    assert rc == 0, err
    cfg = read_config(tmp_path / "m")
    assert cfg.psf.startswith("gaussian:")
    est = cfg.psf_info["auto_estimate"]
    assert est["sigma_z"] == pytest.approx(8.0, rel=0.15)
    assert float(cfg.psf.split(",")[1]) == pytest.approx(est["sigma_z"], rel=1e-2)


def test_bench_lists_every_benchmark_script_with_its_profile(capsys):
    from pathlib import Path

    from isonet_ij.cli import main
    from isonet_ij.cli._bench import BENCHMARKS, COMMITTED_CELLS

    assert main(["bench", "all", "--profile", "full", "--dry-run", "--", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(BENCHMARKS)
    for line, (name, (script, profiles)) in zip(lines, BENCHMARKS.items()):
        path = Path(line.split()[1])
        assert path.name == script and path.is_file()
        # full-profile cells of the long benchmarks live in the repository (resumable across sessions)
        cells = ["--cache", str(path.parent / "results" / "cells" / name)] if name in COMMITTED_CELLS else []
        assert line.endswith(" ".join([*profiles["full"], *cells, "--seed", "1"]))
        assert "results/quick" not in line
