"""A second training round on the acquired slices as the first round restores them (``Config.rounds = 2``).

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
slices, interpolated ones included (A1y -0.8: it learns the first round's guesses). Hence
opt-in, for stacks with a strong axial blur.
"""

from __future__ import annotations

import numpy as np

from . import grid

__all__ = ["FIRST_ROUND_SHARE", "restored_acquired_slices"]

#: The share of the epochs and of the time budget the first round gets.
FIRST_ROUND_SHARE = 0.5


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
