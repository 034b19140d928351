"""Engine calls the widgets run, importable without Qt or napari (child processes import them)."""

from __future__ import annotations

from .. import workflow as wf

__all__ = ["train_job"]


def train_job(data, voxel_size, model_dir, *, factor, name, psf, mode, patch_size, time_budget,
              force, options) -> dict:
    """PSF, Config and training of a new run, as ``isonet train``; the training summary."""
    wf.quiet_tensorflow()
    spec, h, psf_info = wf.resolve_psf(psf if mode != "none" else "", data, factor, voxel_size, mode,
                                       words=wf.NAPARI_WORDS)
    cfg = wf.training_config(data.shape, factor, psf=spec, psf_info=psf_info, patch_size=patch_size,
                             mode=mode, train_input=f"napari: {name}", voxel_size=voxel_size,
                             **options)
    _, summary = wf.train_volume(data, cfg, model_dir=model_dir, psf=h, time_budget=time_budget,
                                 force=force, progress=False)
    return {**summary, "factor": factor}
