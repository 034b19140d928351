"""Options of the ImageJ commands: ImageJ's option syntax, checks, recording round trip (no JVM)."""

import pytest

from isonet_ij.imagej.options import (
    COMMANDS,
    RESTORE,
    SEGMENT,
    TRAIN,
    OptionError,
    format_options,
    parse_options,
    tokenize,
)


def test_tokenize_reads_imagej_option_syntax():
    got = tokenize("model=[/data/my models/m 1] factor=4.89 psf=confocal:na=1.1,ex=488 resume ")
    assert got == [
        ("model", "/data/my models/m 1"),
        ("factor", "4.89"),
        ("psf", "confocal:na=1.1,ex=488"),
        ("resume", None),
    ]


def test_parse_fills_defaults_and_converts_types():
    v = parse_options(RESTORE, "model=[/a b/c] factor=4.9 fusion=Geometric batch=4")
    assert v["model"] == "/a b/c" and v["factor"] == 4.9 and v["fusion"] == "geometric"
    assert v["batch"] == 4 and isinstance(v["batch"], int)
    assert v["normalization"] == "volume" and v["memory"] == "1G"
    s = parse_options(SEGMENT, "")
    assert s == SEGMENT.defaults()


def test_a_typo_is_an_error_that_names_the_key_and_suggests_the_right_one():
    with pytest.raises(OptionError, match=r"unknown option `modle`; did you mean `model`\?"):
        parse_options(RESTORE, "modle=[/m]")


def test_missing_required_option_shows_an_example_macro_call():
    with pytest.raises(OptionError, match=r'`model` is required.*run\("IsoNet Restore", "model=\[\.\.\.\]"\)'):
        parse_options(RESTORE, "factor=3")


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        (RESTORE, "model=m factor=abc", r"`factor` must be a number, got 'abc'"),
        (RESTORE, "model=m batch=2.5", r"`batch` must be an integer"),
        (RESTORE, "model=m batch=0", r"`batch` must be >= 1"),
        (RESTORE, "model=m fusion=median", r"`fusion` must be one of model, mean, geometric"),
        (SEGMENT, "fill=3d fill=2d", r"`fill` is given twice"),
        (TRAIN, "model=m resume=maybe", r"`resume` is a check box"),
        (SEGMENT, "dynamic=", r"`dynamic` must be a number"),
    ],
)
def test_bad_values_name_option_and_value(spec, options, match):
    with pytest.raises(OptionError, match=match):
        parse_options(spec, options)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_recorded_options_parse_back_to_the_same_values(name):
    spec = COMMANDS[name]
    values = spec.defaults()
    for opt in spec.options:  # a value different from the default for every option
        if opt.kind == "path":
            values[opt.key] = "/tmp/a dir/with spaces"
        elif opt.kind == "string":
            values[opt.key] = "some text, with spaces"
        elif opt.kind == "number":
            values[opt.key] = 4.8912
        elif opt.kind == "int":
            values[opt.key] = 12
        elif opt.kind == "choice":
            values[opt.key] = opt.choices[-1]
        else:
            values[opt.key] = True
    text = format_options(spec, values)
    assert parse_options(spec, text) == values


def test_dialog_labels_start_with_their_macro_keys():
    # ImageJ derives a GenericDialog's macro key from the first word of the label
    for spec in COMMANDS.values():
        for opt in spec.options:
            assert opt.display_label.split(" ")[0].lower() == opt.key
