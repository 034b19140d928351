"""A complete, documented synthetic test case: :func:`synthesize`.

Phantom, PSF, isotropic ground truth and anisotropic input, with the metadata (every
parameter, unit and version) that lets the case be reproduced from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._formation import acquire, check_factor, convolve
from ._shapes import KINDS, PHANTOMS, target_nuclei_count

#: Smallest edge length (voxels) :func:`synthesize` accepts.
MIN_SIZE = 32

#: Defaults of :func:`synthesize` (and of ``isonet synth``). ``voxel_size`` is the lateral
#: (= isotropic grid) voxel size in um; ``photons`` the expected photon count at the
#: brightest voxel of the blurred signal; ``read_noise`` the sd of the Gaussian detector
#: noise in counts; ``background`` a uniform background in photons per voxel. Per kind,
#: the paper's pairing (Table 1): a ``--psf`` spec (:func:`isonet_ij.psf.parse_psf_spec`;
#: optical PSFs take water immersion n = 1.33, excitation 488 nm and emission 520 nm from
#: :data:`isonet_ij.psf.PAPER_DEFAULTS`) and the axial subsampling factor.
DEFAULTS = {
    "voxel_size": 0.1,
    "photons": 200.0,
    "read_noise": 3.0,
    "background": 5.0,
    "kinds": {
        "nuclei": {"psf": "gaussian:2,8", "factor": 8},
        "membranes": {"psf": "confocal:na=1.1", "factor": 4},
        "nuclei-membranes": {"psf": "lightsheet:na_detect=0.8,na_illum=0.1", "factor": 6},
    },
}


def _versions() -> dict:
    import platform

    import scipy
    import tifffile

    from .. import __version__

    return {
        "isonet_ij": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "tifffile": tifffile.__version__,
    }


def _resolve_psf(psf, kind: str, dx: float):
    """``(h, info)`` from ``None`` (the paper's PSF for ``kind``), a spec or an array."""
    from .. import psf as psf_mod

    if psf is None:
        psf = DEFAULTS["kinds"][kind]["psf"]
    if isinstance(psf, str):
        return psf_mod.parse_psf_spec(psf, voxel_size=(dx, dx, dx))
    h = np.asarray(psf, dtype=np.float32)
    if h.ndim != 3 or any(s % 2 == 0 for s in h.shape) or not np.isclose(h.sum(), 1, rtol=1e-3):
        msg = (
            f"`psf` array must be 3D (z, y, x) with odd sizes and sum 1, got shape {h.shape} "
            f"and sum {float(h.sum()):.4g}"
        )
        raise ValueError(msg)
    return h, {"kind": "array", "shape": list(h.shape)}


def _check_positive(value, name: str, unit: str, *, allow_zero=False, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        msg = f"`{name}` must be a {what} number ({unit}), got {value!r}"
        raise ValueError(msg)
    return v


def synthesize(
    kind: str,
    *,
    size: int = 128,
    psf=None,
    factor: int | None = None,
    seed: int = 0,
    photons: float | None = DEFAULTS["photons"],
    read_noise: float = DEFAULTS["read_noise"],
    background: float = DEFAULTS["background"],
    voxel_size: float = DEFAULTS["voxel_size"],
    progress: bool = False,
) -> dict:
    """A complete synthetic test case: phantom, PSF, isotropic GT and anisotropic input.

    The paper's pairings (sec. 3.1, Table 1) are the defaults: ``"nuclei"`` with a
    Gaussian PSF (sigma_xy / sigma_z = 2 / 8 voxels) and factor 8; ``"membranes"`` with
    a confocal PSF (NA 1.1) and factor 4; ``"nuclei-membranes"`` with a light-sheet PSF
    (NA_detect 0.8, NA_illum 0.1) and factor 6. Optical PSFs use water immersion
    (n = 1.33), excitation 488 nm and emission 520 nm (see :data:`DEFAULTS`).

    Parameters
    ----------
    kind : {"nuclei", "membranes", "nuclei-membranes"}
        Phantom kind.
    size : int
        Edge length of the cubic isotropic volume in voxels (>= 32).
    psf : str, (a, b, c) ndarray or None
        ``None``: the paper's PSF for ``kind``; a string: a ``--psf`` spec for
        :func:`isonet_ij.psf.parse_psf_spec` (sigmas in voxels of the isotropic grid,
        wavelengths nm); an array: the PSF itself (odd sizes, sum 1).
    factor : int, optional
        Axial subsampling factor (integer >= 1); default per kind (8, 4, 6).
    seed : int
        Seed of every random choice (phantom and noise); same seed, same bytes.
    photons : float or None
        Expected photon count at the brightest voxel of the blurred signal; ``None``
        turns Poisson noise off (``input`` then in the units of ``gt``).
    read_noise : float
        Sd of the Gaussian detector noise in counts (0: none).
    background : float
        Uniform background in photons per voxel, added before the Poisson noise.
    voxel_size : float
        Lateral voxel size ``dx = dy`` in um, also the voxel size of the isotropic grid.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        ``gt`` : (size, size, size) float32, fluorophore density in [0, 1];
        ``gt_iso`` : (size, size, size) float32, ``gt`` convolved with ``h_iso``
        (:func:`isonet_ij.psf.isotropic_psf`), same units as ``gt``;
        ``input`` : (ceil(size / factor), size, size) float32, photon counts, slice ``i``
        at ``gt`` slice ``i * factor``;
        ``psf`` : (a, b, c) float32, sum 1, on the isotropic grid;
        ``psf_iso`` : same shape, ``h_iso``;
        ``labels`` : (size, size, size) uint16 nuclei instance labels, or ``None`` for
        ``"membranes"``;
        ``voxel_size`` : ``(dx, dx, dx)`` um of ``gt``; ``input_voxel_size`` :
        ``(factor * dx, dx, dx)`` um;
        ``meta`` : dict of every parameter, units and versions (JSON-serialisable).
    """
    from .. import psf as psf_mod

    run = _check_settings(
        kind, size=size, factor=factor, seed=seed, photons=photons, read_noise=read_noise,
        background=background, voxel_size=voxel_size,
    )
    # the PSF first: a bad spec fails before any long computation
    h, psf_info = _resolve_psf(psf, kind, run.dx)
    h = np.asarray(h, dtype=np.float32)
    h_iso = np.asarray(psf_mod.isotropic_psf(h), dtype=np.float32)
    gt, labels, gt_iso, g, photon_scale = _simulate(run, h, h_iso, progress=progress)
    meta = _metadata(run, g.shape, h.shape, psf_info, labels, photon_scale)
    dx = run.dx
    return {
        "gt": gt, "gt_iso": gt_iso, "input": g, "psf": h, "psf_iso": h_iso, "labels": labels,
        "voxel_size": (dx, dx, dx), "input_voxel_size": (run.factor * dx, dx, dx), "meta": meta,
    }


@dataclass(frozen=True)
class _Settings:
    """The checked scalar options of :func:`synthesize` (``dx``: voxel size in um)."""

    kind: str
    size: int
    factor: int
    seed: int
    photons: float | None
    read_noise: float
    background: float
    dx: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.size)


def _check_settings(kind, *, size, factor, seed, photons, read_noise, background, voxel_size):
    """:class:`_Settings` from :func:`synthesize`'s arguments; ``ValueError`` names the bad one."""
    if kind not in KINDS:
        msg = f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}"
        raise ValueError(msg)
    try:
        size_ok = int(size) == float(size) and int(size) >= MIN_SIZE
    except (TypeError, ValueError, OverflowError):
        size_ok = False
    if not size_ok:
        msg = f"`size` must be an integer >= {MIN_SIZE} voxels, got {size!r}"
        raise ValueError(msg)
    size = int(size)
    factor = check_factor(DEFAULTS["kinds"][kind]["factor"] if factor is None else factor)
    n_in = -(-size // factor)
    if n_in < 2:
        msg = (
            f"`factor` {factor} leaves {n_in} input slice of a {size}-voxel volume; use a "
            f"factor below {size} or a larger `size`"
        )
        raise ValueError(msg)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        msg = f"`seed` must be a non-negative integer, got {seed!r}"
        raise ValueError(msg)
    return _Settings(
        kind=kind,
        size=size,
        factor=factor,
        seed=int(seed),
        photons=_check_positive(photons, "photons", "expected peak photon count", allow_none=True),
        read_noise=_check_positive(read_noise, "read_noise", "sd in counts", allow_zero=True),
        background=_check_positive(background, "background", "photons per voxel", allow_zero=True),
        dx=_check_positive(voxel_size, "voxel_size", "lateral voxel size in um"),
    )


def _simulate(run: _Settings, h, h_iso, *, progress: bool):
    """``(gt, labels, gt_iso, input, photon_scale)``: phantom, its two blurs and the noise.

    ``labels`` is None for membranes (their Voronoi cell ids are no segmentation target).
    """
    from tqdm import tqdm

    phantom_ss, noise_ss = np.random.SeedSequence(run.seed).spawn(2)
    with tqdm(total=3, desc=f"synth {run.kind}", disable=not progress, leave=False) as bar:
        bar.set_postfix_str("phantom")
        gt, labels = PHANTOMS[run.kind](run.shape, seed=np.random.default_rng(phantom_ss))
        if run.kind == "membranes":
            labels = None
        bar.update()
        bar.set_postfix_str("gt_iso")
        gt_iso = convolve(gt, h_iso)
        bar.update()
        bar.set_postfix_str("input")
        blurred = convolve(gt, h)
        g, photon_scale = acquire(
            blurred, factor=run.factor, photons=run.photons, read_noise=run.read_noise,
            background=run.background, rng=np.random.default_rng(noise_ss),
        )
        del blurred
        bar.update()
    return gt, labels, gt_iso, g, photon_scale


def _metadata(run: _Settings, input_shape, psf_shape, psf_info, labels, photon_scale) -> dict:
    """The ``meta`` dict of :func:`synthesize`: parameters, units, versions (JSON-ready)."""
    dx, factor, photons = run.dx, run.factor, run.photons
    return {
        "kind": run.kind,
        "size": run.size,
        "seed": run.seed,
        "factor": factor,
        "shape_gt": list(run.shape),
        "shape_input": list(input_shape),
        "voxel_size_um": [dx, dx, dx],
        "input_voxel_size_um": [factor * dx, dx, dx],
        "z_grid": "slice i of input lies at gt slice i*factor (slice 0 at slice 0)",
        "psf": psf_info,
        "psf_shape": list(psf_shape),
        "psf_iso": "isonet_ij.psf.isotropic_psf(psf)",
        "photons": photons,
        "photon_scale": photon_scale,
        "read_noise": run.read_noise,
        "background": run.background,
        "convolution": "FFT, half-sample symmetric (reflect) padding, same shape",
        "noise": (
            "input = Poisson(photon_scale * (psf * gt)[::factor] + background) "
            "+ Normal(0, read_noise); not clipped"
            if photons is not None
            else "input = (psf * gt)[::factor] + background + Normal(0, read_noise)"
        ),
        "units": {
            "gt": "fluorophore density, arbitrary units in [0, 1]",
            "gt_iso": "same as gt",
            "input": "photon counts (float32)" if photons is not None else "same as gt",
            "psf": "dimensionless, sums to 1",
            "labels": "nuclei instance ids (uint16, 0 background)" if labels is not None else None,
            "voxel_size": "um",
            "wavelength": "nm",
            "psf_sigma": "voxels of the isotropic grid",
        },
        "n_labels": int(labels.max()) if labels is not None else None,
        "target_nuclei": target_nuclei_count(run.shape) if run.kind == "nuclei" else None,
        "versions": _versions(),
    }
