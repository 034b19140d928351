"""The one config dataclass of a model directory, and reading/writing model directories.

A model directory (CSBDeep style) holds::

    config.json                 Config.to_dict(): arch, mode, factor, PSF, normalization,
                                training options, versions, format_version
    psf.tif                     the 3D PSF (z, y, x) on the isotropic grid (modes full/split)
    weights_best.weights.h5     best weights by validation loss
    weights_last.weights.h5     weights after the last finished epoch (resume point)
    optimizer_last.npz          Adam state belonging to weights_last (resume)
    train_state.json            epoch, best validation loss, elapsed time (resume)
    training_log.csv            one row per epoch
    training_curve.png          training / validation PSNR per epoch

Every file is written atomically (temporary file + rename), so a killed training never
leaves a corrupt checkpoint. ``format_version`` changes when the layout or the meaning of a
field changes; a directory of another format version is refused with a clear message
(``_MIGRATIONS`` is the hook for upgrading old configs).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .volume_io import write_json

__all__ = [
    "FORMAT_VERSION",
    "Config",
    "ModelDirError",
    "read_config",
    "write_config",
    "save_psf",
    "load_psf_file",
    "versions",
    "rounds_value",
    "WEIGHTS_BEST",
    "WEIGHTS_LAST",
]

#: Version of the model directory format written by this isonet-ij.
FORMAT_VERSION = 1

CONFIG_JSON = "config.json"
WEIGHTS_BEST = "weights_best.weights.h5"
WEIGHTS_LAST = "weights_last.weights.h5"
OPTIMIZER_LAST = "optimizer_last.npz"
TRAIN_STATE = "train_state.json"
TRAINING_LOG = "training_log.csv"
TRAINING_CURVE = "training_curve.png"
PSF_TIF = "psf.tif"

ARCHS = ("isonet1", "isonet2")
MODES = ("full", "split", "none")
LOSSES = ("psnr", "mse", "mae")
LR_SCHEDULES = ("constant", "cosine")
FUSIONS = ("mean", "geometric")
#: ``Config.rounds``: "auto" picks 1 or 2 from the PSF when training begins.
ROUNDS = ("auto", 1, 2)

#: Migrations from older format versions: {old_version: function(dict) -> dict}.
_MIGRATIONS: dict = {}


def rounds_value(text):
    """``Config.rounds`` from an interface's text: ``"auto"``, or ``"1"`` / ``"2"`` as int;
    anything else is returned as given (:meth:`Config.validate` names it)."""
    if isinstance(text, str):
        word = text.strip().lower()
        return int(word) if word in ("1", "2") else word
    return text


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or of another format version."""


