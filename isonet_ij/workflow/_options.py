"""The options of training and restoration, declared once for the CLI, ImageJ and Fiji.

A :class:`Setting` names one option of ``isonet train`` / ``isonet restore`` and of the
ImageJ commands IsoNet Train / IsoNet Restore: its library name (a
:class:`~isonet_ij.config.Config` field or a keyword of :func:`isonet_ij.restoration.restore`),
type, default (taken from Config / restore), help with units, choices, the CLI flag, the
ImageJ macro key and dialog label. :func:`add_arguments` turns settings into argparse
arguments; :mod:`isonet_ij.imagej.options` turns them into dialog options.

An interface without a natural "unset" value shows a stand-in instead of the default:
the CLI's ``None`` (``--factor``: from the calibration), ImageJ's ``0`` (``factor=0``)
or ``model`` (``fusion=model``); :attr:`Setting.unset` says which values mean "unset".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import ARCHS, FUSIONS, LOSSES, LR_SCHEDULES, MODES, Config
from ..tiling import DEFAULT_BATCH
from ._checks import MAX_FACTOR, check_counts
from ._common import CLI_WORDS, Words

__all__ = ["Setting", "TRAIN", "RESTORE", "CONFIG_DEFAULTS", "RESTORE_DEFAULTS",
           "add_arguments", "values_from_args", "check_settings", "PSF_HELP"]

_SAME = object()

#: Config's field defaults (what a new training run gets when an option is not given).
CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)
                   if f.default is not dataclasses.MISSING}
#: Defaults of :func:`isonet_ij.restoration.restore_with_info` that the interfaces expose.
RESTORE_DEFAULTS = {"factor": None, "fusion": None, "normalization": "volume",
                    "batch_size": DEFAULT_BATCH, "max_memory": "1G", "weights": "best", "precision": "auto",
                    "tta": False}


@dataclass(frozen=True)
class Setting:
    """One user option; ``flag`` None: not on the CLI, ``key`` None: not in ImageJ."""

    name: str
    type: type
    default: object
    help: str = ""
    choices: tuple = ()
    flag: str | None = None
    metavar: str | None = None
    cli_default: object = _SAME  #: the CLI's default when it differs (None: unset)
    store_true: bool = False  #: a CLI switch; ``--no-x`` switches a default-True setting off
    key: str | None = None
    label: str = ""
    ij_help: str = ""
    ij_kind: str | None = None  #: "path" etc. when not derived from ``type``
    ij_default: object = _SAME  #: ImageJ's stand-in for an unset value (0, "model")
    minimum: float | None = None
    required: bool = False

    @property
    def cli_value(self):
        """The CLI's default."""
        return self.default if self.cli_default is _SAME else self.cli_default

    @property
    def ij_value(self):
        """The dialog's default."""
        return self.default if self.ij_default is _SAME else self.ij_default

    @property
    def unset(self) -> tuple:
        """Values that mean "not given, use the library default"."""
        return tuple(v for v in (self.cli_default, self.ij_default) if v is not _SAME)


_s = Setting  # short: the declarations below are a table


PSF_HELP = (
    "PSF on the isotropic grid: gaussian:SXY,SZ (sigmas in voxels of the isotropic grid), "
    "confocal:na=1.1,n=1.33,ex=488,em=520 (wavelengths nm), "
    "lightsheet:na_detect=0.8,na_illum=0.1,n=1.33,ex=488,em=520, "
    "widefield:na=1.1,n=1.33,em=520, or PSF.tif (a 3D PSF (z, y, x) on the isotropic grid); "
    "physical PSFs need the input's xy voxel size (calibration)"
)
_FACTOR_HELP = (
    "anisotropy factor F = z spacing / xy spacing (> 1, not rounded, e.g. 4.89); default "
    "from the input's calibration"
)
_IJ_FACTOR = "anisotropy factor = voxel depth / pixel width; 0: from the image's calibration"

