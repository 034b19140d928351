"""Supervised training pairs from a ground truth: the oracle of ``isonet bench oracle``.

Self-supervised IsoNet learns the inverse of the axial degradation from the volume's own
lateral planes (:mod:`isonet_ij.pairs`). The *oracle* trains the same network on the same
input grid, but on pairs whose targets are the truth: the acquired volume's axial planes
interpolated onto the isotropic grid (exactly as restoration feeds the network) as sources,
the isotropic reference's axial planes at the same place as targets. It is the ceiling a
single volume's self-supervision can approach; it needs a ground truth, so it exists for
benchmarks (phantoms, thinned real volumes), never for users' data.

Held out: only voxels with ``x < x_stop`` ever reach a training or validation pair (xz
planes cropped to ``x < x_stop``, yz planes taken only at ``x < x_stop``), so the block
``x >= x_stop`` can score the oracle on what it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import grid, pairs

__all__ = ["SupervisedPairs", "make_supervised_pairs", "train_oracle"]


@dataclass
class SupervisedPairs:
    """Patches of (source, target) axial planes; the sampler interface of :class:`pairs.PairSampler`.

    ``planes`` holds ``(axis, source, target, cumulative patch weights)`` with planes
    ``(H, W)`` float32, rows axial; ``validation`` is a fixed ``(source, target)`` pair of
    ``(n, P, P)`` arrays from planes that training never draws.
    """

    patch_size: int
    planes: list
    plane_weights: np.ndarray
    flips: dict
    validation: tuple = None

    def _one(self, plane, rng, *, augment: bool):
        axis, src, tgt, cum = plane
        P = self.patch_size
        ncols = src.shape[1] - P + 1
        flat = int(np.clip(np.searchsorted(cum, rng.random() * cum[-1], side="right"), 0, cum.size - 1))
        r0, c0 = divmod(flat, ncols)
        s, t = src[r0:r0 + P, c0:c0 + P], tgt[r0:r0 + P, c0:c0 + P]
        return pairs.random_flips(s, t, self.flips[axis], rng) if augment else (s, t)

    def sample(self, n: int, rng, *, augment: bool = True):
        """Draw ``n`` random pairs: ``(source, target)``, each ``(n, P, P)`` float32."""
        return pairs.draw_patches(n, self.patch_size, self.plane_weights, rng,
                                  lambda j: self._one(self.planes[j], rng, augment=augment))


def _planes(source, target, x_stop: int, P: int, keep) -> list:
    """The xz planes (each y, columns < x_stop) and yz planes (each x < x_stop) that ``keep`` selects."""
    out = []
    for y in range(source.shape[1]):
        if keep("xz", y):
            out.append(("xz", source[:, y, :x_stop], target[:, y, :x_stop]))
    for x in range(x_stop):
        if keep("yz", x):
            out.append(("yz", source[:, :, x], target[:, :, x]))
    return [(a, np.ascontiguousarray(s), np.ascontiguousarray(t), pairs.patch_weight_cumsum(t, P))
            for a, s, t in out if min(s.shape) >= P]


def make_supervised_pairs(source, target, *, x_stop: int, patch_size: int = 64, flips=None,
                          validation_every: int = 10, n_validation: int = 64, seed: int = 0) -> SupervisedPairs:
    """Supervised pairs from the block ``x < x_stop`` of two volumes on the isotropic grid.

    Parameters
    ----------
    source : (Z', Y, X) ndarray
        The network's input: the normalized acquired volume interpolated along z
        (:func:`isonet_ij.grid.upsample_z`), as restoration feeds it.
    target : (Z', Y, X) ndarray
        The normalized truth on the same grid.
    x_stop : int
        Columns ``x >= x_stop`` are held out: no pair, training or validation, touches them.
    patch_size : int
        Side of the square patches (pixels); planes smaller than a patch are skipped.
    flips : dict, optional
        ``{"xz": (rows, cols), "yz": (rows, cols)}`` flips allowed in augmentation
        (:func:`isonet_ij.pairs.flip_flags` of the training kernels); none by default.
    validation_every : int
        Every n-th plane of each orientation is held out for the fixed validation set.
    n_validation : int
        Number of validation patches.
    seed : int
        Seed of the validation patches.

    Returns
    -------
    SupervisedPairs
    """
    source = np.asarray(source, np.float32)
    target = np.asarray(target, np.float32)
    if source.shape != target.shape or source.ndim != 3:
        msg = f"source and target must be 3D volumes of one shape, got {source.shape} and {target.shape}"
        raise ValueError(msg)
    P, x_stop = int(patch_size), int(x_stop)
    flips = flips or {"xz": (False, False), "yz": (False, False)}
    train = _planes(source, target, x_stop, P, lambda axis, i: i % validation_every != validation_every // 2)
    val = _planes(source, target, x_stop, P, lambda axis, i: i % validation_every == validation_every // 2)
    if not train or not val:
        msg = (f"no {P}x{P} training patch fits the block x < {x_stop} of a {source.shape} volume; "
               "use a smaller patch size or a larger volume")
        raise ValueError(msg)

    def weights(planes):
        tot = np.array([p[3][-1] for p in planes])
        return tot / tot.sum()

    sampler = SupervisedPairs(P, train, weights(train), flips)
    held_out = SupervisedPairs(P, val, weights(val), flips)
    sampler.validation = held_out.sample(int(n_validation), np.random.default_rng([seed, 7]), augment=False)
    return sampler


def train_oracle(acquired, reference, config, *, psf=None, x_stop: int, model_dir=None, time_budget=None,
                 force=False, progress=False):
    """Train ``config``'s network on supervised pairs; the same run as :func:`isonet_ij.train` otherwise.

    Parameters
    ----------
    acquired : (Z, Y, X) ndarray
        The anisotropic volume (z spacing ``config.factor`` x xy); its percentiles
        normalize the sources, as in self-supervised training and in restoration.
    reference : (floor((Z-1) f)+1, Y, X) ndarray
        The truth on the restoration grid (:func:`isonet_ij.grid.crop_to_grid`); normalized by
        its own percentiles over the training block.
    config, psf, model_dir, time_budget, force, progress
        As :func:`isonet_ij.train` (the PSF only sets the allowed flips and the stored config).
    x_stop : int
        Columns held out for scoring (see :func:`make_supervised_pairs`).

    Returns
    -------
    isonet_ij.training.TrainResult
        Its model restores like any other (``isonet_ij.restore``).
    """
    from .training import train, training_kernels_for

    reference = np.asarray(reference, np.float32)
    f = float(config.factor)
    if reference.shape != (grid.n_output_slices(np.shape(acquired)[0], f),) + tuple(np.shape(acquired)[1:]):
        msg = f"reference shape {reference.shape} is not the restoration grid of {np.shape(acquired)} at factor {f:g}"
        raise ValueError(msg)
    p_lo, p_hi = config.normalization["p_low"], config.normalization["p_high"]
    t_lo, t_hi = pairs.percentiles(reference[..., :x_stop], low=p_lo, high=p_hi)
    target = pairs.normalize(reference, t_lo, t_hi)
    flips = None
    if psf is not None and config.mode != "none":
        kernels = training_kernels_for(psf, config.mode)
        flips = {a: pairs.flip_flags(kernels[a]) for a in ("xz", "yz")}

    def supervised(volume_norm, cfg):
        return make_supervised_pairs(grid.upsample_z(volume_norm, f), target, x_stop=x_stop,
                                     patch_size=cfg.patch_size, flips=flips, n_validation=cfg.n_validation,
                                     seed=cfg.seed)

    return train(acquired, config, psf=psf, model_dir=model_dir, time_budget=time_budget, force=force, progress=progress,
                 pairs_from=supervised)
