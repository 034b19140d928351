"""The supervised oracle of ``isonet bench oracle``: its pairs come from the training block
``x < x_stop`` only, so the scoring block ``x >= x_stop`` never enters a batch."""

import json

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


def test_bench_oracle_measures_the_gap_on_a_users_own_volume(tmp_path):
    """``--volume`` makes the cases of an isotropic stack of the user's (here blurred along z, thinned by 4)."""
    from scipy.ndimage import gaussian_filter

    from conftest import load_benchmark
    from isonet_ij import volume_io

    bench = load_benchmark("bench_oracle")
    rng = np.random.default_rng(0)
    iso = gaussian_filter(rng.random((48, 48, 48)), 1.5)
    volume_io.write_volume(tmp_path / "mine.tif", (1000 * iso).astype(np.float32), voxel_size=(0.5, 0.5, 0.5))
    argv = ["--minutes", "10", "--epochs", "2", "--volume", str(tmp_path / "mine.tif"), "--cases", "vol_z4_b2",
            "--cache", str(tmp_path / "cells"), "--models", str(tmp_path / "models"), "--out", str(tmp_path / "o.md")]
    assert bench.main(argv) == 0
    rows = {line.split(" | ")[0][2:]: line for line in (tmp_path / "o.md").read_text().splitlines()
            if line.startswith("| vol")}
    assert {"vol_z4_b2", "vol"} <= set(rows)  # the case, and the reference and noise checks of its source
    cells = sorted(p.name for p in (tmp_path / "cells").iterdir())
    assert cells and all(name.startswith("mine-") for name in cells)  # keyed by the file, not "vol"
    # the self-supervised arm trains one round, as its cells say, although rounds=auto would train two here
    plain = [p for p in (tmp_path / "models").iterdir() if "_isonet2_" in p.name]
    assert len(plain) == 1 and json.loads((plain[0] / "config.json").read_text())["rounds"] == 1
    from isonet_ij import Config, refinement

    case = bench.load_case(bench.parse_args(["--volume", str(tmp_path / "mine.tif")]), "vol_z4_b2", 0)
    assert refinement.rounds_for(Config(factor=4, psf=case["psf_spec"], epochs=2), case["psf"]) == 2
    with pytest.raises(SystemExit):  # a user case without --volume is an argparse error
        bench.parse_args(["--cases", "vol_z4"])
    # other factors and blurs of the stored sources are cases too (the rounds threshold's probes); others are not
    assert bench.parse_args(["--cases", "A1y_z4_b1,A3_z8_b0.5,A1_z2"]).case_list == ["A1y_z4_b1", "A3_z8_b0.5", "A1_z2"]
    # ... and load_case reads their source, factor and blur from the name
    assert [bench.split_case(c) for c in ("A1y_z4_b1", "A3_z8_b0.5", "A1_z2", "vol_z4_b2")] == [
        ("A1y", 4, 1.0), ("A3", 8, 0.5), ("A1", 2, None), ("vol", 4, 2.0)]
    for wrong in ("A2_z4", "A1y_z4_b", "nuclei_z4"):
        with pytest.raises(SystemExit):
            bench.parse_args(["--cases", wrong])
