"""The ImageJ commands "IsoNet Train / Restore / Segment / Estimate PSF" run by macros (headless ij.jar).

Every result is compared with the engine called directly on the same numpy data:
``restore`` / ``restore_stack`` (1e-5), ``segment_nuclei`` (identical labels),
``estimate_axial_blur`` (identical numbers), and a model trained by the command is used by
``isonet restore``.
"""

import re

import numpy as np
import pytest

from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume

pytestmark = pytest.mark.imagej
pytest.importorskip("tensorflow")


def run_macro(code: str, imp=None):
    """Run a macro with ``imp`` as the current image; return (value, error message)."""
    import jpype

    jpype.JClass("ij.WindowManager").setTempCurrentImage(imp)
    interp = jpype.JClass("ij.macro.Interpreter")()
    try:
        ret = interp.run(code, "")
    finally:
        jpype.JClass("ij.WindowManager").setTempCurrentImage(None)
    err = interp.getErrorMessage()
    return (None if ret is None else str(ret)), (None if err is None else str(err))


@pytest.fixture()
def stack_imp(imagej_bridge, imagej_stack):
    data, vs = imagej_stack
    return array_to_imageplus(data, title="nuclei stack.tif", voxel_size=vs, unit="um")


def test_restore_macro_equals_engine_and_sets_the_isotropic_calibration(
        imagej_bridge, stack_imp, imagej_stack, imagej_tiny_model):
    from isonet_ij.restoration import restore

    data, _ = imagej_stack
    ret, err = run_macro(
        f'run("IsoNet Restore", "model=[{imagej_tiny_model}]");'
        'getVoxelSize(w, h, d, unit);'
        'return getTitle() + "|" + bitDepth() + "|" + nSlices + "|" + d + "|" + w + "|" + unit;',
        stack_imp,
    )
    assert err is None
    title, depth, n, d, w, unit = ret.split("|")
    ref = restore(data, imagej_tiny_model, factor=3.0)
    # unique titles: an earlier result of the session may hold the plain one (_isotropic-1, ...)
    assert re.fullmatch(r"nuclei stack_isotropic(-\d+)?", title) and depth == "32" and int(n) == ref.shape[0] == 22
    assert float(d) == pytest.approx(0.2) and float(w) == pytest.approx(0.2) and unit == "\u00b5m"
    out = imageplus_to_volume(imagej_bridge.last_result("IsoNet Restore"))
    np.testing.assert_allclose(out.data, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    assert out.voxel_size == pytest.approx((0.2, 0.2, 0.2))


@pytest.mark.filterwarnings("ignore:restoring with factor 2.5")
def test_restore_of_a_hyperstack_equals_restore_stack(imagej_bridge, imagej_tiny_model):
    from isonet_ij.restoration import restore_stack

    rng = np.random.default_rng(5)
    data = (100 + 50 * rng.random((2, 4, 2, 24, 20))).astype(np.float32)  # T Z C Y X
    imp = array_to_imageplus(data, axes="TZCYX", title="hyper", voxel_size=(0.5, 0.1, 0.1))
    _, err = run_macro(f'run("IsoNet Restore", "model=[{imagej_tiny_model}] factor=2.5");', imp)
    assert err is None
    res = imagej_bridge.last_result("IsoNet Restore")
    assert (res.getNChannels(), res.getNSlices(), res.getNFrames()) == (2, 8, 2)
    assert res.getCalibration().pixelDepth == pytest.approx(0.5 / 2.5)
    ref, _ = restore_stack(data, "TZCYX", imagej_tiny_model, factor=2.5)
    out = imageplus_to_volume(res)
    assert out.axes == "TZCYX"
    np.testing.assert_allclose(out.data, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_segment_macro_gives_the_engine_labels_with_a_label_lut(imagej_bridge, stack_imp, imagej_stack):
    from isonet_ij.segment import segment_nuclei

    data, vs = imagej_stack
    ret, err = run_macro(
        'run("IsoNet Segment", "dynamic=1.5 minimum=3"); return getTitle() + "|" + bitDepth();',
        stack_imp,
    )
    assert err is None and re.fullmatch(r"nuclei stack_labels(-\d+)?\|16", ret), ret
    res = imagej_bridge.last_result("IsoNet Segment")
    ref = segment_nuclei(data, voxel_size=vs, dynamic=1.5, min_size=3)
    assert ref.max() >= 3
    np.testing.assert_array_equal(imageplus_to_volume(res).data, ref)
    import jpype

    lut = res.getProcessor().getLut()
    rgb = [int(lut.getRGB(jpype.JInt(i))) & 0xFFFFFF for i in range(40)]
    assert rgb[0] == 0 and len(set(rgb[1:])) == 39  # black background, distinct labels
    assert res.getCalibration().pixelDepth == pytest.approx(0.6)


def test_train_macro_writes_a_model_that_isonet_restore_uses(imagej_bridge, stack_imp, tmp_path):
    from isonet_ij.cli import main
    from isonet_ij.volume_io import read_volume, write_volume

    model = tmp_path / "trained in ImageJ"
    _, err = run_macro(
        f'run("IsoNet Train", "model=[{model}] mode=none arch=isonet1 epochs=1 steps=2 '
        'patch=16 batch=4");', stack_imp,
    )
    assert err is None
    summary = imagej_bridge.last_result("IsoNet Train")
    assert summary["epochs"] == 1 and summary["factor"] == pytest.approx(3.0)
    assert (model / "config.json").is_file() and (model / "weights_best.weights.h5").is_file()
    src = tmp_path / "in.tif"
    write_volume(src, imageplus_to_volume(stack_imp).data, voxel_size=(0.6, 0.2, 0.2))
    out = tmp_path / "restored by cli.tif"
    assert main(["restore", str(src), "--model", str(model), "-o", str(out), "--no-consistency"]) == 0
    restored = read_volume(out)
    assert restored.data.shape == (22, 48, 48)


def test_train_macro_with_two_rounds_records_them(imagej_bridge, stack_imp, tmp_path):
    from isonet_ij.config import read_config

    model = tmp_path / "two rounds"
    _, err = run_macro(
        f'run("IsoNet Train", "model=[{model}] mode=none arch=isonet1 epochs=2 steps=1 '
        'patch=16 batch=4 rounds=2");', stack_imp,
    )
    assert err is None
    assert read_config(model).rounds == 2
    _, err = run_macro(
        f'run("IsoNet Train", "model=[{tmp_path / "three"}] mode=none arch=isonet1 epochs=2 steps=1 '
        'patch=16 batch=4 rounds=3");', stack_imp,
    )
    assert err is not None and "rounds" in err and "auto" in err and "Traceback" not in err
    _, err = run_macro(  # auto without a PSF (mode none): one round, stored as such
        f'run("IsoNet Train", "model=[{tmp_path / "auto"}] mode=none arch=isonet1 epochs=2 steps=1 '
        'patch=16 batch=4 rounds=auto");', stack_imp,
    )
    assert err is None and read_config(tmp_path / "auto").rounds == 1


def test_train_restore_segment_in_one_macro(imagej_bridge, stack_imp, tmp_path):
    from isonet_ij.restoration import restore
    from isonet_ij.segment import segment_nuclei

    model = tmp_path / "seq model"
    ret, err = run_macro(
        f'run("IsoNet Train", "model=[{model}] psf=[gaussian:1,2] mode=split epochs=1 steps=2 '
        'patch=16 batch=4");'
        f'run("IsoNet Restore", "model=[{model}]"); restored = getTitle();'
        'run("IsoNet Segment", ""); return restored + "|" + getTitle();',
        stack_imp,
    )
    # an earlier test's result may still hold the title: ImageJ-style unique titles then add -N
    assert err is None and re.fullmatch(r"nuclei stack_isotropic(-\d+)?\|nuclei stack_isotropic(-\d+)?_labels", ret), ret
    restored = imageplus_to_volume(imagej_bridge.last_result("IsoNet Restore"))
    np.testing.assert_allclose(
        restored.data, restore(imageplus_to_volume(stack_imp).data, model), rtol=1e-5, atol=1e-2)
    labels = imageplus_to_volume(imagej_bridge.last_result("IsoNet Segment")).data
    np.testing.assert_array_equal(labels, segment_nuclei(restored.data, voxel_size=restored.voxel_size))


# --------------------------------------------------------------------------- bad input


def _pixels(imp):
    return imageplus_to_volume(imp).data.copy()


@pytest.mark.parametrize(
    ("make", "macro", "match"),
    [
        ("none", 'close("*"); run("IsoNet Segment", "");', r"no image for IsoNet Segment: open a 3D stack"),
        ("2d", 'run("IsoNet Segment", "");', r"needs a 3D stack with at least 2 z slices; 'flat' is a 2D"),
        ("rgb", 'run("IsoNet Segment", "");', r"RGB image; convert it"),
        ("stack", 'run("IsoNet Restore", "model=[/no/such model dir]");',
         r"model folder '/no/such model dir' does not exist"),
        ("stack", 'run("IsoNet Restore", "");', r"`model` is required"),
        ("stack", 'run("IsoNet Segment", "threshhold=otsu");', r"unknown option `threshhold`; did you mean `threshold`"),
        ("stack", 'run("IsoNet Segmnt", "");', r'Unrecognized command: "IsoNet Segmnt"; did you mean "IsoNet Segment"'),
        ("stack", 'run("IsoNet Restore", "model=[MODEL] factor=2000000");',
         r"needs \d+\.\d\d GB but ImageJ has only .* of memory left"),
    ],
)
def test_bad_input_gives_a_clear_error_aborts_the_macro_and_modifies_nothing(
        imagej_bridge, stack_imp, imagej_tiny_model, make, macro, match):
    import jpype

    IJ = jpype.JClass("ij.IJ")
    imp = {
        "none": None,
        "2d": IJ.createImage("flat", "16-bit ramp", 32, 32, 1),
        "rgb": IJ.createImage("colour", "RGB ramp", 32, 32, 4),
        "stack": stack_imp,
    }[make]
    before = _pixels(imp) if imp is not None and make != "rgb" else None
    n_errors = len(imagej_bridge.errors())
    ret, err = run_macro(macro.replace("MODEL", str(imagej_tiny_model)) + ' return "reached";', imp)
    assert ret != "reached"  # the macro stopped at the failing command
    new = imagej_bridge.errors()[n_errors:]
    assert len(new) == 1 and err is not None
    assert re.search(match, new[0][1]), new[0][1]
    assert re.search(match, err)
    if before is not None:
        np.testing.assert_array_equal(_pixels(imp), before)
        assert not imp.isLocked()
    # ImageJ keeps running: the next command works
    ret, err = run_macro('run("IsoNet Segment", ""); return "ok";', stack_imp)
    assert (ret, err) == ("ok", None)


# --------------------------------------------------------------------------- estimate PSF


@pytest.fixture(scope="module")
def psf_phantom():
    """(16, 64, 64) float32 nuclei phantom, Gaussian PSF sigma (2, 8) voxels, factor 4."""
    from isonet_ij.phantoms import synthesize

    case = synthesize("nuclei", size=64, psf="gaussian:2,8", factor=4, seed=0)
    return np.asarray(case["input"], dtype=np.float32)


def test_estimate_psf_macro_equals_engine_and_writes_the_gaussian_psf(
        imagej_bridge, psf_phantom, tmp_path):
    from isonet_ij.volume_io import read_volume
    from isonet_ij.psf import gaussian_psf
    from isonet_ij.psf import estimate_axial_blur

    imp = array_to_imageplus(psf_phantom, title="phantom.tif", voxel_size=(0.4, 0.1, 0.1), unit="um")
    out = tmp_path / "psf out.tif"
    ret, err = run_macro(
        f'run("IsoNet Estimate PSF", "factor=4 psf_output=[{out}] plot");'
        'return getTitle() + "|" + getInfo("isonet.psf.spec") + "|" + getInfo("isonet.psf.sigma_z");',
        imp,
    )
    assert err is None
    title, spec, sigma_z = ret.split("|")
    ref = estimate_axial_blur(psf_phantom, factor=4)
    assert abs(ref["sigma_z"] / 8.0 - 1) < 0.15, ref["sigma_z"]
    assert title == "phantom_psf_spectra"  # the plot, opened as an image
    assert spec == ref["psf_spec"] and float(sigma_z) == ref["sigma_z"]
    summary = imagej_bridge.last_result("IsoNet Estimate PSF")
    for key in ("sigma_xy", "sigma_z", "sigma_extra", "factor", "n_cells", "residual", "at_bound"):
        assert summary[key] == ref[key], key
    table = imagej_bridge.last_table("IsoNet Estimate PSF")
    assert table.size() == 1
    for key in ("sigma_xy", "sigma_z", "sigma_extra", "factor", "n_cells", "residual"):
        assert float(table.getValue(key, 0)) == float(ref[key]), key
    assert str(table.getStringValue("psf_spec", 0)) == ref["psf_spec"]
    import jpype

    opened = jpype.JClass("ij.IJ").openImage(str(out))  # ImageJ reads it as a 3D stack
    assert opened.getNSlices() == ref_slices(ref) and opened.getBitDepth() == 32
    psf = read_volume(out)
    assert psf.axes == "ZYX" and psf.data.ndim == 3
    assert abs(float(psf.data.sum()) - 1) < 1e-4
    assert psf.voxel_size == pytest.approx((0.1, 0.1, 0.1))
    np.testing.assert_allclose(psf.data, gaussian_psf(ref["sigma_xy"], ref["sigma_z"]), atol=1e-7)
    np.testing.assert_array_equal(imageplus_to_volume(imp).data, psf_phantom)  # input untouched


def ref_slices(ref) -> int:
    from isonet_ij.psf import gaussian_psf

    return gaussian_psf(ref["sigma_xy"], ref["sigma_z"]).shape[0]


def test_estimate_psf_with_a_given_lateral_sigma_uses_it(imagej_bridge, psf_phantom):
    from isonet_ij.psf import estimate_axial_blur

    imp = array_to_imageplus(psf_phantom, title="uncalibrated")
    _, err = run_macro('run("IsoNet Estimate PSF", "factor=4 sigma_xy=2");', imp)
    assert err is None
    summary = imagej_bridge.last_result("IsoNet Estimate PSF")
    ref = estimate_axial_blur(psf_phantom, factor=4, sigma_xy=2.0)
    assert summary["sigma_z"] == ref["sigma_z"] and summary["sigma_xy_source"] == "given"
    assert summary["psf_output"] is None


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 32, 32), r"has 2 z slices; estimating the axial blur needs at least 4"),
        ((6, 8, 8), r"at least 16 voxels along y and x"),
        ("constant", r"is constant"),
        ((6, 32, 32, "2d"), r"needs a 3D stack with at least 2 z slices"),
    ],
)
def test_estimate_psf_bad_input_fails_cleanly_and_writes_nothing(
        imagej_bridge, tmp_path, shape, match):
    rng = np.random.default_rng(0)
    if shape == "constant":
        data = np.full((6, 32, 32), 100, np.float32)
    elif shape[-1] == "2d":
        data = rng.random((1, 32, 32)).astype(np.float32)
    else:
        data = rng.random(shape).astype(np.float32)
    imp = array_to_imageplus(data, title="bad", voxel_size=(0.4, 0.1, 0.1))
    out = tmp_path / "psf.tif"
    before = imagej_bridge.last_result("IsoNet Estimate PSF")
    table = imagej_bridge.last_table("IsoNet Estimate PSF")
    n_errors = len(imagej_bridge.errors())
    ret, err = run_macro(
        f'run("IsoNet Estimate PSF", "factor=4 psf_output=[{out}] plot"); return "reached";', imp)
    assert ret != "reached" and err is not None and re.search(match, err), err
    new = imagej_bridge.errors()[n_errors:]
    assert len(new) == 1 and re.search(match, new[0][1])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert imagej_bridge.last_result("IsoNet Estimate PSF") is before
    assert imagej_bridge.last_table("IsoNet Estimate PSF") is table
    np.testing.assert_array_equal(imageplus_to_volume(imp).data, data)
    assert not imp.isLocked()


def test_train_with_psf_auto_uses_the_estimated_gaussian(imagej_bridge, stack_imp, imagej_stack, tmp_path):
    from isonet_ij.config import read_config
    from isonet_ij.psf import estimate_axial_blur

    model = tmp_path / "auto psf model"
    _, err = run_macro(
        f'run("IsoNet Train", "model=[{model}] psf=auto mode=split arch=isonet1 epochs=1 '
        'steps=2 patch=16 batch=4");', stack_imp,
    )
    assert err is None
    ref = estimate_axial_blur(imagej_stack[0], factor=3.0)
    cfg = read_config(model)
    assert cfg.psf == ref["psf_spec"]
    assert cfg.psf_info["auto_estimate"]["sigma_z"] == pytest.approx(ref["sigma_z"])
