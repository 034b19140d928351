"""A second training round on the acquired slices as the first round restores them (``Config.rounds``).

Self-supervised IsoNet learns from lateral slices, but each lateral slice of a stack is a
*thick* optical section: it gathers the out-of-focus light of the whole axial PSF, whereas
the axial planes it is then applied to are thin along their own normal (the lateral PSF).
The network learns to restore thick sections and is asked to restore thin ones. After a
first round, the restoration has the axial blur largely removed, so its slices at the
acquired z positions are those same slices with less out-of-focus light: thin sections with
the acquired content and no invented slice. A second round, started from the first's
weights, trains on them: the training's own pairs (:func:`isonet_ij.pairs.make_pairs`) made
from these slices instead of the acquired ones, with the acquisition's normalization and
noise model. With a model folder, the first round trains and checkpoints in its ``round1/``
(:data:`isonet_ij.checkpoints.FIRST_ROUND_DIR`), so a run killed in either round resumes there.

Measured against the supervised oracle (``benchmarks/results/oracle.md``, 2 min per run in
all, seed 0, held-out half): on the three phantoms (strong axial blur) +0.63 / +1.04 /
+0.50 dB over one round of the same budget, which brings all three within 0.64 dB of the
oracle (one round: 0.51 / 1.68 / 0.63); on the real volumes thinned without an added blur
(the axial loss is mostly subsampling) -0.29 to +0.26 dB. Tried first and not kept: the
second round from fresh weights (membranes +0.9, A1y -0.2) and on all the restoration's
slices, interpolated ones included (A1y -0.8: it learns the first round's guesses).
At 15 min (``oracle_full.md``): membranes +1.04, the unblurred real stacks -0.22 to +0.25;
on real content blurred along z by sigma 2 and 4 voxels (``oracle.md``, 2 min): +0.06 to
+0.41. Hence the default ``rounds="auto"`` (:func:`rounds_for`): two rounds when the PSF's
extra axial blur is strong (the three phantoms: 7.7 / 2.3 / 5.2 voxels; the blurred real
cases: 2.0 / 4.0), one where it is small (the thinned real stacks: 0).
"""

from __future__ import annotations

import math

import numpy as np

from . import grid

__all__ = ["FIRST_ROUND_SHARE", "AUTO_EXTRA_SIGMA", "AUTO_MIN_BUDGET_S", "extra_axial_sigma", "rounds_for",
           "restored_acquired_slices"]

#: The share of the epochs and of the time budget the first round gets.
FIRST_ROUND_SHARE = 0.5

#: ``rounds="auto"`` trains two rounds when the PSF's extra axial sigma
#: (:func:`extra_axial_sigma`, voxels of the isotropic grid) is at least this: between the
#: measured cases where the second round was a wash (0 and 1.0) and where it paid (2.0 and more).
AUTO_EXTRA_SIGMA = 1.5
#: ... and when a time budget, if any, is at least this (seconds): each round needs time to
#: learn; two rounds were measured at 1 min per network and more (Table 1's quick profile).
AUTO_MIN_BUDGET_S = 60.0


def extra_axial_sigma(psf) -> float:
    """The axial blur a PSF adds to its lateral one: ``sqrt(fwhm_z^2 - fwhm_xy^2) / 2.355``.

    ``psf`` (z, y, x) on the isotropic grid; voxels of that grid. For a Gaussian PSF this is
    ``sqrt(sigma_z^2 - sigma_xy^2)``; FWHMs (not second moments) so that an optical PSF's
    faint tails do not dominate. 0 for a PSF no longer along z than across.
    """
    from .psf import FWHM_PER_SIGMA, psf_fwhm

    fz, fy, fx = psf_fwhm(np.asarray(psf, np.float64))
    return math.sqrt(max(fz * fz - max(fy, fx) ** 2, 0.0)) / FWHM_PER_SIGMA


def rounds_for(config, psf, time_budget: float | None = None) -> int:
    """The number of training rounds of ``config`` with ``psf`` (the isotropic-grid PSF, or None).

    ``config.rounds`` 1 or 2 is kept; ``"auto"`` is 2 when the PSF's extra axial sigma is at
    least :data:`AUTO_EXTRA_SIGMA`, the run has epochs for two rounds (``epochs >= 2``) and
    ``time_budget`` (seconds, None: none) is at least :data:`AUTO_MIN_BUDGET_S`; else 1
    (``mode="none"`` trains without a PSF: 1).
    """
    if config.rounds != "auto":
        return int(config.rounds)
    if psf is None or np.ndim(psf) != 3 or config.mode == "none" or int(config.epochs) < 2:
        return 1  # (a PSF that is not 3D is refused by training's own checks)
    if time_budget is not None and time_budget < AUTO_MIN_BUDGET_S:
        return 1
    return 2 if extra_axial_sigma(psf) >= AUTO_EXTRA_SIGMA else 1


def restored_acquired_slices(volume, model) -> np.ndarray:
    """The acquired slices as ``model`` restores them: ``(Z, Y, X)`` float32, in ``volume``'s units.

    ``volume`` (Z, Y, X) is the anisotropic stack; the restoration's slices at the acquired
    positions ``i * factor`` (:func:`isonet_ij.grid.acquired_positions`) are returned.
    """
    from .restoration import restore

    vol = np.asarray(volume)
    restored = restore(vol, model, precision="fp32")  # the targets of training: no int8 approximation
    rows = np.rint(grid.acquired_positions(vol.shape[0], model.config.factor)).astype(int)
    return np.asarray(restored[rows], np.float32)
