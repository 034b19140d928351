"""isonet_ij.metrics: CTC SEG (against py-ctcmetrics), PSNR, affine PSNR, SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from isonet_ij.metrics import affine_fit, match_objects, psnr, psnr_affine, seg_score, ssim

# --------------------------------------------------------------------------- SEG vs py-ctcmetrics


def _blobs(rng, shape, n, r_range=(2.0, 5.0)):
    """Label volume of ``n`` random balls (later ones overwrite earlier), uint32."""
    zz, yy, xx = np.indices(shape)
    lab = np.zeros(shape, dtype=np.uint32)
    for i in range(1, n + 1):
        c = rng.uniform(0, shape)
        r = rng.uniform(*r_range)
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = i
    return lab


def _perturb(rng, gt, kind):
    """A segmentation derived from ``gt`` in one of several characteristic ways."""
    ids = np.unique(gt)
    ids = ids[ids > 0]
    if kind == "identical":
        return gt.copy()
    if kind == "shifted":
        return np.roll(gt, rng.integers(1, 3, size=3), axis=(0, 1, 2))
    if kind == "eroded":
        out = gt.copy()
        out[ndi.grey_erosion(gt, size=3) != gt] = 0
        return out
    if kind == "dilated":
        return np.where(gt > 0, gt, ndi.grey_dilation(gt, size=3)).astype(gt.dtype)
    if kind == "split":  # cut every object in two along a random axis and position
        out = gt.copy()
        nxt = int(gt.max()) + 1
        for i in ids:
            where = np.argwhere(gt == i)
            ax = rng.integers(3)
            cut = np.quantile(where[:, ax], rng.uniform(0.3, 0.7))
            half = where[where[:, ax] > cut]
            out[tuple(half.T)] = nxt
            nxt += 1
        return out
    if kind == "merged":  # pairs of objects get one label
        out = gt.copy()
        for a, b in zip(ids[::2], ids[1::2]):
            out[gt == b] = a
        return out
    if kind == "missing":
        out = gt.copy()
        out[np.isin(gt, rng.choice(ids, size=max(1, ids.size // 2), replace=False))] = 0
        return out
    if kind == "spurious":
        extra = _blobs(rng, gt.shape, 4) + np.uint32(1000)
        return np.where((gt == 0) & (extra > 1000), extra, gt).astype(np.uint32)
    if kind == "relabelled":  # non-consecutive, large label values
        perm = rng.permutation(ids.size) * 977 + 70000
        lut = np.zeros(int(gt.max()) + 1, dtype=np.uint32)
        lut[ids] = perm
        return lut[gt]
    if kind == "unrelated":
        return _blobs(rng, gt.shape, int(rng.integers(1, 8)))
    if kind == "empty":
        return np.zeros_like(gt)
    raise ValueError(kind)


KINDS = (
    "identical", "shifted", "eroded", "dilated", "split", "merged", "missing",
    "spurious", "relabelled", "unrelated", "empty",
)


def _cases(n_per_kind=5, seed=42):
    rng = np.random.default_rng(seed)
    cases = []
    for kind in KINDS:
        for _ in range(n_per_kind):
            shape = (10, 22, 26)
            gt = _blobs(rng, shape, int(rng.integers(1, 9)))
            cases.append((kind, gt, _perturb(rng, gt, kind)))
    # no reference object at all
    z = np.zeros((10, 22, 26), dtype=np.uint32)
    cases.append(("empty gt", z, _blobs(rng, z.shape, 3)))
    cases.append(("both empty", z, z.copy()))
    return cases


def _ctc_seg(tmp_path, pairs):
    """py-ctcmetrics SEG of (gt, pred) pairs, pooled, via its own file reader."""
    from ctc_metrics.metrics import seg as ctc_seg
    from ctc_metrics.utils.representations import match

    labels_ref, ious = [], []
    for k, (gt, pred) in enumerate(pairs):
        # py-ctcmetrics adds a label offset in the file's dtype: uint32 avoids overflow
        ref_path, comp_path = tmp_path / f"ref{k}.tif", tmp_path / f"comp{k}.tif"
        tifffile.imwrite(ref_path, gt.astype(np.uint32))
        tifffile.imwrite(comp_path, pred.astype(np.uint32))
        l_ref, _, _, _, iou = match(str(ref_path), str(comp_path))
        labels_ref.append(l_ref)
        ious.append(np.asarray(iou, dtype=float))
    return ctc_seg(labels_ref, ious)


def test_seg_equals_py_ctcmetrics_on_random_label_pairs(tmp_path):
    cases = _cases()
    assert len(cases) >= 50
    errors = []
    for k, (kind, gt, pred) in enumerate(cases):
        # py-ctcmetrics' matrix slicing assumes label 0 occurs in both images
        gt.flat[0] = pred.flat[0] = 0
        case_dir = tmp_path / f"c{k}"
        case_dir.mkdir()
        ref = _ctc_seg(case_dir, [(gt, pred)])
        got = seg_score(pred, gt).seg
        errors.append(abs(got - ref))
        assert abs(got - ref) <= 1e-9, (kind, got, ref)
    assert max(errors) <= 1e-9
    # pooled over volumes: mean over all reference objects of all volumes
    pairs = [(gt, pred) for _, gt, pred in cases[::4]]
    (tmp_path / "pooled").mkdir()
    ref = _ctc_seg(tmp_path / "pooled", pairs)
    got = seg_score([p for _, p in pairs], [g for g, _ in pairs]).seg
    assert abs(got - ref) <= 1e-9
    assert got != pytest.approx(np.mean([seg_score(p, g).seg for g, p in pairs]))


def test_seg_matching_rule_and_counts_on_hand_made_cases():
    gt = np.zeros((1, 4, 10), dtype=np.uint16)
    gt[0, :, 0:4] = 1  # 16 voxels
    gt[0, :, 6:10] = 2  # 16 voxels
    # split object 1 exactly in halves (8 / 8: not > 50 %), cover object 2 plus 4 extra
    pred = np.zeros_like(gt)
    pred[0, :2, 0:4] = 1
    pred[0, 2:, 0:4] = 2
    pred[0, :, 5:10] = 3
    s = seg_score(pred, gt)
    assert s.n_reference == 2 and s.n_predicted == 3
    assert s.matched == 1 and s.missed == 1 and s.spurious == 2
    assert s.seg == pytest.approx((0 + 16 / 20) / 2)
    assert s.mean_iou_matched == pytest.approx(16 / 20)
    assert s.recall == 0.5 and s.precision == pytest.approx(1 / 3)
    # a split 9 / 7 matches the larger part
    pred2 = pred.copy()
    pred2[0, 2, 0] = 1
    assert seg_score(pred2, gt).matched == 2
    # one segment covering two reference objects matches both (merge)
    merged = np.where(gt > 0, 7, 0).astype(np.uint16)
    s = seg_score(merged, gt)
    assert s.matched == 2 and s.spurious == 0
    assert s.seg == pytest.approx(16 / 32)
    m = match_objects(merged, gt)
    assert m["pair_pred"].tolist() == [7, 7] and m["pair_gt"].tolist() == [1, 2]


def test_seg_perfect_empty_and_label_values():
    gt = np.zeros((3, 5, 5), dtype=np.uint16)
    gt[1, 1:3, 1:3] = 4
    gt[2, 3:, 3:] = 9
    assert seg_score(gt, gt).seg == 1.0
    relabelled = np.where(gt == 4, 70000, np.where(gt == 9, 3, 0)).astype(np.uint32)
    assert seg_score(relabelled, gt).seg == 1.0
    assert seg_score(gt.astype(np.float32), gt).seg == 1.0  # integral floats are fine
    s = seg_score(np.zeros_like(gt), gt)
    assert (s.seg, s.matched, s.missed, s.spurious) == (0.0, 0, 2, 0)
    assert np.isnan(s.precision)
    s = seg_score(gt, np.zeros_like(gt))  # no reference objects: documented as SEG 0
    assert (s.seg, s.n_reference, s.spurious) == (0.0, 0, 2)
    assert np.isnan(s.recall) and np.isnan(s.mean_iou_matched)


def test_seg_rejects_labels_of_a_different_shape_than_gt():
    with pytest.raises(ValueError, match=r"same shape as `gt`"):
        seg_score(np.zeros((4, 5, 5), np.uint16), np.zeros((5, 5, 5), np.uint16))


def test_seg_rejects_non_integer_and_negative_labels():
    gt = np.zeros((2, 3, 3), np.uint16)
    with pytest.raises(ValueError, match="integer labels"):
        seg_score(np.full(gt.shape, 0.5), gt)
    with pytest.raises(ValueError, match=">= 0"):
        seg_score(np.full(gt.shape, -1), gt)


def test_seg_pooled_lists_must_pair_up():
    a = np.zeros((2, 3, 3), np.uint16)
    with pytest.raises(ValueError, match="pair them up"):
        seg_score([a, a], [a])


# --------------------------------------------------------------------------- PSNR / SSIM


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    ref = ndi.gaussian_filter(rng.random((16, 32, 32)), 2).astype(np.float32)
    pred = (ref + rng.normal(0, 0.02, ref.shape)).astype(np.float32)
    return pred, ref


def test_psnr_equals_skimage_with_ref_range(images):
    from skimage.metrics import peak_signal_noise_ratio

    pred, ref = images
    rng = float(ref.max() - ref.min())
    expected = peak_signal_noise_ratio(ref.astype(np.float64), pred.astype(np.float64), data_range=rng)
    assert psnr(pred, ref) == pytest.approx(expected, rel=1e-12)
    assert psnr(pred, ref, data_range=1.0) == pytest.approx(
        10 * np.log10(1.0 / np.mean((pred.astype(float) - ref) ** 2)), rel=1e-12
    )
    assert psnr(ref, ref) == np.inf


def test_affine_fit_is_least_squares_and_psnr_affine_is_gain_offset_invariant(images):
    pred, ref = images
    a, b = affine_fit(pred, ref)
    a_ref, b_ref = np.polyfit(pred.ravel().astype(float), ref.ravel().astype(float), 1)
    assert (a, b) == (pytest.approx(a_ref, rel=1e-9), pytest.approx(b_ref, abs=1e-9))
    base = psnr_affine(pred, ref)
    assert base >= psnr(pred, ref)
    assert psnr_affine(3.5 * pred - 20.0, ref) == pytest.approx(base, abs=1e-6)
    assert psnr(3.5 * pred - 20.0, ref) < base - 20
    # a constant prediction is fitted by the mean of ref
    const = np.full_like(ref, 5.0)
    expected = psnr(np.full_like(ref, ref.mean(dtype=np.float64)), ref)
    assert psnr_affine(const, ref) == pytest.approx(expected)


def test_ssim_equals_skimage_and_is_one_for_identical(images):
    from skimage.metrics import structural_similarity

    pred, ref = images
    rng = float(ref.max() - ref.min())
    expected = structural_similarity(pred.astype(float), ref.astype(float), data_range=rng)
    assert ssim(pred, ref) == pytest.approx(expected, rel=1e-12)
    assert ssim(ref, ref) == pytest.approx(1.0)


def test_image_metrics_reject_bad_input(images):
    pred, ref = images
    with pytest.raises(ValueError, match="same shape"):
        psnr(pred[:-1], ref)
    with pytest.raises(ValueError, match="data_range explicitly"):
        psnr(pred, np.zeros_like(ref))
    with pytest.raises(ValueError, match="positive number"):
        psnr(pred, ref, data_range=0)
    bad = ref.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        psnr_affine(pred, bad)
    with pytest.raises(ValueError, match="at least 7"):
        ssim(pred[:5], ref[:5])
