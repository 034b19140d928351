"""Training pairs (eq. 2): blur with the training kernel, subsample rows, interpolate back."""

import numpy as np
import pytest

from isonet_ij import grid, pairs


def gauss2d(s_row, s_col, r_row, r_col):
    y = np.arange(-r_row, r_row + 1)[:, None]
    x = np.arange(-r_col, r_col + 1)[None, :]
    k = np.exp(-0.5 * (y / s_row) ** 2 - 0.5 * (x / s_col) ** 2)
    return (k / k.sum()).astype(np.float32)


def fwhm(profile):
    p = np.asarray(profile, float)
    i = int(np.argmax(p))
    half = p[i] / 2
    left = np.nonzero(p[:i] < half)[0][-1]
    right = i + np.nonzero(p[i:] < half)[0][0]
    xl = left + (half - p[left]) / (p[left + 1] - p[left])
    xr = right - 1 + (p[right - 1] - half) / (p[right - 1] - p[right])
    return xr - xl


def test_point_source_gives_the_kernel_at_acquired_rows_and_cubic_rows_between():
    k = gauss2d(3.0, 1.0, 12, 4)
    plane = np.zeros((64, 48), np.float32)
    plane[30, 20] = 1.0
    src, tgt = pairs.make_source(plane, k, 2, origin=0)
    assert src.shape == tgt.shape == (63, 48)  # floor((32-1)*2)+1 rows
    np.testing.assert_array_equal(tgt, plane[:63])
    # acquired rows (even) hold the kernel centred on the point (independent: the formula)
    expected = np.zeros_like(plane, dtype=np.float64)
    expected[30 - 12 : 30 + 13, 20 - 4 : 20 + 5] = k
    np.testing.assert_allclose(src[::2], expected[:63:2], atol=1e-6)
    # rows between: Keys midpoint weights (-1, 9, 9, -1)/16 of the acquired neighbours
    # row 29 lies halfway between acquired rows 28 and 30 (outer taps 26 and 32)
    mid = (-expected[26] + 9 * expected[28] + 9 * expected[30] - expected[32]) / 16
    np.testing.assert_allclose(src[29], mid, atol=1e-6)


def test_line_along_columns_gets_the_axial_blur_line_along_rows_only_the_lateral_one():
    s_ax, s_lat, f = 4.0, 1.5, 4
    k = gauss2d(s_ax, s_lat, 16, 6)
    horiz = np.zeros((96, 40), np.float32)
    horiz[48, :] = 1.0  # a line along x (lateral), at an acquired row (48 = 12*4)
    src, _ = pairs.make_source(horiz, k, f)
    assert fwhm(src[:, 20]) == pytest.approx(2.3548 * s_ax, rel=0.05)
    vert = np.zeros((96, 40), np.float32)
    vert[:, 20] = 1.0  # a line along the axial direction
    src, tgt = pairs.make_source(vert, k, f)
    assert fwhm(src[40]) == pytest.approx(2.3548 * s_lat, rel=0.05)
    np.testing.assert_allclose(src[10:-10], src[40][None].repeat(src.shape[0] - 20, 0), atol=1e-5)


def test_non_integer_factor_sources_have_the_target_shape():
    plane = np.random.default_rng(0).random((50, 30)).astype(np.float32)
    src, tgt = pairs.make_source(plane, np.ones((1, 1)), 4.89, origin=2)
    n_sub = int((50 - 1 - 2) / 4.89) + 1
    assert src.shape == tgt.shape == (grid.n_output_slices(n_sub, 4.89), 30)
    np.testing.assert_array_equal(tgt, plane[2 : 2 + src.shape[0]])


def test_identity_kernel_and_factor_one_give_source_equal_to_target():
    plane = np.random.default_rng(0).random((20, 16)).astype(np.float32)
    src, tgt = pairs.make_source(plane, np.ones((1, 1)), 1)
    np.testing.assert_allclose(src, tgt, atol=1e-6)


