"""Point-spread functions: models, measured beads, estimates, and the kernels IsoNet trains with.

Every PSF is a 3D ``float32`` array with axes ``(z, y, x)``, odd sizes, its centre (peak
and centroid) at the centre voxel ``(nz // 2, ny // 2, nx // 2)``, non-negative, summing
to 1, and sampled on a voxel grid ``voxel_size = (dz, dy, dx)`` in micrometres.
Wavelengths are vacuum wavelengths in nanometres; Gaussian sigmas are in voxels.

IsoNet (Weigert et al., MICCAI 2017, sec. 2.1) degrades lateral (xy) planes so that they
look like axial planes. Its kernels:

* ``h_rot`` (:func:`rotated_psf`): the PSF with its axial axis laid along a lateral axis;
* ``h_iso`` (:func:`isotropic_psf`): the PSF with lateral resolution in every direction;
* ``h_split`` (:func:`split_psf`): the non-negative solution of ``h_rot = h_iso * h_split``;
* the 2D training kernels (:func:`training_kernels`), projections of ``h_rot`` (mode
  ``"full"``) or of ``h_split`` (mode ``"split"``) onto the lateral plane.

Table 1 of the paper uses a Gaussian PSF (sigma_xy/sigma_z = 2/8 voxels), a confocal PSF
(NA 1.1) and a light-sheet PSF (NA_detect 0.8, NA_illum 0.1); :data:`PAPER_DEFAULTS` holds
these with water immersion (n = 1.33), 488 nm excitation and 520 nm emission.

Without a model PSF, :func:`psf_from_beads` averages isolated beads of a bead stack, and
:func:`estimate_axial_blur` estimates the axial Gaussian blur from an anisotropic volume
alone (``--psf auto``; :func:`auto_psf_spec`, :func:`fit_optical_psf`).

Modules (private; everything public is re-exported here): ``_models`` (optical PSF
models), ``_kernels`` (h_iso, h_rot, h_split, training kernels), ``_spec`` (``--psf``
specs, PSF files), ``_measures`` (FWHM), ``_beads`` (PSF from beads), ``_estimate``
(axial blur from the volume), ``_plots`` (figures), ``_validate`` and ``_arrays``
(shared checks and array helpers).
"""

from ._beads import psf_from_beads
from ._estimate import (
    FREE_PARAMETER,
    auto_psf_spec,
    estimate_axial_blur,
    estimate_summary,
    fit_optical_psf,
    shell_extra_sigma,
)
from ._kernels import (
    SplitPSF,
    isotropic_psf,
    rotated_psf,
    split_psf,
    split_psf_with_info,
    split_residual,
    training_kernels,
)
from ._measures import FWHM_PER_SIGMA, fwhm_1d, psf_fwhm
from ._models import (
    DECAY_THRESHOLD,
    PAPER_DEFAULTS,
    WIDEFIELD_DEFAULTS,
    confocal_psf,
    gaussian_psf,
    lightsheet_psf,
    sheet_waist,
    widefield_psf,
)
from ._plots import plot_bead_psf, plot_spectra
from ._spec import load_psf, parse_psf_spec, psf_for_volume
from ._validate import validate_psf

__all__ = [
    "PAPER_DEFAULTS",
    "WIDEFIELD_DEFAULTS",
    "DECAY_THRESHOLD",
    "FREE_PARAMETER",
    "gaussian_psf",
    "widefield_psf",
    "confocal_psf",
    "lightsheet_psf",
    "sheet_waist",
    "load_psf",
    "validate_psf",
    "isotropic_psf",
    "rotated_psf",
    "split_psf",
    "split_psf_with_info",
    "SplitPSF",
    "split_residual",
    "training_kernels",
    "psf_fwhm",
    "FWHM_PER_SIGMA",
    "fwhm_1d",
    "parse_psf_spec",
    "psf_for_volume",
    "psf_from_beads",
    "estimate_axial_blur",
    "estimate_summary",
    "auto_psf_spec",
    "fit_optical_psf",
    "shell_extra_sigma",
    "plot_bead_psf",
    "plot_spectra",
]
