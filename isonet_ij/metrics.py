"""Image-quality and segmentation metrics.

Image quality (restoration vs. a reference)
-------------------------------------------
``psnr(pred, ref)``
    ``10 log10(R^2 / MSE)``, ``MSE = mean((pred - ref)^2)`` over all voxels,
    ``R = ref.max() - ref.min()`` unless ``data_range`` is given. Computed in float64.
``psnr_affine(pred, ref)``
    PSNR after the least-squares affine intensity fit of ``pred`` to ``ref``: with
    ``a = cov(pred, ref) / var(pred)`` and ``b = mean(ref) - a mean(pred)`` (the ``a, b``
    minimising ``mean((a pred + b - ref)^2)``), ``psnr(a pred + b, ref)``. This is what
    CSBDeep's evaluation does (``normalize_minmse`` before PSNR), so that methods whose
    outputs differ from the reference by a gain and an offset are compared fairly; it is
    the PSNR to report for IsoNet-style results (Table 1 of the paper).
``ssim(pred, ref)``
    scikit-image's ``structural_similarity`` over the whole (3D) array, Gaussian-free
    7-voxel window, with ``data_range`` as for :func:`psnr`.

Segmentation (Cell Tracking Challenge SEG)
------------------------------------------
A reference object ``R`` matches a segmented object ``S`` iff ``|R n S| > 0.5 |R|`` (so
each ``R`` matches at most one ``S``); ``J(R) = |R n S| / |R u S|``, 0 when ``R`` is
unmatched; ``SEG`` is the mean of ``J`` over all reference objects, pooled over all given
volumes. With no reference object at all, SEG is 0.0 (as in ``py-ctcmetrics``; see
``n_reference``). Label 0 is background; labels need not be consecutive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["psnr", "psnr_affine", "affine_fit", "ssim", "SegScore", "seg_score", "match_objects"]


# --------------------------------------------------------------------------- image quality


def _pair(pred, ref, *, name_pred="pred", name_ref="ref"):
    p = np.asarray(pred)
    r = np.asarray(ref)
    if p.shape != r.shape:
        msg = f"`{name_pred}` (shape {p.shape}) must have the same shape as `{name_ref}` (shape {r.shape})"
        raise ValueError(msg)
    if p.size == 0:
        msg = f"`{name_pred}` and `{name_ref}` are empty (shape {p.shape})"
        raise ValueError(msg)
    for a, n in ((p, name_pred), (r, name_ref)):
        if a.dtype.kind not in "biuf":
            msg = f"`{n}` must be real-valued, got dtype {a.dtype}"
            raise ValueError(msg)
    p = p.astype(np.float64, copy=False)
    r = r.astype(np.float64, copy=False)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(r))):
        msg = f"`{name_pred}` and `{name_ref}` must be finite (no NaN/inf)"
        raise ValueError(msg)
    return p, r


def _data_range(ref: np.ndarray, data_range) -> float:
    if data_range is None:
        rng = float(ref.max() - ref.min())
        if rng <= 0:
            msg = (
                "`ref` is constant, so its range (the default `data_range`) is 0; "
                "pass data_range explicitly"
            )
            raise ValueError(msg)
        return rng
    rng = float(data_range)
    if not np.isfinite(rng) or rng <= 0:
        msg = f"`data_range` must be a positive number, got {data_range!r}"
        raise ValueError(msg)
    return rng


def psnr(pred, ref, *, data_range=None) -> float:
    """Peak signal-to-noise ratio of ``pred`` against ``ref``, in dB.

    Parameters
    ----------
    pred, ref : ndarray
        Same shape, any real dtype (computed in float64).
    data_range : float, optional
        Peak value range ``R``; default ``ref.max() - ref.min()``.

    Returns
    -------
    float
        ``10 log10(R^2 / mean((pred - ref)^2))``; ``inf`` when identical.

    Examples
    --------
    >>> ref = np.array([0.0, 1.0, 2.0, 3.0])
    >>> round(psnr(ref + 0.1, ref), 3)
    29.542
    """
    p, r = _pair(pred, ref)
    rng = _data_range(r, data_range)
    mse = float(np.mean((p - r) ** 2))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(rng * rng / mse))


def affine_fit(pred, ref) -> tuple[float, float]:
    """Gain and offset ``(a, b)`` minimising ``mean((a pred + b - ref)^2)``.

    ``a = cov(pred, ref) / var(pred)``, ``b = mean(ref) - a mean(pred)``; a constant
    ``pred`` gives ``a = 0, b = mean(ref)``.
    """
    p, r = _pair(pred, ref)
    pm, rm = p.mean(), r.mean()
    pc = p - pm
    var = float(np.mean(pc * pc))
    if var == 0:
        return 0.0, float(rm)
    a = float(np.mean(pc * (r - rm)) / var)
    return a, float(rm - a * pm)


def psnr_affine(pred, ref, *, data_range=None) -> float:
    """PSNR after the least-squares affine intensity fit of ``pred`` to ``ref``, in dB.

    See :func:`affine_fit`; ``data_range`` as in :func:`psnr` (default the range of
    ``ref``). Never lower than ``psnr(pred, ref)`` (the identity is one of the fits).

    Examples
    --------
    >>> ref = np.array([0.0, 1.0, 2.0, 3.0])
    >>> psnr(5 * ref + 7, ref) < 0 < 200 < psnr_affine(5 * ref + 7, ref)
    True
    """
    a, b = affine_fit(pred, ref)
    p, r = _pair(pred, ref)
    return psnr(a * p + b, r, data_range=data_range)


def ssim(pred, ref, *, data_range=None) -> float:
    """Structural similarity (scikit-image ``structural_similarity``) of ``pred`` to ``ref``.

    Parameters
    ----------
    pred, ref : ndarray
        Same shape, 2D or 3D, every side >= 7 voxels.
    data_range : float, optional
        Default ``ref.max() - ref.min()``.

    Returns
    -------
    float
        Mean SSIM in [-1, 1].
    """
    from skimage.metrics import structural_similarity

    p, r = _pair(pred, ref)
    if min(p.shape) < 7:
        msg = f"`pred`/`ref` must be at least 7 voxels along every axis for SSIM, got shape {p.shape}"
        raise ValueError(msg)
    rng = _data_range(r, data_range)
    return float(structural_similarity(p, r, data_range=rng))


# --------------------------------------------------------------------------- SEG


@dataclass(frozen=True)
class SegScore:
    """CTC SEG and matching counts.

    Attributes
    ----------
    seg : float
        Mean Jaccard index over all reference objects (0 for unmatched ones).
    n_reference, n_predicted : int
        Objects in the reference and in the segmentation.
    matched : int
        Reference objects with a match (``|R n S| > 0.5 |R|``).
    missed : int
        Reference objects without one (``n_reference - matched``).
    spurious : int
        Segmented objects matched by no reference object.
    mean_iou_matched : float
        Mean Jaccard index over the matched pairs (NaN when none).
    recall : float
        ``matched / n_reference`` (NaN when no reference object).
    precision : float
        ``(n_predicted - spurious) / n_predicted`` (NaN when nothing segmented).
    """

    seg: float
    n_reference: int
    n_predicted: int
    matched: int
    missed: int
    spurious: int
    mean_iou_matched: float
    recall: float
    precision: float

    def as_dict(self) -> dict:
        """Plain dict (JSON-friendly; NaN stays NaN)."""
        return asdict(self)


def _check_labels(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            msg = f"`{name}` must hold integer labels, got non-integer float values"
            raise ValueError(msg)
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        msg = f"`{name}` must be an integer label image, got dtype {a.dtype}"
        raise ValueError(msg)
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        msg = f"`{name}` must hold labels >= 0 (0 = background), found {a.min()}"
        raise ValueError(msg)
    return a


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, sizes, index)``: object ids > 0, their voxel counts, and ``labels`` mapped
    to 0 (background) or 1..len(ids)."""
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 1024:
        counts = np.bincount(flat, minlength=1)
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return ids, counts[ids], lut[flat]
    ids, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if ids[0] == 0:
        return ids[1:], counts[1:], inv.astype(np.int64)
    return ids, counts, inv.astype(np.int64) + 1