def versions() -> dict:
    """Versions of isonet-ij and of the libraries that shape a model (no TF import)."""
    import platform
    from importlib import metadata

    out = {"isonet_ij": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for dist in ("tensorflow", "tensorflow-cpu", "keras"):
        try:
            out[dist.replace("-cpu", "")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class Config:
    """Everything needed to rebuild, resume and apply a trained model.

    Attributes
    ----------
    arch : {"isonet1", "isonet2"}
        Network (default ``"isonet2"``).
    mode : {"full", "split", "none"}
        Training kernel: rotated PSF (full), h_split (split, default), no PSF (none, SRCNN).
    factor : float
        Anisotropy factor (z spacing / xy spacing) of the training volume; required.
    psf : str
        PSF spec as given (``gaussian:2,8``, a path, ...); ``""`` for mode none.
    psf_info : dict
        What the PSF parser reported (parameters, size).
    normalization : dict
        ``p_low``, ``p_high`` percentiles (default 1, 99.8) and the training volume's
        ``low``/``high`` values (filled by training).
    patch_size : int
        Side of square training patches in pixels (default 64; a multiple of 4). 112x112
        patches gave the same quality in the same time (28.50 vs 28.64 dB, 3 min).
    batch_size : int
        Patches per training step (default 16).
    epochs : int
        Number of epochs (default 100, as the paper).
    steps_per_epoch : int
        Optimizer steps per epoch (default 50).
    learning_rate : float
        Adam learning rate (default 1e-3). Measured on nuclei 128^3 / gaussian 2-8 /
        factor 8, IsoNet-2 split, 350 steps: 28.64 dB with 1e-3 vs 26.60 dB with the
        paper's 5e-3 (PSNR vs isotropic GT; bicubic 22.93 dB).
    lr_schedule : {"constant", "cosine"}
        Learning rate over the run: ``"constant"`` or ``"cosine"`` (from
        ``learning_rate`` down to 1 % of it, following the fraction of the run done: steps
        of ``epochs * steps_per_epoch`` or time of the budget, whichever is further).
        Default ``"constant"``: under a 3-min budget (membranes 128^3, IsoNet-2 split)
        cosine lost 0.40 dB (27.81 vs 28.21 dB vs isotropic GT): short runs are far from
        converged and gain nothing from a small late learning rate.
    dropout : float
        Dropout rate of hidden layers (default 0, none; the paper used 0.2). Measured on
        membranes 128^3 / confocal / factor 4, 3-min budget, split mode (PSNR vs isotropic
        GT): IsoNet-2 28.84 dB without dropout vs 28.21 with 0.2 (and 559 vs 424 steps in the
        budget), IsoNet-1 28.61 vs 28.47.
    loss : {"psnr", "mse", "mae"}
        Training loss; ``"psnr"`` is the negative PSNR of eq. 3 (default).
    validation_fraction : float
        Fraction of lateral slices held out for validation (default 0.1, at least 1).
    n_validation : int
        Number of fixed validation patches (default 64).
    noise_match : bool
        Add the noise that the training blur averaged away back to sources (default True).
    noise_model : list of float or None
        ``[a, b]`` of ``var = a*I + b`` (normalized units), filled by training.
    augment : bool
        Flips where they commute with the kernel (default True).
    rounds : {"auto", 1, 2}
        Training rounds. 2: a first round on half the epochs and time budget, then a second
        on the acquired slices as the first restores them (thin optical sections,
        :mod:`isonet_ij.refinement`); it pays for a strong axial blur. ``"auto"`` (default):
        2 when the PSF's extra axial blur is strong (:func:`isonet_ij.refinement.rounds_for`),
        else 1; training stores the number it chose.
    fusion : {"mean", "geometric"}
        How restoration combines the xz and yz passes (default ``"mean"``).
    seed : int
        Seed for weights, patch sampling and validation split (default 0).
    train_input : str
        The training volume (path or description).
    voxel_size : list of float or None
        ``(dz, dy, dx)`` of the training volume, if calibrated.
    train_fingerprint : dict or None
        ``shape``, ``dtype`` and ``sha256`` of the training volume (see
        :func:`isonet_ij.fingerprints.array_fingerprint`): ``--resume`` refuses another volume.
    versions : dict
        Library versions at training time.
    format_version : int
        Model directory format (see module docstring).
    """

    factor: float = None
    arch: str = "isonet2"
    mode: str = "split"
    psf: str = ""
    psf_info: dict = field(default_factory=dict)
    normalization: dict = field(
        default_factory=lambda: {"p_low": 1.0, "p_high": 99.8, "low": None, "high": None}
    )
    patch_size: int = 64
    batch_size: int = 16
    epochs: int = 100
    steps_per_epoch: int = 50
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    dropout: float = 0.0
    loss: str = "psnr"
    validation_fraction: float = 0.1
    n_validation: int = 64
    noise_match: bool = True
    noise_model: list = None
    augment: bool = True
    rounds: int | str = "auto"
    fusion: str = "mean"
    seed: int = 0
    train_input: str = ""
    voxel_size: list = None
    train_fingerprint: dict = None
    versions: dict = field(default_factory=versions)
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ validation
    def invalid_fields(self) -> list[str]:
        """Return one message per invalid field (empty when valid)."""
        bad = []

        def num(name, lo=None, hi=None, integer=False, lo_open=False):
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            ok = ok and math.isfinite(float(v))
            if ok and integer:
                ok = float(v) == int(v)
            if ok and lo is not None:
                ok = float(v) > lo if lo_open else float(v) >= lo
            if ok and hi is not None:
                ok = float(v) <= hi
            if not ok:
                kind = "an integer" if integer else "a number"
                rng = ""
                if lo is not None:
                    rng += f" {'>' if lo_open else '>='} {lo}"
                if hi is not None:
                    rng += f" and <= {hi}"
                bad.append(f"`{name}` must be {kind}{rng}, got {v!r}")

        if self.factor is None:
            bad.append("`factor` is required (z spacing / xy spacing), got None")
        else:
            num("factor", 1.0)
        if self.arch not in ARCHS:
            bad.append(f"`arch` must be one of {ARCHS}, got {self.arch!r}")
        if self.mode not in MODES:
            bad.append(f"`mode` must be one of {MODES}, got {self.mode!r}")
        if self.loss not in LOSSES:
            bad.append(f"`loss` must be one of {LOSSES}, got {self.loss!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            bad.append(f"`lr_schedule` must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.fusion not in FUSIONS:
            bad.append(f"`fusion` must be one of {FUSIONS}, got {self.fusion!r}")
        n_bad = len(bad)
        num("patch_size", 8, integer=True)
        if len(bad) == n_bad and int(self.patch_size) % 4:
            bad.append(f"`patch_size` must be a multiple of 4, got {self.patch_size!r}")
        num("batch_size", 1, integer=True)
        num("epochs", 1, integer=True)
        num("steps_per_epoch", 1, integer=True)
        num("learning_rate", 0, 1, lo_open=True)
        num("dropout", 0, 0.95)
        num("validation_fraction", 0, 0.9, lo_open=True)
        num("n_validation", 1, integer=True)
        num("seed", 0, integer=True)
        if self.rounds not in ROUNDS or isinstance(self.rounds, bool):
            bad.append(f"`rounds` must be auto, 1 or 2, got {self.rounds!r}")
        for name in ("noise_match", "augment"):
            if not isinstance(getattr(self, name), bool):
                bad.append(f"`{name}` must be true or false, got {getattr(self, name)!r}")
        if self.mode in ("full", "split") and not self.psf:
            bad.append(f"`psf` is required for mode {self.mode!r}")
        norm = self.normalization
        if not isinstance(norm, dict) or not {"p_low", "p_high"} <= set(norm):
            bad.append(f"`normalization` must be a dict with p_low and p_high, got {norm!r}")
        elif not 0 <= float(norm["p_low"]) < float(norm["p_high"]) <= 100:
            bad.append(
                "`normalization` percentiles must satisfy 0 <= p_low < p_high <= 100, got "
                f"{norm['p_low']!r}, {norm['p_high']!r}"
            )
        if self.format_version != FORMAT_VERSION:
            bad.append(f"`format_version` must be {FORMAT_VERSION}, got {self.format_version!r}")
        return bad

    def validate(self) -> "Config":
        """Raise ValueError naming every invalid field; return ``self`` when valid."""
        bad = self.invalid_fields()
        if bad:
            msg = "invalid config: " + "; ".join(bad)
            raise ValueError(msg)
        return self

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> "Config":
        """Build a Config from a dict, rejecting unknown keys and other format versions."""
        if not isinstance(data, dict):
            msg = f"{source}: expected a JSON object, got {type(data).__name__}"
            raise ModelDirError(msg)
        data = dict(data)
        version = data.get("format_version")
        while version != FORMAT_VERSION and version in _MIGRATIONS:
            data = _MIGRATIONS[version](data)
            version = data.get("format_version")
        if version != FORMAT_VERSION:
            written_by = (data.get("versions") or {}).get("isonet_ij", "unknown")
            msg = (
                f"{source} has model format version {version!r} (written by isonet-ij "
                f"{written_by}); this isonet-ij {__version__} reads format version "
                f"{FORMAT_VERSION}: retrain the model with `isonet train`, or use the "
                "isonet-ij version that wrote it"
            )
            raise ModelDirError(msg)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            msg = f"{source}: unknown config keys {unknown}; known keys: {sorted(names)}"
            raise ModelDirError(msg)
        return cls(**data).validate()

    def replace(self, **changes) -> "Config":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            msg = f"unknown config keys {unknown}; known keys: {sorted(names)}"
            raise ValueError(msg)
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- model dirs


def write_config(model_dir, config: Config) -> Path:
    """Write ``config.json`` atomically into ``model_dir`` (created if needed)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    return write_json(model_dir / CONFIG_JSON, config.to_dict(), force=True)


def read_config(model_dir) -> Config:
    """Read and validate ``model_dir/config.json``.

    Raises
    ------
    ModelDirError
        Missing directory or config, unreadable JSON, unknown keys, invalid fields, or a
        format version this isonet-ij does not read.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        msg = f"model directory {str(model_dir)!r} not found; train one with `isonet train`"
        raise ModelDirError(msg)
    path = model_dir / CONFIG_JSON
    if not path.is_file():
        msg = (
            f"{str(model_dir)!r} is not an isonet model directory (no {CONFIG_JSON}); "
            "give the -o directory of `isonet train`"
        )
        raise ModelDirError(msg)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"cannot read {str(path)!r} ({exc}); the model directory is damaged: retrain"
        raise ModelDirError(msg) from exc
    try:
        return Config.from_dict(data, source=str(path))
    except ModelDirError:
        raise
    except (TypeError, ValueError) as exc:
        msg = f"{str(path)!r}: {exc}"
        raise ModelDirError(msg) from exc


def save_psf(model_dir, psf) -> Path:
    """Store the 3D PSF (float32) as ``psf.tif`` in the model directory (atomically)."""
    from .volume_io import write_volume

    return write_volume(
        Path(model_dir) / PSF_TIF, np.asarray(psf, dtype=np.float32), force=True,
        metadata={"what": "PSF on the isotropic grid (z, y, x), sum 1"},
    )


def load_psf_file(model_dir):
    """The model's 3D PSF, or ``None`` when it has none (mode ``"none"``)."""
    path = Path(model_dir) / PSF_TIF
    if not path.is_file():
        return None
    import tifffile

    return tifffile.imread(path).astype(np.float32)
