"""Options are declared once: the CLI, the ImageJ dialogs and the Fiji scripts share the defaults.

For every option of ``isonet train`` / ``isonet restore`` that ImageJ also has, the default
of the CLI (parsed with no options), of the ImageJ dialog (``COMMANDS`` specs) and of the
Fiji script parameter (its ``#@`` line) equal :class:`~isonet_ij.config.Config`'s field
default (training) or :func:`isonet_ij.restoration.restore_with_info`'s default (restoration),
where an interface's stand-in for "unset" (the CLI's None, ImageJ's 0 or ``model``)
resolves to that default. No JVM, no TensorFlow.
"""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from isonet_ij.cli import build_parser
from isonet_ij.config import Config
from isonet_ij.imagej.options import COMMANDS
from isonet_ij.restoration import restore_with_info
from isonet_ij.tiling import parse_memory
from isonet_ij.workflow import (
    CONFIG_DEFAULTS,
    RESTORE_DEFAULTS,
    RESTORE_SETTINGS,
    TRAIN_SETTINGS,
    patch_size_for,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "fiji_scripts"
_PARAM = re.compile(r"^#@\s+(\w+)\s*\((.*)\)\s+(\w+)\s*$")
#: Options whose ImageJ default is an example, not the library's: PSF (Config has none).
IMAGEJ_EXAMPLES = {"psf"}


def cli_defaults(argv) -> dict:
    return vars(build_parser().parse_args(argv))


def script_defaults(name: str) -> dict:
    """``{parameter: (type, value attribute or None, choices or None)}`` of a Fiji script."""
    out = {}
    for line in (SCRIPTS / f"{name}.py").read_text().splitlines():
        m = _PARAM.match(line.strip())
        if not m:
            continue
        attrs = dict(re.findall(r'(\w+)\s*=\s*("[^"]*"|\{[^}]*\}|[^,\s]+)', m.group(2)))
        choices = re.findall(r'"([^"]*)"', attrs["choices"]) if "choices" in attrs else None
        value = attrs.get("value")
        out[m.group(3)] = (m.group(1), None if value is None else value.strip('"'), choices)
    return out


def _script_value(kind: str, text):
    return {"Integer": int, "Float": float, "Double": float, "String": str,
            "Boolean": lambda v: v == "true"}[kind](text)


def resolved(setting, value, library_default):
    """An interface's default as the library sees it (the stand-ins mean the default)."""
    if value in setting.unset:
        return library_default
    return value


def test_config_defaults_are_the_dataclass_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING}
    assert CONFIG_DEFAULTS == fields
    sig = inspect.signature(restore_with_info).parameters
    for name in ("factor", "fusion", "normalization", "batch_size", "weights"):
        assert RESTORE_DEFAULTS[name] == sig[name].default, name
    assert parse_memory(RESTORE_DEFAULTS["max_memory"]) == sig["max_memory"].default


def test_every_setting_default_is_the_library_default():
    for name, s in TRAIN_SETTINGS.items():
        if name in CONFIG_DEFAULTS:
            assert s.default == CONFIG_DEFAULTS[name], name
    for name, s in RESTORE_SETTINGS.items():
        if name in RESTORE_DEFAULTS:
            assert s.default == RESTORE_DEFAULTS[name], name


@pytest.mark.parametrize(("command", "settings", "argv", "library"), [
    ("train", TRAIN_SETTINGS, ["train", "in.tif", "-o", "m"], CONFIG_DEFAULTS),
    ("restore", RESTORE_SETTINGS, ["restore", "in.tif", "--model", "m", "-o", "o.tif"], RESTORE_DEFAULTS),
])
def test_cli_imagej_and_fiji_defaults_equal_the_library_defaults(command, settings, argv, library):
    cli = cli_defaults(argv)
    spec = COMMANDS[f"IsoNet {command.title()}"]
    script = script_defaults(f"IsoNet_{command.title()}")
    checked = 0
    for name, s in settings.items():
        if name not in library:
            continue
        want = library[name]
        if s.flag:
            dest = s.flag.lstrip("-").replace("-", "_")
            got = cli[dest]
            if s.flag.startswith("--no-"):
                got = not got
            assert resolved(s, got, want) == want, (command, s.flag)
        if s.key and name not in IMAGEJ_EXAMPLES:
            opt = spec.option(s.key)
            assert resolved(s, opt.default, want) == want, (command, s.key)
            kind, text, choices = script[s.key]
            assert resolved(s, _script_value(kind, text), want) == want, (command, s.key, text)
            assert opt.default == _script_value(kind, text), (command, s.key)
            if opt.choices:
                assert choices == list(opt.choices), (command, s.key)
                assert set(s.choices) <= set(opt.choices)
            checked += 1
    assert checked >= 6


def test_the_patch_stand_ins_give_64_or_what_fits():
    cli = cli_defaults(["train", "in.tif", "-o", "m"])
    assert cli["patch"] is None and COMMANDS["IsoNet Train"].option("patch").default == 0
    for unset in (None, 0):
        assert patch_size_for(unset, (40, 256, 256), 4.0) == Config().patch_size
        assert patch_size_for(unset, (20, 40, 40), 2.0) < Config().patch_size
    assert patch_size_for(32, (40, 256, 256), 4.0) == 32


def test_imagej_psf_default_is_the_fiji_default():
    spec = COMMANDS["IsoNet Train"]
    assert script_defaults("IsoNet_Train")["psf"][1] == spec.option("psf").default == "gaussian:2,8"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_fiji_script_values_equal_the_dialog_defaults(name):
    spec = COMMANDS[name]
    script = script_defaults(name.replace(" ", "_"))
    for opt in spec.options:
        kind, text, choices = script[opt.key]
        if text is None:  # a required path has no value
            assert opt.required or opt.kind == "path", opt.key
            continue
        assert _script_value(kind, text) == opt.default, (name, opt.key, text)
        if opt.minimum is not None and kind in ("Integer", "Float"):
            assert re.search(rf"\bmin={opt.minimum:g}\b", (SCRIPTS / f"{name.replace(' ', '_')}.py").read_text()
                             .split(f") {opt.key}\n")[0].splitlines()[-1]), (name, opt.key)


def test_cli_flags_and_macro_keys_are_unchanged():
    flags = {s.flag for s in TRAIN_SETTINGS.values() if s.flag}
    assert flags == {"--factor", "--psf", "--arch", "--mode", "--epochs", "--steps-per-epoch", "--patch",
                     "--batch", "--lr", "--dropout", "--lr-schedule", "--loss", "--no-noise-match",
                     "--no-augment", "--time-budget", "--seed", "--channel", "--timepoint", "--threads",
                     "--allow-large-factor", "--resume", "--force", "--rounds"}
    assert COMMANDS["IsoNet Train"].keys == ["model", "psf", "mode", "arch", "factor", "epochs", "steps",
                                             "patch", "batch", "time", "seed", "channel", "frame",
                                             "resume", "overwrite", "rounds"]  # rounds: issue 28
    # "precision" (issue 30) and "tta" (issue 28) were added after the older keys, which keep
    # their order, so recorded macros replay
    assert COMMANDS["IsoNet Restore"].keys == ["model", "factor", "fusion", "normalization", "weights",
                                               "memory", "batch", "precision", "tta"]
