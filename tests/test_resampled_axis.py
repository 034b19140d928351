"""A z axis interpolated from coarser slices: detected (``grid.resampling_period``), and its blur
measured over a band (``estimate_axial_blur(max_kz=...)``) against the interpolation's own width.

Independent truth: linear interpolation from slices ``T`` voxels apart convolves the sampled
signal with a triangle of half-width ``T``, whose variance is ``T**2 / 6``; at low axial
frequencies it acts as an extra Gaussian blur of sigma ``T / sqrt(6)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from isonet_ij.grid import resampling_period


@pytest.fixture(scope="module")
def volumes():
    from isonet_ij.phantoms import synthesize

    case = synthesize("nuclei", size=96, psf="gaussian:1.5,1.5", factor=1, seed=3, photons=2000)
    vol = np.asarray(case["input"], np.float64)
    period = 5
    coarse = np.arange(0, vol.shape[0], period)
    z = np.arange(coarse[-1] + 1)
    resampled = np.stack([np.interp(z, coarse, vol[coarse, y, x]) for y in range(vol.shape[1])
                          for x in range(vol.shape[2])], axis=1).reshape(z.size, *vol.shape[1:])
    return vol[: z.size], np.round(resampled), period  # stored as integers, as a resampled stack is


def test_resampling_period_finds_the_interpolation_knots(volumes):
    original, resampled, period = volumes
    found = resampling_period(resampled, 0)
    assert found["resampled"] and abs(found["period"] - period) < 0.2, found
    assert not resampling_period(original, 0)["resampled"]
    assert not resampling_period(resampled, 2)["resampled"]  # x was not resampled


def test_a1s_z_axis_is_resampled_and_a3s_is_not(real_data_dir):
    """The data README says A1 is "isotropic in pixels (resampled)"; A3 is stored as acquired."""
    from isonet_ij import read_volume

    a1 = read_volume(real_data_dir / "A1_arabidopsis_embryo_membrane_confocal_iso.tif").data
    a3 = read_volume(real_data_dir / "A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif").data
    z = resampling_period(a1, 0)
    assert z["resampled"] and 4.3 < z["period"] < 5.5, z
    assert not any(resampling_period(a1, axis)["resampled"] for axis in (1, 2))
    assert not any(resampling_period(a3, axis)["resampled"] for axis in (0, 1, 2))


def test_band_limited_axial_blur_sees_the_interpolation_width(volumes):
    from isonet_ij.psf import estimate_axial_blur

    original, resampled, period = volumes
    expected = period / math.sqrt(6)
    low = estimate_axial_blur(resampled, factor=1.0, max_kz=0.08)
    assert low["band"][1] <= 0.08
    base = estimate_axial_blur(original, factor=1.0, max_kz=0.08)["sigma_extra"]
    assert abs(math.sqrt(max(low["sigma_extra"] ** 2 - base**2, 0)) - expected) <= 0.2 * expected, (low, base)
    with pytest.raises(ValueError, match="max_kz"):
        estimate_axial_blur(resampled, factor=1.0, max_kz=0)


def test_training_warns_about_a_z_axis_interpolated_before(volumes):
    from isonet_ij.workflow import CLI_WORDS, IMAGEJ_WORDS, warn_if_resampled

    original, resampled, period = volumes
    with pytest.warns(UserWarning, match=r"interpolated along z from slices about 5\.\d slices apart") as caught:
        warn_if_resampled(resampled, 1.0, words=CLI_WORDS)
    assert "--factor is about 5" in str(caught[0].message)
    with pytest.warns(UserWarning, match=r"whose factor is about 10"):  # ImageJ's field name, 5 x factor 2
        warn_if_resampled(resampled, 2.0, words=IMAGEJ_WORDS)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_resampled(original, 1.0)["resampled"] is False
        assert warn_if_resampled(resampled[:40], 1.0) is None  # too few slices to tell


def test_isonet_train_warns_and_still_trains_on_a_resampled_stack(volumes, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from isonet_ij import volume_io
    from isonet_ij.cli import main

    _, resampled, _ = volumes
    volume_io.write_volume(tmp_path / "scaled.tif", resampled[:, 16:80, 16:80].astype(np.float32))
    with pytest.warns(UserWarning, match="interpolated along z"):
        rc = main(["train", str(tmp_path / "scaled.tif"), "--factor", "1", "--psf", "gaussian:1.5,1.5",
                   "--patch", "16", "--batch", "2", "--epochs", "1", "--steps-per-epoch", "1",
                   "-o", str(tmp_path / "m")])
    assert rc == 0 and (tmp_path / "m" / "config.json").is_file()
