"""isonet_ij.psf beads and estimates: bead averaging and axial-blur estimation (synthetic, independent truths)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from isonet_ij import psf as P
from isonet_ij.psf import estimate_axial_blur, psf_from_beads


def _model(kind):
    if kind == "gaussian":
        return P.gaussian_psf(1.5, 3.0, shape=(21, 13, 13))
    if kind == "confocal":
        return P.confocal_psf(na=1.1, wavelength_ex=488, wavelength_em=520,
                              voxel_size=(0.1, 0.04, 0.04), shape=(31, 15, 15))
    return P.lightsheet_psf(na_detect=0.8, na_illum=0.1, wavelength_ex=488, wavelength_em=520,
                            voxel_size=(0.4, 0.08, 0.08), shape=(31, 15, 15))


def _beads(h, *, seed=0, shape=(64, 80, 80), photons=2000, n_pairs=4, grid=4):
    """Beads at random sub-voxel offsets (Fourier-shifted model PSF), touching pairs, Poisson."""
    rng = np.random.default_rng(seed)
    vol = np.zeros(shape)
    half = [s // 2 for s in h.shape]
    pad = np.pad(h.astype(np.float64), [(s, s) for s in half])
    fpad = np.fft.fftn(pad)
    c = [s // 2 for s in pad.shape]
    pts = [(z, y, x) for z in (20, shape[0] - 20)
           for y in np.linspace(13, shape[1] - 14, grid).astype(int)
           for x in np.linspace(13, shape[2] - 14, grid).astype(int)]
    for k, (z, y, x) in enumerate(pts):
        sh = np.fft.ifftn(ndimage.fourier_shift(fpad, rng.uniform(-0.5, 0.5, 3))).real
        sub = sh[tuple(slice(ci - hi, ci + hi + 1) for ci, hi in zip(c, half))]
        sub = sub / sub.max()
        sl = [slice(p - hi, p + hi + 1) for p, hi in zip((z, y, x), half)]
        vol[tuple(sl)] += sub
        if k < n_pairs:  # a touching partner 3-4 voxels away along y
            d = int(rng.integers(3, 5))
            sl[1] = slice(y - half[1] + d, y + half[1] + 1 + d)
            vol[tuple(sl)] += 0.9 * sub
    return rng.poisson(np.clip(vol, 0, None) * photons + 20).astype(np.uint16)


@pytest.mark.parametrize("kind", ["gaussian", "confocal", "lightsheet"])
def test_beads_fwhm_within_10_percent(kind, tmp_path):
    h = _model(kind)
    psf, rep = psf_from_beads(_beads(h), voxel_size=(0.2, 0.05, 0.05), plot=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert rep["n_used"] >= 20
    assert rep["n_used"] <= 32 - 2  # touching pairs rejected (merged or clustered)
    assert psf.dtype == np.float32 and abs(psf.sum() - 1) < 1e-5
    assert all(s % 2 == 1 for s in psf.shape)
    np.testing.assert_allclose(rep["fwhm_voxels"], P.psf_fwhm(h), rtol=0.10)
    np.testing.assert_allclose(rep["fwhm_um"][0], rep["fwhm_voxels"][0] * 0.2, rtol=1e-6)
    if kind == "gaussian":
        np.testing.assert_allclose(rep["gaussian_sigma_voxels"], (3.0, 1.5, 1.5), rtol=0.10)


def test_beads_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no bead"):
        psf_from_beads(rng.poisson(20, (32, 40, 40)).astype(np.uint16))
    h = _model("gaussian")
    sat = _beads(h, photons=200000).astype(np.float64)
    sat = np.clip(sat, 0, 60000).astype(np.uint16)
    sat[sat >= 60000] = 65535
    with pytest.raises(ValueError, match="saturated.*lower laser power"):
        psf_from_beads(sat)
    # one dense cluster only: nothing isolated
    dense = np.zeros((48, 48, 48))
    for dy in (0, 4, 8):
        dense[24, 20 + dy, 24] = 1.0
    dense = ndimage.gaussian_filter(dense, (3, 1.5, 1.5)) * 1e5 + 20
    with pytest.raises(ValueError, match="none is isolated"):
        psf_from_beads(np.random.default_rng(1).poisson(dense).astype(np.uint16))


def test_cli_from_beads(tmp_path):
    from isonet_ij.cli import main
    from isonet_ij.volume_io import read_volume, write_volume

    src = write_volume(tmp_path / "beads.tif", _beads(_model("gaussian"), grid=3),
                       voxel_size=(0.2, 0.05, 0.05))
    out = tmp_path / "psf.tif"
    assert main(["psf", "from-beads", str(src), "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    v = read_volume(out)
    assert abs(float(v.data.sum()) - 1) < 1e-4
    rep = json.loads((tmp_path / "r.json").read_text())
    np.testing.assert_allclose(rep["gaussian_sigma_voxels"], (3.0, 1.5, 1.5), rtol=0.10)
    assert main(["psf", "from-beads", str(src), "-o", str(out)]) == 2  # exists, no --force


def test_axial_blur_bad_input():
    with pytest.raises(ValueError, match="at least 4"):
        estimate_axial_blur(np.random.default_rng(0).random((3, 64, 64)), factor=4)
    with pytest.raises(ValueError, match="constant"):
        estimate_axial_blur(np.ones((8, 64, 64)), factor=4)


@pytest.mark.parametrize("factor", [4, 8])
def test_axial_blur_recovers_gaussian_sigma(factor, tmp_path):
    from isonet_ij.phantoms import synthesize

    case = synthesize("nuclei", size=96, psf="gaussian:2,8", factor=factor, seed=0)
    rep = estimate_axial_blur(np.asarray(case["input"]), factor=factor, sigma_xy=2.0,
                              plot=tmp_path / "s.png")
    assert abs(rep["sigma_z"] / 8.0 - 1) < 0.15, rep["sigma_z"]
    assert rep["sigma_extra"] == pytest.approx(np.sqrt(rep["sigma_z"] ** 2 - 4.0))
    assert (tmp_path / "s.png").stat().st_size > 0
    # lateral sigma fitted from the data: still within 15%
    auto = estimate_axial_blur(np.asarray(case["input"]), factor=factor)
    assert auto["sigma_xy_source"] == "lateral spectrum fit"
    assert abs(auto["sigma_z"] / 8.0 - 1) < 0.15, auto["sigma_z"]


def test_axial_blur_psf_spec_parses():
    from isonet_ij.phantoms import synthesize

    case = synthesize("nuclei", size=96, psf="gaussian:2,6", factor=4, seed=1)
    rep = estimate_axial_blur(np.asarray(case["input"]), factor=4, sigma_xy=2.0)
    h, info = P.parse_psf_spec(rep["psf_spec"], voxel_size=(1, 1, 1))
    assert h.ndim == 3 and abs(float(h.sum()) - 1) < 1e-4
    assert info["kind"] == "gaussian"
    json.dumps({k: v for k, v in rep.items() if not k.endswith("spectrum") and k != "frequencies"})


def test_auto_confocal_fits_the_na_of_the_phantom_psf(tmp_path, capsys):
    """`isonet psf estimate --model confocal:...` keeps the optical model's shape and fits its NA."""
    from isonet_ij import phantoms
    from isonet_ij.cli import main
    from isonet_ij.volume_io import read_volume, write_volume
    from isonet_ij.psf import shell_extra_sigma

    case = phantoms.synthesize("membranes", size=64, seed=1)  # confocal NA 1.1, factor 4, 0.1 um voxels
    write_volume(tmp_path / "in.tif", case["input"], voxel_size=(0.4, 0.1, 0.1))
    capsys.readouterr()
    assert main(["psf", "estimate", str(tmp_path / "in.tif"), "--model", "confocal:n=1.33,ex=488,em=520",
                 "-o", str(tmp_path / "psf.tif")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fit, spec = summary["model_fit"], summary["psf_spec_model"]
    assert spec.startswith("confocal:na=") and "em=520" in spec
    assert fit["value"] == pytest.approx(1.1, rel=0.1) and not fit["at_bound"]
    h, _ = P.parse_psf_spec(spec, voxel_size=(0.1, 0.1, 0.1))
    assert shell_extra_sigma(h, summary["band"]) == pytest.approx(summary["sigma_extra"], rel=0.02)
    written = read_volume(tmp_path / "psf.tif")
    np.testing.assert_allclose(written.data, h, rtol=1e-5, atol=1e-8)
    assert written.voxel_size == pytest.approx((0.1, 0.1, 0.1))


def test_auto_model_bad_input():
    from isonet_ij.psf import auto_psf_spec, fit_optical_psf

    rep = {"sigma_extra": 2.0, "band": [0.01, 0.1]}
    with pytest.raises(ValueError, match="confocal, widefield"):
        fit_optical_psf(rep, "gaussian", xy_voxel_size=0.1)
    with pytest.raises(ValueError, match="na is what auto fits"):
        fit_optical_psf(rep, "confocal:na=1.1", xy_voxel_size=0.1)
    vol = np.random.default_rng(0).random((8, 32, 32))
    with pytest.raises(ValueError, match="xy voxel size"):
        auto_psf_spec(vol, 4.0, model="confocal")


def test_plots_leave_the_matplotlib_backend_alone(tmp_path, monkeypatch):
    """Library figures draw on their own Agg canvas: no matplotlib.use() (global state)."""
    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError("a library function switched the matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    h = P.gaussian_psf(1.5, 3.0, shape=(21, 13, 13))
    P.plot_bead_psf(h, {"voxel_size": [0.2, 0.05, 0.05], "gaussian_sigma_voxels": [3.0, 1.5, 1.5],
                        "fwhm_um": [1.4, 0.18, 0.18]}, tmp_path / "beads.png")
    k = np.linspace(0, 0.12, 8)
    P.plot_spectra({"frequencies": k, "axial_spectrum": np.exp(-k), "lateral_spectrum": np.ones(8),
                    "model_spectrum": np.exp(-k), "sigma_z": 3.9, "band": [0.02, 0.1]},
                   tmp_path / "spectra.png")
    for name in ("beads.png", "spectra.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
