"""Self-supervised training pairs from the anisotropic volume itself (eq. 2 of the paper).

For every lateral slice ``g_xy`` of the (normalized) input and for each lateral axis, a
*source* is made as ``p = U(S(k * g) + n)`` and the *target* is ``g``:

* ``k`` is the 2D training kernel of that axis (``psf.training_kernels``: the rotated PSF
  ``h_rot`` for mode ``"full"``, ``h_split`` for ``"split"``, a unit impulse for
  ``"none"``, i.e. SRCNN). Kernel rows are the axial direction.
* the plane is oriented so that its rows play the role of z: the lateral slice as is
  (rows y, cols x) for the ``"xz"`` kernel, transposed (rows x, cols y) for ``"yz"``.
* ``S`` samples the blurred rows at ``o + k*f`` (``o`` a random integer grid origin in
  ``[0, ceil(f))``, which varies the sampling phase), ``U`` interpolates back onto the
  isotropic grid with exactly the weights restoration uses (:mod:`isonet_ij.grid`), so a
  source looks like an upsampled axial plane and has the shape of its target.
* ``n`` (noise matching, on by default): blurring averages the noise along the kernel, so
  ``S(k * g)`` carries only ``sum(k**2)`` of the input's noise variance while real
  acquired rows carry all of it. The missing variance ``(a*s + b) * (1 - sum(k**2))`` is
  added back, with ``var = a*I + b`` the Poisson-Gaussian noise model estimated from the
  lateral slices (:func:`estimate_noise`). Measured gain (nuclei 128^3, gaussian 2/8,
  factor 8, IsoNet-2 split, 350 steps, seed 0): 28.64 dB vs 26.60 dB without, PSNR
  against the isotropic ground truth (+2.0 dB; bicubic: 22.93 dB).

Intensities are normalized once per volume by robust percentiles (:func:`percentiles`).
Patches are drawn on the fly (new origin, position and noise each time), preferring
bright structure over background; whole lateral slices are held out for validation;
flips are applied only along axes where the kernel is symmetric (the paper: augment only
where the augmentation commutes with the PSF). 90-degree rotations never commute with an
anisotropic kernel and are not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import grid

__all__ = [
    "percentiles",
    "normalize",
    "denormalize",
    "blur_plane",
    "make_source",
    "estimate_noise",
    "flip_flags",
    "PairSampler",
    "make_pairs",
    "identity_kernels",
    "max_patch_size",
    "patch_weight_cumsum",
    "random_flips",
    "draw_patches",
]

#: Default normalization percentiles (as CSBDeep's ``normalize``).
P_LOW, P_HIGH = 1.0, 99.8


# --------------------------------------------------------------------------- normalization


def percentiles(volume, *, low: float = P_LOW, high: float = P_HIGH, max_samples=4_000_000):
    """Robust intensity range of a whole volume: its ``low`` and ``high`` percentiles.

    Computed once per volume (restoration never recomputes it per tile or chunk). Large
    volumes are subsampled with a fixed stride (deterministic).

    Returns
    -------
    (float, float)
        ``(lo, hi)`` in the volume's intensity units; ``hi > lo`` (``hi = lo + 1`` for a
        constant volume, so that normalization is still defined).
    """
    arr = np.asarray(volume)
    flat = arr.reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(math.ceil(flat.size / max_samples))]
    lo, hi = np.percentile(flat.astype(np.float64), [low, high])
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        # Constant (or nearly) volume: keep the offset, unit scale.
        hi = lo + (abs(lo) if lo != 0 else 1.0)
    return lo, hi


def normalize(volume, lo: float, hi: float) -> np.ndarray:
    """``(volume - lo) / (hi - lo)`` as float32 (not clipped)."""
    arr = np.asarray(volume, dtype=np.float32)
    return (arr - np.float32(lo)) * np.float32(1.0 / (hi - lo))


def denormalize(volume, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`normalize`, float32."""
    arr = np.asarray(volume, dtype=np.float32)
    return arr * np.float32(hi - lo) + np.float32(lo)


# --------------------------------------------------------------------------- blur / source


def identity_kernels() -> dict:
    """Training kernels of mode ``"none"`` (SRCNN: subsampling only, no PSF)."""
    one = np.ones((1, 1), dtype=np.float32)
    return {"xz": one, "yz": one.copy()}


def _check_kernel(kernel, name="kernel") -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        msg = f"`{name}` must be a 2D array with odd sizes, got shape {k.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(k)) or np.any(k < 0) or not k.sum() > 0:
        msg = f"`{name}` must be finite, non-negative with a positive sum"
        raise ValueError(msg)
    return k / k.sum()


