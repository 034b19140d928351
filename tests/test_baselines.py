"""Baselines: bicubic, Richardson-Lucy, SRCNN on the shared z grid."""

import numpy as np
import pytest

from isonet_ij import baselines, grid
from isonet_ij.psf import gaussian_psf


def test_bicubic_is_the_grid_interpolation_and_keeps_constants():
    vol = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(baselines.bicubic(vol, 4.89), grid.upsample_z(vol, 4.89))
    const = np.full((5, 8, 8), 7, np.uint16)
    out = baselines.bicubic(const, 3)
    assert out.shape == (13, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, 7, atol=1e-5)


def test_richardson_lucy_with_a_delta_psf_is_bicubic():
    vol = 10 + np.random.default_rng(0).random((4, 12, 12)).astype(np.float32)
    delta = np.ones((1, 1, 1), np.float32)
    np.testing.assert_allclose(baselines.richardson_lucy(vol, delta, 2, iterations=3),
                               baselines.bicubic(vol, 2), rtol=1e-4)


def test_richardson_lucy_sharpens_an_axially_blurred_point():
    h = gaussian_psf(1.0, 3.0, shape=(19, 7, 7))
    iso = np.zeros((33, 17, 17), np.float32)
    iso[16, 8, 8] = 1.0
    from scipy.signal import fftconvolve

    acquired = fftconvolve(iso, h, mode="same")[::2] + 1e-3  # factor 2, slice 8 at 16
    bic = baselines.bicubic(acquired, 2)
    rl = baselines.richardson_lucy(acquired, h, 2, iterations=30)
    assert rl.shape == bic.shape == (33, 17, 17)

    def width(p):
        return np.sum(p > p.max() / 2)

    assert width(rl[:, 8, 8]) < width(bic[:, 8, 8])
    assert rl[16, 8, 8] > 1.5 * bic[16, 8, 8]


@pytest.mark.parametrize(
    ("psf", "match"),
    [
        (np.ones((2, 3, 3)), "odd"),
        (-np.ones((3, 3, 3)), "negative"),
        (np.zeros((3, 3, 3)), "sum"),
        (np.ones((3, 3)), "3D"),
    ],
)
def test_richardson_lucy_rejects_bad_psfs(psf, match):
    with pytest.raises(ValueError, match=match):
        baselines.richardson_lucy(np.ones((3, 8, 8), np.float32), psf, 2)


def test_richardson_lucy_rejects_zero_iterations():
    with pytest.raises(ValueError, match="iterations"):
        baselines.richardson_lucy(np.ones((3, 8, 8), np.float32), np.ones((1, 1, 1)), 2, iterations=0)


def test_srcnn_is_isonet1_trained_without_a_psf():
    pytest.importorskip("tensorflow")
    from isonet_ij.config import Config

    rng = np.random.default_rng(0)
    vol = rng.random((6, 24, 24)).astype(np.float32)
    cfg = Config(factor=2, patch_size=16, batch_size=2, epochs=1, steps_per_epoch=2, n_validation=2)
    tm = baselines.train_srcnn(vol, 2, config=cfg).model
    out = baselines.srcnn(vol, 2, config=cfg)
    assert out.shape == (11, 24, 24) and out.dtype == np.float32
    assert tm.config.arch == "isonet1" and tm.config.mode == "none" and tm.psf is None
