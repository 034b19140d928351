"""Scores of a restoration against a reference on the isotropic grid."""

from __future__ import annotations

__all__ = ["score_volumes"]


def score_volumes(restored, reference, *, with_ssim: bool = True) -> dict:
    """PSNR, affine PSNR and SSIM of ``restored`` against ``reference`` cropped to its grid."""
    import numpy as np

    from .. import metrics

    restored = np.asarray(restored, np.float32)
    reference = np.asarray(reference, np.float32)
    if restored.ndim != 3 or reference.ndim != 3:
        msg = f"score needs two 3D volumes, got shapes {restored.shape} and {reference.shape}"
        raise ValueError(msg)
    if reference.shape[1:] != restored.shape[1:] or reference.shape[0] < restored.shape[0]:
        msg = (
            f"reference shape {reference.shape} cannot be cropped to the restoration's grid "
            f"{restored.shape}: y and x must match and the reference needs >= {restored.shape[0]} slices"
        )
        raise ValueError(msg)
    ref = reference[: restored.shape[0]]
    out = {
        "psnr": metrics.psnr(restored, ref),
        "psnr_affine": metrics.psnr_affine(restored, ref),
        "n_slices": int(restored.shape[0]),
        "reference_cropped_from": int(reference.shape[0]),
    }
    if with_ssim:
        a, b = metrics.affine_fit(restored, ref)
        out["ssim_affine"] = metrics.ssim(a * restored + b, ref)
    return out
