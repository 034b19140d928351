"""isonet_ij.segment without Java: pipeline behaviour, watershed, fill holes, errors, CLI.

Agreement with ImageJ itself is in test_intermodes_imagej.py.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from isonet_ij.cli import main
from isonet_ij.volume_io import VolumeError, read_volume, write_volume
from isonet_ij.metrics import seg_score
from isonet_ij.segment import (
    Threshold,
    auto_threshold,
    distance_watershed,
    fill_holes,
    imagej_histogram,
    intermodes_bin,
    otsu_bin,
    segment_nuclei,
    segment_nuclei_with_details,
    threshold_mask,
)

# --------------------------------------------------------------------------- helpers


def _balls(shape, centres, radii, *, spacing=(1.0, 1.0, 1.0)):
    """Label volume of balls (physical units: ``spacing`` per voxel); later ones win."""
    grid = np.indices(shape).astype(float)
    lab = np.zeros(shape, dtype=np.uint16)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        d2 = sum(((grid[a] - c[a]) * spacing[a]) ** 2 for a in range(3))
        lab[d2 < r * r] = i
    return lab


def _nearest_centre_labels(mask, centres, *, spacing=(1.0, 1.0, 1.0)):
    """Reference split of touching balls: each voxel to its nearest centre."""
    grid = np.indices(mask.shape).astype(float)
    d2 = np.stack([sum(((grid[a] - c[a]) * spacing[a]) ** 2 for a in range(3)) for c in centres])
    return np.where(mask, d2.argmin(0) + 1, 0).astype(np.uint16)


@pytest.fixture(scope="module")
def nuclei_volume():
    """Blurred, noisy 16-bit volume of 6 nuclei, two pairs touching; and its labels."""
    rng = np.random.default_rng(5)
    centres = [(12, 14, 14), (12, 14, 29), (12, 34, 16), (26, 32, 40), (28, 14, 44), (26, 44, 44)]
    radii = [8, 8, 7, 7, 6, 6]
    lab = _balls((40, 50, 56), centres, radii)
    lab = _nearest_centre_labels(lab > 0, centres)
    img = ndi.gaussian_filter((lab > 0).astype(float) * 1000, 1.0) + 100
    img = rng.poisson(img).astype(np.uint16)
    return img, lab


# --------------------------------------------------------------------------- threshold


def test_intermodes_bin_two_bumps_and_flat_peaks():
    h = np.zeros(256, int)
    h[50:60] = 100
    h[150:170] = 40
    assert intermodes_bin(h) == 107
    # two single-bin peaks: midway; ties at the top are not maxima until smoothed
    h = np.zeros(256, int)
    h[[20, 220]] = [500, 300]
    assert intermodes_bin(h) == 120


def test_intermodes_warns_and_returns_imagej_fallback_when_unimodal():
    x = np.arange(256)
    h = np.rint(1e4 * np.exp(-0.5 * ((x - 100) / 20) ** 2)).astype(int)
    with pytest.warns(RuntimeWarning, match="no two histogram modes"):
        assert intermodes_bin(h) == 0


def test_threshold_methods_reject_bad_histograms():
    with pytest.raises(ValueError, match="256 bins"):
        intermodes_bin(np.ones(255, int))
    with pytest.raises(ValueError, match="all counts 0"):
        otsu_bin(np.zeros(256, int))
    with pytest.raises(ValueError, match=">= 0"):
        intermodes_bin(np.r_[-1, np.ones(255, int)])


def test_imagej_histogram_counts_every_voxel_and_skips_nan():
    rng = np.random.default_rng(0)
    v16 = rng.integers(100, 4000, (3, 10, 10)).astype(np.uint16)
    h, lo, hi = imagej_histogram(v16)
    assert h.sum() == v16.size and (lo, hi) == (v16.min(), v16.max())
    assert h[-1] >= np.count_nonzero(v16 == v16.max())  # max lands in the last bin
    v32 = rng.random((3, 10, 10)).astype(np.float32)
    v32[0, 0, :4] = np.nan
    h, lo, hi = imagej_histogram(v32)
    assert h.sum() == v32.size - 4 and lo == np.nanmin(v32)
    h8, lo, hi = imagej_histogram(np.arange(256, dtype=np.uint8).reshape(4, 8, 8))
    assert np.all(h8 == 1) and (lo, hi) == (0, 255)


def test_auto_threshold_16bit_value_is_an_integer_and_mask_includes_it(nuclei_volume):
    img, _ = nuclei_volume
    thr = auto_threshold(img)
    assert isinstance(thr, Threshold) and thr.dtype == "uint16" and thr.converged
    assert thr.lower == int(thr.lower) and thr.upper == img.max()
    mask = threshold_mask(img, thr)
    assert np.array_equal(mask, img >= thr.lower)
    assert np.array_equal(threshold_mask(img, thr.lower), mask)  # a plain value: v >= value


def test_auto_threshold_rejects_constant_and_empty_volumes():
    with pytest.raises(ValueError, match="constant"):
        auto_threshold(np.full((3, 4, 4), 7, np.uint16))
    with pytest.raises(ValueError, match="constant"):
        auto_threshold(np.full((3, 4, 4), 7, np.uint8))
    with pytest.raises(VolumeError, match="empty"):
        auto_threshold(np.zeros((0, 4, 4), np.float32))
    with pytest.raises(VolumeError, match="only NaN/inf"):
        auto_threshold(np.full((2, 3, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="`method`"):
        auto_threshold(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), method="li")


# --------------------------------------------------------------------------- fill holes


def _holey_mask(seed=0):
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.random((20, 40, 40)), 2)
    m = noise > np.quantile(noise, 0.45)
    m[5:15, 10:30, 10:30] = True
    m[8:12, 15:25, 15:25] = False  # a closed 3D cavity
    return m


def test_fill_holes_3d_equals_scipy_binary_fill_holes():
    m = _holey_mask()
    got = fill_holes(m, mode="3d")
    assert np.array_equal(got, ndi.binary_fill_holes(m))
    assert got[10, 20, 20]


def test_fill_holes_2d_fills_each_slice_with_4_connected_background():
    m = _holey_mask(1)
    expected = np.stack([ndi.binary_fill_holes(s) for s in m])
    assert np.array_equal(fill_holes(m, mode="2d"), expected)
    # a pixel hole linked to the outside only diagonally is a hole for ImageJ (4-conn)
    d = np.zeros((1, 5, 5), bool)
    d[0, :3, :3] = True
    d[0, 1, 1] = False
    d[0, 2, 2] = False
    assert fill_holes(d, mode="2d")[0, 1, 1]


def test_fill_holes_off_copies_and_input_is_not_modified():
    m = _holey_mask()
    before = m.copy()
    out = fill_holes(m, mode="off")
    assert np.array_equal(out, m) and out is not m
    fill_holes(m, mode="3d")
    assert np.array_equal(m, before)
    with pytest.raises(ValueError, match="`mode`"):
        fill_holes(m, mode="3D-ish")


# --------------------------------------------------------------------------- watershed


def test_watershed_splits_touching_balls_like_nearest_centre():
    centres = [(15, 15, 12), (15, 15, 25), (15, 28, 18)]
    mask = _balls((30, 42, 38), centres, [8, 8, 7]) > 0
    assert ndi.label(mask)[1] == 1  # one connected blob
    lab = distance_watershed(mask)
    assert lab.max() == 3 and lab.dtype == np.int32
    assert np.array_equal(lab > 0, mask)
    s = seg_score(lab, _nearest_centre_labels(mask, centres))
    assert s.matched == 3 and s.seg > 0.95


def test_watershed_uses_anisotropic_voxel_size():
    # two balls of radius 6 um touching along z, sampled with dz = 2 um, dy = dx = 1 um
    spacing = (2.0, 1.0, 1.0)
    centres = [(6, 16, 16), (11, 16, 16)]  # in voxels: 10 um apart along z
    grid = np.indices((18, 32, 32)).astype(float)
    mask = np.zeros(grid.shape[1:], bool)
    for c in centres:
        mask |= sum(((grid[a] - c[a]) * spacing[a]) ** 2 for a in range(3)) < 36
    ref = _nearest_centre_labels(mask, centres, spacing=spacing)
    good = seg_score(distance_watershed(mask, voxel_size=spacing, dynamic=1), ref)
    assert good.matched == 2 and good.seg > 0.95
    # treating the voxels as cubes flattens the balls: the neck no longer separates them
    iso = seg_score(distance_watershed(mask, voxel_size=1.0, dynamic=1), ref)
    assert iso.n_predicted == 1 and iso.seg < 0.6


def test_watershed_dynamic_merges_and_connectivity_26_runs():
    centres = [(12, 12, 10), (12, 12, 21)]
    mask = _balls((24, 24, 32), centres, [7, 7]) > 0
    assert distance_watershed(mask, dynamic=1).max() == 2
    assert distance_watershed(mask, dynamic=6).max() == 1  # shallow neck: merged
    assert distance_watershed(mask, dynamic=1, connectivity=26).max() == 2
    with pytest.raises(ValueError, match="6 or 26"):
        distance_watershed(mask, connectivity=8)
    with pytest.raises(ValueError, match="`dynamic`"):
        distance_watershed(mask, dynamic=-1)


def test_watershed_min_size_and_small_isolated_objects():
    mask = _balls((20, 30, 30), [(10, 10, 10), (10, 22, 22)], [6, 1.5]) > 0
    lab = distance_watershed(mask, dynamic=3)  # the tiny ball is lower than the dynamic
    assert lab.max() == 2  # still one object each, nothing vanishes
    lab = distance_watershed(mask, min_size=50)
    assert lab.max() == 1 and lab[10, 22, 22] == 0
    assert not distance_watershed(np.zeros((4, 5, 6), bool)).any()
    with pytest.raises(ValueError, match="`min_size`"):
        distance_watershed(mask, min_size=2.5)


# --------------------------------------------------------------------------- pipeline


def test_segment_nuclei_recovers_touching_nuclei(nuclei_volume):
    img, lab = nuclei_volume
    result = segment_nuclei_with_details(img)
    labels, details = result.labels, result.details
    assert labels.dtype == np.uint16 and labels.shape == img.shape
    s = seg_score(labels, lab)
    assert s.matched == 6 and s.spurious == 0 and s.seg > 0.85
    assert details["n_objects"] == 6 and details["threshold"]["method"] == "intermodes"
    # otsu and a fixed value go through the same steps
    assert seg_score(segment_nuclei(img, threshold="otsu"), lab).matched == 6
    assert seg_score(segment_nuclei(img, threshold=600.0), lab).matched == 6


def test_segment_nuclei_bad_input_gives_clear_errors_or_documented_results():
    with pytest.raises(ValueError, match="3D"):
        segment_nuclei(np.zeros((5, 5), np.uint16))
    with pytest.raises(ValueError, match="empty"):
        segment_nuclei(np.zeros((0, 5, 5), np.uint16))
    with pytest.raises(ValueError, match="constant"):
        segment_nuclei(np.full((4, 6, 6), 3.0, np.float32))
    vol = np.arange(4 * 6 * 6, dtype=np.float32).reshape(4, 6, 6)
    with pytest.raises(ValueError, match="every voxel foreground"):
        segment_nuclei(vol, threshold=-1.0)
    with pytest.warns(RuntimeWarning, match="selects no voxel"):
        out = segment_nuclei(vol, threshold=1e9)
    assert out.dtype == np.uint16 and not out.any()
    with pytest.raises(ValueError, match="`threshold`"):
        segment_nuclei(vol, threshold="triangle")


# --------------------------------------------------------------------------- CLI


def test_cli_segment_keeps_calibration_and_score_seg_writes_json(tmp_path, nuclei_volume, capsys):
    img, lab = nuclei_volume
    src, gt = tmp_path / "img.tif", tmp_path / "gt.tif"
    write_volume(src, img, voxel_size=(0.5, 0.25, 0.25))
    write_volume(gt, lab, voxel_size=(0.5, 0.25, 0.25))
    out = tmp_path / "labels.tif"
    assert main(["segment", str(src), "-o", str(out), "--fill-holes", "2d", "--min-size", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_objects"] == 6 and summary["fill_holes"] == "2d"
    res = read_volume(out)
    assert res.data.dtype == np.uint16 and res.voxel_size == pytest.approx((0.5, 0.25, 0.25))
    assert res.unit == "um"
    report = tmp_path / "seg.json"
    assert main(["score-seg", str(out), "--gt", str(gt), "--json", str(report)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report.read_text())
    assert printed["matched"] == 6 and printed["seg"] > 0.85
    # the output exists now: refused without --force
    assert main(["segment", str(src), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    write_volume(a, np.zeros((3, 8, 8), np.uint16))
    write_volume(b, np.zeros((4, 8, 8), np.uint16))
    assert main(["score-seg", str(a), "--gt", str(b)]) == 2
    err = capsys.readouterr().err
    assert "shape" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["segment", str(a), "-o", str(tmp_path / "l.tif")]) == 2
    err = capsys.readouterr().err
    assert "constant" in err and "Traceback" not in err
    assert main(["segment", str(a), "-o", str(tmp_path / "l.tif"), "--threshold", "abc"]) == 2
    assert "--threshold" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["segment", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "m.tif")]) == 2
