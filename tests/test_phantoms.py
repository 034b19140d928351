"""Phantoms and image formation (eq. 1): determinism, structure, and the forward model
checked against independent routes (scipy.ndimage convolution, Poisson statistics)."""

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from isonet_ij import phantoms
from isonet_ij.cli import main
from isonet_ij.volume_io import read_volume


def _gaussian_kernel(sigma_zyx, radius_zyx):
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in radius_zyx], indexing="ij")
    h = np.exp(-sum(g**2 / (2 * s**2) for g, s in zip(grids, sigma_zyx)))
    return (h / h.sum()).astype(np.float32)


def _reflect_index(j, n):
    """Half-sample symmetric boundary: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..."""
    j = np.mod(j, 2 * n)
    return np.where(j >= n, 2 * n - 1 - j, j)


def _convolved_slice(f, h, z):
    """Slice ``z`` of ``h * f`` with reflect boundaries, by direct summation over the
    kernel's z taps of 2D ``scipy.ndimage.convolve`` (an independent route to FFT)."""
    cz = h.shape[0] // 2
    out = np.zeros(f.shape[1:])
    for k in range(h.shape[0]):
        src = _reflect_index(z - (k - cz), f.shape[0])
        out += ndi.convolve(f[src].astype(np.float64), h[k].astype(np.float64), mode="reflect")
    return out


def _touching_labels(labels):
    """Number of labels with a 26-neighbour carrying another (non-zero) label."""
    hi = ndi.maximum_filter(labels, size=3)
    lo = ndi.minimum_filter(np.where(labels == 0, labels.max() + 1, labels), size=3)
    touch = (labels > 0) & ((hi != labels) | ((lo != labels) & (lo <= labels.max())))
    return len(np.unique(labels[touch]))


# --------------------------------------------------------------------------- textures


