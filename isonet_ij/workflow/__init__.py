"""The workflow layer: what the CLI, the ImageJ commands, the Fiji scripts and benchmarks call.

One implementation of the orchestration around the library: quiet TensorFlow
(:func:`quiet_tensorflow`), the anisotropy factor (:func:`resolve_factor`: option >
calibration > model), the PSF of a training run (:func:`resolve_psf`, incl.
``auto[:MODEL]``), the Config of a run (:func:`training_config`, :func:`resume_config`),
training (:func:`train_volume`, :func:`training_summary`), restoration
(:func:`restore_volume`) with its :func:`provenance`, scores (:func:`score_volumes`), and the
demo job of ``isonet demo`` (:func:`run_demo`).
The user options of training and restoration are declared once in
:data:`TRAIN_SETTINGS` / :data:`RESTORE_SETTINGS` (see :class:`Setting`). Up-front checks (:func:`check_counts`, :func:`check_large_factor`,
:func:`check_contrast`, :func:`check_writable`, :func:`missing_extra`) refuse what cannot be
meant before any work. Interfaces only
convert their inputs and outputs and word their messages (:class:`Words`).
"""

from ._common import (
    CLI_WORDS,
    IMAGEJ_WORDS,
    NAPARI_WORDS,
    Words,
    isotropic_voxel_size,
    provenance,
    quiet_tensorflow,
    resolve_factor,
)
from ._demo import DEMO_DESCRIPTION, DemoOptions, run_demo
from ._checks import (EXTRAS, MAX_FACTOR, check_contrast, check_counts, check_large_factor, check_writable,
                      missing_extra, warn_if_resampled)
from ._options import CONFIG_DEFAULTS, PSF_HELP, RESTORE_DEFAULTS, Setting, add_arguments, check_settings, values_from_args
from ._options import RESTORE as RESTORE_SETTINGS
from ._options import TRAIN as TRAIN_SETTINGS
from ._psf import is_auto_psf, read_psf_file, resolve_psf
from ._restore import Restored, check_not_restored, convert_dtype, restore_volume
from ._score import score_volumes
from ._train import check_model_folder, new_run_config, patch_size_for, resume_config, train_volume, training_config, training_summary

__all__ = [
    "CLI_WORDS", "IMAGEJ_WORDS", "NAPARI_WORDS", "Words", "quiet_tensorflow", "resolve_factor", "provenance",
    "isotropic_voxel_size", "Setting", "TRAIN_SETTINGS", "RESTORE_SETTINGS", "CONFIG_DEFAULTS",
    "RESTORE_DEFAULTS", "PSF_HELP", "add_arguments", "values_from_args", "is_auto_psf", "read_psf_file",
    "resolve_psf", "Restored", "restore_volume", "check_not_restored", "convert_dtype", "score_volumes",
    "patch_size_for", "training_config", "resume_config", "train_volume", "training_summary",
    "EXTRAS", "MAX_FACTOR", "check_contrast", "check_counts", "check_large_factor", "check_writable",
    "warn_if_resampled",
    "missing_extra", "check_settings", "check_model_folder", "new_run_config", "DemoOptions", "run_demo", "DEMO_DESCRIPTION",
]
