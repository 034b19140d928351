"""The volume model exported with its plane network in int8 (`isonet export --precision int8`):
close to the fp32 restoration (>= 40 dB, as restore's int8 check), really quantized, labelled,
refused where it cannot be calibrated or does not apply."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

from conftest import smooth_volume  # noqa: E402


def psnr(got, ref):
    ref = np.asarray(ref, np.float64)
    return 10 * np.log10(np.ptp(ref) ** 2 / np.mean((np.asarray(got, np.float64) - ref) ** 2))


@pytest.fixture(scope="module")
def int8_onnx(tiny_trained_model, tmp_path_factory):
    from isonet_ij.model_export import export_onnx

    d = tmp_path_factory.mktemp("int8vol")
    return export_onnx(tiny_trained_model, d / "m8.onnx", precision="int8", sample=smooth_volume((10, 40, 44), seed=6))


def test_int8_volume_model_is_close_to_fp32_and_really_quantized(int8_onnx, tiny_trained_model):
    from isonet_ij import load_model, restore, restore_with_info
    from isonet_ij.volume_graph import graph_metadata

    data = int8_onnx.read_bytes()
    assert graph_metadata(data)["isonet.precision"] == "int8"
    import onnx

    ops = {n.op_type for n in onnx.load_model_from_string(data).graph.node}
    body_ops = {n.op_type for n in onnx.load_model_from_string(data).graph.node if n.op_type == "Loop"
                for a in n.attribute for n in a.g.node}
    assert "QuantizeLinear" in ops | body_ops and "DequantizeLinear" in ops | body_ops
    vol = smooth_volume((9, 48, 52), seed=7)  # another volume than the calibration one
    ref = restore(vol, tiny_trained_model, normalization="model")
    res = restore_with_info(vol, load_model(int8_onnx), normalization="model")
    got = res.volume
    assert res.info["precision"]["precision"] == "int8"  # the output is labelled with what ran
    assert got.shape == ref.shape
    assert psnr(got, ref) >= 40.0
    assert np.max(np.abs(got - ref)) > 0  # int8 really ran


def test_int8_export_needs_a_calibration_volume(tiny_trained_model, tmp_path):
    from isonet_ij.model_export import export_onnx

    # the tiny model was trained on an array: no training input file to calibrate on
    with pytest.raises(ValueError, match="--sample"):
        export_onnx(tiny_trained_model, tmp_path / "x.onnx", precision="int8")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_int8_export_and_its_refusals(tiny_trained_model, tmp_path):
    from isonet_ij import write_volume

    sample = tmp_path / "sample.tif"
    write_volume(sample, smooth_volume((10, 40, 44), seed=6))
    isonet = [sys.executable, "-m", "isonet_ij"]
    ok = subprocess.run([*isonet, "export", str(tiny_trained_model), "--format", "onnx", "--precision", "int8",
                         "--sample", str(sample), "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["output"].endswith("m.onnx")
    bad = subprocess.run([*isonet, "export", str(tiny_trained_model), "--format", "onnx", "--precision", "int8",
                          "--plane", "-o", str(tmp_path / "p.onnx")], capture_output=True, text=True)
    assert bad.returncode != 0 and "--precision int8" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "p.onnx").exists()
