"""Restoration of a whole stack for every interface: the volume, what was done, provenance."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ._common import provenance

__all__ = ["Restored", "restore_volume", "convert_dtype", "check_not_restored"]

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """A restored stack (same axes as the input), per-volume infos and the provenance dict."""

    data: object
    infos: list
    provenance: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return round(sum(i["seconds"] for i in self.infos), 2)

    @property
    def consistency(self) -> tuple[list, list]:
        """Self-consistency PSNR of the restoration and of bicubic, one per volume (None: not computed)."""
        cons = [i.get("consistency", {}).get("psnr") for i in self.infos]
        return cons, [i.get("consistency", {}).get("psnr_bicubic") for i in self.infos]


def check_not_restored(metadata, factor, *, calibrated: bool, what: str, words=None) -> None:
    """Refuse to restore an uncalibrated isonet restoration again with the model's factor.

    The output of a restoration is isotropic; without a calibration (an uncalibrated input
    gives an uncalibrated output) the model's factor would silently be applied a second
    time. ``metadata``: the image's Info (dict or JSON text). An explicit ``factor`` is used.
    """
    import json

    from ._common import CLI_WORDS

    if factor or calibrated:
        return
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return
    if not isinstance(metadata, dict) or not metadata.get("z_grid"):
        return
    if not str(metadata.get("software", "")).startswith("isonet-ij"):
        return
    words = words or CLI_WORDS
    msg = (f"{what!r} is already an isotropic restoration (by {metadata.get('command', 'isonet')}, factor "
           f"{metadata.get('factor')}) and has no calibration: restoring it again would apply the model's "
           f"factor a second time; restore the acquired stack, or give {words.example('factor', 'F')} to do it anyway")
    raise ValueError(msg)


def restore_volume(data, axes: str, model, *, factor: float, factor_source: str = "option",
                   command: str = "restore", input: str = "", model_path=None, fusion=None,
                   normalization: str = "volume", batch_size=None, max_memory=None,
                   consistency: bool = False, progress: bool = False, precision: str = "auto",
                   tta: bool = False) -> Restored:
    """Restore a ZYX / ZCYX / TZCYX stack with a loaded model; see :func:`isonet_ij.restoration.restore_stack`.

    ``factor`` is already resolved (:func:`resolve_factor`); ``command``, ``input`` and
    ``model_path`` go into the provenance. ``batch_size`` / ``max_memory`` None: restore's
    defaults.
    """
    from ..restoration import restore_stack
    from ..tiling import DEFAULT_BATCH, DEFAULT_MAX_MEMORY

    result, infos = restore_stack(
        data, axes, model, factor=factor, fusion=fusion, normalization=normalization,
        batch_size=int(batch_size or DEFAULT_BATCH),
        max_memory=DEFAULT_MAX_MEMORY if max_memory is None else max_memory,
        consistency=consistency, progress=progress, precision=precision, tta=tta,
    )
    out = Restored(result, infos)
    cons, cons_bic = out.consistency
    cfg = model.config
    out.provenance = provenance(
        command=command, input=input, model=None if model_path is None else str(model_path),
        arch=cfg.arch, mode=cfg.mode, psf=cfg.psf, factor=factor, factor_source=factor_source,
        model_factor=cfg.factor, fusion=infos[0]["fusion"], weights=model.weights,
        normalization=[i["normalization"] for i in infos],
        self_consistency_psnr_db=cons, self_consistency_bicubic_psnr_db=cons_bic,
        input_shape=list(data.shape), axes=axes, precision=infos[0].get("precision"), tta=bool(tta),
        z_grid=f"acquired slice i at output slice i*{factor:g}", seconds=out.seconds,
    )
    return out


def convert_dtype(out, dtype: str, in_dtype):
    """``dtype="float32"``: float32; ``"input"``: the input's integer type, rounded and clipped."""
    import numpy as np

    if dtype == "float32" or np.dtype(in_dtype) == np.float32:
        return out.astype(np.float32, copy=False)
    if np.dtype(in_dtype).kind not in "ui":
        return out.astype(np.float32, copy=False)
    info = np.iinfo(in_dtype)
    if info.bits > 16:
        log.warning("ImageJ TIFF cannot store %s; writing uint16", in_dtype)
        info = np.iinfo(np.uint16)
        in_dtype = np.uint16
    n_clip = int(np.count_nonzero((out < info.min) | (out > info.max)))
    if n_clip:
        log.warning("%d voxels clipped to the %s range [%d, %d]", n_clip, np.dtype(in_dtype), info.min, info.max)
    return np.clip(np.rint(out), info.min, info.max).astype(in_dtype)
