"""Tests for isonet_ij.psf: PSF models, measured beads, h_iso / h_rot / h_split, kernels.

References are independent of the code under test: textbook FWHM formulas, analytic
Gaussians (the split of a Gaussian is a Gaussian with the variances subtracted), the
analytic sheet profile, and scipy.optimize.nnls on the projected 2D split problem.
"""

import json
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import nnls
from scipy.signal import fftconvolve

from isonet_ij import psf as P
from isonet_ij.psf._arrays import pad_to  # centre crop/pad, a helper of the psf package
from isonet_ij.volume_io import write_volume

N_WATER = 1.33
VS = 0.1  # um, isotropic grid of the optical PSFs below


def _centroid_offset(h):
    idx = np.indices(h.shape)
    c = np.array([(h * idx[a]).sum() / h.sum() for a in range(h.ndim)])
    return c - np.array(h.shape) // 2


def _axial_fwhm(lam_nm, na, n=N_WATER, k=0.88):
    return k * lam_nm / 1000 / (n - math.sqrt(n * n - na * na))


def _assert_proper_psf(h, *, ndim=3):
    assert h.dtype == np.float32
    assert h.ndim == ndim
    assert all(s % 2 == 1 for s in h.shape), h.shape
    assert h.min() >= 0
    assert abs(float(h.sum(dtype=np.float64)) - 1) < 1e-5
    assert np.all(np.abs(_centroid_offset(h.astype(np.float64))) < 0.05), _centroid_offset(h)
    assert np.unravel_index(np.argmax(h), h.shape) == tuple(s // 2 for s in h.shape)


def _gauss3(sz, sy, sx, shape):
    axes = [np.arange(n) - n // 2 for n in shape]
    g = [
        np.exp(-(a**2) / (2 * s * s)) if s > 0 else (a == 0) * 1.0
        for a, s in zip(axes, (sz, sy, sx))
    ]
    h = g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    return (h / h.sum()).astype(np.float32)


@pytest.fixture(scope="module")
def optical():
    """Paper PSFs (Table 1) at 0.1 um voxels, default shapes."""
    return {
        "gaussian": P.gaussian_psf(2, 8),
        "confocal": P.confocal_psf(**P.PAPER_DEFAULTS["confocal"], voxel_size=VS),
        "lightsheet": P.lightsheet_psf(**P.PAPER_DEFAULTS["lightsheet"], voxel_size=VS),
        "widefield": P.widefield_psf(na=1.1, wavelength=520, voxel_size=VS),
    }


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("kind", ["gaussian", "confocal", "lightsheet", "widefield"])
def test_every_kind_is_normalized_centred_odd_nonnegative(optical, kind):
    _assert_proper_psf(optical[kind])


@pytest.mark.parametrize(("sxy", "sz"), [(2, 8), (1.5, 4), (3, 3)])
def test_gaussian_fwhm_matches_sigma(sxy, sz):
    h = P.gaussian_psf(sxy, sz)
    assert h.shape == (2 * math.ceil(4 * sz) + 1,) + (2 * math.ceil(4 * sxy) + 1,) * 2
    fz, fy, fx = P.psf_fwhm(h)
    assert fz == pytest.approx(2.3548 * sz, rel=0.03)
    assert fy == pytest.approx(2.3548 * sxy, rel=0.03)
    assert fx == pytest.approx(2.3548 * sxy, rel=0.03)


@pytest.mark.parametrize("na", [0.8, 1.1])
def test_widefield_fwhm_matches_nonparaxial_formulas(na):
    vs, lam = 0.05, 520
    fz0, fr0 = _axial_fwhm(lam, na), 0.51 * lam / 1000 / na
    shape = (2 * math.ceil(2 * fz0 / vs) + 1,) + (2 * math.ceil(2 * fr0 / vs) + 1,) * 2
    h = P.widefield_psf(na=na, wavelength=lam, voxel_size=vs, shape=shape)
    fz, fy, fx = P.psf_fwhm(h, vs)
    assert fz == pytest.approx(fz0, rel=0.15)
    assert fx == pytest.approx(fr0, rel=0.15)
    assert fy == pytest.approx(fx, rel=1e-6)


@pytest.mark.parametrize("na", [0.8, 1.1])
def test_confocal_fwhm_matches_formulas(na):
    # The formulas 0.37 lambda/NA and 0.64 lambda/(n - sqrt(n^2 - NA^2)) are for equal
    # excitation and emission wavelengths. For a product of two near-Gaussian spots,
    # 1/w^2 = 1/w_ex^2 + 1/w_em^2, i.e. lambda_eff = sqrt(2) l_ex l_em / sqrt(l_ex^2 + l_em^2)
    # (503 nm for 488/520, within 0.2 % of their mean, 504 nm); the emission wavelength
    # alone would overestimate both widths by 3 %.
    vs, ex, em = 0.05, 488.0, 520.0
    lam = math.sqrt(2) * ex * em / math.hypot(ex, em)
    assert lam == pytest.approx((ex + em) / 2, rel=0.002)
    fz0, fr0 = _axial_fwhm(lam, na, k=0.64), 0.37 * lam / 1000 / na
    shape = (2 * math.ceil(2 * fz0 / vs) + 1,) + (2 * math.ceil(2 * fr0 / vs) + 1,) * 2
    h = P.confocal_psf(na=na, wavelength_ex=ex, wavelength_em=em, voxel_size=vs, shape=shape)
    _assert_proper_psf(h)
    fz, _, fx = P.psf_fwhm(h, vs)
    assert fz == pytest.approx(fz0, rel=0.15)
    assert fx == pytest.approx(fr0, rel=0.15)
    # and it is narrower than the widefield detection PSF, axially and laterally
    wf = P.widefield_psf(na=na, wavelength=em, voxel_size=vs, shape=shape)
    assert fz < 0.8 * P.psf_fwhm(wf, vs)[0]
    assert fx < 0.8 * P.psf_fwhm(wf, vs)[2]


@pytest.mark.parametrize("na_illum", [0.1, 0.3])
def test_lightsheet_axial_profile_is_detection_times_sheet(na_illum):
    ex, em, na = 488.0, 520.0, 0.8
    h = P.lightsheet_psf(
        na_detect=na, na_illum=na_illum, wavelength_ex=ex, wavelength_em=em, voxel_size=VS
    )
    _assert_proper_psf(h)
    nz = h.shape[0]
    w0 = ex / 1000 / (math.pi * na_illum)  # 1/e^2 radius, um
    z = (np.arange(nz) - nz // 2) * VS
    det = P.widefield_psf(na=na, wavelength=em, voxel_size=VS, shape=(nz, 3, 3))[:, 1, 1]
    expected = det * np.exp(-2 * z**2 / w0**2)
    got = h[:, h.shape[1] // 2, h.shape[2] // 2]
    np.testing.assert_allclose(got / got.max(), expected / expected.max(), atol=1e-5)
    # Gaussian approximation of the product: 1/F^2 = 1/F_det^2 + 1/F_sheet^2
    f_sheet = w0 * math.sqrt(2 * math.log(2))
    f_expected = (_axial_fwhm(em, na) ** -2 + f_sheet**-2) ** -0.5
    assert P.psf_fwhm(h, VS)[0] == pytest.approx(f_expected, rel=0.05)
    # same lateral FWHM as the detection PSF
    det_lat = P.widefield_psf(na=na, wavelength=em, voxel_size=VS, shape=(1, 15, 15))
    assert P.psf_fwhm(h, VS)[2] == pytest.approx(P.psf_fwhm(det_lat, VS)[2], rel=1e-3)


def test_widefield_with_rectangular_pixels_matches_square_pixels():
    shape_sq = (41, 21, 21)
    sq = P.widefield_psf(na=1.1, wavelength=520, voxel_size=(0.1, 0.05, 0.05), shape=shape_sq)
    rect = P.widefield_psf(na=1.1, wavelength=520, voxel_size=(0.1, 0.1, 0.05), shape=(41, 11, 21))
    _assert_proper_psf(rect)
    fz_sq, _, fx_sq = P.psf_fwhm(sq, (0.1, 0.05, 0.05))
    fz, fy, fx = P.psf_fwhm(rect, (0.1, 0.1, 0.05))
    assert fx == pytest.approx(fx_sq, rel=0.02)
    assert fz == pytest.approx(fz_sq, rel=0.02)
    assert fy == pytest.approx(fx_sq, rel=0.15)  # 0.1 um samples of a 0.26 um FWHM


def test_optical_psf_rejects_bad_parameters():
    with pytest.raises(ValueError, match="smaller than `n_immersion`"):
        P.confocal_psf(na=1.4, wavelength_ex=488, wavelength_em=520, voxel_size=VS)
    with pytest.raises(ValueError, match="did you mean 520 nm"):
        P.widefield_psf(na=1.1, wavelength=0.52, voxel_size=VS)
    with pytest.raises(ValueError, match="odd"):
        P.widefield_psf(na=1.1, wavelength=520, voxel_size=VS, shape=(10, 11, 11))


# --------------------------------------------------------------------------- h_iso, h_rot


def test_isotropic_psf_of_gaussian_2_8_is_gaussian_2_2():
    h = P.gaussian_psf(2, 8)
    h_iso = P.isotropic_psf(h)
    assert h_iso.shape == h.shape
    ref = P.gaussian_psf(2, 2, shape=h.shape)
    assert np.abs(h_iso - ref).max() < 1e-3 * ref.max()
    _assert_proper_psf(h_iso)


def test_isotropic_psf_is_radially_symmetric_with_the_lateral_profile(optical):
    h = optical["confocal"]
    m = min(h.shape)
    h_iso = P.isotropic_psf(h, shape=(m, m, m))
    np.testing.assert_allclose(h_iso, np.swapaxes(h_iso, 0, 1), atol=1e-7)
    np.testing.assert_allclose(h_iso, np.swapaxes(h_iso, 0, 2), atol=1e-7)
    # its profile along z equals the lateral profile of h (both normalized to the peak)
    lat = h[h.shape[0] // 2, h.shape[1] // 2, :]
    iso_z = h_iso[:, m // 2, m // 2]
    np.testing.assert_allclose(iso_z / iso_z.max(), lat / lat.max(), atol=0.01)


def test_rotated_psf_swaps_axial_onto_lateral_axis():
    h = _gauss3(6, 1.5, 3, (25, 9, 19))
    xz = P.rotated_psf(h, "xz")
    yz = P.rotated_psf(h, "yz")
    np.testing.assert_array_equal(xz, np.swapaxes(h, 0, 1))
    np.testing.assert_array_equal(yz, np.swapaxes(h, 0, 2))
    assert P.psf_fwhm(xz)[1] == pytest.approx(2.3548 * 6, rel=0.02)
    assert P.psf_fwhm(yz)[2] == pytest.approx(2.3548 * 6, rel=0.02)
    cube = P.rotated_psf(h, "xz", cube=True)
    assert cube.shape == (25, 25, 25)
    _assert_proper_psf(cube)
    with pytest.raises(ValueError, match="'xz' or 'yz'"):
        P.rotated_psf(h, "xy")


# --------------------------------------------------------------------------- h_split


def _negative_mass(k):
    k = np.asarray(k, np.float64)
    return -k[k < 0].sum() / k.sum()


@pytest.mark.parametrize("plane", ["xz", "yz"])
def test_split_of_gaussian_is_the_analytic_gaussian(plane):
    h = P.gaussian_psf(2, 8)
    result = P.split_psf_with_info(h, plane)
    hs, info = result.kernel, result.info
    h_rot = P.rotated_psf(h, plane)
    assert hs.shape == h_rot.shape
    _assert_proper_psf(hs)
    assert _negative_mass(hs) < 0.01
    h_iso = P.isotropic_psf(h)
    res = P.split_residual(h_rot, h_iso, hs)
    assert res < 0.05
    assert info["residual"] == pytest.approx(res, rel=1e-3, abs=1e-6)
    # analytic: sigma sqrt(8^2 - 2^2) along the rotated axis, a delta across it
    s = math.sqrt(64 - 4)
    sig = (0, s, 0) if plane == "xz" else (0, 0, s)
    ref = _gauss3(*sig, hs.shape)
    assert np.abs(hs - ref).max() < 0.01 * ref.max()


@pytest.mark.parametrize(
    ("kind", "bound"),
    # measured at 0.1 um voxels (default boxes): confocal 0.0179, light-sheet 0.1339;
    # plain Richardson-Lucy reaches 0.034 and 0.156. The light-sheet floor is the
    # non-negative optimum (enlarging the support does not lower it).
    [("confocal", 0.022), ("lightsheet", 0.145)],
)
def test_split_residual_of_optical_psfs(optical, kind, bound):
    h = optical[kind]
    h_iso = P.isotropic_psf(h)
    h_rot = P.rotated_psf(h, "xz")
    hs = P.split_psf(h, "xz", h_iso=h_iso)
    _assert_proper_psf(hs)
    assert _negative_mass(hs) < 0.01
    res = P.split_residual(h_rot, h_iso, hs)
    assert res < bound
    # a non-trivial split: much better than no split at all (h_split = delta)
    assert res < 0.5 * P.split_residual(h_rot, h_iso, np.ones((1, 1, 1)))


def test_split_nnls_beats_richardson_lucy_on_confocal(optical):
    h = optical["confocal"]
    h_iso = P.isotropic_psf(h)
    nnls_info = P.split_psf_with_info(h, "xz", h_iso=h_iso).info
    rl_info = P.split_psf_with_info(h, "xz", h_iso=h_iso, method="rl").info
    assert nnls_info["residual"] < 0.7 * rl_info["residual"]


def _conv_matrix(k, shape):
    """Dense matrix of full 2D convolution with k acting on arrays of `shape`."""
    n = shape[0] * shape[1]
    cols = []
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1
        cols.append(fftconvolve(k, e.reshape(shape), mode="full").ravel())
    return np.array(cols).T


def test_split_kernel_solves_the_projected_2d_problem(optical):
    # projection commutes with convolution ...
    h = optical["confocal"]
    h_iso = P.isotropic_psf(h)
    hs = P.split_psf(h, "xz", h_iso=h_iso).astype(np.float64)
    m = min(h_iso.shape)
    k3 = P.isotropic_psf(h, shape=(m, m, m)).astype(np.float64)
    lhs = fftconvolve(k3, hs, mode="full").sum(axis=0)
    rhs = fftconvolve(k3.sum(axis=0), hs.sum(axis=0), mode="full")
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)
    # ... so the projected 3D split is feasible for the 2D problem; it must come close to
    # the 2D non-negative optimum (scipy's Lawson-Hanson NNLS as the reference).
    y2 = P.rotated_psf(h, "xz").astype(np.float64).sum(axis=0)
    k2 = k3.sum(axis=0)
    a = _conv_matrix(k2, y2.shape)
    full = tuple(s + t - 1 for s, t in zip(y2.shape, k2.shape))
    b = np.zeros(full)
    o = [(f - s) // 2 for f, s in zip(full, y2.shape)]
    b[o[0] : o[0] + y2.shape[0], o[1] : o[1] + y2.shape[1]] = y2
    x_opt, rnorm = nnls(a, b.ravel(), maxiter=50 * a.shape[1])
    opt = rnorm / np.linalg.norm(y2)
    ours = np.linalg.norm(a @ hs.sum(axis=0).ravel() - b.ravel()) / np.linalg.norm(y2)
    assert opt - 1e-6 <= ours <= opt + 0.005


def test_split_validates_arguments():
    h = P.gaussian_psf(1, 2)
    with pytest.raises(ValueError, match="'nnls' or 'rl'"):
        P.split_psf(h, "xz", method="wiener")
    with pytest.raises(ValueError, match="'xz' or 'yz'"):
        P.split_psf(h, "zz")


# --------------------------------------------------------------------------- 2D kernels


def test_training_kernels_full_orientation():
    sz, sy, sx = 6.0, 1.5, 3.0  # distinct lateral sigmas tell the two kernels apart
    h = _gauss3(sz, sy, sx, (37, 13, 19))
    k = P.training_kernels(h, "full")
    for name, lat in (("xz", sx), ("yz", sy)):
        kk = k[name]
        _assert_proper_psf(kk, ndim=2)
        rows = P.fwhm_1d(kk[:, kk.shape[1] // 2])
        cols = P.fwhm_1d(kk[kk.shape[0] // 2, :])
        assert rows == pytest.approx(2.3548 * sz, rel=0.03), name
        assert cols == pytest.approx(2.3548 * lat, rel=0.03), name


def test_training_kernels_gaussian_2_8():
    h = P.gaussian_psf(2, 8)
    full = P.training_kernels(h, "full")
    split = P.training_kernels(h, "split")
    for name in ("xz", "yz"):
        kf, ks = full[name], split[name]
        _assert_proper_psf(kf, ndim=2)
        _assert_proper_psf(ks, ndim=2)
        assert P.fwhm_1d(kf[:, kf.shape[1] // 2]) == pytest.approx(2.3548 * 8, rel=0.03)
        assert P.fwhm_1d(kf[kf.shape[0] // 2]) == pytest.approx(2.3548 * 2, rel=0.03)
        rows = ks.sum(axis=1, dtype=np.float64)
        u = np.arange(rows.size) - rows.size // 2
        assert math.sqrt((rows * u**2).sum()) == pytest.approx(math.sqrt(60), rel=0.03)
        cols = ks.sum(axis=0, dtype=np.float64)
        u = np.arange(cols.size) - cols.size // 2
        assert math.sqrt((cols * u**2).sum()) < 0.3  # a delta across
        # negligible borders (< 1e-4 of the mass) are cropped
        assert kf.shape[0] < h.shape[0]
    # "full" == the documented projections (up to the border crop)
    ref = pad_to(h.sum(axis=1), full["xz"].shape)
    np.testing.assert_allclose(full["xz"], ref / ref.sum(), atol=1e-7)


def test_training_kernels_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'full' or 'split'"):
        P.training_kernels(P.gaussian_psf(1, 2), "both")


# --------------------------------------------------------------------------- measured PSFs


def _bead(shape, centre, spacing, sigma_um):
    idx = np.indices(shape, dtype=np.float64)
    r2 = sum(((idx[a] - centre[a]) * spacing[a] / sigma_um[a]) ** 2 for a in range(3))
    return np.exp(-r2 / 2)


@pytest.mark.parametrize("noise", [0.0, 5.0])
def test_load_psf_centres_normalizes_and_resamples_a_bead(tmp_path, noise):
    dx, dz = 0.1, 0.3
    sigma = (0.6, 0.2, 0.2)  # um
    bead = _bead((21, 41, 41), (9.6, 22.3, 17.8), (dz, dx, dx), sigma)
    rng = np.random.default_rng(0)
    data = (100 + 1000 * bead + noise * rng.standard_normal(bead.shape)).astype(np.float32)
    path = write_volume(tmp_path / "bead.tif", data, voxel_size=(dz, dx, dx))
    with pytest.warns(UserWarning, match="normalized it to sum 1"):
        h = P.load_psf(path)
    assert h.dtype == np.float32
    assert all(s % 2 == 1 for s in h.shape)
    assert h.min() >= 0
    assert float(h.sum(dtype=np.float64)) == pytest.approx(1, abs=1e-5)
    tol = 0.05 if noise == 0 else 0.1
    assert np.all(np.abs(_centroid_offset(h.astype(np.float64))) < tol)
    assert np.unravel_index(np.argmax(h), h.shape) == tuple(s // 2 for s in h.shape)
    # the clipped background noise must not add mass all over the box
    core = pad_to(h, (37, 13, 13))  # +-3 sigma on the dx grid
    assert float(core.sum(dtype=np.float64)) > 0.97
    # isotropic grid at dx: the bead's z extent is now 3x as many voxels
    fz, fy, fx = P.psf_fwhm(h, dx)
    assert fz == pytest.approx(2.3548 * sigma[0], rel=0.03)
    assert fy == pytest.approx(2.3548 * sigma[1], rel=0.03)
    assert fx == pytest.approx(2.3548 * sigma[2], rel=0.03)


@pytest.mark.parametrize("kind", ["gaussian", "lightsheet"])
def test_load_psf_keeps_a_normalized_psf_silently(optical, tmp_path, kind):
    # a model's psf.tif: its border (defocus rings) is signal, not background
    h0 = optical[kind]
    path = write_volume(tmp_path / "psf.tif", h0, voxel_size=VS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = P.load_psf(path)
    assert h.shape == h0.shape
    assert np.abs(h - h0).max() < 1e-5 * h0.max()


def test_load_psf_uses_target_spacing(tmp_path):
    h0 = P.gaussian_psf(4, 8)
    path = write_volume(tmp_path / "psf.tif", h0, voxel_size=0.05)
    h = P.load_psf(path, target_spacing=0.1)
    fz, _, fx = P.psf_fwhm(h, 0.1)
    assert fz == pytest.approx(2.3548 * 8 * 0.05, rel=0.03)
    assert fx == pytest.approx(2.3548 * 4 * 0.05, rel=0.03)


# --------------------------------------------------------------------------- validation


def test_validate_psf_rejects_even_size():
    with pytest.raises(ValueError, match=r"odd sizes.*\(9, 10, 9\)"):
        P.validate_psf(np.ones((9, 10, 9)))


def test_validate_psf_rejects_negative_values():
    h = np.ones((3, 3, 3))
    h[0, 0, 0] = -0.5
    with pytest.raises(ValueError, match="negative values"):
        P.validate_psf(h)


def test_validate_psf_rejects_zero_sum():
    with pytest.raises(ValueError, match="sums to 0"):
        P.validate_psf(np.zeros((3, 3, 3)))


def test_validate_psf_rejects_2d():
    with pytest.raises(ValueError, match="must be a 3D"):
        P.validate_psf(np.ones((3, 3)))


def test_validate_psf_rejects_nan():
    h = np.ones((3, 3, 3))
    h[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        P.validate_psf(h)


def test_validate_psf_normalizes_and_clips_float_noise():
    h = np.ones((3, 3, 3))
    h[0, 0, 0] = -1e-9
    out = P.validate_psf(2 * h)
    assert out.dtype == np.float32
    assert out.min() == 0
    assert float(out.sum(dtype=np.float64)) == pytest.approx(1, abs=1e-6)


# --------------------------------------------------------------------------- measures


def test_fwhm_1d_linear_interpolation():
    assert P.fwhm_1d([0, 1, 2, 3, 4, 3, 2, 1, 0]) == pytest.approx(4.0)
    assert P.fwhm_1d([0, 2, 2, 0]) == pytest.approx(2.0)
    assert math.isnan(P.fwhm_1d([4, 3, 2, 1]))  # no left crossing


# --------------------------------------------------------------------------- --psf specs


def test_parse_gaussian_spec_and_default():
    h, info = P.parse_psf_spec("gaussian:1.5,4", voxel_size=VS)
    np.testing.assert_array_equal(h, P.gaussian_psf(1.5, 4))
    assert info["kind"] == "gaussian"
    assert (info["sigma_xy"], info["sigma_z"]) == (1.5, 4.0)
    _, info = P.parse_psf_spec("gaussian", voxel_size=VS)
    assert (info["sigma_xy"], info["sigma_z"]) == (2.0, 8.0)
    json.dumps(info)


def test_parse_confocal_spec_defaults_are_the_paper_values():
    h, info = P.parse_psf_spec("confocal", voxel_size=VS)
    ref = P.confocal_psf(**P.PAPER_DEFAULTS["confocal"], voxel_size=VS)
    np.testing.assert_array_equal(h, ref)
    assert info["na"] == 1.1 and info["n_immersion"] == 1.33
    assert info["wavelength_ex"] == 488 and info["wavelength_em"] == 520
    assert info["units"]["wavelength_em"] == "nm"
    assert info["voxel_size"] == [VS] * 3
    assert info["shape"] == list(h.shape)
    json.dumps(info)


def test_parse_confocal_spec_with_keys():
    h, info = P.parse_psf_spec("confocal:na=1.0, em=600", voxel_size=VS)
    ref = P.confocal_psf(na=1.0, wavelength_ex=488, wavelength_em=600, voxel_size=VS)
    np.testing.assert_array_equal(h, ref)
    assert info["na"] == 1.0 and info["wavelength_em"] == 600 and info["wavelength_ex"] == 488


def test_parse_lightsheet_spec():
    h, info = P.parse_psf_spec(
        "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520", voxel_size=VS
    )
    ref = P.lightsheet_psf(**P.PAPER_DEFAULTS["lightsheet"], voxel_size=VS)
    np.testing.assert_array_equal(h, ref)
    assert info["kind"] == "lightsheet"
    assert info["sheet_waist_um"] == pytest.approx(0.488 / (math.pi * 0.1))
    json.dumps(info)


def test_parse_psf_file_spec(tmp_path):
    h0 = P.gaussian_psf(2, 4)
    path = write_volume(tmp_path / "psf.tif", h0, voxel_size=VS)
    h, info = P.parse_psf_spec(str(path), voxel_size=VS)
    assert np.abs(h - h0).max() < 1e-5 * h0.max()
    assert info["kind"] == "file" and info["path"] == str(path.resolve())
    assert len(info["sha256"]) == 64
    json.dumps(info)


def test_parse_psf_spec_names_a_typo_key_and_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown key 'ne'.*na, n, ex, em"):
        P.parse_psf_spec("confocal:ne=1.33", voxel_size=VS)


def test_parse_psf_spec_rejects_malformed_value():
    with pytest.raises(ValueError, match="'na'.*must be a number"):
        P.parse_psf_spec("confocal:na=high", voxel_size=VS)


def test_parse_psf_spec_rejects_one_gaussian_sigma():
    with pytest.raises(ValueError, match="two sigmas"):
        P.parse_psf_spec("gaussian:2", voxel_size=VS)


def test_parse_psf_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match=r"unknown PSF kind 'confocl'.*valid kinds"):
        P.parse_psf_spec("confocl:na=1.1", voxel_size=VS)


def test_parse_psf_spec_missing_file():
    with pytest.raises(FileNotFoundError, match="neither a known PSF kind nor an existing file"):
        P.parse_psf_spec("no/such/psf.tif", voxel_size=VS)


def test_paper_defaults_are_physical():
    assert P.PAPER_DEFAULTS["gaussian"] == {"sigma_xy": 2.0, "sigma_z": 8.0}
    assert P.PAPER_DEFAULTS["confocal"]["na"] == 1.1
    ls = P.PAPER_DEFAULTS["lightsheet"]
    assert (ls["na_detect"], ls["na_illum"]) == (0.8, 0.1)
    for d in (P.PAPER_DEFAULTS["confocal"], ls):
        assert d["n_immersion"] == 1.33
        assert d["wavelength_ex"] < d["wavelength_em"]  # Stokes shift


def test_psf_for_volume_uses_the_lateral_grid_and_needs_calibration_for_physical_kinds():
    from isonet_ij.psf import parse_psf_spec, psf_for_volume

    h, info = psf_for_volume("confocal:na=1.1", (0.4, 0.1, 0.1))
    h_ref, _ = parse_psf_spec("confocal:na=1.1", voxel_size=(0.1, 0.1, 0.1))
    np.testing.assert_array_equal(h, h_ref)
    with pytest.raises(ValueError, match="needs the volume's xy voxel size.*Image > Properties"):
        psf_for_volume("confocal:na=1.1", None, calibration_hint="set it (Image > Properties)")
    h, _ = psf_for_volume("gaussian:2,8", None)
    assert h.shape[0] > h.shape[1]