_FACTOR = _s("factor", float, None, _FACTOR_HELP, flag="--factor", metavar="F", key="factor",
             label="factor (0 = from calibration)", ij_help=_IJ_FACTOR, ij_default=0.0, minimum=0.0)

_ALLOW_LARGE = _s("allow_large_factor", bool, False,
                  f"accept an anisotropy factor above {MAX_FACTOR:g} (larger ones are refused as "
                  "probable mistakes: the output and the run time grow with the factor)",
                  flag="--allow-large-factor", store_true=True)

#: Options of ``isonet train`` and IsoNet Train, in the CLI's order.
TRAIN = {s.name: s for s in (
    _FACTOR,
    _s("psf", str, CONFIG_DEFAULTS["psf"],
       PSF_HELP + ", or auto (a Gaussian estimated from the volume itself, see `isonet psf "
       "estimate`; recorded in the model config), or auto:MODEL (an optical model with its NA "
       "fitted to the same estimate, e.g. auto:confocal:n=1.33,ex=488,em=520 or "
       "auto:lightsheet:na_detect=0.8; needs the xy calibration) (required unless --mode none)",
       flag="--psf", metavar="SPEC", cli_default=None, key="psf", label="PSF",
       ij_help="PSF on the isotropic grid: gaussian:SXY,SZ (voxels), confocal:na=..,ex=..,em=.., "
       "lightsheet:..., widefield:..., a PSF .tif path, or auto (a Gaussian estimated from the "
       "stack, as IsoNet Estimate PSF; not used by mode none)", ij_default="gaussian:2,8"),
    _s("arch", str, CONFIG_DEFAULTS["arch"], "network (default isonet2)", ARCHS, "--arch",
       key="arch", label="arch (network)", ij_help="IsoNet-2 (U-Net) or IsoNet-1"),
    _s("mode", str, CONFIG_DEFAULTS["mode"],
       "training kernel: full (h_rot), split (h_split, default), none (SRCNN: no PSF)", MODES,
       "--mode", key="mode", label="mode",
       ij_help="training kernel: split (h_split), full (rotated PSF), none (SRCNN, no PSF)"),
    _s("epochs", int, CONFIG_DEFAULTS["epochs"],
       "total epochs (default 100; with --resume: the stored value)", flag="--epochs",
       metavar="E", cli_default=None, key="epochs", label="epochs", ij_help="number of epochs",
       minimum=1),
    _s("steps_per_epoch", int, CONFIG_DEFAULTS["steps_per_epoch"], "steps per epoch (default 50)",
       flag="--steps-per-epoch", metavar="S", key="steps", label="steps per epoch",
       ij_help="optimizer steps per epoch", minimum=1),
    _s("patch_size", int, CONFIG_DEFAULTS["patch_size"],
       "patch side, pixels, multiple of 4 (default 64, or the largest that fits a smaller volume)",
       flag="--patch", metavar="P", cli_default=None, key="patch",
       label="patch size (pixels, 0 = 64 or the largest that fits)",
       ij_help="side of square training patches, a multiple of 4; 0: 64, or the largest that "
       "fits a smaller stack", ij_default=0, minimum=0),
    _s("batch_size", int, CONFIG_DEFAULTS["batch_size"], "patches per step (default 16)",
       flag="--batch", metavar="B", key="batch", label="batch size (patches per step)",
       ij_help="patches per step", minimum=1),
    _s("learning_rate", float, CONFIG_DEFAULTS["learning_rate"],
       "Adam learning rate (default 1e-3; the paper's 5e-3 trained worse)", flag="--lr"),
    _s("dropout", float, CONFIG_DEFAULTS["dropout"],
       "dropout rate (default 0: trained faster than the paper's 0.2)", flag="--dropout"),
    _s("lr_schedule", str, CONFIG_DEFAULTS["lr_schedule"],
       "learning rate over the run (default constant; cosine: down to 1%% of --lr at the end of "
       "the epochs or of --time-budget)", LR_SCHEDULES, "--lr-schedule"),
    _s("loss", str, CONFIG_DEFAULTS["loss"], "loss (default psnr: eq. 3)", LOSSES, "--loss"),
    _s("noise_match", bool, CONFIG_DEFAULTS["noise_match"],
       "do not add back the noise the training blur averaged away", flag="--no-noise-match",
       store_true=True),
    _s("augment", bool, CONFIG_DEFAULTS["augment"], "no flips", flag="--no-augment",
       store_true=True),
    _s("time_budget", str, None, "wall-clock limit, e.g. 15m, 90s, 1.5h (keeps the best checkpoint)",
       flag="--time-budget", metavar="T", key="time", label="time budget (minutes, 0 = none)",
       ij_help="stop after this wall-clock time, keeping the best checkpoint", ij_kind="number",
       ij_default=0.0, minimum=0.0),
    _s("seed", int, CONFIG_DEFAULTS["seed"], "random seed (default 0)", flag="--seed", key="seed",
       label="seed", ij_help="random seed", minimum=0),
    _s("rounds", str, CONFIG_DEFAULTS["rounds"],
       "training rounds: auto (default), 1 or 2. 2: a second round on the acquired slices as the first "
       "restores them (thin optical sections; half the epochs and time budget each): +0.5 to +1.0 dB on "
       "the phantoms, +0.1 to +0.4 on real content with an added axial blur, -0.3 to +0.3 where the axial "
       "loss is mostly subsampling; auto: 2 when the PSF's extra axial sigma is at least 1.5 voxels "
       "(and --time-budget, if given, at least 1 min). "
       "The first round is kept in the model folder's round1/, so --resume continues either round",
       ("auto", "1", "2"), "--rounds", metavar="N", key="rounds",
       label="rounds (auto: 2 for a strong axial blur)",
       ij_help="2: a second training round on the acquired slices as the first restores them (half the "
       "epochs and time each); it helps stacks with a strong axial blur; auto: 2 when the PSF's extra "
       "axial sigma is at least 1.5 voxels (and the time budget, if any, at least 1 min), else 1"),
    _s("channel", int, None, "channel of a ZCYX/TZCYX input", flag="--channel", metavar="C", minimum=0),
    _s("timepoint", int, None, "timepoint of a TZCYX input", flag="--timepoint", metavar="T",
       minimum=0),
    _s("threads", int, None, "TensorFlow CPU threads (default: all cores)", flag="--threads",
       minimum=1),
    _ALLOW_LARGE,
    _s("resume", bool, False, "continue training from MODEL_DIR's last checkpoint", flag="--resume",
       store_true=True, key="resume", label="resume an interrupted training",
       ij_help="continue from the model folder's last checkpoint"),
    _s("force", bool, False, "replace an existing model directory", flag="--force", store_true=True,
       key="overwrite", label="overwrite an existing model folder",
       ij_help="replace the files of an existing model folder"),
    _s("model_dir", str, None, key="model", label="model folder (output)",
       ij_help="directory to write the model into (created; must be empty unless overwrite or "
       "resume)", ij_kind="path", required=True),
)}

