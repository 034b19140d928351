"""Inference backends: onnxruntime vs TensorFlow parity, artifact loading, bad artifacts."""

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from isonet_ij import nets  # noqa: E402
from isonet_ij.artifacts import ArtifactError, load_keras_safe, safe_extract  # noqa: E402
from isonet_ij.backends import OnnxBackend, TensorFlowBackend, default_backend  # noqa: E402
from isonet_ij.config import Config, ModelDirError, write_config  # noqa: E402
from isonet_ij.model_export import export_onnx, onnx_bytes  # noqa: E402
from isonet_ij.model import IsoNetModel, load_model, model_from_keras  # noqa: E402
from isonet_ij.restoration import restore, restore_with_info  # noqa: E402
from conftest import smooth_volume  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_trained_model):
    return tiny_trained_model


@pytest.fixture(scope="module")
def onnx_file(trained, tmp_path_factory):
    return export_onnx(trained, tmp_path_factory.mktemp("onnx") / "model.onnx", plane=True)


@pytest.mark.parametrize("shape", [(2, 64, 64), (1, 48, 96), (3, 100, 36)])
def test_onnx_and_tensorflow_planes_agree_on_square_and_non_square_sizes(trained, onnx_file, shape):
    tf_be = load_model(trained, backend="tensorflow").net
    ort_be = load_model(onnx_file).net
    assert isinstance(tf_be, TensorFlowBackend) and isinstance(ort_be, OnnxBackend)
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    a, b = ort_be.predict(x), tf_be.predict(x)
    assert a.shape == shape and a.dtype == np.float32
    assert np.max(np.abs(a - b)) <= 1e-4
    assert np.std(a) > 0.1 * np.std(x)  # not a dead network (a zero model would also agree)


@pytest.mark.parametrize("shape", [(6, 40, 40), (5, 36, 52), (7, 44, 28)])
def test_onnx_backend_restores_the_same_volume_as_tensorflow(trained, onnx_file, shape):
    vol = smooth_volume(shape, seed=2)
    res = restore_with_info(vol, load_model(trained, backend="tensorflow"))
    ref, info = res.volume, res.info
    got = restore(vol, load_model(onnx_file, backend="onnx"))
    lo, hi = info["normalization"]["low"], info["normalization"]["high"]
    assert got.shape == ref.shape == (int((shape[0] - 1) * 3) + 1,) + shape[1:]
    assert np.max(np.abs(got - ref)) / (hi - lo) <= 1e-4
    from isonet_ij import grid

    W = grid.interpolation_matrix(shape[0], grid.output_coordinates(shape[0], 3))
    bicubic = np.tensordot(W, vol, axes=(1, 0))
    # the network changed the volume well beyond the tolerance: not two trivial outputs
    assert np.max(np.abs(ref - bicubic)) / (hi - lo) > 1e-2


def test_model_dir_converts_in_memory_for_onnx_and_default_is_the_faster_tensorflow(trained):
    assert default_backend() == "tensorflow"  # benchmarks/results/backends.md
    assert load_model(trained).backend == "tensorflow"
    m = load_model(trained, backend="onnx")
    assert isinstance(m, IsoNetModel) and isinstance(m.net, OnnxBackend)
    assert m.backend == "onnx" and m.config.factor == 3 and m.weights == "best"


def test_onnx_file_keeps_the_config(onnx_file, trained):
    m = load_model(onnx_file)
    cfg = json.loads((trained / "config.json").read_text())
    assert m.config.to_dict()["normalization"] == cfg["normalization"] and m.backend == "onnx"
    with pytest.raises(ValueError, match="ONNX file"):
        load_model(onnx_file, backend="tensorflow")


def test_model_dir_with_missing_weights_is_a_clear_error(tmp_path):
    write_config(tmp_path, Config(factor=2, arch="isonet1", mode="none"))
    with pytest.raises(ModelDirError, match="no weights"):
        load_model(tmp_path)


def test_unrelated_onnx_file_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "other", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ArtifactError, match="without isonet metadata"):
        load_model(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \x00\xff" * 10)
    with pytest.raises(ArtifactError, match="not a readable ONNX|without isonet metadata"):
        load_model(tmp_path / "junk.onnx")


def test_corrupted_zip_is_a_clear_error(tmp_path):
    bad = tmp_path / "pkg.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ArtifactError, match="not a valid zip"):
        load_model(bad)


def test_zip_with_a_member_outside_the_target_is_refused_and_nothing_is_written(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\n")
        zf.writestr("../escaped.txt", "gotcha")
    target = tmp_path / "out" / "pkg"
    with pytest.raises(ArtifactError, match="unsafe member"):
        safe_extract(evil, target)
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not any(target.iterdir())
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("/abs/path.txt", "x")
    with pytest.raises(ArtifactError, match="unsafe member"):
        safe_extract(evil, target)


def test_package_of_another_spec_version_is_refused(tmp_path):
    pkg = tmp_path / "old.zip"
    with zipfile.ZipFile(pkg, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\nformat_version: 0.4.10\nname: old\n")
    with pytest.raises(ArtifactError, match="format_version '0.4.10'"):
        load_model(pkg, workdir=tmp_path / "x")


def test_keras_files_are_loaded_in_safe_mode(tmp_path):
    keras = nets.keras_module()
    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ArtifactError, match="safe mode"):
        load_keras_safe(path)


def test_tensorflow_backend_on_an_in_memory_model_needs_no_files():
    cfg = Config(factor=2, arch="isonet1", mode="none", dropout=0.0)
    net = nets.build_model("isonet1", dropout=0.0, seed=0)
    tm = model_from_keras(net, cfg)
    be = load_model(tm, backend="tensorflow").net
    x = np.random.default_rng(0).random((13, 17)).astype(np.float32)
    np.testing.assert_allclose(be.predict(x), np.asarray(net(x[None, ..., None]))[0, ..., 0], atol=1e-6)
    ort = load_model(tm, backend="onnx").net  # converted in memory
    assert isinstance(ort, OnnxBackend) and np.max(np.abs(ort.predict(x) - be.predict(x))) <= 1e-4
    assert np.max(np.abs(OnnxBackend(onnx_bytes(tm), cfg).predict(x) - be.predict(x))) <= 1e-4