def blur_plane(plane, kernel) -> np.ndarray:
    """Convolve a 2D plane with ``kernel`` (odd, centred), mirror ("reflect") boundaries.

    Parameters
    ----------
    plane : (H, W) ndarray
    kernel : (kh, kw) ndarray, odd sizes, non-negative; normalized to sum 1 here.

    Returns
    -------
    (H, W) ndarray of float32
    """
    from scipy.signal import fftconvolve

    k = _check_kernel(kernel)
    plane = np.asarray(plane, dtype=np.float64)
    if k.shape == (1, 1):
        return plane.astype(np.float32)
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    padded = np.pad(plane, ((ry, ry), (rx, rx)), mode="reflect")
    return fftconvolve(padded, k, mode="valid").astype(np.float32)


@dataclass
class _Grid:
    """Sampling (S) and interpolation (U) matrices of one plane height and grid origin."""

    origin: int
    n_sub: int
    n_out: int
    S: np.ndarray  # (n_sub, H)
    U: np.ndarray  # (n_out, n_sub)


def _plane_grid(height: int, factor: float, origin: int) -> _Grid | None:
    if origin > height - 1:
        return None
    n_sub = int(math.floor((height - 1 - origin) / factor + 1e-9)) + 1
    if n_sub < 2:
        return None
    n_out = grid.n_output_slices(n_sub, factor)
    S = grid.interpolation_matrix(height, origin + np.arange(n_sub) * factor)
    U = grid.interpolation_matrix(n_sub, grid.output_coordinates(n_sub, factor))
    return _Grid(origin, n_sub, n_out, S.astype(np.float32), U.astype(np.float32))


def make_source(
    plane, kernel, factor, *, origin: int = 0, noise=None, rng=None, blurred=None
):
    """One training pair from a whole plane: ``(U(S(k * plane) + n), plane cropped)``.

    Parameters
    ----------
    plane : (H, W) ndarray
        Lateral plane oriented with the axial direction of ``kernel`` along rows.
    kernel : (kh, kw) ndarray
        2D training kernel (rows axial).
    factor : float
        Anisotropy factor (>= 1, not rounded).
    origin : int
        Row of the first sample; samples at ``origin + k*factor``.
    noise : (float, float), optional
        Noise model ``(a, b)`` (variance ``a*I + b`` in normalized units); the missing
        variance ``(1 - sum(k**2)) * (a*I + b)`` is added to the sampled rows.
    rng : numpy Generator, optional
        For the noise.
    blurred : (H, W) ndarray, optional
        ``blur_plane(plane, kernel)`` if already computed.

    Returns
    -------
    source, target : (n_out, W) ndarrays of float32
        ``target = plane[origin : origin + n_out]``; ``n_out = floor((n_sub-1)*f)+1``
        with ``n_sub`` the number of samples.
    """
    plane = np.asarray(plane, dtype=np.float32)
    f = grid.check_factor(factor)
    g = _plane_grid(plane.shape[0], f, int(origin))
    if g is None:
        msg = f"plane of height {plane.shape[0]} is too small for factor {f} at origin {origin}"
        raise ValueError(msg)
    if blurred is None:
        blurred = blur_plane(plane, kernel)
    sampled = g.S @ blurred
    if noise is not None:
        sampled = _add_missing_noise(sampled, kernel, noise, rng or np.random.default_rng())
    source = g.U @ sampled
    return source.astype(np.float32), plane[g.origin : g.origin + g.n_out].copy()


def _kernel_sumsq(kernel) -> float:
    k = _check_kernel(kernel)
    return float(np.sum(k**2))


def _add_missing_noise(sampled, kernel_or_sumsq, noise, rng):
    sumsq = (
        kernel_or_sumsq
        if np.isscalar(kernel_or_sumsq)
        else _kernel_sumsq(kernel_or_sumsq)
    )
    a, b = noise
    missing = max(0.0, 1.0 - sumsq)
    if missing == 0 or (a <= 0 and b <= 0):
        return sampled
    var = np.maximum(a * np.maximum(sampled, 0) + b, 0) * missing
    return sampled + rng.standard_normal(sampled.shape).astype(np.float32) * np.sqrt(
        var
    ).astype(np.float32)


# --------------------------------------------------------------------------- noise model


