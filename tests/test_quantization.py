"""int8 restoration: quality against fp32, failed quantizations caught, deterministic, cached, chunked.

The bound: int8 restoration must stay >= 40 dB PSNR (peak = the fp32 output's range) from the
fp32 restoration of the same model and volume, an RMS deviation of 1 % of the range, about
10x below the restoration's own error against the isotropic ground truth on the phantoms;
measured here about 55 dB (``quantization.MIN_PSNR_DB``).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from isonet_ij import quantization as q  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo package copied out of the repository (its int8 cache goes beside it)."""
    from isonet_ij.artifacts import find_demo_package

    try:
        src = find_demo_package()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    dst = tmp_path_factory.mktemp("demo") / src.name
    shutil.copy(src, dst)
    return dst


@pytest.fixture(scope="module")
def volume():
    from isonet_ij import synthesize

    return synthesize("nuclei", size=48, psf="gaussian:2,8", factor=8, seed=3)["input"]


def psnr(ref, got):
    return 10 * np.log10(float(np.ptp(ref)) ** 2 / float(np.mean((ref - got) ** 2)))


def test_int8_restoration_stays_within_the_bound_of_fp32(demo, volume):
    from isonet_ij import load_model, restore_with_info

    model = load_model(demo, backend="onnx")
    fp32 = restore_with_info(volume, model, precision="fp32")
    int8 = restore_with_info(volume, model, precision="int8")
    assert fp32.info["precision"] == {"precision": "fp32"}
    assert int8.info["precision"]["precision"] == "int8"
    assert psnr(fp32.volume, int8.volume) >= q.MIN_PSNR_DB
    assert not np.array_equal(fp32.volume, int8.volume)  # int8 really ran


def test_a_saturating_quantization_fails_the_check(demo, volume):
    from isonet_ij import load_model
    from isonet_ij.tiling import default_border

    model = load_model(demo, backend="onnx")
    lo, hi = np.percentile(volume, [1, 99.8])
    planes = q.calibration_planes(volume, 8.0, lo, hi, border=default_border(8.0))
    squeezed = q.quantize_model(model, [p * 1e-3 for p in planes])  # ranges 1000x too narrow
    with pytest.raises(ValueError, match="deviates from the fp32 one"):
        q.check_quantized(model, squeezed, planes)
    assert q.check_quantized(model, q.quantize_model(model, planes), planes) >= q.MIN_PSNR_DB


def test_calibration_and_quantization_are_deterministic_for_a_seed(demo, volume):
    from isonet_ij import load_model

    model = load_model(demo, backend="onnx")
    a = q.calibration_planes(volume, 8.0, 100.0, 900.0, border=(8, 0), seed=1)
    b = q.calibration_planes(volume, 8.0, 100.0, 900.0, border=(8, 0), seed=1)
    c = q.calibration_planes(volume, 8.0, 100.0, 900.0, border=(8, 0), seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    first = q.quantize_model(model, a)
    data = first.path.read_bytes()
    first.path.unlink()  # quantize again from scratch: the same graph
    assert q.quantize_model(model, a).path.read_bytes() == data


def test_cache_is_reused_and_invalidated_when_the_model_changes(tiny_trained_model, tmp_path):
    from isonet_ij import load_model
    from isonet_ij.config import WEIGHTS_BEST

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_trained_model, model_dir)
    vol = np.random.default_rng(0).random((6, 24, 24)).astype(np.float32)
    planes = q.calibration_planes(vol, 3.0, 0.0, 1.0, border=(4, 0))
    first = q.quantize_model(load_model(model_dir, backend="onnx"), planes)
    assert first.path.parent == model_dir / "int8_cache"
    stamp = first.path.stat().st_mtime_ns
    again = q.quantize_model(load_model(model_dir, backend="onnx"), planes)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # reused
    net = load_model(model_dir, backend="tensorflow").net.net  # other weights, same architecture
    net.set_weights([w * 0.9 for w in net.get_weights()])
    net.save_weights(model_dir / WEIGHTS_BEST)
    changed = q.quantize_model(load_model(model_dir, backend="onnx"), planes)
    assert changed.path != first.path


def test_chunked_int8_equals_in_memory_int8_bit_for_bit(demo, volume, tmp_path):
    import zarr

    from isonet_ij import load_model, restore, restore_chunked

    model = load_model(demo, backend="onnx")
    ref = restore(volume, model, precision="int8")
    info = restore_chunked(volume, model, factor=8.0, out=tmp_path / "o.zarr", chunks=(24, 24), precision="int8")
    got = np.asarray(zarr.open_group(str(tmp_path / "o.zarr"), mode="r")["0"])
    assert info["precision"]["precision"] == "int8" and info["n_chunks"] == 4
    np.testing.assert_array_equal(got, ref)


def test_auto_keeps_fp32_where_the_cpu_has_no_int8_instructions(demo, volume, monkeypatch):
    from isonet_ij import load_model, restore_with_info

    monkeypatch.setattr(q, "cpu_int8_features", lambda: [])
    res = restore_with_info(volume, load_model(demo, backend="onnx"), precision="auto")
    assert res.info["precision"]["precision"] == "fp32" and "int8" in res.info["precision"]["reason"]


def test_auto_is_the_default_and_keeps_fp32_for_volumes_too_small_to_pay(demo, volume, monkeypatch):
    """The interfaces' default; a small stack never pays for quantizing (deterministic: no timing)."""
    from isonet_ij import load_model, restore_with_info
    from isonet_ij.workflow import RESTORE_DEFAULTS

    assert RESTORE_DEFAULTS["precision"] == "auto"
    monkeypatch.setattr(q, "cpu_int8_features", lambda: ["avx512_vnni"])
    res = restore_with_info(volume, load_model(demo, backend="onnx"))
    assert res.info["precision"]["precision"] == "fp32" and "too few" in res.info["precision"]["reason"]


def test_auto_on_a_large_enough_volume_quantizes_checks_and_times(demo, volume, monkeypatch):
    from isonet_ij import load_model, restore_with_info

    if not q.cpu_int8_features():
        pytest.skip("this CPU has no int8 dot-product instructions: auto keeps fp32 before sizes matter")
    monkeypatch.setattr(q, "AUTO_MIN_VOXELS", 1)  # the test volume counts as large
    res = restore_with_info(volume, load_model(demo, backend="onnx"), precision="auto")
    prec = res.info["precision"]
    # whichever ran faster on this machine now; both are decided by measurement, never by size
    assert (prec["precision"] == "int8" and prec["speedup"] > 1 and prec["psnr_vs_fp32_db"] >= q.MIN_PSNR_DB) or \
        (prec["precision"] == "fp32" and "not faster" in prec["reason"])


def test_cli_precision_is_recorded_in_the_output(demo, volume, tmp_path, capsys):
    import json

    from isonet_ij import read_volume, write_volume
    from isonet_ij.cli import main

    write_volume(tmp_path / "in.tif", volume, voxel_size=(0.8, 0.1, 0.1))
    argv = ["restore", str(tmp_path / "in.tif"), "--model", str(demo), "--backend", "onnx", "--no-consistency",
            "--precision", "int8", "-o", str(tmp_path / "out.tif")]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    prov = read_volume(tmp_path / "out.tif").metadata
    assert "int8" in json.dumps(prov)
    with pytest.raises(SystemExit) as exc:  # argparse refuses an unknown choice
        main([*argv[:-2], "--precision", "int4", "-o", str(tmp_path / "x.tif")])
    assert exc.value.code == 2 and not (tmp_path / "x.tif").exists()