#: Options of ``isonet restore`` (chunked-output options stay in the CLI) and IsoNet Restore.
RESTORE = {s.name: s for s in (
    _s("model", str, None, key="model", label="model folder (or .onnx / .zip path)",
       ij_help="model directory written by IsoNet Train or `isonet train`, or an exported .onnx or "
               "bioimage.io .zip (type or paste its path: Browse picks folders)", ij_kind="path",
       required=True),
    _s("factor", float, None, _FACTOR_HELP + ", else the model's", flag="--factor", metavar="F",
       key="factor", label="factor (0 = from calibration)",
       ij_help=_IJ_FACTOR.replace("calibration", "calibration (else the model's)"), ij_default=0.0,
       minimum=0.0),
    _s("fusion", str, RESTORE_DEFAULTS["fusion"],
       "fusion of the xz and yz passes (default: the model's, mean)", FUSIONS, "--fusion",
       key="fusion", label="fusion of the xz and yz passes",
       ij_help="mean, geometric, or the model's setting", ij_default="model"),
    _s("normalization", str, RESTORE_DEFAULTS["normalization"],
       "percentiles of this volume (default) or the training volume's", ("volume", "model"),
       "--normalization", key="normalization", label="normalization",
       ij_help="intensity percentiles of this image (volume) or of the training volume (model)"),
    _s("batch_size", int, RESTORE_DEFAULTS["batch_size"], "tiles per network call (default 8)",
       flag="--batch", metavar="B", key="batch", label="batch size (tiles per network call)",
       ij_help="tiles per network call", minimum=1),
    _s("max_memory", str, RESTORE_DEFAULTS["max_memory"],
       "TIFF output: working-memory budget of inference, e.g. 512M, 4G (default 1G; input and "
       "output volumes come on top). .zarr output: the summed RSS of every process of the run, "
       "workers included (default 4G)", flag="--max-memory", metavar="M", cli_default=None,
       key="memory", label="memory budget of inference (e.g. 1G, 512M)",
       ij_help="working memory of the network pass; input and output come on top"),
    _s("weights", str, RESTORE_DEFAULTS["weights"], "checkpoint (default best)", ("best", "last"),
       "--weights", key="weights", label="weights",
       ij_help="checkpoint: best validation or last epoch"),
    _s("precision", str, RESTORE_DEFAULTS["precision"],
       "network arithmetic: auto (default: int8 where this CPU has int8 dot products, the output has "
       ">= 16 M voxels and int8 is measured faster; else fp32), fp32, or int8 (onnxruntime, "
       "calibrated on this volume, cached beside the model, checked against fp32 >= 40 dB)",
       ("fp32", "int8", "auto"), "--precision", key="precision", label="precision",
       ij_help="auto (int8 where faster on this CPU, for large stacks), fp32, or int8 (checked against fp32)"),
    _s("tta", bool, RESTORE_DEFAULTS["tta"],
       "test-time augmentation: average the network over the plane flips the training PSF allows "
       "(up to 4x the network time; +0.06 to +0.50 dB in benchmarks/results/oracle.md)",
       flag="--tta", store_true=True, key="tta", label="tta (test-time augmentation: flips, up to 4x slower)",
       ij_help="average the network over flipped planes: a little sharper, up to 4x slower"),
    _ALLOW_LARGE,
)}

