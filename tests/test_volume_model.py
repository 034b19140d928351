"""The volume model: one ONNX graph, raw anisotropic stack in, isotropic stack out.

It must equal ``restore(..., normalization="model")`` with the same network over the whole
volume, borders included, for both architectures, both fusions, integer and non-integer
factors and Y != X; load through ``load_model``; and refuse bad input clearly.
"""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from isonet_ij import grid, nets  # noqa: E402
from isonet_ij.config import Config  # noqa: E402
from isonet_ij.model import load_model, model_from_keras  # noqa: E402
from isonet_ij.model_export import export_onnx  # noqa: E402
from isonet_ij.restoration import restore, restore_region  # noqa: E402
from isonet_ij.volume_graph import OnnxVolumeNet, compare_restorations, min_sizes, volume_onnx_bytes  # noqa: E402
from conftest import constant_output_net, smooth_volume  # noqa: E402

NORM = {"p_low": 1.0, "p_high": 99.8, "low": 100.0, "high": 1100.0}  # smooth_volume spans 100..1100
#: acquired slices per factor: small volumes whose isotropic grid still exceeds the z border
Z_OF = {4.0: 8, 8.0: 5, 2.5: 9}


def random_model(arch: str, factor: float, fusion: str, seed: int = 0):
    """A random-weight network and its model (IsoNet-1's last layers made positive and amplified so
    that the output is positive and its output varies as much as a trained one's)."""
    cfg = Config(factor=factor, arch=arch, mode="none", fusion=fusion, normalization=dict(NORM))
    net = nets.build_model(arch, seed=seed)
    for name in ("c1_5x5", "c1_1x1"):
        try:
            layer = net.get_layer(name)
        except ValueError:
            continue
        k, b = layer.get_weights()
        layer.set_weights([np.abs(k) * (8 if name == "c1_1x1" else 1), b + 0.3])
    return net, model_from_keras(net, cfg)


@pytest.mark.parametrize("fusion", ["mean", "geometric"])
@pytest.mark.parametrize("factor", [4.0, 8.0, 2.5])
@pytest.mark.parametrize("arch", ["isonet1", "isonet2"])
def test_volume_model_equals_restore_with_model_normalization(arch, factor, fusion):
    net, tm = random_model(arch, factor, fusion)
    vnet = OnnxVolumeNet(volume_onnx_bytes(net, tm.config), tm.config)
    vol = smooth_volume((Z_OF[factor], 28, 36), seed=5)  # Y != X
    got = vnet.predict(vol)
    ref = restore(vol, tm, normalization="model")
    assert got.shape == ref.shape == (grid.n_output_slices(vol.shape[0], factor), 28, 36)
    rep = compare_restorations(got, ref, grid.upsample_z(vol, factor))  # whole volume, borders included
    assert rep["relative"] <= 1e-4
    np.testing.assert_allclose(got[:, :, :1], ref[:, :, :1], atol=1e-4 * rep["output_range"])  # an x border


def test_a_model_with_constant_output_fails_the_check(tmp_path):
    cfg = Config(factor=4, arch="isonet1", mode="none", normalization=dict(NORM))
    net = constant_output_net()  # output 0.5 everywhere
    dead = model_from_keras(net, cfg)
    vol = smooth_volume((8, 24, 28), seed=1)
    got = OnnxVolumeNet(volume_onnx_bytes(net, cfg), cfg).predict(vol)
    ref = restore(vol, dead, normalization="model")
    assert np.max(np.abs(got - ref)) < 1e-3  # parity alone would pass: both constant
    with pytest.raises(ValueError, match="learned nothing"):
        compare_restorations(got, ref, grid.upsample_z(vol, 4))
    with pytest.raises(ValueError, match="differs from restore"):  # and a real difference fails too
        compare_restorations(ref + 0.01 * np.ptp(vol), ref, grid.upsample_z(vol, 4), min_std_ratio=0)


@pytest.mark.parametrize("factor", [2.5, 3.3, 4.1, 4.89, 7.0])
def test_output_slices_follow_the_grid_for_any_z(factor):
    net, tm = random_model("isonet1", factor, "mean")
    vnet = OnnxVolumeNet(volume_onnx_bytes(net, tm.config), tm.config)
    min_z, _ = min_sizes(factor, vnet.border)
    for z in (min_z, min_z + 1, 11):
        vol = smooth_volume((z, 16, 20), seed=z)
        assert vnet.predict(vol).shape[0] == grid.n_output_slices(z, factor)


@pytest.fixture(scope="module")
def volume_onnx(tiny_trained_model, tmp_path_factory):
    return export_onnx(tiny_trained_model, tmp_path_factory.mktemp("vol") / "volume.onnx")


def test_load_model_reads_a_volume_onnx_and_restore_runs_its_graph(volume_onnx, tiny_trained_model):
    m = load_model(volume_onnx)
    assert m.net is None and m.volume_net is not None and m.backend == "onnx"
    vol = smooth_volume((8, 36, 40), seed=7)
    got = restore(vol, m, normalization="model")
    ref = restore(vol, tiny_trained_model, normalization="model")
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.ptp(ref)
    with pytest.raises(ValueError, match="normalization='model'"):
        restore(vol, m)  # the default per-volume percentiles are not in the graph
    with pytest.raises(ValueError, match="baked in"):
        restore(vol, m, normalization="model", fusion="geometric")
    with pytest.raises(ValueError, match="onnxruntime only"):
        load_model(m, backend="tensorflow")
    with pytest.raises(ValueError, match="volume model"):
        restore_region(vol, m, factor=3, low=0, high=1, plan={})


@pytest.mark.parametrize("bad, match", [
    (np.ones((30, 40), np.float32), "3D"),
    (np.ones((2, 40, 40), np.float32), "z slices"),
    (np.ones((8, 10, 40), np.float32), "at least 16x16"),
    ("nan", "NaN"),
])
def test_cli_restore_with_a_volume_model_refuses_bad_input_and_writes_nothing(volume_onnx, tmp_path, capsys,
                                                                              bad, match):
    import tifffile

    from isonet_ij.cli import main

    if isinstance(bad, str):
        bad = smooth_volume((8, 36, 40), seed=2)
        bad[3, 5, 5] = np.nan
    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, bad)
    rc = main(["restore", str(src), "--model", str(volume_onnx), "--normalization", "model", "-o", str(out)])
    assert rc != 0
    assert match in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.tif"]


def test_cli_restore_with_a_volume_model_writes_the_graphs_volume(volume_onnx, tmp_path, capsys):
    import tifffile

    from isonet_ij.cli import main

    vol = smooth_volume((8, 36, 40), seed=4)
    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, vol)
    rc = main(["restore", str(src), "--model", str(volume_onnx), "--normalization", "model", "-o", str(out),
               "--no-consistency"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert tifffile.imread(out).shape == (grid.n_output_slices(8, 3), 36, 40)
    np.testing.assert_allclose(tifffile.imread(out), load_model(volume_onnx).volume_net.predict(vol), atol=1e-3)
    rc = main(["restore", str(src), "--model", str(volume_onnx), "-o", str(tmp_path / "o2.tif")])
    assert rc != 0 and "--normalization model" in capsys.readouterr().err
    assert not (tmp_path / "o2.tif").exists()