def match_objects(pred, gt) -> dict:
    """Match segmented objects to reference objects with the CTC rule.

    Parameters
    ----------
    pred, gt : ndarray of int
        Label images of the same shape; 0 is background.

    Returns
    -------
    dict
        ``gt_ids``, ``gt_sizes``, ``pred_ids``, ``pred_sizes`` (arrays over objects), and
        the matched pairs ``pair_gt``, ``pair_pred``, ``pair_intersection``, ``pair_iou``.
    """
    p = _check_labels(pred, "pred")
    g = _check_labels(gt, "gt")
    if p.shape != g.shape:
        msg = (
            f"`pred` (shape {p.shape}) must have the same shape as `gt` (shape {g.shape}); "
            "segment the volume on the ground truth's grid (crop or resample it first)"
        )
        raise ValueError(msg)
    g_ids, g_sizes, gi = _compact(g)
    p_ids, p_sizes, pi = _compact(p)
    both = (gi > 0) & (pi > 0)
    n_p = p_ids.size + 1
    keys = gi[both] * n_p + pi[both]
    if g_ids.size * n_p <= 1 << 24:
        inter = np.bincount(keys, minlength=1)
        keys = np.flatnonzero(inter)
        inter = inter[keys]
    else:
        keys, inter = np.unique(keys, return_counts=True)
    kg, kp = keys // n_p, keys % n_p
    gsz = g_sizes[kg - 1] if kg.size else np.zeros(0, np.int64)
    hit = 2 * inter > gsz  # |R n S| > 0.5 |R|, in exact integers
    kg, kp, inter = kg[hit], kp[hit], inter[hit]
    union = g_sizes[kg - 1] + p_sizes[kp - 1] - inter
    return {
        "gt_ids": g_ids,
        "gt_sizes": g_sizes,
        "pred_ids": p_ids,
        "pred_sizes": p_sizes,
        "pair_gt": g_ids[kg - 1],
        "pair_pred": p_ids[kp - 1],
        "pair_intersection": inter,
        "pair_iou": inter / union,
    }