def estimate_noise(volume, *, n_bins: int = 16, max_slices: int = 32, max_pixels=2_000_000):
    """Estimate a Poisson-Gaussian noise model ``var = a * I + b`` from lateral slices.

    A 3x3 high-pass (``[[1,-2,1],[-2,4,-2],[1,-2,1]] / 6``, unit gain on white noise,
    zero on planar signals) isolates the noise; its robust variance (MAD) in bins of the
    local mean is fitted by non-negative least squares.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Normalized volume (each z slice is one acquisition).

    Returns
    -------
    (float, float)
        ``(a, b)``, both ``>= 0``, in normalized intensity units.
    """
    from scipy.ndimage import uniform_filter
    from scipy.optimize import nnls
    from scipy.signal import convolve2d

    vol = np.asarray(volume, dtype=np.float32)
    hp = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32) / 6.0
    zs = np.unique(np.linspace(0, vol.shape[0] - 1, min(max_slices, vol.shape[0])).astype(int))
    res, loc = [], []
    for z in zs:
        plane = vol[z]
        if min(plane.shape) < 3:
            continue
        res.append(convolve2d(plane, hp, mode="valid").ravel())
        loc.append(uniform_filter(plane, 3)[1:-1, 1:-1].ravel())
    if not res:
        return 0.0, 0.0
    r = np.concatenate(res)
    m = np.concatenate(loc)
    if r.size > max_pixels:
        step = int(math.ceil(r.size / max_pixels))
        r, m = r[::step], m[::step]
    edges = np.unique(np.quantile(m, np.linspace(0, 1, n_bins + 1)))
    if edges.size < 2:
        var = (1.4826 * np.median(np.abs(r - np.median(r)))) ** 2
        return 0.0, float(var)
    idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, edges.size - 2)
    means, variances, weights = [], [], []
    for i in range(edges.size - 1):
        sel = idx == i
        if np.count_nonzero(sel) < 50:
            continue
        ri = r[sel]
        means.append(float(np.mean(m[sel])))
        variances.append(float((1.4826 * np.median(np.abs(ri - np.median(ri)))) ** 2))
        weights.append(math.sqrt(np.count_nonzero(sel)))
    if not means:
        return 0.0, 0.0
    w = np.asarray(weights)
    A = np.stack([np.asarray(means), np.ones(len(means))], axis=1) * w[:, None]
    (a, b), _ = nnls(A, np.asarray(variances) * w)
    return float(a), float(b)


# --------------------------------------------------------------------------- augmentation


def flip_flags(kernel, *, rtol: float = 1e-3) -> tuple[bool, bool]:
    """Which flips commute with ``kernel``: ``(flip rows, flip columns)``.

    A flip of the pair commutes with the degradation when the kernel is mirror symmetric
    along that axis (the interpolation is symmetric; the grid origin is random anyway).
    """
    k = _check_kernel(kernel)
    tol = rtol * float(np.max(k))
    return (
        bool(np.max(np.abs(k - k[::-1, :])) <= tol),
        bool(np.max(np.abs(k - k[:, ::-1])) <= tol),
    )


# --------------------------------------------------------------------------- sampler


def max_patch_size(shape, factor, *, multiple: int = 4) -> int:
    """Largest patch side (a multiple of ``multiple``) that :func:`make_pairs` accepts.

    Parameters
    ----------
    shape : (Z, Y, X)
        Shape of the anisotropic volume.
    factor : float
        Anisotropy factor.
    """
    f = grid.check_factor(factor)
    side = min(int(shape[1]), int(shape[2]))
    g = _plane_grid(side, f, 0)
    rows = g.n_out if g is not None else 0
    return rows - rows % multiple


@dataclass
class _Plane:
    target: np.ndarray  # (H, W) normalized lateral plane, rows axial
    blurred: np.ndarray  # (H, W)
    axis: str  # "xz" or "yz"
    z: int
    cum: np.ndarray  # cumulative weights over top-left positions, row-major (H-P+1)*(W-P+1)
    offsets: list  # valid grid origins