def test_noise_matching_restores_the_input_noise_variance_on_acquired_rows():
    rng = np.random.default_rng(0)
    sigma = 0.1
    plane = (0.5 + sigma * rng.standard_normal((400, 400))).astype(np.float32)
    k = gauss2d(3.0, 0.7, 12, 3)
    plain, _ = pairs.make_source(plane, k, 4)
    matched, _ = pairs.make_source(plane, k, 4, noise=(0.0, sigma**2), rng=rng)
    sumsq = float(np.sum((k / k.sum()) ** 2))
    assert np.var(plain[::4][10:-10]) == pytest.approx(sigma**2 * sumsq, rel=0.2)
    assert np.var(matched[::4][10:-10]) == pytest.approx(sigma**2, rel=0.1)


def test_estimate_noise_recovers_a_poisson_gaussian_model():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:8, 0:96, 0:96]
    clean = 0.2 + 0.8 * (0.5 + 0.5 * np.sin(x / 15.0) * np.cos(y / 20.0))
    a_true, b_true = 0.004, 0.0009
    noisy = clean + rng.standard_normal(clean.shape) * np.sqrt(a_true * clean + b_true)
    a, b = pairs.estimate_noise(noisy.astype(np.float32))
    assert a == pytest.approx(a_true, rel=0.25)
    assert b == pytest.approx(b_true, rel=0.5, abs=3e-4)


def test_flips_are_allowed_only_along_symmetric_kernel_axes():
    assert pairs.flip_flags(gauss2d(3, 1, 9, 3)) == (True, True)
    k = gauss2d(3, 1, 9, 3)
    k[:9] *= 0.5  # asymmetric along rows
    assert pairs.flip_flags(k) == (False, True)


def blob_volume(z=8, y=48, x=48, seed=0):
    rng = np.random.default_rng(seed)
    vol = 0.02 * rng.random((z, y, x)).astype(np.float32)
    vol[:, 8:20, 28:44] += 1.0  # one bright structure in a dark volume
    return vol


def test_make_pairs_holds_out_whole_slices_and_returns_fixed_validation_patches():
    vol = blob_volume()
    kern = {"xz": gauss2d(2, 0.7, 6, 2), "yz": gauss2d(2, 0.7, 6, 2)}
    s = pairs.make_pairs(vol, kern, 2, patch_size=16, n_validation=10, noise_match=False)
    assert set(s.val_slices).isdisjoint(s.train_slices)
    assert sorted(s.val_slices + s.train_slices) == list(range(8))
    assert {p.z for p in s.planes} == set(s.train_slices)
    xv, yv = s.validation
    assert xv.shape == yv.shape == (10, 16, 16)
    x, y = s.sample(6, np.random.default_rng(0))
    assert x.shape == y.shape == (6, 16, 16) and x.dtype == np.float32


def test_patch_sampling_prefers_structure_over_background():
    vol = blob_volume()
    kern = pairs.identity_kernels()
    s = pairs.make_pairs(vol, kern, 2, patch_size=16, noise_match=False)
    _, y = s.sample(200, np.random.default_rng(0), augment=False)
    bright = np.mean(y.max(axis=(1, 2)) > 0.5)
    # a uniformly placed 16x16 patch overlaps the 12x16 blob in well under half the cases
    assert bright > 0.7


def test_volume_smaller_than_a_patch_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller than a 64x64 patch"):
        pairs.make_pairs(np.zeros((4, 40, 40), np.float32), pairs.identity_kernels(), 2, patch_size=64)


def test_percentile_normalization_round_trips_and_handles_constants():
    vol = np.random.default_rng(0).random((4, 10, 10)) * 100
    lo, hi = pairs.percentiles(vol)
    assert lo == pytest.approx(np.percentile(vol, 1)) and hi == pytest.approx(np.percentile(vol, 99.8))
    np.testing.assert_allclose(pairs.denormalize(pairs.normalize(vol, lo, hi), lo, hi), vol, rtol=1e-5)
    lo, hi = pairs.percentiles(np.full((3, 3, 3), 7.0))
    assert hi > lo == 7.0