def seg_score(pred, gt) -> SegScore:
    """CTC SEG of a segmentation against reference labels, with matching counts.

    Parameters
    ----------
    pred, gt : ndarray of int, or sequences of them
        Label images (0 = background), or equally long lists of them (e.g. several
        volumes or time points): SEG is then pooled, the mean over all reference objects
        of all volumes. Each pair must have the same shape.

    Returns
    -------
    SegScore

    Raises
    ------
    ValueError
        Shapes differ, non-integer or negative labels, or list lengths differ.

    Examples
    --------
    >>> gt = np.zeros((1, 4, 4), int); gt[0, :2, :2] = 1; gt[0, 2:, 2:] = 2
    >>> pred = np.zeros_like(gt); pred[0, :2, :3] = 5
    >>> s = seg_score(pred, gt)
    >>> round(s.seg, 4), s.matched, s.missed, s.spurious
    (0.3333, 1, 1, 0)
    """
    if not isinstance(pred, (list, tuple)) and not isinstance(gt, (list, tuple)):
        preds, gts = [pred], [gt]
    else:
        preds = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        gts = list(gt) if isinstance(gt, (list, tuple)) else [gt]
        if len(preds) != len(gts):
            msg = f"`pred` has {len(preds)} label images but `gt` has {len(gts)}; pair them up"
            raise ValueError(msg)
    n_ref = n_pred = n_matched_pred = 0
    ious = []
    for p, g in zip(preds, gts):
        m = match_objects(p, g)
        n_ref += m["gt_ids"].size
        n_pred += m["pred_ids"].size
        n_matched_pred += np.unique(m["pair_pred"]).size
        ious.append(m["pair_iou"])
    iou = np.concatenate(ious) if ious else np.zeros(0)
    matched = int(iou.size)
    return SegScore(
        seg=float(iou.sum() / max(n_ref, 1)),
        n_reference=int(n_ref),
        n_predicted=int(n_pred),
        matched=matched,
        missed=int(n_ref - matched),
        spurious=int(n_pred - n_matched_pred),
        mean_iou_matched=float(iou.mean()) if matched else float("nan"),
        recall=matched / n_ref if n_ref else float("nan"),
        precision=n_matched_pred / n_pred if n_pred else float("nan"),
    )