def test_smooth_noise_is_seeded_in_unit_range_and_smooth():
    a = phantoms.smooth_noise((24, 32, 40), scale=4.0, seed=3)
    b = phantoms.smooth_noise((24, 32, 40), scale=4.0, seed=3)
    c = phantoms.smooth_noise((24, 32, 40), scale=4.0, seed=4)
    assert a.dtype == np.float32 and a.shape == (24, 32, 40)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert 0.45 < a.mean() < 0.55
    # smooth: neighbouring voxels correlate strongly, unlike white noise
    corr = np.corrcoef(a[:, :, :-1].ravel(), a[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8


def test_smooth_noise_rejects_bad_scale():
    with pytest.raises(ValueError, match="`scale` must be a positive"):
        phantoms.smooth_noise((8, 8, 8), scale=0, seed=0)


# --------------------------------------------------------------------------- nuclei


def test_target_nuclei_count_scales_1500_per_512_cube_with_volume():
    assert phantoms.target_nuclei_count((512, 512, 512)) == 1500
    assert phantoms.target_nuclei_count((256, 256, 256)) == 188
    assert phantoms.target_nuclei_count((128, 128, 128)) == 23
    assert phantoms.target_nuclei_count((64, 128, 128)) == 12


@pytest.mark.parametrize(("size", "seed"), [(96, 0), (128, 1)])
def test_nuclei_count_within_10_percent_of_target(size, seed):
    f, labels = phantoms.nuclei((size,) * 3, seed=seed)
    target = phantoms.target_nuclei_count((size,) * 3)
    n = len(np.unique(labels[labels > 0]))
    assert abs(n - target) <= 0.1 * target
    # each nucleus is one connected blob (skimage's labelling, an independent route)
    from skimage.measure import label

    for k in range(1, n + 1):
        assert label(labels == k, connectivity=1).max() == 1


def test_nuclei_labels_support_equals_density_support():
    f, labels = phantoms.nuclei((64, 80, 72), seed=5)
    assert f.dtype == np.float32 and labels.dtype == np.uint16
    assert f.shape == labels.shape == (64, 80, 72)
    np.testing.assert_array_equal(labels > 0, f > 0)
    assert f.min() == 0 and 0.5 < f.max() <= 1
    # labels are consecutive 1..n
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


def test_nuclei_look_like_the_paper_dense_30_to_40_voxel_nuclei_some_touching():
    f, labels = phantoms.nuclei((128, 128, 128), seed=0)
    counts = np.bincount(labels.ravel())[1:]
    # equivalent diameters of nuclei not cut by the border
    sl = ndi.find_objects(labels)
    inner = [
        k for k, s in enumerate(sl) if all(a.start > 0 and a.stop < 128 for a in s)
    ]
    diam = np.cbrt(6 * counts[inner] / np.pi)
    assert 28 < np.median(diam) < 42
    assert 0.2 < (labels > 0).mean() < 0.45  # tissue-like packing
    assert _touching_labels(labels) >= 2  # some touch (watershed has work to do) ...
    assert _touching_labels(labels) < len(counts)  # ... but not all


def test_nuclei_same_seed_same_bytes_other_seed_differs():
    a = phantoms.nuclei((48, 48, 48), seed=11)
    b = phantoms.nuclei((48, 48, 48), seed=11)
    c = phantoms.nuclei((48, 48, 48), seed=12)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert not np.array_equal(a[0], c[0])


# --------------------------------------------------------------------------- membranes


def test_membranes_lie_on_voronoi_boundaries():
    from skimage.segmentation import find_boundaries

    f, cells = phantoms.membranes((64, 64, 64), seed=2)
    assert f.dtype == np.float32 and cells.dtype == np.uint16
    assert cells.min() >= 1  # every voxel belongs to a cell
    boundary = find_boundaries(cells, connectivity=1, mode="thick")
    near_boundary = ndi.binary_dilation(boundary)
    membrane = f > 0.25 * f.max()
    assert membrane.mean() > 0.03
    assert near_boundary[membrane].mean() > 0.95
    # and interior boundaries are mostly bright (membranes are continuous)
    inner = np.zeros_like(boundary)
    inner[2:-2, 2:-2, 2:-2] = True
    assert (f[boundary & inner] > 0.1 * f.max()).mean() > 0.9
    # thin: 1-2 voxels across, far less than a cell
    assert (f > 0).mean() < 0.5


def test_nuclei_membranes_one_nucleus_per_cell_not_crossing_membranes():
    f, labels = phantoms.nuclei_membranes((72, 72, 72), seed=4)
    n_cells = round(72**3 / 36.0**3)
    ids = np.unique(labels[labels > 0])
    assert len(ids) == n_cells
    assert np.all(f[labels > 0] > 0)
    assert _touching_labels(labels) == 0  # nuclei never touch: each in its own cell
    # nuclei are surrounded by dark cytoplasm before the membrane: the shell 1 voxel
    # outside each nucleus holds no membrane
    shell = ndi.binary_dilation(labels > 0) & (labels == 0)
    assert np.percentile(f[shell], 90) < 0.05


def test_phantoms_reject_a_too_small_shape():
    with pytest.raises(ValueError, match="`shape` must be 3 sizes"):
        phantoms.nuclei((2, 64, 64), seed=0)


# --------------------------------------------------------------------------- forward model


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    return ndi.gaussian_filter(rng.random((40, 36, 32)), 1.5).astype(np.float32)


def test_forward_model_delta_psf_without_noise_is_pure_slicing(volume):
    h = np.zeros((3, 3, 3), np.float32)
    h[1, 1, 1] = 1
    g = phantoms.forward_model(volume, h, factor=3)
    assert g.dtype == np.float32 and g.shape == (14, 36, 32)
    np.testing.assert_allclose(g, volume[::3], rtol=0, atol=1e-6)


def test_forward_model_without_noise_preserves_the_mean(volume):
    h = _gaussian_kernel((4.0, 1.5, 1.5), (12, 4, 4))
    g = phantoms.forward_model(volume, h, factor=1)
    assert g.mean() == pytest.approx(volume.mean(), rel=1e-5)


def test_forward_model_matches_ndimage_reflect_convolution_then_slicing(volume):
    # an asymmetric kernel also checks orientation (true convolution) and centring
    h = np.random.default_rng(1).random((7, 3, 5)).astype(np.float32)
    h /= h.sum()
    ref = ndi.convolve(volume.astype(np.float64), h.astype(np.float64), mode="reflect")
    g = phantoms.forward_model(volume, h, factor=4)
    for i in range(g.shape[0]):  # slice i of g lies at slice i*factor of f
        np.testing.assert_allclose(g[i], ref[i * 4], rtol=0, atol=1e-5)


def test_forward_model_noise_is_poisson_at_the_photon_level_plus_read_noise(volume):
    h = _gaussian_kernel((2.0, 1.0, 1.0), (6, 3, 3))
    blurred = phantoms.convolve(volume, h)
    expected = (200.0 / blurred.max()) * blurred[::2] + 10.0
    g = phantoms.forward_model(
        volume, h, factor=2, photons=200.0, read_noise=0.0, background=10.0, seed=7
    )
    assert np.all(g == np.round(g))  # photon counts
    resid = g - expected
    assert abs(resid.mean()) < 0.05 * np.sqrt(expected.mean())
    assert np.var(resid) == pytest.approx(expected.mean(), rel=0.05)  # Poisson: var = mean
    g2 = phantoms.forward_model(
        volume, h, factor=2, photons=200.0, read_noise=3.0, background=10.0, seed=7
    )
    assert np.var(g2 - expected) == pytest.approx(expected.mean() + 9.0, rel=0.05)
    g3 = phantoms.forward_model(
        volume, h, factor=2, photons=200.0, read_noise=3.0, background=10.0, seed=7
    )
    assert g2.tobytes() == g3.tobytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factor": 0}, "`factor` must be an integer >= 1"),
        ({"factor": 2.5}, "`factor` must be an integer >= 1"),
        ({"factor": 2, "photons": -1.0}, "`photons` must be a positive"),
        ({"factor": 2, "read_noise": -1.0}, "`read_noise` must be a non-negative"),
    ],
)
def test_forward_model_rejects_bad_options(volume, kwargs, match):
    h = _gaussian_kernel((1.0, 1.0, 1.0), (2, 2, 2))
    with pytest.raises(ValueError, match=match):
        phantoms.forward_model(volume, h, **kwargs)


