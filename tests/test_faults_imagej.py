"""The fault suite's ImageJ part: the IsoNet commands as macros on the real ij.jar (headless).

Each case records its ``category`` as a junitxml property (see ``tests/test_faults.py``).
Run with ``-p no:faulthandler`` (JPype, see CONTRIBUTING).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from test_imagej_commands import run_macro

from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume

pytestmark = pytest.mark.usefixtures("imagej_bridge")

TRAIN_FAST = "epochs=1 steps=1 patch=16 batch=2 mode=none arch=isonet1"


@pytest.fixture()
def stack(imagej_stack):
    data, vs = imagej_stack
    return array_to_imageplus(data, title="nuclei stack.tif", voxel_size=vs, unit="um")


def _run_failing(bridge, macro, imp, capfd):
    """Run ``macro`` expecting one IsoNet error; (message, stdout+stderr of the run)."""
    n = len(bridge.errors())
    ret, err = run_macro(macro + ' return "reached";', imp)
    out = "".join(capfd.readouterr())
    new = bridge.errors()[n:]
    assert ret != "reached" and len(new) == 1, (ret, err, new)
    return new[0][1], out


@pytest.mark.parametrize(("name", "setup", "options", "expect"), [
    ("train-folder-not-empty", "notes", "",
     r"not empty; tick the checkbox 'resume an interrupted training' .* the checkbox "
     r"'overwrite an existing model folder' .* the field 'model folder \(output\)'"),
    ("train-resume-without-checkpoint", "", "resume",
     r"cannot resume: .*untick the checkbox 'resume an interrupted training'"),
    ("train-model-folder-is-a-file", "file", "",
     r"is a file; choose a folder path for the field 'model folder \(output\)'"),
])
def test_train_errors_name_the_dialog_not_cli_flags_and_log_no_traceback(
        imagej_bridge, stack, tmp_path, capfd, record_property, name, setup, options, expect):
    record_property("category", "imagej")
    model = tmp_path / "model"
    if setup == "notes":
        model.mkdir()
        (model / "notes.txt").write_text("keep me\n")
    elif setup == "file":
        model.write_text("not a folder\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    message, out = _run_failing(
        imagej_bridge, f'run("IsoNet Train", "model=[{model}] {TRAIN_FAST} {options}");', stack, capfd)
    record_property("traceback", "Traceback" in out)
    assert re.search(expect, message), message
    assert "--" not in message  # no CLI flag in a dialog's message
    assert "Traceback" not in out
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_train_logs_no_array_copy_warnings_and_restore_dialog_starts_with_the_model(
        imagej_bridge, stack, tmp_path, capfd, record_property):
    record_property("category", "imagej")
    model = tmp_path / "trained here"
    ret, err = run_macro(f'run("IsoNet Train", "model=[{model}] {TRAIN_FAST}"); return "ok";', stack)
    out = "".join(capfd.readouterr())
    assert (ret, err) == ("ok", None)
    assert "__array__ implementation" not in out  # Keras' DeprecationWarning, once per step
    assert imagej_bridge.dialog_values("IsoNet Restore")["model"] == str(model)


def test_restore_titles_are_unique_and_the_status_says_done(
        imagej_bridge, stack, imagej_tiny_model, record_property):
    record_property("category", "imagej")
    titles = []
    for _ in range(2):
        ret, err = run_macro(f'run("IsoNet Restore", "model=[{imagej_tiny_model}]"); return getTitle();', stack)
        assert err is None, err
        titles.append(ret)
    first, second = titles
    assert first == "nuclei stack_isotropic" and second == "nuclei stack_isotropic-1", titles
    assert re.fullmatch(r"IsoNet Restore: done \(\d+\.\d s\)", imagej_bridge.last_status())
    ret, err = run_macro('run("IsoNet Segment", ""); return getTitle();', stack)
    assert err is None
    assert re.fullmatch(r"IsoNet Segment: done \(\d+\.\d s\)", imagej_bridge.last_status())


def test_restore_accepts_an_exported_onnx_file(imagej_bridge, stack, imagej_tiny_model, tmp_path,
                                               record_property):
    """Fixed by the one model loader: an .onnx path is a model, not 'a missing model folder'."""
    record_property("category", "imagej")
    pytest.importorskip("tf2onnx")
    from isonet_ij.model_export import export

    onnx = export(imagej_tiny_model, "onnx", tmp_path / "tiny model.onnx")  # the volume model
    # a volume model normalizes with the training percentiles only: the macro says so
    ret, err = run_macro(f'run("IsoNet Restore", "model=[{onnx}] normalization=model"); return "" + nSlices;', stack)
    assert err is None, err
    assert int(ret) == imageplus_to_volume(imagej_bridge.last_result("IsoNet Restore")).data.shape[0]


def test_a_missing_extra_names_the_extra_in_imagej(imagej_bridge, stack, tmp_path, monkeypatch, capfd,
                                                   record_property):
    record_property("category", "imagej")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    message, out = _run_failing(imagej_bridge, f'run("IsoNet Restore", "model=[{path}]");', stack, capfd)
    assert re.search(r"'onnx(runtime)?'.*pip install 'isonet-ij\[export\]'", message), message
    assert "Traceback" not in out


@pytest.fixture()
def macro_dir(tmp_path):
    return tmp_path


@pytest.mark.parametrize(("name", "macro", "expect"), [
    ("open-missing-file", 'open("/no/such/stack.tif"); print("went on");', r"File not found"),
    ("macro-syntax-error", 'x = ;', r"macro error"),
    ("isonet-error", 'newImage("flat", "16-bit ramp", 32, 32, 1); run("IsoNet Segment", "");', r"2D image"),
])
def test_batch_exits_nonzero_on_an_error(imagej_bridge, macro_dir, capsys, record_property, name, macro, expect):
    record_property("category", "imagej")
    from isonet_ij.imagej.app import run_batch

    path = macro_dir / f"{name}.ijm"
    path.write_text(macro)
    assert run_batch(path, display="headless") == 1
    err = capsys.readouterr().err
    assert re.search(expect, err), err
    assert "Traceback" not in err


def test_isonet_imagej_batch_command_exits_nonzero_when_open_fails(tmp_path, record_property):
    """The CLI's exit code, in a process of its own (``isonet imagej`` ends its process)."""
    record_property("category", "imagej")
    from conftest import require_java_and_ij_jar

    require_java_and_ij_jar()
    macro = tmp_path / "open.ijm"
    macro.write_text('open("/no/such/stack.tif");\nprint("went on");\n')
    proc = subprocess.run([sys.executable, "-m", "isonet_ij", "imagej", "--batch", str(macro),
                           "--display", "headless"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert "File not found" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


def test_a_stack_calibrated_one_to_one_is_refused_not_restored_with_the_models_factor(
        imagej_bridge, imagej_stack, imagej_tiny_model, capfd, record_property):
    """An isotropic (1:1, in um) stack: IsoNet Restore says so instead of applying factor 3 again."""
    record_property("category", "imagej")
    data, _ = imagej_stack
    iso = array_to_imageplus(data, title="isotropic.tif", voxel_size=(1.0, 1.0, 1.0), unit="um")
    msg, out = _run_failing(imagej_bridge, f'run("IsoNet Restore", "model=[{imagej_tiny_model}]");', iso, capfd)
    assert re.search(r"not an anisotropic stack", msg), msg
    assert "Traceback" not in out
    assert iso.getNSlices() == data.shape[0] and iso.getCalibration().pixelDepth == 1.0  # input untouched
