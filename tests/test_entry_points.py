"""Every artifact kind through every entry point: the same model, the same volume.

A model directory, its exported ``.onnx`` and its bioimage.io ``.zip`` restore the same
stack through the Python API, the ``isonet restore`` command, the ImageJ command
**IsoNet Restore** run by a headless macro (real ij.jar) and the chunked runner; every
result equals the in-memory TensorFlow restoration of the model directory (onnxruntime
and TensorFlow agree to about 1e-6 of the output range; the bound is 1e-4). ``onnx`` is
the plane network (``isonet export --plane``); ``volume`` the volume model (the default
ONNX export), whose graph bakes in the training normalization: it runs with
``normalization="model"`` against the same reference, and the chunked runner refuses it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

KINDS = ("dir", "onnx", "zip", "volume", "volume_zip")
ENTRY_POINTS = ("python", "cli", "imagej", "chunked")
FACTOR = 3.0


@pytest.fixture(scope="module")
def artifacts(tiny_trained_model, tmp_path_factory):
    from isonet_ij.model_export import export

    out = tmp_path_factory.mktemp("artifacts")
    return {
        "dir": tiny_trained_model,
        "onnx": export(tiny_trained_model, "onnx", out / "tiny model.onnx", plane=True),
        "volume": export(tiny_trained_model, "onnx", out / "tiny volume model.onnx"),
        "zip": export(tiny_trained_model, "bioimageio", out / "tiny model.zip", plane=True),
        "volume_zip": export(tiny_trained_model, "bioimageio", out / "tiny volume model.zip"),
    }


@pytest.fixture(scope="module")
def reference(tiny_trained_model, imagej_stack):
    from isonet_ij import load_model, restore

    data, _ = imagej_stack
    tm = load_model(tiny_trained_model, backend="tensorflow")
    return {norm: restore(data, tm, factor=FACTOR, normalization=norm) for norm in ("volume", "model")}


def restore_python(path, data, voxel_size, tmp_path, request, norm="volume"):
    from isonet_ij import restore

    return restore(data, str(path), factor=FACTOR, normalization=norm)


def restore_cli(path, data, voxel_size, tmp_path, request, norm="volume"):
    from isonet_ij import read_volume, write_volume
    from isonet_ij.cli import main

    write_volume(tmp_path / "stack.tif", data, voxel_size=voxel_size)
    args = ["restore", str(tmp_path / "stack.tif"), "--model", str(path), "-o", str(tmp_path / "out.tif"),
            "--no-consistency", "--normalization", norm]
    assert main(args) == 0
    out = read_volume(tmp_path / "out.tif")
    assert out.voxel_size == pytest.approx((voxel_size[1],) * 3)  # isotropic calibration
    return out.data


def restore_imagej(path, data, voxel_size, tmp_path, request, norm="volume"):
    from test_imagej_commands import run_macro

    from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume

    bridge = request.getfixturevalue("imagej_bridge")
    imp = array_to_imageplus(data, title="stack.tif", voxel_size=voxel_size, unit="um")
    _, err = run_macro(f'run("IsoNet Restore", "model=[{path}] normalization={norm}");', imp)
    assert err is None
    return imageplus_to_volume(bridge.last_result("IsoNet Restore")).data


def restore_chunked(path, data, voxel_size, tmp_path, request, norm="volume"):
    import zarr

    from isonet_ij import restore_chunked

    restore_chunked(data, str(path), factor=FACTOR, out=tmp_path / "out.zarr", chunks=(24, 24), normalization=norm)
    return np.asarray(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"])


RUNNERS = {"python": restore_python, "cli": restore_cli, "imagej": restore_imagej, "chunked": restore_chunked}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_each_artifact_kind_restores_the_same_volume_through_each_entry_point(
        kind, entry, artifacts, reference, imagej_stack, tmp_path, request):
    if entry == "imagej":
        from conftest import require_java_and_ij_jar

        require_java_and_ij_jar()
    data, voxel_size = imagej_stack
    norm = "model" if kind.startswith("volume") else "volume"
    if kind.startswith("volume") and entry == "chunked":
        with pytest.raises(ValueError, match="volume model"):
            RUNNERS[entry](artifacts[kind], data, voxel_size, tmp_path, request, norm)
        return
    reference = reference[norm]
    got = RUNNERS[entry](artifacts[kind], data, voxel_size, tmp_path, request, norm)
    assert got.shape == reference.shape == (22, 48, 48)
    span = float(np.ptp(reference))
    assert span > 0 and float(np.max(np.abs(got - reference))) <= 1e-4 * span
