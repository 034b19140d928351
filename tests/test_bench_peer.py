"""The peer benchmark's z-grid mapping of CSBDeep's output (tiny arrays, no training)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import zoom

from conftest import load_benchmark
from isonet_ij import grid

bench_peer = load_benchmark("bench_peer")


def _ramp(n_z, ny=4, nx=4):
    return np.broadcast_to(np.arange(n_z, dtype=np.float32)[:, None, None] + 1.0, (n_z, ny, nx)).copy()


def _csbdeep_scale_z(vol, factor):
    """What IsotropicCARE.predict does to z (scale_z: zoom order 1 on (C, Z, Y, X))."""
    return zoom(vol[None], (1, factor, 1, 1), order=1)[0]


@pytest.mark.parametrize(("n_z", "factor"), [(6, 8.0), (16, 8.0), (11, 4.0), (9, 6.0), (10, 4.89), (7, 2.5)])
def test_ramp_lands_on_isonet_grid(n_z, factor):
    vol = _ramp(n_z)
    for f_pred in (bench_peer.care_predict_factor(n_z, factor), factor):
        up = _csbdeep_scale_z(vol, f_pred)
        on_grid = bench_peer.care_to_grid(up, n_z, factor)
        assert on_grid.shape == (grid.n_output_slices(n_z, factor), 4, 4)
        expected = grid.output_coordinates(n_z, factor) + 1.0  # value of the ramp at j / f
        np.testing.assert_allclose(on_grid[:, 0, 0], expected, atol=1e-4)


def test_predict_factor_is_exact_for_integer_grids():
    n_z, f = 16, 8.0
    fp = bench_peer.care_predict_factor(n_z, f)
    assert round(n_z * fp) == grid.n_output_slices(n_z, f)
    up = _csbdeep_scale_z(_ramp(n_z), fp)
    assert up.shape[0] == grid.n_output_slices(n_z, f)
    np.testing.assert_allclose(up[:, 0, 0], np.arange(up.shape[0]) / f + 1.0, atol=1e-5)
    # factor f itself (CSBDeep's usual call) is corner-aligned with a stretched spacing
    up_f = _csbdeep_scale_z(_ramp(n_z), f)
    assert up_f.shape[0] == n_z * 8
    assert not np.allclose(up_f[:121, 0, 0], np.arange(121) / f + 1.0, atol=1e-3)


def test_care_kernel_axial_along_x():
    from isonet_ij import psf

    h = psf.gaussian_psf(1.0, 4.0)
    for which in ("full", "split"):
        k = bench_peer.care_kernel(h, which)
        assert k.min() >= 0 and abs(k.sum() - 1) < 1e-5
        var_y = (k.sum(1) * (np.arange(k.shape[0]) - k.shape[0] // 2) ** 2).sum()
        var_x = (k.sum(0) * (np.arange(k.shape[1]) - k.shape[1] // 2) ** 2).sum()
        assert var_x > 2 * var_y  # the long (axial) direction runs along X (columns)


def test_isotropic_care_predict_end_to_end_on_ramp():
    """Through IsotropicCARE.predict itself, with an identity network instead of a U-Net."""
    pytest.importorskip("csbdeep")
    import keras
    from csbdeep.data import NoNormalizer
    from csbdeep.models import Config, IsotropicCARE

    n_z, f = 6, 4.0
    vol = _ramp(n_z, 8, 8)
    model = IsotropicCARE(Config("YX", n_channel_in=1, n_channel_out=1, unet_n_first=2), None, basedir=None)
    inp = keras.Input((None, None, 1))
    model.keras_model = keras.Model(inp, keras.layers.Identity()(inp))
    out = model.predict(vol, "ZYX", bench_peer.care_predict_factor(n_z, f), normalizer=NoNormalizer())
    on_grid = bench_peer.care_to_grid(out, n_z, f)
    expected = grid.output_coordinates(n_z, f) + 1.0
    assert on_grid.shape == (grid.n_output_slices(n_z, f), 8, 8)
    np.testing.assert_allclose(on_grid[:, 3, 5], expected, atol=1e-4)
