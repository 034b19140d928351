"""The z-grid: acquired slice i at output slice i*f, floor((Z-1)*f)+1 slices, Keys cubic."""

import math

import numpy as np
import pytest

from isonet_ij import grid


@pytest.mark.parametrize(
    ("n_z", "factor", "expected"),
    [(16, 8, 121), (16, 8.0, 121), (10, 4.89, 45), (2, 1.5, 2), (5, 1, 5), (11, 0.3 * 10, 31)],
)
def test_n_output_slices_is_floor_of_last_position_plus_one(n_z, factor, expected):
    assert grid.n_output_slices(n_z, factor) == expected
    assert expected == math.floor((n_z - 1) * factor + 1e-9) + 1


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), float("inf"), "abc", None])
def test_check_factor_rejects_non_positive_and_non_finite(bad):
    with pytest.raises(ValueError, match="factor"):
        grid.check_factor(bad)


def test_check_factor_rejects_below_one_and_keeps_non_integer_values():
    with pytest.raises(ValueError, match=">= 1"):
        grid.check_factor(0.5)
    assert grid.check_factor(4.89) == 4.89  # never rounded


def test_keys_cubic_midpoint_weights_match_the_closed_form():
    # Keys (a=-0.5) at t=0.5: (-1/16, 9/16, 9/16, -1/16)
    m = grid.interpolation_matrix(6, [2.5])
    np.testing.assert_allclose(m[0], [0, -1 / 16, 9 / 16, 9 / 16, -1 / 16, 0], atol=1e-12)


def test_interpolation_rows_sum_to_one_and_reproduce_samples():
    pos = np.array([0.0, 0.3, 1.0, 2.7, 4.0, 4.9, 5.0])
    m = grid.interpolation_matrix(6, pos)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m[[0, 2, 4, 6]], np.eye(6)[[0, 1, 4, 5]], atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_upsample_z_puts_acquired_slice_i_at_output_slice_i_times_f(factor):
    rng = np.random.default_rng(0)
    vol = rng.random((7, 5, 4)).astype(np.float32)
    up = grid.upsample_z(vol, factor)
    assert up.shape == (6 * factor + 1, 5, 4)
    assert up.dtype == np.float32
    np.testing.assert_allclose(up[:: factor], vol, atol=1e-6)


def test_non_integer_factor_puts_an_acquired_impulse_at_round_i_times_f():
    f = 4.89
    for i in range(1, 9):
        vol = np.zeros((10, 3, 3), np.float32)
        vol[i] = 1
        up = grid.upsample_z(vol, f)
        assert up.shape[0] == 45
        assert int(np.argmax(up[:, 1, 1])) == round(i * f)


def test_non_integer_factor_output_slice_j_sits_at_input_coordinate_j_over_f():
    # Keys cubic reproduces quadratics exactly away from the borders (independent check)
    f = 4.89
    z = np.arange(12, dtype=np.float64)
    vol = np.broadcast_to((0.5 * z**2 - 3 * z + 2)[:, None, None], (12, 2, 2))
    up = grid.upsample_z(vol, f, dtype=np.float64)
    t = np.arange(up.shape[0]) / f
    inner = (t >= 1) & (t <= 10)
    np.testing.assert_allclose(up[inner, 0, 0], 0.5 * t[inner] ** 2 - 3 * t[inner] + 2, atol=1e-9)


def test_upsample_of_constant_is_constant_and_sample_z_inverts_integer_grid():
    vol = np.full((5, 4, 4), 3.25, np.float32)
    np.testing.assert_allclose(grid.upsample_z(vol, 4.89), 3.25, atol=1e-5)
    rng = np.random.default_rng(1)
    v = rng.random((6, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(grid.sample_z(grid.upsample_z(v, 3), 6, 3), v, atol=1e-6)


def test_crop_to_grid_takes_the_first_slices_and_refuses_short_references():
    ref = np.arange(130)[:, None, None] * np.ones((1, 2, 2))
    out = grid.crop_to_grid(ref, 16, 8)
    assert out.shape == (121, 2, 2)
    assert out[120, 0, 0] == 120
    with pytest.raises(ValueError, match="fewer than"):
        grid.crop_to_grid(ref[:100], 16, 8)


def test_upsample_z_rejects_2d_images():
    with pytest.raises(ValueError, match="3D"):
        grid.upsample_z(np.zeros((4, 4)), 2)
