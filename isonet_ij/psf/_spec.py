"""PSFs named on the command line: ``--psf`` specs and measured PSF files.

A ``--psf`` spec is a model with optional parameters (``gaussian:2,8``,
``confocal:na=1.1``, ...) or a path to a PSF TIFF, read with :func:`load_psf` and
resampled onto the isotropic grid. ``--psf auto[:MODEL]`` is resolved from the volume
before parsing (:func:`isonet_ij.psf.auto_psf_spec`); its result is an ordinary spec.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from ._arrays import border_shell, robust_noise
from ._models import (
    PAPER_DEFAULTS,
    WIDEFIELD_DEFAULTS,
    confocal_psf,
    gaussian_psf,
    lightsheet_psf,
    sheet_waist,
    widefield_psf,
)
from ._validate import NEG_TOL, PSF_MODELS, check_shape, check_voxel_size, validate_psf

__all__ = ["load_psf", "parse_psf_spec", "psf_for_volume", "MAX_PSF_SIGMA", "MAX_PSF_SIDE"]

#: The largest Gaussian sigma a spec may give, voxels of the isotropic grid: its PSF spans
#: 2 * ceil(4 * sigma) + 1 = 257 voxels per axis; larger ones are mistakes (e.g. nm typed as
#: voxels) and would need gigabytes.
MAX_PSF_SIGMA = 32.0
#: The largest PSF side (voxels per axis) accepted from a file or an optical model.
MAX_PSF_SIDE = 257

#: Relative tolerance on the sum of a measured PSF before :func:`load_psf` warns.
_SUM_TOL = 1e-3


# --------------------------------------------------------------------------- measured


def load_psf(
    path,
    *,
    voxel_size=None,
    target_spacing=None,
    shape=None,
    noise_sigmas: float = 3.0,
) -> np.ndarray:
    """Read a measured bead PSF from a TIFF and bring it onto an isotropic grid.

    Steps: subtract the background (median of the outer 2-voxel shell) and zero every
    voxel below ``noise_sigmas`` noise sigmas (noise from the shell's MAD; this also clips
    negatives, and keeps the clipped noise from adding mass all over the box) -- skipped
    for a stack that already is a PSF (no negative values, sums to 1 within 0.1 %, e.g. a
    model's ``psf.tif``), whose faint borders are signal, not background;
    find the bead's centroid (from voxels above 5 noise sigmas, noise from the shell's
    MAD); resample with cubic splines so that the centroid lands on the centre voxel of
    an odd box on the target grid (the largest box around the bead that lies inside the
    stack, or ``shape``); clip spline undershoots; normalize to sum 1.

    Parameters
    ----------
    path : str or Path
        3D (z, y, x) TIFF, any real dtype.
    voxel_size : float or tuple of float, shape (3,), optional
        ``(dz, dy, dx)`` of the file in um; overrides its calibration. Needed when the file
        has none (otherwise it is assumed to be sampled on the target grid, with a
        warning).
    target_spacing : float or tuple of float, optional
        Grid of the result in um: a scalar means isotropic; default isotropic at the
        file's ``dx``.
    shape : int or tuple of int, shape (3,), optional
        Odd ``(nz, ny, nx)`` of the result (zero-padded or cropped around the centre).
    noise_sigmas : float
        Noise floor in units of the background noise sigma; 0 only clips negatives.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        Centred, non-negative, sums to 1.

    Warns
    -----
    UserWarning
        The background-subtracted stack did not sum to 1 (beyond 0.1 %), so it was
        normalized; or the file has no calibration.
    """
    data, spacing, target = _read_psf_stack(path, voxel_size, target_spacing)
    h, total, noise = _bead_signal(data, noise_sigmas, path)
    centroid = _bead_centroid(h, total, noise)
    ratio = np.array(spacing) / np.array(target)  # new voxels per old voxel
    if shape is None:
        shape = _largest_box(centroid, h.shape, ratio, path)
    out = _resample_centred(h, centroid, ratio, check_shape(shape))
    return validate_psf(np.clip(out, 0.0, None), name=f"PSF from {Path(path).name}")


def _read_psf_stack(path, voxel_size, target_spacing):
    """The ZYX stack at ``path`` as float64, its voxel size and the target grid (um)."""
    from isonet_ij.volume_io import read_volume

    vol = read_volume(path)
    if vol.axes != "ZYX":
        msg = (
            f"PSF file {str(path)!r} has axes {vol.axes!r}; a PSF must be a single-channel "
            "ZYX stack (split channels / time points first)"
        )
        raise ValueError(msg)
    data = vol.data.astype(np.float64)
    if voxel_size is not None:
        spacing = check_voxel_size(voxel_size)
    elif vol.voxel_size is not None:
        spacing = tuple(float(v) for v in vol.voxel_size)
    else:
        spacing = None
    if target_spacing is None:
        target = (spacing[2],) * 3 if spacing is not None else (1.0, 1.0, 1.0)
    else:
        target = check_voxel_size(target_spacing, name="target_spacing")
    if spacing is None:
        warnings.warn(
            f"PSF file {str(path)!r} has no voxel size; assuming it is sampled on the "
            f"target grid {target} um (pass voxel_size= to resample it)",
            stacklevel=3,  # the caller of load_psf
        )
        spacing = target
    return data, spacing, target


def _bead_signal(data: np.ndarray, noise_sigmas: float, path):
    """Background-free stack normalized to sum 1, its sum before that, and the noise sd.

    Background: median of the outer 2-voxel shell; voxels below ``noise_sigmas`` noise sd
    are zeroed (so clipped noise adds no mass all over the box). A stack that already is
    a PSF (no negative values, sums to 1) is kept as it is: its faint borders are signal.
    """
    peak = float(np.abs(data).max())
    processed = float(data.min()) >= -NEG_TOL * peak and abs(data.sum() - 1.0) <= _SUM_TOL
    if processed:  # already a PSF (e.g. a model's psf.tif): keep its faint borders
        bg = noise = 0.0
        h = np.clip(data, 0.0, None)
    else:
        bg, noise = robust_noise(border_shell(data, 2))
        h = data - bg
        h[h < max(float(noise_sigmas), 0.0) * noise] = 0.0
    total = float(h.sum())
    if not total > 0:
        msg = f"PSF file {str(path)!r} holds no signal above its background ({bg:.3g})"
        raise ValueError(msg)
    if abs(total - 1.0) > _SUM_TOL:
        warnings.warn(
            f"PSF {str(path)!r} summed to {total:.6g} after background subtraction "
            f"(background {bg:.4g}); normalized it to sum 1",
            stacklevel=3,  # the caller of load_psf
        )
    h /= total
    return h, total, noise


def _bead_centroid(h: np.ndarray, total: float, noise: float) -> np.ndarray:
    """Centroid (voxels, z y x) of the voxels clearly above the noise."""
    weights = np.where(h * total > max(5.0 * noise, 0.01 * h.max() * total), h, 0.0)
    idx = np.indices(h.shape, dtype=np.float64)
    return np.array([(weights * idx[a]).sum() / weights.sum() for a in range(3)])


def _largest_box(centroid: np.ndarray, stack_shape, ratio: np.ndarray, path) -> tuple:
    """The largest odd box on the target grid around ``centroid`` that lies in the stack."""
    near = np.minimum(centroid, np.array(stack_shape) - 1 - centroid)  # old voxels
    half = np.maximum(np.floor(near * ratio + 1e-6).astype(int), 0)
    if np.any(half < 1):
        msg = (
            f"the bead in {str(path)!r} sits at the stack border (centroid "
            f"{np.round(centroid, 1).tolist()} in a stack of shape {stack_shape}); crop a "
            "stack centred on one bead, or pass shape="
        )
        raise ValueError(msg)
    return tuple(int(2 * v + 1) for v in half)


def _resample_centred(h: np.ndarray, centroid, ratio, shape) -> np.ndarray:
    """Cubic-spline samples of ``h`` on ``shape`` target voxels centred on ``centroid``."""
    from scipy import ndimage

    coords = [
        centroid[a] + (np.arange(shape[a]) - shape[a] // 2) / ratio[a] for a in range(3)
    ]
    grid = np.meshgrid(*coords, indexing="ij")
    return ndimage.map_coordinates(h, grid, order=3, mode="grid-constant", cval=0.0)


# --------------------------------------------------------------------------- --psf specs

#: Keys of ``--psf KIND:key=value,...`` -> (function keyword, default source key, unit).
_SPEC_KEYS = {
    "confocal": {
        "na": ("na", "na", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "ex": ("wavelength_ex", "wavelength_ex", "nm"),
        "em": ("wavelength_em", "wavelength_em", "nm"),
    },
    "lightsheet": {
        "na_detect": ("na_detect", "na_detect", ""),
        "na_illum": ("na_illum", "na_illum", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "ex": ("wavelength_ex", "wavelength_ex", "nm"),
        "em": ("wavelength_em", "wavelength_em", "nm"),
    },
    "widefield": {
        "na": ("na", "na", ""),
        "n": ("n_immersion", "n_immersion", ""),
        "em": ("wavelength", "wavelength", "nm"),
    },
}
_KIND_ALIASES = {"light-sheet": "lightsheet", "light_sheet": "lightsheet", "gauss": "gaussian"}
_SPEC_FORMS = (
    "gaussian:SXY,SZ (voxels), confocal:na=1.1,n=1.33,ex=488,em=520, "
    "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520, "
    "widefield:na=1.1,n=1.33,em=520, or a path to a PSF TIFF"
)


def parse_psf_spec(spec: str, *, voxel_size):
    """Build the PSF described by a ``--psf`` string.

    Forms: ``gaussian`` or ``gaussian:SXY,SZ`` (sigmas in voxels; default 2,8);
    ``confocal[:na=1.1,n=1.33,ex=488,em=520]``;
    ``lightsheet[:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520]``;
    ``widefield[:na=1.1,n=1.33,em=520]`` (wavelengths in nm); optical kinds also take
    ``model=vectorial|scalar``; anything else is read as a path to a PSF TIFF
    (:func:`load_psf`, resampled onto ``voxel_size``). Missing keys take
    :data:`PAPER_DEFAULTS`.

    Parameters
    ----------
    spec : str
        The ``--psf`` value.
    voxel_size : float or tuple of float, shape (3,)
        ``(dz, dy, dx)`` in um of the grid the PSF is sampled on (the isotropic grid).

    Returns
    -------
    h : (Z, Y, X) ndarray of float32
        The PSF.
    info : dict
        JSON-serialisable record: ``kind``, every parameter with its value, ``units``,
        ``voxel_size`` (um), ``shape`` and the original ``spec``.

    Raises
    ------
    ValueError
        Unknown kind or key (the message names it and lists the valid ones), malformed or
        out-of-range value.
    FileNotFoundError
        ``spec`` looks like a path and the file does not exist.
    """
    if not isinstance(spec, str) or not spec.strip():
        msg = f"`--psf` must be a non-empty string: {_SPEC_FORMS}; got {spec!r}"
        raise ValueError(msg)
    vs = check_voxel_size(voxel_size)
    text = spec.strip()
    head, sep, body = text.partition(":")
    kind = _KIND_ALIASES.get(head.strip().lower(), head.strip().lower())
    if kind not in ("gaussian", *_SPEC_KEYS):
        _check_not_a_kind(head, sep, text, spec)
        return _psf_from_file(text, vs)
    info: dict = {"kind": kind, "spec": spec, "voxel_size": list(vs), "voxel_size_unit": "um"}
    if kind == "gaussian":
        h, params = _gaussian_from_spec(body, spec)
        info.update(params, units={"sigma_xy": "voxel", "sigma_z": "voxel"})
    else:
        h, params = _optical_from_spec(kind, body, spec, vs)
        info.update(params)
    info["shape"] = list(h.shape)
    return h, info


def _check_not_a_kind(head: str, sep: str, text: str, spec: str) -> None:
    """Reject ``word:...`` that is no file as a mistyped kind (not as a missing file)."""
    if sep and len(head) > 1 and head.replace("-", "").replace("_", "").isalpha():
        if not Path(text).expanduser().is_file():
            msg = (
                f"unknown PSF kind {head!r} in `--psf {spec}`; valid kinds: gaussian, "
                f"confocal, lightsheet, widefield ({_SPEC_FORMS})"
            )
            raise ValueError(msg)


def _gaussian_from_spec(body: str, spec: str) -> tuple[np.ndarray, dict]:
    """The PSF of ``gaussian[:SXY,SZ]`` and its sigmas (voxels; default the paper's)."""
    params = dict(PAPER_DEFAULTS["gaussian"])
    if body.strip():
        parts = [p.strip() for p in body.split(",")]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 2 or not all(np.isfinite(v) and v >= 0 for v in vals):
            msg = (
                f"`--psf gaussian:SXY,SZ` needs two sigmas >= 0 in voxels, e.g. "
                f"gaussian:2,8; got {spec!r}"
            )
            raise ValueError(msg)
        if max(vals) > MAX_PSF_SIGMA:
            msg = (f"`--psf {spec}`: sigma {max(vals):g} voxels is too large: the largest accepted "
                   f"is {MAX_PSF_SIGMA:g} voxels (sigmas are in voxels of the isotropic grid, not "
                   f"nm or um; e.g. gaussian:2,8)")
            raise ValueError(msg)
        params = {"sigma_xy": vals[0], "sigma_z": vals[1]}
    return gaussian_psf(params["sigma_xy"], params["sigma_z"]), params


def _optical_from_spec(kind: str, body: str, spec: str, vs) -> tuple[np.ndarray, dict]:
    """The PSF of an optical spec and its record: parameters, ``model``, ``units``."""
    kwargs, model = _optical_params(kind, body, spec)
    builder = {
        "confocal": confocal_psf,
        "lightsheet": lightsheet_psf,
        "widefield": widefield_psf,
    }[kind]
    h = builder(**kwargs, voxel_size=vs, model=model)
    params = {**kwargs, "model": model}
    params["units"] = {kw: unit for kw, _, unit in _SPEC_KEYS[kind].values() if unit}
    if kind == "lightsheet":
        params["sheet_waist_um"] = sheet_waist(kwargs["wavelength_ex"], kwargs["na_illum"])
    return h, params


def _optical_params(kind: str, body: str, spec: str) -> tuple[dict, str]:
    """Keyword arguments of the model function (defaults filled in) and the psfmodels model."""
    keys = _SPEC_KEYS[kind]
    defaults = PAPER_DEFAULTS.get(kind, WIDEFIELD_DEFAULTS)
    kwargs = {kw: float(defaults[src]) for kw, src, _ in keys.values()}
    model = "vectorial"
    for key, val in _spec_items(body, [*keys, "model"], kind, spec):
        if key == "model":
            if val not in PSF_MODELS:
                msg = f"`model` in `--psf {spec}` must be one of {PSF_MODELS}, got {val!r}"
                raise ValueError(msg)
            model = val
            continue
        try:
            num = float(val)
        except ValueError:
            msg = f"key {key!r} in `--psf {spec}` must be a number, got {val!r}"
            raise ValueError(msg) from None
        kwargs[keys[key][0]] = num
    return kwargs, model


def _spec_items(body: str, valid: list, kind: str, spec: str):
    """Yield the ``key=value`` pairs of a spec body (keys lower-cased), each checked as it
    comes (so errors come in the order of the items): a known key, with a value, once."""
    seen = set()
    for item in (p.strip() for p in body.split(",")) if body.strip() else ():
        key, eq, val = (s.strip() for s in item.partition("="))
        key = key.lower()
        if key not in valid:
            msg = (
                f"unknown key {key!r} in `--psf {spec}`; valid keys for {kind}: "
                f"{', '.join(valid)}"
            )
            raise ValueError(msg)
        if not eq or not val:
            msg = f"key {key!r} in `--psf {spec}` needs a value ({key}=...)"
            raise ValueError(msg)
        if key in seen:
            msg = f"key {key!r} given twice in `--psf {spec}`"
            raise ValueError(msg)
        seen.add(key)
        yield key, val


def _psf_from_file(text: str, vs) -> tuple[np.ndarray, dict]:
    path = Path(text).expanduser()
    if not path.is_file():
        msg = (
            f"`--psf {text}` is neither a known PSF kind nor an existing file; use "
            f"{_SPEC_FORMS}"
        )
        looks_like_path = any(c in text for c in "/\\.")
        raise (FileNotFoundError if looks_like_path else ValueError)(msg)
    h = load_psf(path, target_spacing=vs)
    if max(h.shape) > MAX_PSF_SIDE:
        msg = (f"PSF file {str(path)!r} is too large: {tuple(h.shape)} voxels on the isotropic "
               f"grid, the largest accepted is {MAX_PSF_SIDE} per axis; crop it around the bead")
        raise ValueError(msg)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {
        "kind": "file",
        "spec": text,
        "path": str(path.resolve()),
        "sha256": digest,
        "voxel_size": list(vs),
        "voxel_size_unit": "um",
        "shape": list(h.shape),
    }
    return h, info


#: Spec kinds that are physical models and so need the volume's xy voxel size.
_PHYSICAL_KINDS = ("confocal", "lightsheet", "light-sheet", "widefield")


def psf_for_volume(spec: str, voxel_size, *, calibration_hint: str = ""):
    """Parse a PSF spec on the isotropic grid ``(dx, dy, dx)`` of an anisotropic volume.

    Parameters
    ----------
    spec : str
        As for :func:`parse_psf_spec`.
    voxel_size : tuple of float, shape (3,), or None
        The volume's ``(dz, dy, dx)`` in um, or ``None`` when it is uncalibrated (then only
        ``gaussian:`` specs and PSF files, which need no physical size, are accepted).
    calibration_hint : str
        Appended to the error for an uncalibrated volume: how to set the calibration.

    Returns
    -------
    (h, info)
        As :func:`parse_psf_spec`.
    """
    head = str(spec).split(":", 1)[0].strip().lower()
    if voxel_size is not None:
        _, dy, dx = voxel_size
        grid = (dx, dy, dx)
    elif head in _PHYSICAL_KINDS:
        msg = (f"psf {head} needs the volume's xy voxel size in um, but the volume has no "
               f"calibration; {calibration_hint or 'set it'} or use gaussian:SXY,SZ / a PSF file")
        raise ValueError(msg)
    else:
        grid = (1.0, 1.0, 1.0)
    return parse_psf_spec(spec, voxel_size=grid)
