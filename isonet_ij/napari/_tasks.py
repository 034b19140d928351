"""Engine calls the widgets run, importable without Qt or napari (child processes import them)."""

from __future__ import annotations

from .. import workflow as wf

__all__ = ["train_job"]


def train_job(data, voxel_size, model_dir, *, factor, name, psf, mode, patch_size, time_budget,
              force, options) -> dict:
    """PSF, Config and training of a new run, as ``isonet train``; the training summary."""
    wf.quiet_tensorflow()
    cfg, h = wf.new_run_config(data, factor, voxel_size, psf=psf, mode=mode, patch_size=patch_size,
                               train_input=f"napari: {name}", words=wf.NAPARI_WORDS, **options)
    _, summary = wf.train_volume(data, cfg, model_dir=model_dir, psf=h, time_budget=time_budget,
                                 force=force, progress=False)
    return {**summary, "factor": factor}