def test_convolve_rejects_even_psf(volume):
    with pytest.raises(ValueError, match="odd sizes"):
        phantoms.convolve(volume, np.ones((2, 3, 3), np.float32) / 18)


# --------------------------------------------------------------------------- synthesize


@pytest.mark.parametrize("kind", phantoms.KINDS)
def test_synthesize_input_is_blurred_gt_sliced_before_noise(kind):
    res = phantoms.synthesize(
        kind, size=48, seed=1, photons=None, read_noise=0.0, background=0.0
    )
    f = res["meta"]["factor"]
    assert f == phantoms.DEFAULTS["kinds"][kind]["factor"]
    gt, h = res["gt"].astype(np.float64), res["psf"].astype(np.float64)
    assert res["input"].shape == (-(-48 // f), 48, 48)
    assert h.sum() == pytest.approx(1, abs=1e-4)
    for i in (0, 1, res["input"].shape[0] - 1):  # slice i lies at gt slice i*factor
        ref = _convolved_slice(gt, h, i * f)
        np.testing.assert_allclose(res["input"][i], ref, rtol=0, atol=2e-5)
    for z in (0, 17, 47):
        ref_iso = _convolved_slice(gt, res["psf_iso"], z)
        np.testing.assert_allclose(res["gt_iso"][z], ref_iso, rtol=0, atol=2e-5)
    assert (res["labels"] is None) == (kind == "membranes")
    meta = res["meta"]
    for key in ("kind", "size", "seed", "factor", "psf", "voxel_size_um", "photons",
                "read_noise", "background", "units", "versions"):
        assert key in meta
    json.dumps(meta)  # serialisable


def test_synthesize_photon_level_sets_the_expected_peak_count():
    opts = {"size": 40, "seed": 0, "factor": 1, "read_noise": 0.0}
    clean = phantoms.synthesize("nuclei", photons=None, background=0.0, **opts)["input"]
    noisy = phantoms.synthesize("nuclei", photons=150.0, background=5.0, **opts)["input"]
    expected = clean * (150.0 / clean.max()) + 5.0  # brightest voxel: 150 photons + bg
    peak = np.unravel_index(np.argmax(clean), clean.shape)
    assert abs(noisy[peak] - 155.0) < 5 * np.sqrt(155.0)
    assert noisy.mean() == pytest.approx(expected.mean(), rel=0.01)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "cells"}, "`kind` must be one of"),
        ({"kind": "nuclei", "size": 16}, "`size` must be an integer >= 32"),
        ({"kind": "nuclei", "factor": 0}, "`factor` must be an integer >= 1"),
        ({"kind": "nuclei", "factor": 40}, "leaves 1 input slice"),
        ({"kind": "nuclei", "voxel_size": 0.0}, "`voxel_size` must be a positive"),
        ({"kind": "nuclei", "seed": -1}, "`seed` must be a non-negative integer"),
    ],
)
def test_synthesize_rejects_bad_options(kwargs, match):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=match):
        phantoms.synthesize(kind, size=kwargs.pop("size", 40), **kwargs)


