"""The supervised oracle of ``isonet bench oracle``: its pairs come from the training block
``x < x_stop`` only, so the scoring block ``x >= x_stop`` never enters a batch."""

import numpy as np
import pytest


def column_volume(shape):
    """(Z, Y, X) float32 whose every voxel holds its own x index."""
    return np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape).copy()


def test_no_training_or_validation_patch_touches_the_scoring_block():
    from isonet_ij.oracle import make_supervised_pairs

    shape, x_stop, P = (33, 40, 48), 24, 16
    source = column_volume(shape)
    target = np.random.default_rng(0).random(shape).astype(np.float32) + 1
    target[..., x_stop:] = np.nan  # poison: any patch reaching the scoring block carries NaN
    flips = {"xz": (True, True), "yz": (True, True)}
    sampler = make_supervised_pairs(source, target, x_stop=x_stop, patch_size=P, flips=flips, n_validation=32)
    rng = np.random.default_rng(1)
    seen = [sampler.sample(64, rng) for _ in range(50)] + [sampler.validation]
    xs = np.concatenate([x for x, _ in seen])
    ys = np.concatenate([y for _, y in seen])
    assert np.isfinite(ys).all()
    assert xs.max() < x_stop  # sources: the x index of every voxel used
    assert xs.max() == x_stop - 1 and xs.min() == 0  # ... and the whole training block is used
    axes = {p[0] for p in sampler.planes}
    assert axes == {"xz", "yz"}


def test_pairs_are_refused_when_no_patch_fits_the_block():
    from isonet_ij.oracle import make_supervised_pairs

    v = column_volume((20, 30, 30))
    with pytest.raises(ValueError, match="smaller patch"):
        make_supervised_pairs(v, v, x_stop=10, patch_size=24)


def test_oracle_training_never_sees_the_scoring_block_and_restores():
    pytest.importorskip("tensorflow")
    from isonet_ij import Config, grid, restore
    from isonet_ij.oracle import train_oracle
    from conftest import smooth_volume

    acq = smooth_volume((8, 40, 48), seed=2)
    f = 3.0
    ref = grid.upsample_z(acq, f)
    ref[..., 24:] = np.nan  # a single NaN in a batch would make the loss NaN
    cfg = Config(factor=f, arch="isonet2", mode="none", patch_size=16, batch_size=4, epochs=2, steps_per_epoch=3,
                 n_validation=8, seed=0)
    res = train_oracle(acq, ref, cfg, x_stop=24)
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_psnr"]) for r in res.history)
    out = restore(acq, res.model)
    assert out.shape == ref.shape and np.isfinite(out).all()