def add_arguments(parser, settings, names) -> None:
    """Add the CLI arguments of ``settings[name]`` for each of ``names``, in that order."""
    for name in names:
        s = settings[name]
        kw = {"help": s.help}
        if s.store_true:
            kw["action"] = "store_true"
        else:
            kw["default"] = s.cli_value
            if s.type is not str:
                kw["type"] = s.type
            if s.choices:
                kw["choices"] = s.choices
            if s.metavar:
                kw["metavar"] = s.metavar
        parser.add_argument(s.flag, **kw)


def values_from_args(args, settings, names) -> dict:
    """``{name: value}`` of parsed CLI arguments (``--no-x`` switches turned into ``x=False``)."""
    out = {}
    for name in names:
        s = settings[name]
        value = getattr(args, s.flag.lstrip("-").replace("-", "_"))
        out[name] = (not value) if s.flag.startswith("--no-") else value
    return out


def check_settings(values: dict, settings, *, words: Words = CLI_WORDS) -> None:
    """Refuse integer values below their setting's ``minimum`` (``--batch 0``), never clamp.

    ``values``: ``{name: value}`` (None: unset); the message names the option as ``words``'
    interface does (``--batch`` on the command line, ``batch`` in ImageJ).
    """
    minimums = {}
    for name in values:
        s = settings.get(name)
        if s is None or s.type is not int or s.minimum is None:
            continue
        option = s.flag.lstrip("-") if words.prefix == "--" and s.flag else (s.key or s.name)
        minimums[name] = (option, s.minimum)
    check_counts(values, minimums, words=words)
