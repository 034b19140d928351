"""IsoNet-1 / IsoNet-2 have the paper's layers (shapes and parameter counts)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from isonet_ij import nets  # noqa: E402


def conv_kernels(model):
    return [tuple(l.kernel.shape) for l in model.layers if l.__class__.__name__ == "Conv2D"]


def test_isonet1_is_c64_9x9_c32_5x5_c1_5x5_c1_1x1_with_linear_single_channel_layers():
    m = nets.isonet1(seed=0)
    assert conv_kernels(m) == [(9, 9, 1, 64), (5, 5, 64, 32), (5, 5, 32, 1), (1, 1, 1, 1)]
    # 9*9*64+64 + 5*5*64*32+32 + 5*5*32+1 + 1+1
    assert nets.param_count(m) == 5248 + 51232 + 801 + 2 == nets.PARAM_COUNTS["isonet1"] == 57_283
    acts = [l.activation.__name__ for l in m.layers if l.__class__.__name__ == "Conv2D"]
    assert acts == ["relu", "relu", "linear", "linear"]


def test_isonet2_is_the_paper_unet_with_skips_and_a_residual_output():
    m = nets.isonet2(seed=0)
    assert conv_kernels(m) == [
        (7, 7, 1, 16), (7, 7, 16, 32), (7, 7, 32, 64),
        (7, 7, 64 + 32, 32), (7, 7, 32 + 16, 16), (1, 1, 16, 1),
    ]
    assert nets.param_count(m) == 800 + 25120 + 100416 + 150560 + 37648 + 17 == 314_561
    kinds = [l.__class__.__name__ for l in m.layers]
    assert kinds.count("MaxPooling2D") == 2 and kinds.count("UpSampling2D") == 2
    assert kinds.count("Concatenate") == 2 and kinds[-1] == "Add"
    # residual: with the last 1x1 layer zeroed the network is the identity
    last = [l for l in m.layers if l.__class__.__name__ == "Conv2D"][-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    x = np.random.default_rng(0).random((2, 24, 36, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(m(x)), x, atol=1e-6)


def test_dropout_20_percent_is_active_only_in_training():
    for build in (nets.isonet1, nets.isonet2):
        assert not [l for l in build(seed=0).layers if l.__class__.__name__ == "Dropout"]  # default 0
        m = build(dropout=0.2, seed=0)
        rates = [l.rate for l in m.layers if l.__class__.__name__ == "Dropout"]
        assert rates and all(r == pytest.approx(0.2) for r in rates)
        x = np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(m(x, training=False)), np.asarray(m(x, training=False)))


def test_networks_map_planes_of_any_size_to_the_same_size():
    x1 = np.zeros((1, 37, 53, 1), np.float32)
    assert tuple(nets.isonet1(seed=0)(x1).shape) == (1, 37, 53, 1)
    x2 = np.zeros((3, 36, 52, 1), np.float32)
    assert tuple(nets.isonet2(seed=0)(x2).shape) == (3, 36, 52, 1)
    assert nets.size_multiple("isonet2") == 4


@pytest.mark.parametrize("arch", nets.ARCHS)
def test_receptive_field_bounds_the_measured_input_dependence(arch):
    # positive weights keep every ReLU active; a large bump on one input row (column)
    # wins every max-pooling window it is in, so the output changes iff it depends on it
    m = nets.build_model(arch, seed=1, dropout=0)
    for layer in m.layers:
        if layer.__class__.__name__ == "Conv2D":
            k, b = layer.get_weights()
            layer.set_weights([np.full_like(k, 1.0 / k[..., 0].size), np.full_like(b, 0.01)])
    n, w = 80, 8  # rows only (the networks treat rows and columns alike)
    base = np.random.default_rng(0).random((1, n, w, 1)).astype(np.float32)
    batch = np.repeat(base, n, axis=0)
    batch[np.arange(n), np.arange(n)] += 10.0
    ref = np.asarray(m(base))[0, :, w // 2, 0]
    out = np.asarray(m(batch))[:, :, w // 2, 0]
    reach = 0
    for c in (38, 39, 40, 41):  # all pooling alignments
        changed = np.nonzero(np.abs(out[:, c] - ref[c]) > 1e-6 * abs(ref[c]))[0]
        reach = max(reach, int(np.abs(changed - c).max()))
    assert reach <= nets.receptive_field(arch)
    assert reach >= nets.receptive_field(arch) - 2  # and the bound is tight


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="isonet1"):
        nets.build_model("unet3d")
