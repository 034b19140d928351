"""The Fiji script commands (``fiji_scripts/*.py``) under a harness that plays SciJava.

Fiji's Python mode injects each ``#@ Type (...) name`` parameter as a Java object and reads
the ``#@output`` variables after the script ran. The harness parses those lines, binds real
``ij.ImagePlus`` objects (from ij.jar) and Java boxed values (``java.lang.Float``,
``java.io.File``, ...), executes the script, and the outputs are compared with the results
of the ImageJ commands on the same image.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume
from isonet_ij.imagej.options import COMMANDS

pytestmark = pytest.mark.imagej

SCRIPTS = Path(__file__).resolve().parents[1] / "fiji_scripts"
_PARAM = re.compile(r"^#@(output)?\s+(\w+)\s*(?:\((.*)\))?\s+(\w+)\s*$")


def parse_parameters(path: Path) -> list[dict]:
    """``[{"output": bool, "type": "Float", "attrs": {...}, "name": "factor"}, ...]``."""
    params = []
    for line in path.read_text().splitlines():
        if not line.startswith("#@"):
            continue
        m = _PARAM.match(line.strip())
        assert m, f"cannot parse script parameter line {line!r}"
        attrs = dict(re.findall(r'(\w+)\s*=\s*("[^"]*"|\{[^}]*\}|[^,\s]+)', m.group(3) or ""))
        attrs = {k: v.strip('"') for k, v in attrs.items()}
        params.append({"output": bool(m.group(1)), "type": m.group(2), "attrs": attrs,
                       "name": m.group(4)})
    return params


def run_script(name: str, values: dict) -> dict:
    """Execute ``fiji_scripts/<name>.py`` as SciJava would; return its outputs."""
    import jpype

    path = SCRIPTS / f"{name}.py"
    boxes = {
        "Float": lambda v: jpype.JClass("java.lang.Float")(float(v)),
        "Double": lambda v: jpype.JClass("java.lang.Double")(float(v)),
        "Integer": lambda v: jpype.JClass("java.lang.Integer")(int(float(v))),
        "String": lambda v: jpype.JString(str(v)),
        "Boolean": lambda v: jpype.JClass("java.lang.Boolean")(str(v).lower() == "true"),
        "File": lambda v: jpype.JClass("java.io.File")(str(v)),
        "ImagePlus": lambda v: v,
    }
    namespace = {"__name__": "__main__", "__file__": str(path)}
    outputs = []
    for p in parse_parameters(path):
        if p["output"]:
            outputs.append(p["name"])
            continue
        value = values.get(p["name"], p["attrs"].get("value"))
        assert value is not None, f"{name}: no value for parameter {p['name']!r}"
        if p["type"] == "String" and "choices" in p["attrs"]:
            choices = re.findall(r'"([^"]*)"', p["attrs"]["choices"]) or [
                c.strip() for c in p["attrs"]["choices"].strip("{}").split(",")]
            assert str(value) in choices, (p["name"], value, choices)
        namespace[p["name"]] = boxes[p["type"]](value)
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the point
    return {k: namespace.get(k) for k in outputs}


def run_command(name: str, options: str, imp):
    import jpype

    WM = jpype.JClass("ij.WindowManager")
    WM.setTempCurrentImage(imp)
    try:
        jpype.JClass("ij.IJ").run(name, options)
    finally:
        WM.setTempCurrentImage(None)
    from isonet_ij.imagej import bridge

    return bridge.last_result(name)


@pytest.fixture()
def stack_imp(imagej_bridge, imagej_stack):
    data, vs = imagej_stack
    return array_to_imageplus(data, title="s.tif", voxel_size=vs)


@pytest.mark.parametrize("name", ["IsoNet_Train", "IsoNet_Restore", "IsoNet_Segment",
                                  "IsoNet_Estimate_PSF"])
def test_script_parameters_are_the_macro_options_of_the_command(name):
    params = parse_parameters(SCRIPTS / f"{name}.py")
    inputs = [p["name"] for p in params if not p["output"] and p["type"] != "ImagePlus"]
    # the same macro keys work with the Fiji scripts and the `isonet imagej` commands
    assert inputs == COMMANDS[name.replace("_", " ")].keys
    assert [p["type"] for p in params if p["name"] == "imp"] == ["ImagePlus"]
    assert sum(p["output"] for p in params) == 1


def test_restore_script_gives_the_command_result(stack_imp, imagej_tiny_model):
    pytest.importorskip("tensorflow")
    out = run_script("IsoNet_Restore", {"imp": stack_imp, "model": imagej_tiny_model})
    restored = out["restored"]
    assert str(restored.getTitle()) == "s_isotropic" and restored.getBitDepth() == 32
    ref = run_command("IsoNet Restore", f"model=[{imagej_tiny_model}]", stack_imp)
    np.testing.assert_array_equal(imageplus_to_volume(restored).data, imageplus_to_volume(ref).data)
    assert restored.getCalibration().pixelDepth == pytest.approx(0.2)


def test_segment_script_gives_the_command_result(stack_imp):
    out = run_script("IsoNet_Segment", {"imp": stack_imp, "threshold": "otsu", "connectivity": "26"})
    ref = run_command("IsoNet Segment", "threshold=otsu connectivity=26", stack_imp)
    np.testing.assert_array_equal(imageplus_to_volume(out["labels"]).data, imageplus_to_volume(ref).data)


def test_train_script_writes_a_loadable_model(stack_imp, tmp_path):
    pytest.importorskip("tensorflow")
    from isonet_ij.model import load_model

    model = tmp_path / "fiji model"
    out = run_script("IsoNet_Train", {
        "imp": stack_imp, "model": model, "mode": "none", "arch": "isonet1", "epochs": 1,
        "steps": 2, "patch": 16, "batch": 4,
    })
    summary = json.loads(out["summary"])
    assert summary["epochs"] == 1 and summary["model_dir"] == str(model)
    assert load_model(model).config.factor == pytest.approx(3.0)


def test_estimate_psf_script_gives_the_command_result(imagej_bridge, tmp_path):
    from isonet_ij.volume_io import read_volume
    from isonet_ij.phantoms import synthesize

    data = np.asarray(synthesize("nuclei", size=64, psf="gaussian:2,8", factor=4, seed=0)["input"])
    imp = array_to_imageplus(data.astype(np.float32), title="p.tif", voxel_size=(0.4, 0.1, 0.1))
    out = run_script("IsoNet_Estimate_PSF", {"imp": imp, "psf_output": tmp_path / "script psf.tif"})
    summary = run_command("IsoNet Estimate PSF", f"psf_output=[{tmp_path / 'command psf.tif'}]", imp)
    assert str(out["psf_spec"]) == summary["psf_spec"] and summary["factor"] == pytest.approx(4.0)
    np.testing.assert_array_equal(read_volume(tmp_path / "script psf.tif").data,
                                  read_volume(tmp_path / "command psf.tif").data)


def test_a_failing_script_reports_through_ij_error_and_outputs_nothing(imagej_bridge):
    import jpype

    flat = jpype.JClass("ij.IJ").createImage("flat", "8-bit ramp", 16, 16, 1)
    out = run_script("IsoNet_Segment", {"imp": flat})
    assert out["labels"] is None
    assert "'flat' is a 2D image" in str(jpype.JClass("ij.IJ").getErrorMessage())
