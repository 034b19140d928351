"""Test-time augmentation (``restore(..., tta=True)``): flips averaged, each flipped back.

Reference: restoring the flipped volume with plain ``restore`` and flipping the result back
is the same network on the same framed planes, so the mean over every allowed flip of the
volume must equal the TTA restoration (mean fusion is linear; z flips are exact at an
integer factor with (Z-1)*f integral, where the interpolation grid maps onto itself).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import smooth_volume

pytest.importorskip("tensorflow")


def test_tta_equals_mean_of_flipped_restorations(tiny_trained_model):
    from isonet_ij import load_model, restore, restore_with_info

    model = load_model(tiny_trained_model)
    assert model.config.psf_info["flips"] == {"xz": [True, True], "yz": [True, True]}  # mode none: symmetric
    vol = smooth_volume((8, 40, 44), seed=3)
    res = restore_with_info(vol, model, tta=True)
    assert res.info["tta"] is True
    ref = np.zeros_like(res.volume)
    for fz, fy, fx in itertools.product((False, True), repeat=3):
        view = tuple(slice(None, None, -1 if f else 1) for f in (fz, fy, fx))
        ref += restore(vol[view], model)[view]
    ref /= 8
    span = float(np.ptp(ref))
    assert np.max(np.abs(res.volume - ref)) <= 1e-5 * span
    plain = restore(vol, model)
    assert np.max(np.abs(plain - res.volume)) > 1e-3 * span  # the flips changed the result


def test_tta_flips_follow_the_training_kernels():
    from isonet_ij import Config
    from isonet_ij.restoration import tta_flips

    cfg = Config(factor=4, psf_info={"flips": {"xz": [False, True], "yz": [True, True]}})
    assert tta_flips(cfg, "xz", False) == [(False, False)]
    assert tta_flips(cfg, "xz", True) == [(False, False), (False, True)]  # axially asymmetric PSF: no z flip
    assert len(tta_flips(cfg, "yz", True)) == 4
    assert tta_flips(Config(factor=4), "xz", True) == [(False, False), (False, True)]  # unknown: lateral only


def test_chunked_tta_equals_in_memory(tiny_trained_model, tmp_path):
    from isonet_ij import load_model, restore, restore_chunked

    model = load_model(tiny_trained_model)
    vol = smooth_volume((8, 40, 44), seed=4)
    whole = restore(vol, model, tta=True)
    import zarr

    info = restore_chunked(vol, model, out=tmp_path / "o.zarr", chunks=(24, 24), tta=True)
    assert info["n_chunks"] == 4
    chunked = np.asarray(zarr.open_group(str(tmp_path / "o.zarr"), mode="r")["0"])
    assert np.max(np.abs(chunked - whole)) <= 1e-5 * float(np.ptp(whole))
    plain = restore(vol, model)
    assert np.max(np.abs(chunked - plain)) > 1e-3 * float(np.ptp(whole))  # the columns ran TTA
