"""``pairs.estimate_noise`` against an independent measure of white noise: the power of the lateral slices
beyond the optics' cut-off (``bench_oracle.white_noise_floor``, the check of benchmarks/results/oracle.md)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_oracle")


def noisy_stack(read_noise: float, seed: int = 0) -> np.ndarray:
    """Blobs blurred by a Gaussian of 2 voxels (no power beyond ~0.25 cycles/pixel), Poisson + read noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    clean = gaussian_filter((rng.random((12, 96, 96)) > 0.97).astype(float), 2.0) * 4000 + 20
    return (rng.poisson(clean) + rng.normal(0, read_noise, clean.shape)).astype(np.float64)


@pytest.mark.parametrize("read_noise", [0.0, 10.0])
def test_the_fitted_noise_model_equals_the_white_noise_floor(bench, read_noise):
    from isonet_ij import pairs

    vol = noisy_stack(read_noise)
    vn = pairs.normalize(vol, *pairs.percentiles(vol)).astype(np.float64)
    a, b = pairs.estimate_noise(vn)
    model = a * float(np.clip(vn, 0, None).mean()) + b
    floor = bench.white_noise_floor(vn, 0.4)
    assert model == pytest.approx(floor, rel=0.1), (a, b, model, floor)
    assert bench.white_noise_floor(vn, 0.6) == pytest.approx(floor, rel=0.1)  # white: flat beyond the cut-off
