"""What every entry point needs: quiet TensorFlow, the anisotropy factor, provenance.

The interfaces name their options differently (``--factor`` on the command line,
``factor=`` in an ImageJ macro); :class:`Words` carries those words into the messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..nets import quiet_tensorflow  # noqa: F401 - one definition, re-exported here

__all__ = ["Words", "CLI_WORDS", "IMAGEJ_WORDS", "NAPARI_WORDS", "quiet_tensorflow", "resolve_factor",
           "provenance", "isotropic_voxel_size"]


@dataclass(frozen=True)
class Words:
    """How an interface names options and tells the user to set the calibration."""

    prefix: str  #: before an option name: ``"--"`` (CLI) or ``""`` (ImageJ)
    sep: str  #: between an option and its value: ``" "`` or ``"="``
    set_calibration: str  #: how to set the voxel size, as advice
    calibration: str  #: what the calibration is called in a message
    give: str  #: the advice for a missing calibration, before ``--factor F``

    def opt(self, name: str) -> str:
        """``--factor`` / ``factor``."""
        return f"{self.prefix}{name}"

    def example(self, name: str, value) -> str:
        """``--factor 8`` / ``factor=8``."""
        return f"{self.prefix}{name}{self.sep}{value}"

    def switch(self, setting) -> str:
        """A yes/no option of a :class:`~isonet_ij.workflow.Setting`: ``--resume`` / its checkbox."""
        if self.prefix == "--":
            return setting.flag
        return f"the checkbox '{setting.label}'"

    def field(self, setting, cli: str) -> str:
        """A value option: ``cli`` (e.g. ``-o``) on the command line, the dialog field in ImageJ."""
        return cli if self.prefix == "--" else f"the field '{setting.label}'"


CLI_WORDS = Words("--", " ", "set it (Image > Properties in Fiji)", "voxel-size calibration", "pass")
IMAGEJ_WORDS = Words("", "=", "set it (Image > Properties)", "calibration",
                     "set it in Image > Properties or give")
#: napari: the widgets' fields are named like ImageJ's keys; the calibration is the layer scale.
NAPARI_WORDS = Words("", " = ", "set the layer's scale (z, y, x)", "layer scale",
                     "set the layer's scale (z, y, x) or give")


def resolve_factor(factor, voxel_size, *, fallback=None, what: str = "the input",
                   words: Words = CLI_WORDS) -> tuple[float, str]:
    """The anisotropy factor to use and where it came from.

    ``factor`` when given (not None) -> ``"option"``; else the calibration's
    ``dz / dx`` -> ``"calibration"``; else ``fallback`` (a model's factor) -> ``"model"``.
    A calibration that is not anisotropic (dz / dx <= 1) is an error, as is a missing one
    without ``fallback``. ``what`` names the input in messages (a path or an image title).
    """
    from ..grid import check_factor

    if factor is not None:
        return check_factor(factor, name=words.opt("factor")), "option"
    give = words.example("factor", "F")
    if voxel_size is not None:
        dz, _, dx = voxel_size
        ratio = dz / dx
        if not ratio > 1.0 + 1e-9:
            msg = (f"the {words.calibration} of {what!r} gives z spacing / xy spacing = "
                   f"{dz:g} / {dx:g} = {ratio:.3g}, not an anisotropic stack; "
                   f"set the z spacing or give {give}")
            raise ValueError(msg)
        return check_factor(ratio, name="factor from the calibration (dz/dx)"), "calibration"
    if fallback is None:
        msg = (f"{what!r} has no {words.calibration}, so z spacing / xy spacing is unknown; "
               f"{words.give} {give} (e.g. {words.example('factor', 8)} "
               "for 0.8 um z steps at 0.1 um pixels)")
        raise ValueError(msg)
    return check_factor(fallback, name="factor (the model's)"), "model"


def provenance(**kw) -> dict:
    """The provenance dict of an output: software, version, then ``kw`` in order."""
    from .. import __version__

    return {"software": f"isonet-ij {__version__}", "version": __version__, **kw}


def isotropic_voxel_size(voxel_size, unit) -> tuple[tuple, str]:
    """``((dx, dy, dx), unit)`` of the isotropic grid, ``((1, 1, 1), "pixel")`` uncalibrated."""
    if voxel_size is None:
        return (1.0, 1.0, 1.0), "pixel"
    _, dy, dx = voxel_size
    return (dx, dy, dx), unit
