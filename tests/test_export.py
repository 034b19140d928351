"""Export: ONNX, SavedModel, bioimage.io package (validated and tested offline), CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from isonet_ij.artifacts import ArtifactError, find_demo_package  # noqa: E402
from isonet_ij.backends import OnnxBackend  # noqa: E402
from isonet_ij.config import Config  # noqa: E402
from isonet_ij.model import load_model, model_from_keras  # noqa: E402
from isonet_ij.model_export import (  # noqa: E402
    check_artifact,
    export,
    export_bioimageio,
    export_onnx,
    onnx_bytes,
    validate_package,
)
from conftest import constant_output_net, smooth_volume  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WEIGHT_FORMATS = ("onnx", "tensorflow_saved_model_bundle", "keras_v3")


@pytest.fixture(scope="module")
def trained(tiny_trained_model):
    return tiny_trained_model


@pytest.fixture(scope="module")
def package(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "isonet.bioimageio.zip"
    return export_bioimageio(trained, out, sample=smooth_volume((8, 40, 44), seed=3))  # the plane package


def test_onnx_export_has_opset_17_dynamic_axes_names_and_metadata(trained, tmp_path):
    import onnx

    for plane, layout in ((True, ["batch", 1, "height", "width"]), (False, [1, 1, "z", "y", "x"])):
        path = export(trained, "onnx", tmp_path / f"m{plane}.onnx", plane=plane)
        proto = onnx.load(path)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert [i.name for i in proto.graph.input] == ["input"]
        assert [o.name for o in proto.graph.output] == ["output"]
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == layout
        meta = {p.key: p.value for p in proto.metadata_props}
        cfg = json.loads((trained / "config.json").read_text())
        assert float(meta["isonet.factor"]) == 3
        assert json.loads(meta["isonet.normalization"]) == cfg["normalization"]
        assert json.loads(meta["isonet.config"])["arch"] == "isonet2"
        assert meta.get("isonet.graph") == (None if plane else "volume")
        with pytest.raises(FileExistsError, match="--force"):
            export(trained, "onnx", path)


def test_savedmodel_serve_endpoint_returns_a_dict_matching_keras(trained, tmp_path):
    import tensorflow as tf

    path = export(trained, "savedmodel", tmp_path / "sm")
    serve = tf.saved_model.load(str(path)).signatures["serve"]
    x = np.random.default_rng(0).random((2, 1, 32, 48)).astype(np.float32)
    out = serve(tf.constant(x))
    assert list(out) == ["output"]
    tm = load_model(trained, backend="tensorflow")
    ref = tm.net.predict_batch(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out["output"].numpy(), ref, atol=1e-5)


def test_a_model_that_learned_nothing_fails_the_artifact_check(tmp_path):
    cfg = Config(factor=2, arch="isonet1", mode="none", dropout=0.0,
                 normalization={"p_low": 1.0, "p_high": 99.8, "low": 0.0, "high": 1.0})
    net = constant_output_net()  # output 0.5 everywhere
    dead = model_from_keras(net, cfg)
    be = OnnxBackend(onnx_bytes(dead), cfg)
    x = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    assert np.max(np.abs(be.predict(x) - 0.5)) < 1e-6  # parity alone would pass: both constant
    with pytest.raises(ArtifactError, match="learned nothing"):
        check_artifact(be, dead)
    with pytest.raises(ArtifactError, match="learned nothing"):
        export_onnx(dead, tmp_path / "dead.onnx")
    assert not (tmp_path / "dead.onnx").exists()


def test_briefly_trained_model_passes_the_artifact_check_on_three_sizes(trained):
    rep = check_artifact(load_model(trained, backend="onnx").net, load_model(trained, backend="tensorflow"))
    assert [c["shape"][1:] for c in rep["checks"]] == [[64, 64], [48, 96], [100, 36]]
    assert rep["max_abs_diff"] <= 1e-4


def test_package_holds_three_weight_formats_docs_cover_config_and_validates(package, tmp_path, no_network):
    import zipfile

    import yaml

    validate_package(package)
    names = set(zipfile.ZipFile(package).namelist())
    assert {"rdf.yaml", "model.onnx", "model.keras", "tf_saved_model.zip", "README.md", "cover.png",
            "isonet_config.json", "test_input.npy", "test_output.npy"} <= names
    rdf = yaml.safe_load(zipfile.ZipFile(package).read("rdf.yaml"))
    assert rdf["format_version"].startswith("0.5.")
    assert set(rdf["weights"]) == set(WEIGHT_FORMATS)
    axes = rdf["inputs"][0]["axes"]
    assert [a["type"] for a in axes] == ["batch", "channel", "space", "space"]
    assert all(a["size"]["step"] == 4 for a in axes[2:])
    pre = rdf["inputs"][0]["preprocessing"]
    post = rdf["outputs"][0]["postprocessing"]
    pre = [p for p in pre if p["id"] != "ensure_dtype"]  # added by bioimageio.spec
    post = [p for p in post if p["id"] != "ensure_dtype"]
    assert [p["id"] for p in pre] == ["scale_linear"] and [p["id"] for p in post] == ["scale_linear"]
    g, o = pre[0]["kwargs"]["gain"], pre[0]["kwargs"]["offset"]
    assert post[0]["kwargs"]["gain"] * g == pytest.approx(1) and post[0]["kwargs"]["offset"] == pytest.approx(-o / g)
    readme = zipfile.ZipFile(package).read("README.md").decode()
    assert "factor" in readme and "MICCAI" in readme


@pytest.fixture
def no_network(monkeypatch):
    """Any connection to a non-loopback address raises (the network is switched off)."""
    import socket

    real_connect = socket.socket.connect

    def guarded(sock, address, *a, **kw):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network switched off in this test (connect to {address!r})")
        return real_connect(sock, address, *a, **kw)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("no DNS in this test")))


@pytest.mark.parametrize("weight_format", WEIGHT_FORMATS)
def test_package_passes_bioimageio_core_test_model_offline(package, weight_format, tmp_path, monkeypatch, no_network):
    # defaults kept: BIOIMAGEIO_PERFORM_IO_CHECKS is not switched off (hashes are checked)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.chdir(tmp_path)  # the TF adapter unzips into ./bioimageio_unzipped_tf_weights
    from bioimageio.core import test_model

    summary = test_model(package, weight_format=weight_format)
    assert summary.status == "passed", summary.format()


def test_package_pre_post_chain_reproduces_restore_on_a_plane_interior(package, trained, tmp_path):
    """scale_linear -> network -> inverse == restore(normalization="model") away from borders."""
    from isonet_ij import grid
    from isonet_ij.restoration import restore

    vol = smooth_volume((30, 8, 80), seed=5)
    tm = load_model(trained)
    lo, hi = tm.config.normalization["low"], tm.config.normalization["high"]
    ref = restore(vol, tm, normalization="model", passes=("xz",))
    Wm = grid.interpolation_matrix(30, grid.output_coordinates(30, 3)).astype(np.float32)
    plane = (Wm @ vol[:, 4, :])[:88, :80]
    for backend in ("onnx", "tensorflow"):
        be = load_model(package, backend=backend, workdir=tmp_path / backend).net
        got = be.predict((plane - lo) / (hi - lo)) * (hi - lo) + lo
        # 38+ px from every border: outside the reach of restore's reflect padding
        np.testing.assert_allclose(got[40:48, 38:42], ref[40:48, 4, 38:42], atol=1e-4 * (hi - lo))
    restored = restore(vol, load_model(package, backend="onnx"), normalization="model", passes=("xz",))
    assert np.max(np.abs(restored - ref)) / (hi - lo) <= 1e-4


def test_cli_export_writes_each_format(trained, tmp_path, capsys):
    from isonet_ij.cli import main

    assert main(["export", str(trained), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "onnx"
    assert main(["export", str(trained), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_export_of_a_model_dir_with_missing_weights_is_a_clear_error(trained, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(trained, d)
    for w in d.glob("weights_*"):
        w.unlink()
    with pytest.raises(ValueError, match="no weights"):
        export(d, "onnx", tmp_path / "m.onnx")


def test_committed_demo_package_validates_and_restores_better_than_bicubic(no_network):
    from isonet_ij import baselines, grid, metrics, phantoms
    from isonet_ij.restoration import restore

    try:
        pkg = find_demo_package()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert pkg.stat().st_size < 5_000_000
    validate_package(pkg)
    tm = load_model(pkg, backend="onnx")
    cfg = tm.config
    assert (cfg.arch, cfg.mode, cfg.psf, cfg.factor) == ("isonet2", "split", "gaussian:2,8", 8)
    assert tm.psf is not None
    syn = phantoms.synthesize("nuclei", size=64, psf="gaussian:2,8", factor=8, seed=1)
    g = syn["input"]
    gt = grid.crop_to_grid(syn["gt_iso"], g.shape[0], 8)
    restored = restore(g, tm)
    assert metrics.psnr_affine(restored, gt) > metrics.psnr_affine(baselines.bicubic(g, 8), gt) + 1.0


def test_committed_demo_package_passes_bioimageio_core_test_model(no_network, tmp_path, monkeypatch):
    try:
        pkg = find_demo_package()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.chdir(tmp_path)
    from bioimageio.core import test_model

    for weight_format in WEIGHT_FORMATS:
        summary = test_model(pkg, weight_format=weight_format)
        assert summary.status == "passed", (weight_format, summary.format())
