"""Options of the ImageJ commands: one spec per command, macro-string parsing, recording.

Pure Python (no Java). The options of Train and Restore are generated from the declarations
of :mod:`isonet_ij.workflow` (shared with ``isonet train`` / ``isonet restore``). The same spec builds the GenericDialog, parses the options of a
macro call ``run("IsoNet Restore", "model=[/a b/model] factor=4.9")``, and formats the line
the macro Recorder writes, so a recorded line always parses back to the same values.

Option strings follow ImageJ's conventions: ``key=value``; ``key=[value with spaces]``;
a bare ``key`` switches a check box on (an absent key leaves it off). Keys are the first
word of the dialog label in lower case, as ImageJ's GenericDialog derives them. Unlike
ImageJ, an unknown key is an error (ImageJ silently ignores a typo and uses the default).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field

from ..workflow import RESTORE_SETTINGS, TRAIN_SETTINGS

__all__ = [
    "Option",
    "describe_image",
    "help_html",
    "CommandSpec",
    "COMMANDS",
    "OptionError",
    "parse_options",
    "format_options",
    "tokenize",
    "convert_value",
    "check_required",
    "format_value",
    "option_of",
    "options_of",
]


class OptionError(ValueError):
    """Macro options that cannot be used; the message names the key and says what to do."""


@dataclass(frozen=True)
class Option:
    """One option of a command.

    Attributes
    ----------
    key : str
        Macro key (lower case, no spaces): the first word of ``label``.
    kind : {"path", "string", "number", "int", "choice", "bool"}
    default : object
        Value when the key is absent (``None``: required for paths/strings).
    label : str
        Dialog label; its first word, lower-cased, is ``key``.
    help : str
        One line for the dialog's help and the docs.
    choices : tuple of str
        For ``kind="choice"``.
    minimum : float, optional
        Smallest allowed value of numbers.
    required : bool
        An empty value is an error.
    hyperstack_only : bool
        Shown in the dialog only for images with several channels or frames.
    file : bool
        For ``kind="path"``: a file (the dialog's Browse button picks files), not a folder.
    """

    key: str
    kind: str
    default: object
    label: str
    help: str = ""
    choices: tuple = ()
    minimum: float | None = None
    required: bool = False
    hyperstack_only: bool = False
    file: bool = False

    @property
    def display_label(self) -> str:
        """The dialog label, capitalized."""
        return self.label[:1].upper() + self.label[1:]

    def __post_init__(self):
        first = self.label.split(" ", 1)[0].lower().rstrip(":")
        if first != self.key:  # pragma: no cover - a programming error in the specs
            msg = f"option label {self.label!r} must start with its key {self.key!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class CommandSpec:
    """A command: its ImageJ name, what it does, and its options."""

    name: str
    summary: str
    options: tuple = field(default_factory=tuple)

    def option(self, key: str) -> Option:
        for opt in self.options:
            if opt.key == key:
                return opt
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.options]

    def defaults(self) -> dict:
        return {o.key: o.default for o in self.options}

    def example(self) -> str:
        """A macro line with the required options filled with placeholders."""
        req = " ".join(f"{o.key}=[...]" for o in self.options if o.required)
        return f'run("{self.name}", "{req}");'


_KINDS = {bool: "bool", int: "int", float: "number", str: "string"}


def option_of(setting) -> Option:
    """The dialog option of a declared setting (:class:`isonet_ij.workflow.Setting`).

    Choices list the dialog's default first, then the others in declared order.
    """
    default = setting.ij_value
    kind = setting.ij_kind or ("choice" if setting.choices else _KINDS[setting.type])
    choices = ()
    if setting.choices and kind == "choice":
        choices = (default, *(c for c in setting.choices if c != default))
    return Option(setting.key, kind, default, setting.label, setting.ij_help, choices=choices,
                  minimum=setting.minimum, required=setting.required)


def options_of(settings: dict, names) -> tuple:
    """:func:`option_of` of ``settings[name]`` for each of ``names``, in that order."""
    return tuple(option_of(settings[name]) for name in names)


_CHANNEL = Option(
    "channel", "int", 0, "channel (0 = current)", "channel of a multi-channel image (1-based); "
    "0: the image's current channel", minimum=0, hyperstack_only=True,
)
_FRAME = Option(
    "frame", "int", 0, "frame (0 = current)", "time point of a time series (1-based); 0: the "
    "image's current frame", minimum=0, hyperstack_only=True,
)

RESTORE = CommandSpec(
    "IsoNet Restore",
    "restore isotropic resolution of the current stack with a trained model (all channels "
    "and frames); opens a new 32-bit stack on the isotropic grid",
    options_of(RESTORE_SETTINGS, ("model", "factor", "fusion", "normalization", "weights",
                                  "max_memory", "batch_size", "precision", "tta")),
)

SEGMENT = CommandSpec(
    "IsoNet Segment",
    "segment bright nuclei of the current stack (Intermodes threshold, fill holes, 3D "
    "distance-transform watershed); opens a 16-bit label stack",
    (
        Option("threshold", "string", "intermodes", "threshold (intermodes, otsu or a value)",
               "ImageJ's automatic method on the stack histogram (dark background), or an "
               "intensity: voxels >= value are nuclei"),
        Option("fill", "choice", "3d", "fill holes", "fill holes in 3D, per slice (as "
               "Process > Binary > Fill Holes), or not", choices=("3d", "2d", "off")),
        Option("dynamic", "number", 2.0, "dynamic of watershed seeds (pixels)", "minimum "
               "dynamic of a seed on the distance map, in pixel widths; larger merges more",
               minimum=0.0),
        Option("connectivity", "choice", "6", "connectivity", "3D neighbourhood",
               choices=("6", "26")),
        Option("minimum", "int", 0, "minimum size (voxels)", "drop objects smaller than this",
               minimum=0),
        _CHANNEL,
        _FRAME,
    ),
)

TRAIN = CommandSpec(
    "IsoNet Train",
    "train an IsoNet model on the current stack itself (self-supervised) and write a model "
    "folder that IsoNet Restore and `isonet restore` use",
    (
        *options_of(TRAIN_SETTINGS, ("model_dir", "psf", "mode", "arch", "factor", "epochs",
                                     "steps_per_epoch", "patch_size", "batch_size", "time_budget",
                                     "seed")),
        _CHANNEL,
        _FRAME,
        *options_of(TRAIN_SETTINGS, ("resume", "force", "rounds")),  # rounds (issue 28) last: old macros replay
    ),
)

ESTIMATE_PSF = CommandSpec(
    "IsoNet Estimate PSF",
    "estimate the axial Gaussian blur of the current stack from its own lateral and axial "
    "spectra; shows the sigmas in the table \"IsoNet PSF estimate\" and logs the psf= "
    "spec for IsoNet Train",
    (
        Option("factor", "number", 0.0, "factor (0 = from calibration)", "anisotropy factor = "
               "voxel depth / pixel width; 0: from the image's calibration", minimum=0.0),
        Option("sigma_xy", "number", 0.0, "sigma_xy (lateral sigma in voxels, 0 = fit)",
               "lateral Gaussian sigma of the PSF in voxels if known; 0: fitted to the lateral "
               "spectrum", minimum=0.0),
        Option("psf_output", "path", "", "psf_output (PSF .tif to write, empty = none)",
               "write the Gaussian PSF on the isotropic grid to this .tif (replaced if it "
               "exists), as `isonet psf estimate -o`", file=True),
        Option("plot", "bool", False, "plot the spectra", "open the axial spectrum and the "
               "fitted Gaussian as an image"),
        _CHANNEL,
        _FRAME,
    ),
)

#: The commands by ImageJ name, in menu order.
COMMANDS = {spec.name: spec for spec in (TRAIN, RESTORE, SEGMENT, ESTIMATE_PSF)}

_TOKEN = re.compile(r"\s*([^\s=\[\]]+)(?:=(\[[^\]]*\]|[^\s]*))?")


def tokenize(options: str) -> list[tuple[str, str | None]]:
    """Split an ImageJ option string into ``(key, value)`` pairs (value None: bare key).

    >>> tokenize("model=[/a b/m] factor=4.9 consistency")
    [('model', '/a b/m'), ('factor', '4.9'), ('consistency', None)]
    """
    out = []
    text = options or ""
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            snippet = text[pos:].strip()[:40]
            msg = (
                f"cannot read the options near {snippet!r}: write key=value, "
                "key=[value with spaces] or a bare key, separated by spaces"
            )
            raise OptionError(msg)
        key, value = m.group(1), m.group(2)
        if value is not None and value.startswith("["):
            value = value[1:-1]
        out.append((key.lower(), value))
        pos = m.end()
    return out


def _suggest(key: str, keys) -> str:
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def convert_value(spec: CommandSpec, opt: Option, raw) -> object:
    """One option's text (None: a bare key) as its typed value; OptionError if invalid."""
    where = f"{spec.name}: option `{opt.key}`"
    if opt.kind == "bool":
        if raw is None:
            return True
        low = str(raw).strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        msg = f"{where} is a check box: write `{opt.key}` to switch it on, got {opt.key}={raw}"
        raise OptionError(msg)
    if raw is None:
        msg = f"{where} needs a value: {opt.key}=..."
        raise OptionError(msg)
    text = str(raw).strip()
    if opt.kind in ("path", "string"):
        if opt.required and not text:
            msg = f"{where} must not be empty ({opt.help})"
            raise OptionError(msg)
        return text
    if opt.kind == "choice":
        low = text.lower()
        if low not in opt.choices:
            msg = f"{where} must be one of {', '.join(opt.choices)}, got {text!r}"
            raise OptionError(msg)
        return low
    try:
        value = float(text)
    except ValueError:
        kind = "an integer" if opt.kind == "int" else "a number"
        msg = f"{where} must be {kind}, got {text!r}"
        raise OptionError(msg) from None
    if not math.isfinite(value):
        msg = f"{where} must be finite, got {text!r}"
        raise OptionError(msg)
    if opt.kind == "int":
        if value != int(value):
            msg = f"{where} must be an integer, got {text!r}"
            raise OptionError(msg)
        value = int(value)
    if opt.minimum is not None and value < opt.minimum:
        msg = f"{where} must be >= {opt.minimum:g}, got {text!r}"
        raise OptionError(msg)
    return value


def parse_options(spec: CommandSpec, options: str | None) -> dict:
    """Values of every option of ``spec`` from a macro option string.

    Parameters
    ----------
    spec : CommandSpec
    options : str or None
        ImageJ option string (``Macro.getOptions()``); None or "" gives the defaults.

    Returns
    -------
    dict
        ``{key: value}`` for every option (defaults filled in), values converted.

    Raises
    ------
    OptionError
        Unknown key (with a suggestion), repeated key, malformed or out-of-range value,
        missing required option.
    """
    values = spec.defaults()
    seen = set()
    for key, raw in tokenize(options or ""):
        if key not in values:
            msg = (
                f"{spec.name}: unknown option `{key}`{_suggest(key, spec.keys)} "
                f"(options: {', '.join(spec.keys)})"
            )
            raise OptionError(msg)
        if key in seen:
            msg = f"{spec.name}: option `{key}` is given twice"
            raise OptionError(msg)
        seen.add(key)
        values[key] = convert_value(spec, spec.option(key), raw)
    check_required(spec, values)
    return values


def check_required(spec: CommandSpec, values: dict) -> None:
    """Raise OptionError when a required option has no value."""
    for opt in spec.options:
        if opt.required and not values.get(opt.key):
            msg = (
                f"{spec.name}: option `{opt.key}` is required ({opt.help}), e.g. "
                f"{spec.example()}"
            )
            raise OptionError(msg)


def format_value(opt: Option, value) -> str | None:
    """The text of one value in an option string (None: leave the key out)."""
    if opt.kind == "bool":
        return "" if value else None
    if opt.kind == "number":
        value = float(value)
        return repr(int(value)) if value == int(value) else repr(value)
    return str(value)


def format_options(spec: CommandSpec, values: dict) -> str:
    """An option string that :func:`parse_options` reads back to ``values``.

    Check boxes that are off are left out; values with spaces are bracketed.

    >>> format_options(SEGMENT, {"threshold": "otsu", "minimum": 5})
    'threshold=otsu fill=3d dynamic=2 connectivity=6 minimum=5 channel=0 frame=0'
    """
    parts = []
    for opt in spec.options:
        text = format_value(opt, values.get(opt.key, opt.default))
        if text is None:
            continue
        if opt.kind == "bool":
            parts.append(opt.key)
            continue
        if any(c.isspace() for c in text) or text == "":
            text = f"[{text}]"
        parts.append(f"{opt.key}={text}")
    return " ".join(parts)


def describe_image(imp) -> str:
    """One line about ``imp`` for a dialog: title, dimensions, bit depth, calibration."""
    if imp is None:
        return "No image is open."
    from .convert import calibration_of

    vs, unit = calibration_of(imp)
    dims = f"{imp.getWidth()} x {imp.getHeight()} x {imp.getNSlices()} slices"
    if imp.getNChannels() > 1:
        dims += f", {imp.getNChannels()} channels"
    if imp.getNFrames() > 1:
        dims += f", {imp.getNFrames()} frames"
    if vs is None:
        cal = "not calibrated"
    else:
        cal = (f"voxel {vs[2]:.4g} x {vs[1]:.4g} x {vs[0]:.4g} {unit}, "
               f"depth / width = {vs[0] / vs[2]:.3g}")
    return f"{imp.getTitle()}: {dims}, {imp.getBitDepth()}-bit; {cal}"


def help_html(spec) -> str:
    """The Help page of a command's dialog: summary, macro example, one row per option."""
    rows = "".join(
        f"<tr><td><b>{o.key}</b></td><td>{o.help}</td></tr>" for o in spec.options
    )
    return (
        f"<html><h2>{spec.name}</h2><p>{spec.summary}.</p><p>Macro:<br>"
        f"<tt>{spec.example()}</tt></p><table>{rows}</table></html>"
    )
