"""Restoration: grid, tiling, batching, fusion, stacks, self-consistency."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from isonet_ij import grid, nets, pairs  # noqa: E402
from isonet_ij.config import Config  # noqa: E402
from isonet_ij.consistency import self_consistency  # noqa: E402
from isonet_ij.model import model_from_keras  # noqa: E402
from isonet_ij.restoration import restore, restore_stack, restore_with_info  # noqa: E402
from isonet_ij.tiling import BYTES_PER_PIXEL, MIN_CORE, plan_tiles, tile_spans  # noqa: E402


def model(arch="isonet2", factor=3.0, identity=False, seed=0, mode="none"):
    cfg = Config(factor=factor, arch=arch, mode=mode, psf="gaussian:1,2" if mode != "none" else "",
                 dropout=0.0, seed=seed)
    net = nets.build_model(arch, dropout=0.0, seed=seed)
    if identity:  # IsoNet-2 with a zero residual is the identity
        last = [l for l in net.layers if l.__class__.__name__ == "Conv2D"][-1]
        last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    return model_from_keras(net, cfg)


def smooth_volume(shape=(6, 40, 44), seed=0):
    from scipy.ndimage import gaussian_filter

    v = gaussian_filter(np.random.default_rng(seed).random(shape), (0.5, 2, 2))
    return (50 + 500 * (v - v.min()) / np.ptp(v)).astype(np.float32)


@pytest.mark.parametrize("arch", nets.ARCHS)
def test_tiled_restoration_equals_untiled(arch):
    tm = model(arch, seed=3)
    vol = smooth_volume((6, 40, 200))
    whole, info_w = (r := restore_with_info(vol, tm)).volume, r.info
    assert info_w["plan"]["tiles"] == [1, 1]  # one tile: the whole (bordered) plane
    # a budget for 2 narrow tiles: several tiles along the plane's columns, a smaller batch
    h, frame_rows = info_w["plan"]["halo"], info_w["plan"]["frame"][0]
    budget = 2 * frame_rows * (MIN_CORE + 2 * h + 8) * BYTES_PER_PIXEL[arch]
    tiled, info_t = (r := restore_with_info(vol, tm, max_memory=budget)).volume, r.info
    assert info_t["plan"]["tiles"][1] > 1 and info_t["plan"]["batch"] <= 2
    assert whole.shape == tiled.shape == (grid.n_output_slices(6, 3), 40, 200)
    lo, hi = info_w["normalization"]["low"], info_w["normalization"]["high"]
    np.testing.assert_allclose(pairs.normalize(tiled, lo, hi), pairs.normalize(whole, lo, hi), atol=1e-5)


@pytest.mark.parametrize(("F", "T", "h"), [(60, 60, 8), (200, 88, 36), (1000, 120, 36), (64, 40, 12), (36, 32, 8)])
def test_tile_spans_cover_the_frame_and_keep_a_halo_from_inner_edges(F, T, h):
    spans = tile_spans(F, T, h)
    assert spans[0][1] == 0 and spans[-1][2] == F
    for (s0, a0, b0), (s1, a1, b1) in zip(spans, spans[1:]):
        assert a1 <= b0  # no gap (an overlap rewrites equal values)
    for s, a, b in spans:
        assert s % 4 == 0 and 0 <= s and s + min(T, F) <= F
        assert a == 0 or a - s >= h  # inner edges: a halo of context
        assert b == F or s + T - b >= h


def test_border_margin_changes_only_outputs_near_the_plane_border():
    from isonet_ij.restoration import apply_to_planes

    tm = model("isonet1", seed=3)
    planes = np.random.default_rng(0).random((2, 40, 60)).astype(np.float32)
    small = apply_to_planes(tm.net, planes, plan_tiles(40, 60, "isonet1", border=0))
    wide = apply_to_planes(tm.net, planes, plan_tiles(40, 60, "isonet1", border=16))
    r = nets.receptive_field("isonet1")
    np.testing.assert_allclose(small[:, r:-r, r:-r], wide[:, r:-r, r:-r], atol=1e-5)
    assert np.abs(small - wide).max() > 1e-3  # the border region does differ
    # a (rows, cols) border: reflected z rows only
    rows_only = plan_tiles(40, 60, "isonet1", border=(8, 0))
    assert rows_only["frame"] == (56, 60) and rows_only["border"] == (8, 0)
    with pytest.raises(ValueError, match="multiple of 4"):
        plan_tiles(40, 60, "isonet1", border=6)


@pytest.mark.parametrize(("factor", "rows"), [(2.0, 4), (4.0, 4), (4.5, 8), (8.0, 8)])
def test_default_z_border_follows_the_factor(factor, rows):
    vol = smooth_volume((5, 24, 28))
    tm = model("isonet1", factor=factor)
    out, info = (r := restore_with_info(vol, tm)).volume, r.info
    n_out = grid.n_output_slices(5, factor)
    assert info["plan"]["border"] == [rows, 0]
    assert info["plan"]["frame"][0] == -(-(n_out + 2 * rows) // 4) * 4
    explicit = restore(vol, tm, border=(rows, 0))  # the default is that margin, nothing else
    np.testing.assert_array_equal(out, explicit)
    other = restore(vol, tm, border=(12 - rows, 0))
    assert np.abs(other - out).max() > 0  # and the margin is used


def test_network_is_traced_once_for_both_passes():
    tm = model("isonet1")
    restore(smooth_volume((4, 24, 24)), tm)
    fns = list(tm.net._fns.values())  # the backend's compiled calls, one per batch shape
    assert len(fns) == 1 and fns[0].experimental_get_tracing_count() == 1


def test_constant_volume_restores_to_that_constant():
    vol = np.full((5, 24, 24), 123.0, np.float32)
    out = restore(vol, model(factor=2.5))
    assert out.shape == (11, 24, 24) and out.dtype == np.float32
    assert np.all(out == 123.0)


def test_identity_network_restoration_is_bicubic_interpolation():
    vol = smooth_volume((5, 28, 24))
    out = restore(vol, model(identity=True, factor=2.0), fusion="mean")
    np.testing.assert_allclose(out, grid.upsample_z(vol, 2.0), rtol=1e-5, atol=1e-3)


def test_non_integer_factor_puts_acquired_slices_at_round_i_times_f():
    f = 4.89
    vol = np.full((10, 20, 20), 10.0, np.float32)
    vol[3] = 1000.0  # one bright acquired slice
    vol[7] = 1000.0
    out = restore(vol, model(identity=True, factor=f))
    assert out.shape == (45, 20, 20)
    prof = out[:, 10, 10]
    peaks = [int(np.argmax(prof[:25])), 25 + int(np.argmax(prof[25:]))]
    assert peaks == [round(3 * f), round(7 * f)] == [15, 34]


def test_volume_whose_z_was_not_degraded_is_left_nearly_unchanged():
    # factor 1 and no PSF: the self-supervised pairs are identities and so is the network
    from isonet_ij.training import train

    vol = smooth_volume((8, 40, 40), seed=1)
    cfg = Config(factor=1.0, arch="isonet2", mode="none", patch_size=24, batch_size=4, epochs=3,
                 steps_per_epoch=15, n_validation=4, dropout=0.0)
    tm = train(vol, cfg).model
    out = restore(vol, tm)
    assert out.shape == vol.shape
    rng_ = np.ptp(vol)
    psnr = 10 * np.log10(rng_**2 / np.mean((out - vol) ** 2))
    assert psnr > 40


def test_zcyx_and_tzcyx_stacks_restore_channel_by_channel_with_the_same_axes():
    tm = model("isonet1", factor=2.0)
    a, b = smooth_volume((4, 20, 20), 0), 3 * smooth_volume((4, 20, 20), 1)
    zcyx = np.stack([a, b], axis=1)
    out, infos = restore_stack(zcyx, "ZCYX", tm)
    assert out.shape == (7, 2, 20, 20) and len(infos) == 2
    np.testing.assert_allclose(out[:, 1], restore(b, tm), rtol=1e-5, atol=1e-3)
    tzcyx = np.stack([zcyx, zcyx], axis=0)
    out5, infos5 = restore_stack(tzcyx, "TZCYX", tm)
    assert out5.shape == (2, 7, 2, 20, 20) and len(infos5) == 4
    np.testing.assert_allclose(out5[1], out, rtol=1e-5, atol=1e-3)


def test_bad_inputs_are_clear_errors():
    tm = model("isonet1")
    with pytest.raises(ValueError, match="3D"):
        restore(np.zeros((20, 20), np.float32), tm)
    with pytest.raises(ValueError, match="factor"):
        restore(smooth_volume((4, 20, 20)), tm, factor=0)
    with pytest.raises(ValueError, match="factor"):
        restore(smooth_volume((4, 20, 20)), tm, factor=-2)
    with pytest.raises(ValueError, match="max_memory"):
        restore(smooth_volume((4, 20, 20)), tm, max_memory=1000)
    with pytest.raises(ValueError, match="fusion"):
        restore(smooth_volume((4, 20, 20)), tm, fusion="max")


def test_plan_tiles_respects_the_budget_and_multiples_of_four():
    p = plan_tiles(121, 512, "isonet2", batch_size=8, max_memory="256M")
    assert p["bytes"] <= 256 * 2**20 and p["tiles"] == (1, 1)  # whole planes, a smaller batch
    assert 1 <= p["batch"] < 8
    p = plan_tiles(121, 512, "isonet2", batch_size=8, max_memory="64M")
    assert p["bytes"] <= 64 * 2**20
    assert all(t % 4 == 0 for t in p["tile"]) and p["halo"] >= nets.receptive_field("isonet2")
    assert p["batch"] == 1 and p["tiles"][1] > 1 and p["tile"][1] < p["frame"][1]  # batch first, then split


def test_self_consistency_is_high_for_a_forward_consistent_volume():
    from scipy.signal import fftconvolve

    from isonet_ij.psf import gaussian_psf

    rng = np.random.default_rng(0)
    iso = np.zeros((25, 24, 24), np.float32)
    iso[rng.integers(0, 25, 30), rng.integers(0, 24, 30), rng.integers(0, 24, 30)] = 1
    from scipy.ndimage import gaussian_filter

    iso = gaussian_filter(iso, 1.5).astype(np.float32)
    k = gaussian_psf(0.0001, 2.0, shape=(13, 1, 1))
    blurred = fftconvolve(np.pad(iso, ((6, 6), (0, 0), (0, 0)), mode="reflect"), k, mode="valid")
    acquired = blurred[::4].astype(np.float32)  # 7 slices at 0, 4, ..., 24
    good = self_consistency(iso, acquired, None, 4, kernel=k)
    bicubic = self_consistency(grid.upsample_z(acquired, 4), acquired, None, 4, kernel=k)
    assert good["psnr"] > 60
    assert bicubic["psnr"] < good["psnr"] - 10