# --------------------------------------------------------------------------- CLI


def _tifs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tif"))}


def test_cli_same_seed_writes_byte_identical_files_other_seed_differs(tmp_path):
    args = ["synth", "nuclei-membranes", "--size", "40", "--seed", "3"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    a, b = _tifs(tmp_path / "a"), _tifs(tmp_path / "b")
    assert set(a) == {"gt.tif", "gt_iso.tif", "input.tif", "psf.tif", "labels.tif"}
    assert a == b
    meta_a = (tmp_path / "a" / "meta.json").read_text()
    assert meta_a == (tmp_path / "b" / "meta.json").read_text()
    assert main(["synth", "nuclei-membranes", "--size", "40", "--seed", "4",
                 "-o", str(tmp_path / "c")]) == 0
    c = _tifs(tmp_path / "c")
    for name in ("gt.tif", "input.tif", "labels.tif"):
        assert c[name] != a[name]
    psf_a, psf_c = (read_volume(d / "psf.tif").data for d in (tmp_path / "a", tmp_path / "c"))
    np.testing.assert_array_equal(psf_a, psf_c)  # the PSF does not depend on the seed


def test_cli_calibration_and_contents(tmp_path):
    out = tmp_path / "m"
    assert main(["synth", "membranes", "--size", "40", "--factor", "5", "--voxel-size",
                 "0.15", "--preview", "-o", str(out)]) == 0
    assert not (out / "labels.tif").exists()
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gt, inp, psf = (read_volume(out / n) for n in ("gt.tif", "input.tif", "psf.tif"))
    np.testing.assert_allclose(gt.voxel_size, (0.15, 0.15, 0.15), rtol=1e-6)
    np.testing.assert_allclose(inp.voxel_size, (5 * 0.15, 0.15, 0.15), rtol=1e-6)
    np.testing.assert_allclose(psf.voxel_size, (0.15, 0.15, 0.15), rtol=1e-6)
    assert inp.data.shape == (8, 40, 40) and inp.data.dtype == np.float32
    meta = json.loads((out / "meta.json").read_text())
    assert meta["factor"] == 5 and meta["voxel_size_um"] == [0.15] * 3
    assert meta["input_voxel_size_um"] == pytest.approx([0.75, 0.15, 0.15])


def test_cli_labels_are_uint16_and_match_gt_support(tmp_path):
    assert main(["synth", "nuclei", "--size", "40", "-o", str(tmp_path)]) == 0
    labels = read_volume(tmp_path / "labels.tif").data
    gt = read_volume(tmp_path / "gt.tif").data
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels > 0, gt > 0)


def test_cli_refuses_to_overwrite_without_force_and_leaves_files_untouched(tmp_path, capsys):
    args = ["synth", "nuclei", "--size", "40", "-o", str(tmp_path)]
    assert main(args) == 0
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([*args, "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists" in err and "--force" in err and len(err.splitlines()) == 1
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()}
    assert after == before
    assert main([*args, "--seed", "1", "--force"]) == 0
    assert (tmp_path / "gt.tif").read_bytes() != before["gt.tif"][1]


def test_cli_failure_while_writing_leaves_nothing_partial(tmp_path, monkeypatch):
    from isonet_ij import volume_io as vio

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(vio, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        main(["synth", "nuclei", "--size", "40", "-o", str(tmp_path / "out")])
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["cells"], "`kind` must be one of"),
        (["nuclei", "--factor", "0"], "`factor` must be an integer >= 1"),
        (["nuclei", "--factor", "2.5"], "`factor` must be an integer >= 1"),
        (["nuclei", "--size", "8"], "`size` must be an integer >= 32"),
        (["nuclei", "--photons", "-5"], "`photons` must be a positive"),
        (["membranes", "--psf", "confocal:nx=0.9"], "unknown key 'nx'"),
    ],
)
def test_cli_bad_options_give_one_line_errors(tmp_path, capsys, extra, match):
    assert main(["synth", *extra, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_help_states_units_and_z_grid(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("voxels of the isotropic grid", "wavelengths in nm", "um",
                   "slice i of input.tif lies at gt slice i*factor", "photon counts"):
        assert phrase in text


def test_cli_kinds_and_defaults_match_the_phantoms_module():
    from isonet_ij.cli import _synth

    assert _synth._KINDS == phantoms.KINDS
    for key, value in _synth._DEFAULTS.items():
        assert phantoms.DEFAULTS[key] == value