@dataclass
class PairSampler:
    """Draws (source, target) patches on the fly; holds a fixed validation set.

    Create with :func:`make_pairs`. ``sample(n, rng)`` returns two ``(n, P, P)`` float32
    arrays (source, target); ``validation`` is a fixed pair of arrays from held-out
    slices.
    """

    factor: float
    patch_size: int
    kernels: dict
    noise: tuple | None
    planes: list
    grids: dict
    flips: dict
    sumsq: dict
    validation: tuple = None
    train_slices: list = field(default_factory=list)
    val_slices: list = field(default_factory=list)
    plane_weights: np.ndarray = None

    def _grid(self, height, origin):
        key = (height, origin)
        if key not in self.grids:
            self.grids[key] = _plane_grid(height, self.factor, origin)
        return self.grids[key]

    def _one(self, plane: _Plane, rng, *, augment=True):
        P = self.patch_size
        H, W = plane.target.shape
        origin = plane.offsets[rng.integers(len(plane.offsets))]
        g = self._grid(H, origin)
        ncols = W - P + 1
        # top-left rows allowed for this origin: [origin, origin + n_out - P]
        lo_i = origin * ncols
        hi_i = (origin + g.n_out - P + 1) * ncols
        c_lo = plane.cum[lo_i - 1] if lo_i > 0 else 0.0
        u = c_lo + rng.random() * (plane.cum[hi_i - 1] - c_lo)
        flat = int(np.clip(np.searchsorted(plane.cum, u, side="right"), lo_i, hi_i - 1))
        y0, c0 = divmod(flat, ncols)
        r0 = y0 - origin
        sampled = g.S @ plane.blurred[:, c0 : c0 + P]
        if self.noise is not None:
            sampled = _add_missing_noise(sampled, self.sumsq[plane.axis], self.noise, rng)
        src = g.U[r0 : r0 + P] @ sampled
        tgt = plane.target[y0 : y0 + P, c0 : c0 + P]
        return random_flips(src, tgt, self.flips[plane.axis], rng) if augment else (src, tgt)

    def sample(self, n: int, rng, *, augment: bool = True):
        """Draw ``n`` random pairs: ``(source, target)``, each ``(n, P, P)`` float32."""
        return draw_patches(n, self.patch_size, self.plane_weights, rng,
                            lambda j: self._one(self.planes[j], rng, augment=augment))


def random_flips(src, tgt, flips, rng):
    """``(src, tgt)`` flipped together, each allowed flip (rows, columns) with probability 1/2."""
    fr, fc = flips
    if fr and rng.random() < 0.5:
        src, tgt = src[::-1], tgt[::-1]
    if fc and rng.random() < 0.5:
        src, tgt = src[:, ::-1], tgt[:, ::-1]
    return src, tgt


def draw_patches(n: int, P: int, plane_weights, rng, draw):
    """``n`` pairs ``(n, P, P)`` float32 each: planes drawn by ``plane_weights``, ``draw(plane index)``
    returning one ``(source, target)`` patch pair."""
    xs = np.empty((n, P, P), np.float32)
    ys = np.empty((n, P, P), np.float32)
    idx = rng.choice(len(plane_weights), size=n, p=plane_weights)
    for i, j in enumerate(idx):
        xs[i], ys[i] = draw(j)
    return xs, ys


