"""examples/restore_onnx.py and examples/restore_onnx.mjs: the volume model without isonet-ij.

The Python script runs in a subprocess that cannot import isonet_ij or TensorFlow (``-S``:
no site-packages; PYTHONPATH holds only links to numpy, onnxruntime, tifffile and their
few dependencies); the JavaScript script on onnxruntime-node (installed into
``examples/node_modules`` by scripts/install.sh when node exists, or here). Both give the
volume of ``restore(..., normalization="model")``, and refuse bad input writing nothing.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from isonet_ij import grid  # noqa: E402
from isonet_ij.restoration import restore  # noqa: E402
from isonet_ij.volume_graph import volume_onnx_bytes  # noqa: E402
from conftest import smooth_volume  # noqa: E402
from test_volume_model import random_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FACTOR = 2.5
#: what the example's imports need (onnxruntime 1.2x-1.3x imports these at load time)
DEPS = ("numpy", "onnxruntime", "tifffile", "flatbuffers", "packaging", "google", "coloredlogs", "humanfriendly",
        "sympy", "mpmath")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("example")
    net, tm = random_model("isonet2", FACTOR, "geometric", seed=3)
    (d / "model.onnx").write_bytes(volume_onnx_bytes(net, tm.config))
    vol = smooth_volume((9, 20, 28), seed=11)
    return d / "model.onnx", vol, restore(vol, tm, normalization="model")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """(argv, env) of a Python that sees numpy, onnxruntime, tifffile only."""
    d = tmp_path_factory.mktemp("bare_site")
    for name in DEPS:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:  # a package (``google`` is a namespace package)
            src = Path(list(spec.submodule_search_locations)[0])
        else:
            src = Path(spec.origin)
        (d / src.name).symlink_to(src)
        libs = src.parent / f"{name}.libs"  # wheels' bundled shared libraries
        if libs.is_dir() and not (d / libs.name).exists():
            (d / libs.name).symlink_to(libs)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(d), "HOME": str(d)}
    return [sys.executable, "-S"], env


def test_the_bare_python_cannot_import_isonet_ij_or_tensorflow(bare_python, tmp_path):
    argv, env = bare_python
    for mod in ("isonet_ij", "tensorflow"):
        r = subprocess.run([*argv, "-c", f"import {mod}"], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr
    r = subprocess.run([*argv, "-c", "import numpy, onnxruntime, tifffile"], env=env, cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_example_gives_the_restored_volume_with_isotropic_calibration(case, bare_python, tmp_path):
    import tifffile

    model, vol, ref = case
    argv, env = bare_python
    tifffile.imwrite(tmp_path / "in.tif", vol, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"spacing": 0.5, "axes": "ZYX"})
    r = subprocess.run([*argv, str(EXAMPLES / "restore_onnx.py"), str(model), "in.tif", "out.tif"], env=env,
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shape"] == [grid.n_output_slices(9, FACTOR), 20, 28]
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        got = tif.asarray()
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.2)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.ptp(ref)


def bad_inputs(vol):
    nan = vol.copy()
    nan[2, 3, 4] = np.nan
    return {"2D": (vol[0], "3D"), "few_z": (vol[:2], "z slices"), "small": (vol[:, :10], "at least 16x16"),
            "nan": (nan, "NaN")}


@pytest.mark.parametrize("bad", ["2D", "few_z", "small", "nan"])
def test_python_example_refuses_bad_input_and_writes_nothing(case, bare_python, tmp_path, bad):
    import tifffile

    model, vol, _ = case
    data, match = bad_inputs(vol)[bad]
    tifffile.imwrite(tmp_path / "in.tif", data)
    argv, env = bare_python
    r = subprocess.run([*argv, str(EXAMPLES / "restore_onnx.py"), str(model), "in.tif", "out.tif"], env=env,
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


@pytest.fixture(scope="module")
def node():
    """The node binary with onnxruntime-node in examples/node_modules (installed if npm can)."""
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed (the JavaScript example needs Node.js >= 18)")
    if not (EXAMPLES / "node_modules" / "onnxruntime-node").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install onnxruntime-node")
        r = subprocess.run([npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(EXAMPLES),
                            "onnxruntime-node@1.30.0"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"npm install onnxruntime-node@1.30.0 failed (offline?): {r.stderr[-300:]}")
    return exe


def run_js(node, model, data, tmp_path, shape=None):
    (tmp_path / "in.raw").write_bytes(np.ascontiguousarray(data, "<f4").tobytes())
    shape = data.shape if shape is None else shape
    return subprocess.run([node, str(EXAMPLES / "restore_onnx.mjs"), str(model), "in.raw", *map(str, shape), "out.raw"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_javascript_example_gives_the_restored_volume(case, node, tmp_path):
    model, vol, ref = case
    r = run_js(node, model, vol, tmp_path)
    assert r.returncode == 0, r.stderr
    shape = json.loads(r.stdout)["shape"]
    assert shape == list(ref.shape)
    got = np.fromfile(tmp_path / "out.raw", "<f4").reshape(shape)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.ptp(ref)


@pytest.mark.parametrize("bad", ["few_z", "small", "nan", "wrong_shape"])
def test_javascript_example_refuses_bad_input_and_writes_nothing(case, node, tmp_path, bad):
    model, vol, _ = case
    if bad == "wrong_shape":  # a 2D image or a wrong size: the bytes do not hold Z*Y*X floats
        r, match = run_js(node, model, vol[0], tmp_path, shape=(9, 20, 28)), "bytes"
    else:
        data, match = bad_inputs(vol)[bad]
        r = run_js(node, model, data, tmp_path)
    assert r.returncode == 2 and match in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.raw"]
