"""The napari plugin: widgets through napari's ``make_napari_viewer`` (pytest-qt), reader, manifest.

Runs on ``$DISPLAY``, else on a private Xvfb (as the ImageJ GUI tests); skipped when
napari, Qt or pytest-qt are missing (``pip install -e ".[napari]"``, see scripts/install.sh).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    # vispy draws with OpenGL: Qt's offscreen platform has none here, so use a private Xvfb
    from isonet_ij.imagej.display import DisplayError, start_xvfb

    try:
        start_xvfb()
    except DisplayError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"no display for napari's OpenGL canvas: {exc} (install xvfb)",
                    allow_module_level=True)

# TensorFlow before napari's OpenGL context: loading TF's library after Mesa's GL driver
# segfaults (see isonet_ij/napari/__main__.py, which does the same for users)
pytest.importorskip("tensorflow", reason="the napari widgets need TensorFlow (the cpu extra)")

pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding (pip install -e '.[napari]')")
pytest.importorskip("pytestqt", reason="pytest-qt not installed (pip install -e '.[napari]')")
try:
    from qtpy import QtWidgets  # noqa: F401 - a Qt binding that loads (system libraries present)
except Exception as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"Qt cannot load: {exc}", allow_module_level=True)

from napari.utils.notifications import notification_manager  # noqa: E402

from isonet_ij.napari._widgets import (  # noqa: E402
    EstimatePSFWidget,
    RestoreWidget,
    SegmentWidget,
    TrainWidget,
)

pytestmark = pytest.mark.napari
ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "isonet_ij" / "napari" / "napari.yaml"
DOCS = ROOT / "docs"


@pytest.fixture(scope="module", autouse=True)
def _exit_before_gl_teardown(request):
    """TensorFlow and Mesa's GL driver in one process abort in their C++ destructors at exit
    ("free(): invalid pointer") after every test passed: end the process with pytest's status
    before they run."""
    yield
    import atexit

    session = request.session
    atexit.register(lambda: os._exit(1 if session.testsfailed else 0))


@pytest.fixture(scope="module")
def phantom():
    from isonet_ij import synthesize

    return synthesize("nuclei", size=64, seed=1)


@pytest.fixture
def errors():
    """Error notifications emitted during a test."""
    got = []
    notification_manager.notification_ready.connect(
        lambda ev: got.append(ev.value if hasattr(ev, "value") else ev))
    yield got
    notification_manager.notification_ready.disconnect()


def _messages(errors) -> list:
    return [str(getattr(n, "message", n)) for n in errors
            if "error" in str(getattr(n, "severity", "")).lower()]


def _run(widget, qtbot, timeout=300_000):
    worker = widget.run()
    assert worker is not None, _messages
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return worker


def _demo():
    from isonet_ij.artifacts import find_demo_package

    try:
        return find_demo_package()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_manifest_validates():
    from npe2 import PluginManifest

    mf = PluginManifest.from_file(MANIFEST)
    mf.validate_imports()
    assert {w.display_name for w in mf.contributions.widgets} == {
        "IsoNet Train", "IsoNet Restore", "IsoNet Estimate PSF", "IsoNet Segment"}
    assert len(mf.contributions.sample_data) == 3


def test_npe2_validate_cli():
    import subprocess
    import sys

    npe2 = Path(sys.executable).with_name("npe2")
    if not npe2.is_file():
        pytest.skip("npe2 CLI not installed")
    proc = subprocess.run([str(npe2), "validate", str(MANIFEST)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_pyproject_declares_the_manifest():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["project"]["entry-points"]["napari.manifest"]["isonet-ij"] == "isonet_ij.napari:napari.yaml"
    assert "napari.yaml" in cfg["tool"]["setuptools"]["package-data"]["isonet_ij.napari"]


def test_reader_keeps_calibration(tmp_path, phantom):
    from isonet_ij import write_volume
    from isonet_ij.napari._reader import napari_get_reader

    path = write_volume(tmp_path / "in.tif", phantom["input"], voxel_size=phantom["input_voxel_size"])
    reader = napari_get_reader(str(path))
    assert reader is not None
    (data, kw, kind), = reader(str(path))
    assert kind == "image"
    np.testing.assert_array_equal(data, phantom["input"])
    np.testing.assert_allclose(kw["scale"], phantom["input_voxel_size"], rtol=1e-6)
    assert napari_get_reader(str(tmp_path / "missing.tif")) is None
    assert napari_get_reader(str(tmp_path / "x.png")) is None


def test_sample_data_is_calibrated():
    from isonet_ij.napari._sample_data import phantom_layers

    (data, kw, _), (gt, kw_gt, _) = phantom_layers("membranes", size=32)
    assert data.ndim == 3 and kw["scale"][0] / kw["scale"][2] == pytest.approx(4)
    assert kw_gt["scale"][0] == pytest.approx(kw_gt["scale"][2])


def test_restore_widget_equals_restore(make_napari_viewer, qtbot, phantom, errors):
    from isonet_ij import load_model, restore

    viewer = make_napari_viewer()
    data = phantom["input"]
    layer = viewer.add_image(data, name="nuclei", scale=phantom["input_voxel_size"], translate=(5, 2, 1))
    before = layer.data.copy()
    w = RestoreWidget(viewer)
    viewer.window.add_dock_widget(w, name="IsoNet Restore")
    w.layer.value = layer
    w.use_demo_model()
    _run(w, qtbot)
    assert not _messages(errors)
    out = viewer.layers["nuclei_isotropic"]
    ref = restore(data, load_model(_demo()), factor=8.0)
    assert out.data.shape == ref.shape
    assert float(np.max(np.abs(out.data - ref))) <= 1e-5
    np.testing.assert_allclose(out.scale, [0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(out.translate, (5, 2, 1))
    assert out.metadata["isonet_provenance"]["factor"] == pytest.approx(8.0)
    np.testing.assert_array_equal(layer.data, before)
    if os.environ.get("ISONET_SCREENSHOTS"):
        _screenshot(viewer, w)


def _screenshot(viewer, restore_widget):
    """docs/napari_restore.png: the four widgets docked beside the restored volume."""
    DOCS.mkdir(exist_ok=True)
    for cls, name in ((TrainWidget, "IsoNet Train"), (EstimatePSFWidget, "IsoNet Estimate PSF"),
                      (SegmentWidget, "IsoNet Segment")):
        viewer.window.add_dock_widget(cls(viewer), name=name, tabify=True)
    viewer.layers["nuclei"].visible = False
    viewer.dims.order = (1, 0, 2)  # an xz view: the isotropic z of the result shows
    viewer.reset_view()
    viewer.window._qt_window.resize(1400, 900)
    viewer.screenshot(str(DOCS / "napari_restore.png"), canvas_only=False)


def test_restore_factor_from_the_field_on_a_1to1_layer(make_napari_viewer, qtbot, phantom, errors, record_property):
    record_property("category", "napari")
    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="raw")  # scale (1, 1, 1): no calibration
    w = RestoreWidget(viewer)
    w.layer.value = layer
    w.use_demo_model()
    assert w.run() is None  # asks for the factor instead of guessing
    assert any("factor" in m for m in _messages(errors))
    assert len(viewer.layers) == 1
    w.factor.value = 8.0
    _run(w, qtbot)
    out = viewer.layers["raw_isotropic"]
    assert out.data.shape[0] == 57
    np.testing.assert_allclose(out.scale, [1, 1, 1])


@pytest.mark.parametrize("cls", [RestoreWidget, TrainWidget, SegmentWidget, EstimatePSFWidget])
def test_bad_layers_give_a_notification_and_change_nothing(make_napari_viewer, cls, errors, tmp_path, record_property):
    record_property("category", "napari")
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    layers = [viewer.add_image(rng.random((32, 32), dtype=np.float32), name="2d"),
              viewer.add_image(rng.random((8, 32, 32, 3), dtype=np.float32), name="rgb", rgb=True),
              viewer.add_labels(np.zeros((8, 32, 32), np.uint16), name="labels")]
    w = cls(viewer)
    if hasattr(w, "model"):
        w.use_demo_model()
    if hasattr(w, "model_dir"):
        w.model_dir.value = tmp_path / "m"
    for layer, word in zip(layers, ("2D", "RGB", "Labels")):
        snapshot = layer.data.copy()
        errors.clear()
        w.layer.value = layer
        assert w.run() is None
        msgs = _messages(errors)
        assert len(msgs) == 1 and word in msgs[0], msgs
        np.testing.assert_array_equal(layer.data, snapshot)
        assert len(viewer.layers) == 3
    assert not (tmp_path / "m").exists()


def test_missing_model_gives_a_notification(make_napari_viewer, phantom, errors, tmp_path, record_property):
    record_property("category", "napari")
    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="nuclei", scale=phantom["input_voxel_size"])
    w = RestoreWidget(viewer)
    w.layer.value = layer
    assert w.run() is None
    w.model.value = tmp_path / "no_such_model"
    assert w.run() is None
    msgs = _messages(errors)
    assert "no model" in msgs[0] and "not found" in msgs[1], msgs
    assert len(viewer.layers) == 1


def test_bad_model_folder_is_a_notification_not_a_traceback(make_napari_viewer, qtbot, phantom, errors,
                                                            tmp_path, record_property):
    record_property("category", "napari")
    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="nuclei", scale=phantom["input_voxel_size"])
    (tmp_path / "empty").mkdir()
    w = RestoreWidget(viewer)
    w.layer.value = layer
    w.model.value = tmp_path / "empty"
    _run(w, qtbot, timeout=120_000)
    msgs = _messages(errors)
    assert len(msgs) == 1 and msgs[0].startswith("IsoNet Restore"), msgs
    assert len(viewer.layers) == 1


def test_train_widget_writes_a_loadable_model(make_napari_viewer, qtbot, phantom, tmp_path, errors):
    from isonet_ij import load_model

    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="nuclei", scale=phantom["input_voxel_size"])
    w = TrainWidget(viewer)
    w.layer.value = layer
    w.model_dir.value = tmp_path / "model"
    assert w.arch.value == "isonet2"  # the default: trains (with its XLA step) in a child process
    w.psf.value = "gaussian:2,8"
    w.epochs.value, w.steps_per_epoch.value, w.batch_size.value, w.patch_size.value = 2, 2, 4, 32
    _run(w, qtbot, timeout=600_000)
    assert not _messages(errors)
    assert w.summary is not None and w.summary["epochs"] == 2
    assert [r["epoch"] for r in w.history] == [1, 2]
    assert all(np.isfinite(r["val_psnr"]) for r in w.history)
    model = load_model(tmp_path / "model")
    assert model.config.factor == pytest.approx(8.0)


def test_train_cancel_stops_the_run(make_napari_viewer, qtbot, phantom, tmp_path, errors, record_property):
    record_property("category", "napari")
    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="nuclei", scale=phantom["input_voxel_size"])
    w = TrainWidget(viewer)
    w.layer.value = layer
    w.model_dir.value = tmp_path / "model"
    w.epochs.value, w.steps_per_epoch.value, w.batch_size.value, w.patch_size.value = 50, 5, 4, 32
    w.run()
    qtbot.waitUntil(lambda: w.progress.value > 0, timeout=300_000)
    w.cancel()
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
    assert w.summary is None
    assert "cancelled" in w.status.value
    assert not _messages(errors)


def test_segment_widget_equals_segment_nuclei(make_napari_viewer, qtbot, phantom, errors):
    from isonet_ij import segment_nuclei

    viewer = make_napari_viewer()
    vs = phantom["voxel_size"]
    data = phantom["gt_iso"][:48]
    layer = viewer.add_image(data, name="iso", scale=(vs[0] * 1.5, vs[1], vs[2]))
    w = SegmentWidget(viewer)
    w.layer.value = layer
    _run(w, qtbot)
    assert not _messages(errors)
    out = viewer.layers["iso_labels"]
    ref = segment_nuclei(data, voxel_size=tuple(layer.scale))
    np.testing.assert_array_equal(out.data, ref)
    np.testing.assert_allclose(out.scale, layer.scale)
    assert out.data.max() > 0


def test_estimate_psf_widget(make_napari_viewer, qtbot, phantom, errors, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(phantom["input"], name="nuclei", scale=phantom["input_voxel_size"])
    w = EstimatePSFWidget(viewer)
    w.layer.value = layer
    w.psf_output.value = tmp_path / "psf.tif"
    _run(w, qtbot)
    assert not _messages(errors)
    assert w.summary["psf_spec"].startswith("gaussian:")
    assert (tmp_path / "psf.tif").is_file()