def patch_weight_cumsum(target: np.ndarray, P: int) -> np.ndarray:
    """Cumulative patch weights over top-left positions: mean intensity + a floor.

    ``target`` (H, W) normalized plane; returns ``(H-P+1)*(W-P+1)`` float64, row-major, so
    that a uniform draw in ``[0, last)`` picks a ``P x P`` patch by its brightness.
    """
    t = np.clip(target.astype(np.float64), 0, None)
    c = np.pad(t.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = (c[P:, P:] - c[:-P, P:] - c[P:, :-P] + c[:-P, :-P]) / (P * P)
    w = box + 0.05 * max(float(box.mean()), 1e-6)
    return np.cumsum(w.ravel())


def make_pairs(
    volume_norm,
    kernels: dict,
    factor,
    *,
    patch_size: int = 64,
    validation_fraction: float = 0.1,
    n_validation: int = 64,
    noise_match: bool = True,
    noise=None,
    seed: int = 0,
) -> PairSampler:
    """Prepare training pairs (eq. 2) from a normalized anisotropic volume.

    Parameters
    ----------
    volume_norm : (Z, Y, X) ndarray
        Input volume normalized by :func:`normalize` (acquired slices).
    kernels : dict
        ``{"xz": k2d, "yz": k2d}`` from ``psf.training_kernels`` (or
        :func:`identity_kernels` for SRCNN); rows of each kernel are the axial direction.
    factor : float
        Anisotropy factor (z spacing / xy spacing), not rounded.
    patch_size : int
        Side of the square patches (pixels).
    validation_fraction : float
        Fraction of lateral slices held out for validation (at least one).
    n_validation : int
        Number of fixed validation patches.
    noise_match : bool
        Add back the noise the kernel averaged away (see module docstring).
    noise : (float, float), optional
        Noise model ``(a, b)``; estimated from ``volume_norm`` when ``None``.
    seed : int
        Seed of the validation split patches.

    Returns
    -------
    PairSampler

    Raises
    ------
    ValueError
        The volume has fewer than 2 slices or its lateral planes are smaller than a patch
        (after cropping to the sampling grid).
    """
    vol, f, P = _check_pairs_input(volume_norm, kernels, factor, patch_size)
    train_slices, val_slices = _split_slices(vol.shape[0], validation_fraction)
    if noise_match and noise is None:
        noise = estimate_noise(vol)
    noise = tuple(noise) if noise_match else None
    common = {
        "factor": f,
        "patch_size": P,
        "kernels": kernels,
        "noise": noise,
        "flips": {a: flip_flags(kernels[a]) for a in ("xz", "yz")},
        "sumsq": {a: _kernel_sumsq(kernels[a]) for a in ("xz", "yz")},
    }
    train_planes = _make_planes(vol, train_slices, kernels, f, P)
    val_planes = _make_planes(vol, val_slices, kernels, f, P)
    sampler = PairSampler(
        **common,
        planes=train_planes,
        grids={},
        train_slices=train_slices,
        val_slices=val_slices,
        plane_weights=_plane_weights(train_planes),
    )
    # Fixed validation set from the held-out slices (no augmentation).
    val_sampler = PairSampler(
        **common, planes=val_planes, grids=sampler.grids, plane_weights=_plane_weights(val_planes)
    )
    sampler.validation = val_sampler.sample(
        int(n_validation), np.random.default_rng([seed, 7]), augment=False
    )
    return sampler


def _check_pairs_input(volume_norm, kernels, factor, patch_size) -> tuple[np.ndarray, float, int]:
    """``(volume as float32, factor, patch size)``; ``ValueError`` when no pair fits."""
    vol = np.asarray(volume_norm, dtype=np.float32)
    if vol.ndim != 3:
        msg = f"`volume_norm` must be 3D (z, y, x), got shape {vol.shape}"
        raise ValueError(msg)
    f = grid.check_factor(factor)
    P = int(patch_size)
    Z, Y, X = vol.shape
    if Z < 2:
        msg = f"the volume has {Z} slice(s); training needs at least 2 (one held out)"
        raise ValueError(msg)
    for name in ("xz", "yz"):
        if name not in kernels:
            msg = f"`kernels` must have keys 'xz' and 'yz', got {sorted(kernels)}"
            raise ValueError(msg)
    g0 = _plane_grid(min(Y, X), f, 0)
    n_rows = g0.n_out if g0 is not None else 0
    if n_rows < P or max(Y, X) < P:
        msg = (
            f"lateral slices of {Y}x{X} pixels give planes of {n_rows} rows on the factor-"
            f"{f:g} sampling grid, smaller than a {P}x{P} patch; use a smaller --patch "
            f"(a multiple of 4, <= {n_rows - n_rows % 4}) or a larger volume"
        )
        raise ValueError(msg)
    return vol, f, P


def _split_slices(n_slices: int, validation_fraction: float) -> tuple[list, list]:
    """``(training slices, validation slices)``: at least one of each, spread evenly."""
    n_val = max(1, int(round(validation_fraction * n_slices)))
    n_val = min(n_val, n_slices - 1)
    val_slices = sorted({int((k + 0.5) * n_slices / n_val) for k in range(n_val)})
    train_slices = [z for z in range(n_slices) if z not in val_slices]
    return train_slices, val_slices


def _make_planes(vol: np.ndarray, zs, kernels: dict, f: float, P: int) -> list:
    """The xz and yz training planes of lateral slices ``zs`` (rows: the axial direction).

    A plane is kept only when at least one grid origin gives ``P`` sampled rows.
    """
    out = []
    for z in zs:
        for axis in ("xz", "yz"):
            target = vol[z] if axis == "xz" else np.ascontiguousarray(vol[z].T)
            H = target.shape[0]
            offsets = []
            for o in range(int(math.ceil(f))):
                gg = _plane_grid(H, f, o)
                if gg is not None and gg.n_out >= P:
                    offsets.append(o)
            if not offsets:
                continue
            out.append(
                _Plane(
                    target=target,
                    blurred=blur_plane(target, kernels[axis]),
                    axis=axis,
                    z=z,
                    cum=patch_weight_cumsum(target, P),
                    offsets=offsets,
                )
            )
    return out


def _plane_weights(planes: list) -> np.ndarray:
    """Probability of drawing each plane: its share of the total patch weight."""
    tot = np.array([p.cum[-1] for p in planes])
    return tot / tot.sum()
