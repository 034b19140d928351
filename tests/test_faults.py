"""The standing fault suite: bad inputs, options, paths and model files on every command.

Each case is one row of :data:`CASES`: a command line (``{name}`` fields are paths of the
case's files), the exit code, and a regex that the one-line error must match (it names
the problem and what to do). Every case runs in-process through
:func:`isonet_ij.cli.main` on tiny volumes and asserts: the exit code, one line on stderr
matching the regex, no ``Traceback`` anywhere, every file that existed before unchanged
(sha256) and, for a refused run, no new file left behind.

Each test records its ``category`` (and ``traceback`` / ``data_lost`` / ``unsafe``) as
junitxml properties: ``benchmarks/bench_faults.py`` turns them into
``benchmarks/results/faults.md``. ImageJ cases (headless macros on the real ij.jar) are in
``tests/test_faults_imagej.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import smooth_volume


@dataclass(frozen=True)
class Case:
    """One fault: ``cmd`` is ``isonet``'s argv with ``{file}`` fields; ``setup`` prepares the case dir."""

    name: str
    category: str
    cmd: str
    expect: str
    code: int = 2
    setup: str = ""
    block: str = ""  #: an optional module made unimportable for the case (a missing extra)
    reject: str = ""  #: a regex the message must not match (e.g. an option the command lacks)


#: A training run that ends at once when a case is (wrongly) accepted.
TRAIN = "train {good} -o {d}/m --factor 3 --psf gaussian:1,3 --epochs 1 --steps-per-epoch 1 --patch 8 --batch 2"


def _cases():
    V = "volume"
    # commands that read one volume: a template with {v} for the volume
    readers = {
        "train": "train {v} -o {d}/m --factor 3 --psf gaussian:1,3 --epochs 1 --steps-per-epoch 1 --patch 8 --batch 2",
        "restore": "restore {v} --model {model} -o {d}/o.tif --factor 3",
        "restore-zarr": "restore {v} --model {model} -o {d}/o.zarr --factor 3",
        "baseline": "baseline bicubic {v} -o {d}/o.tif --factor 3",
        "segment": "segment {v} -o {d}/l.tif",
        "psf-estimate": "psf estimate {v} --factor 3 -o {d}/p.tif",
        "psf-beads": "psf from-beads {v} -o {d}/p.tif",
        "score": "score {v} --gt {good}",
        "score-seg": "score-seg {v} --gt {labels}",
    }
    volumes = {
        # file field, expected message
        "missing": ("{d}/missing.tif", r"not found: .*missing\.tif"),
        "directory": ("{dir_tif}", r"is a directory|not a file|not found"),
        "empty-file": ("{empty}", r"empty|not a (readable )?TIFF|cannot read"),
        "not-a-tiff": ("{text}", r"not a (readable )?TIFF|cannot read"),
        "truncated": ("{trunc}", r"truncated|incomplete|cannot read|not a (readable )?TIFF"),
        "2d": ("{flat}", r"(2D|3D|axes YX .*one ZYX stack)"),
        "bool": ("{bool_}", r"bool"),
        "complex": ("{cplx}", r"complex"),
        "nan": ("{nan}", r"NaN"),
        "inf": ("{inf}", r"inf"),
        "one-slice": ("{one}", r"(at least 2|2D|one z slice|1 z slice|single|axes YX .*one ZYX stack)"),
    }
    cases = []
    for vname, (vfile, rx) in volumes.items():
        for cname, tmpl in readers.items():
            if cname in ("score", "score-seg") and vname in ("nan", "inf", "one-slice", "6d"):
                continue
            cases.append(Case(f"{cname}-{vname}", V, tmpl.format(v=vfile, d="{d}", model="{model}",
                                                                good="{good}", labels="{labels}"), rx))
    # constant / all-zero volumes: nothing to learn, nothing to restore
    for vname, vfile in (("zeros", "{zeros}"), ("constant", "{const}")):
        cases.append(Case(f"train-{vname}", V, readers["train"].format(v=vfile, d="{d}"),
                          r"(constant|all-zero|no contrast).*(nothing to learn|give|choose)"))
        cases.append(Case(f"psf-estimate-{vname}", V, readers["psf-estimate"].format(v=vfile, d="{d}"),
                          r"constant|all-zero|no contrast|no structure"))
    cases += [
        Case("score-shape-mismatch", V, "score {good} --gt {flat3}", r"shape"),
        Case("score-seg-shape-mismatch", V, "score-seg {labels} --gt {good}", r"shape|label"),
        Case("train-channel-out-of-range", V, TRAIN + " --channel 5",
             r"channel|C index"),
    ]
    F = "factor"
    for fname, value, rx in (("zero", "0", r"factor.*(positive|>=)"), ("negative", "-2", r"factor.*(positive|>=)"),
                             ("nan", "nan", r"factor.*(finite|positive)"), ("inf", "inf", r"factor.*finite"),
                             ("below-one", "0.5", r"factor.*>= 1"), ("text", "abc", r"factor.*(number|invalid)"),
                             ("huge", "1000", r"factor 1000 .*largest .*16.*--allow-large-factor")):
        for cname in ("train", "restore", "restore-zarr", "baseline"):
            tmpl = readers[cname].replace(" --factor 3", "")
            cases.append(Case(f"{cname}-factor-{fname}", F, f"{tmpl.format(v='{good}', d='{d}', model='{model}')} --factor {value}", rx))
    for cname in ("train", "restore", "restore-zarr", "baseline", "psf-estimate"):
        tmpl = readers[cname].replace(" --factor 3", "")
        cases.append(Case(f"{cname}-calibration-factor-huge", F, tmpl.format(v="{hugecal}", d="{d}", model="{model}"),
                          r"factor 1000 .*largest .*16.*--allow-large-factor"))
    cases.append(Case("psf-estimate-factor-huge", F, "psf estimate {good} --factor 1000",
                      r"factor 1000 .*largest .*16.*--allow-large-factor"))
    cases.append(Case("synth-factor-zero", F, "synth nuclei --size 32 --factor 0 -o {d}/s", r"factor"))
    P = "psf"
    train = "train {good} -o {d}/m --factor 3 --epochs 1 --steps-per-epoch 1 --patch 8 --batch 2 --psf "
    for pname, spec, rx in (
        ("unknown-model", "airy:1,2", r"PSF|psf|unknown"),
        ("bad-key", "confocal:nx=1.1", r"nx|unknown|key"),
        ("sigma-huge", "gaussian:1000,1000", r"sigma.*too large.*largest"),
        ("sigma-huge-z", "gaussian:1,5000", r"sigma.*too large.*largest"),
        ("sigma-negative", "gaussian:-1,2", r"sigma|positive"),
        ("sigma-nan", "gaussian:nan,2", r"sigma|finite"),
        ("sigma-text", "gaussian:a,b", r"number|sigma"),
        ("missing-file", "{d}/nopsf.tif", r"not found|nopsf"),
        ("psf-2d-file", "{flat}", r"3D|PSF"),
        ("psf-huge-file", "{bigpsf}", r"PSF.*too large|larger than|largest"),
        ("na-above-n", "confocal:na=1.6,n=1.33,ex=488,em=520", r"na|NA"),
    ):
        cases.append(Case(f"train-psf-{pname}", P, train + spec, rx))
    cases += [
        Case("synth-psf-sigma-huge", P, "synth nuclei --size 32 --psf gaussian:1000,1000 -o {d}/s",
             r"sigma.*too large.*largest"),
        Case("baseline-rl-psf-sigma-huge", P, "baseline rl {good} -o {d}/o.tif --factor 3 --psf gaussian:1000,1000",
             r"sigma.*too large.*largest"),
        Case("baseline-rl-psf-unknown", P, "baseline rl {good} -o {d}/o.tif --factor 3 --psf airy:1", r"PSF|psf|unknown"),
        Case("psf-estimate-model-unknown", P, "psf estimate {good} --factor 3 --model airy:na=1", r"model|unknown|airy"),
    ]
    O = "options"
    rest = "restore {good} --model {model} -o {d}/o.tif "
    for opt, vals in (("--batch", ("0", "-3")), ("--threads", ("0", "-1"))):
        for val in vals:
            cases.append(Case(f"restore{opt[1:]}-{val}".replace("restore", "restore-"), O, rest + f"{opt} {val}",
                              rf"{opt} must be (a positive|>= ?1).*got {re.escape(val)}"))
    cases.append(Case("restore-zarr-workers-0", O, "restore {good} --model {model} -o {d}/o.zarr --workers 0",
                      r"--workers must be (a positive|>= ?1).*got 0"))
    cases.append(Case("restore-zarr-batch-0", O, "restore {good} --model {model} -o {d}/o.zarr --batch 0",
                      r"--batch must be (a positive|>= ?1).*got 0"))
    for opt, val in (("--epochs", "0"), ("--epochs", "-5"), ("--steps-per-epoch", "0"), ("--batch", "0"),
                     ("--batch", "-3"), ("--patch", "-8"), ("--patch", "6"), ("--threads", "0"), ("--seed", "-1"),
                     ("--channel", "-1")):
        cases.append(Case(f"train{opt[1:].replace('--', '-')}-{val}".replace("train", "train-"), O,
                          TRAIN + f" {opt} {val}",
                          rf"{opt}|patch|multiple of 4"))
    cases += [
        Case("restore-max-memory-text", O, rest + "--max-memory lots", r"memory|M/G"),
        Case("restore-max-memory-zero", O, rest + "--max-memory 0", r"memory"),
        Case("restore-unknown-fusion", O, rest + "--fusion median", r"invalid choice.*median"),
        Case("restore-unknown-weights", O, rest + "--weights middle", r"invalid choice.*middle"),
        Case("train-time-budget-text", O, TRAIN + " --time-budget soon",
             r"time|duration|budget"),
        Case("train-time-budget-negative", O, TRAIN + " --time-budget -5m",
             r"time|duration|budget"),
        Case("train-time-budget-zero", O, TRAIN + " --time-budget 0s",
             r"time|duration|budget"),
        Case("train-unknown-arch", O, TRAIN + " --arch resnet",
             r"invalid choice.*resnet"),
        Case("segment-threshold-text", O, "segment {good} -o {d}/l.tif --threshold sometimes", r"threshold"),
        Case("segment-min-size-negative", O, "segment {good} -o {d}/l.tif --min-size -1", r"min-size|min_size"),
        Case("segment-voxel-size-zero", O, "segment {good} -o {d}/l.tif --voxel-size 0 1 1", r"voxel"),
        Case("baseline-rl-iterations-0", O, "baseline rl {good} -o {d}/o.tif --factor 3 --psf gaussian:1,3 --iterations 0",
             r"iterations"),
        Case("synth-size-zero", O, "synth nuclei --size 0 -o {d}/s", r"size"),
        Case("synth-unknown-kind", O, "synth blobs -o {d}/s", r"kind.*blobs"),
        Case("export-opset-low", O, "export {model} --format onnx -o {d}/m.onnx --opset 9", r"opset"),
        Case("demo-minutes-negative", O, "demo -o {d}/demo --minutes -1", r"minutes"),
        Case("demo-size-zero", O, "demo -o {d}/demo --size 0", r"size"),
        Case("psf-beads-voxel-size-bad", O, "psf from-beads {good} -o {d}/p.tif --voxel-size 1,x,1", r"voxel"),
    ]
    W = "output"
    outs = {
        "restore": ("restore {good} --model {model} -o {OUT} --factor 3", "o.tif"),
        "baseline": ("baseline bicubic {good} -o {OUT} --factor 3", "o.tif"),
        "segment": ("segment {good} -o {OUT}", "l.tif"),
        "psf-estimate": ("psf estimate {good} --factor 3 -o {OUT}", "p.tif"),
        "psf-beads": ("psf from-beads {good} -o {OUT}", "p.tif"),
        "train": (TRAIN.replace("{d}/m", "{OUT}"), "m"),
        "synth": ("synth nuclei --size 32 -o {OUT}", "s"),
        "export": ("export {model} --format onnx -o {OUT}", "m.onnx"),
        "score": ("score {good} --gt {good} --json {OUT}", "s.json"),
        "restore-zarr": ("restore {good} --model {model} -o {OUT} --factor 3", "o.zarr"),
    }
    for cname, (tmpl, name) in outs.items():
        cases.append(Case(f"{cname}-output-unwritable", W, tmpl.replace("{OUT}", "{ro}/" + name),
                          r"(cannot write|not writable|permission).*(ro|choose|writable)"))
        if cname not in ("train", "synth"):
            cases.append(Case(f"{cname}-output-exists", W, tmpl.replace("{OUT}", "{d}/" + name),
                              r"exists.*--force", setup=f"existing:{name}"))
            cases.append(Case(f"{cname}-output-under-a-file", W, tmpl.replace("{OUT}", "{good}/" + name),
                              r"(not a folder|lies inside the input).*choose"))
        if cname not in ("train", "synth", "restore-zarr"):
            cases.append(Case(f"{cname}-output-is-directory", W, tmpl.replace("{OUT}", "{d}/" + name),
                              r"directory", setup=f"dir:{name}"))
    cases += [
        Case("train-output-is-file", W, TRAIN, r"file.*model directory", setup="existing:m"),
        Case("train-output-nonempty", W, TRAIN,
             r"(not empty|exists).*(--force|--resume)", setup="dir-nonempty:m"),
        Case("restore-output-is-input", W, "restore {d}/in.tif --model {model} -o {d}/in.tif --factor 3 --force",
             r"input", setup="copy-good:in.tif"),
        Case("synth-output-exists", W, "synth nuclei --size 32 -o {d}/s", r"exists.*--force", setup="synth-existing:s"),
    ]
    X = "extras"
    for cname, cmd, mod, extra in (
        ("export-onnx", "export {model} --format onnx -o {d}/m.onnx", "onnx", "export"),
        ("export-tf2onnx", "export {model} --format onnx -o {d}/m.onnx", "tf2onnx", "export"),
        ("export-bioimageio", "export {model} --format bioimageio -o {d}/m.zip", "bioimageio", "export"),
        ("restore-zarr-zarr", "restore {good} --model {model} -o {d}/o.zarr --factor 3", "zarr", "dask"),
        ("restore-zarr-dask", "restore {good} --model {model} -o {d}/o.zarr --factor 3", "dask", "dask"),
    ):
        cases.append(Case(f"{cname}-missing", X, cmd, rf"'{mod}'.*pip install 'isonet-ij\[{extra}\]'", block=mod))
    cases.append(Case("restore-zarr-max-memory-tiny", O, "restore {good} --model {model} -o {d}/o.zarr --max-memory 1M",
                      r"cannot hold this run.*Raise --max-memory", reject=r"--chunks"))
    M = "model"
    for mname, setup, rx in (
        ("missing", "", r"not found|does not exist"),
        ("empty-folder", "dir:mdl", r"config\.json|not a model|no model"),
        ("corrupt-config", "model-corrupt-config:mdl", r"cannot read .*config\.json.*damaged"),
        ("truncated-weights", "model-truncated-weights:mdl", r"weights.*(corrupt|truncated|cannot read|damaged)"),
    ):
        cases.append(Case(f"restore-model-{mname}", M, "restore {good} --model {d}/mdl -o {d}/o.tif --factor 3" , rx, setup=setup))
        cases.append(Case(f"restore-zarr-model-{mname}", M, "restore {good} --model {d}/mdl -o {d}/o.zarr --factor 3", rx, setup=setup))
        cases.append(Case(f"export-model-{mname}", M, "export {d}/mdl --format onnx -o {d}/x.onnx", rx, setup=setup))
    for mname, setup, rx in (
        ("random-onnx", "random:mdl.onnx", r"onnx.*(not a valid|corrupt|cannot (load|read))"),
        ("empty-onnx", "empty:mdl.onnx", r"onnx.*(empty|not a valid|corrupt|cannot (load|read)|not exported by `isonet export`)"),
        ("corrupt-zip", "random:mdl.zip", r"zip.*(not a valid|corrupt|cannot (load|read)|not a zip)"),
        ("zip-without-rdf", "zip-no-rdf:mdl.zip", r"rdf|bioimage"),
        ("wrong-suffix-file", "random:mdl.h5", r"model|not a model|\.onnx|\.zip"),
    ):
        n = setup.split(":")[1]
        cases.append(Case(f"restore-model-{mname}", M, "restore {good} --model {d}/" + n + " -o {d}/o.tif --factor 3", rx, setup=setup))
    cases += [
        Case("train-resume-missing-model", M, "train {good} -o {d}/m --resume --epochs 1 --steps-per-epoch 1", r"resume|not found|does not exist|no checkpoint"),
        Case("train-resume-corrupt-config", M, "train {good} -o {d}/mdl --resume --epochs 1",
             r"cannot read .*config\.json.*damaged", setup="model-corrupt-config:mdl"),
    ]
    return cases


CASES = _cases()


# --------------------------------------------------------------------------- files


def _write(path, data, **kw):
    import tifffile

    tifffile.imwrite(path, data, **kw)


@pytest.fixture(scope="session")
def fault_files(tmp_path_factory, tiny_trained_model):
    """Tiny volumes, broken files and the session's model: ``{field: path}``."""
    from isonet_ij.volume_io import write_volume

    d = tmp_path_factory.mktemp("fault files")
    good = smooth_volume((8, 24, 24))
    write_volume(d / "good.tif", good, voxel_size=(0.6, 0.2, 0.2), unit="um")
    files = {"good": d / "good.tif", "model": tiny_trained_model}
    write_volume(d / "flat3.tif", good[:, :12], voxel_size=(0.6, 0.2, 0.2), unit="um")
    files["flat3"] = d / "flat3.tif"
    arrays = {
        "flat": good[0], "six": np.random.default_rng(0).random((2, 2, 2, 2, 8, 8)).astype(np.float32), "bool_": good > 500,
        "cplx": good.astype(np.complex64), "one": good[:1], "nan": np.where(good > 600, np.nan, good).astype(np.float32),
        "inf": np.where(good > 600, np.inf, good).astype(np.float32),
        "bigpsf": np.ones((801, 5, 5), np.float32) / 20025.0,
    }
    for name, arr in arrays.items():
        _write(d / f"{name}.tif", arr, imagej=name == "flat", metadata=None)
        files[name] = d / f"{name}.tif"
    write_volume(d / "hugecal.tif", good, voxel_size=(200.0, 0.2, 0.2), unit="um")
    files["hugecal"] = d / "hugecal.tif"
    for name, value in (("zeros", 0.0), ("const", 7.0)):
        write_volume(d / f"{name}.tif", np.full_like(good, value), voxel_size=(0.6, 0.2, 0.2), unit="um")
        files[name] = d / f"{name}.tif"
    labels = np.zeros((8, 24, 24), np.uint16)
    labels[1:4, 4:10, 4:10] = 1
    _write(d / "labels.tif", labels)
    files["labels"] = d / "labels.tif"
    (d / "empty.tif").write_bytes(b"")
    (d / "text.tif").write_text("this is not an image\n")
    raw = files["good"].read_bytes()
    (d / "trunc.tif").write_bytes(raw[: len(raw) // 2])
    (d / "dir.tif").mkdir()
    files.update(empty=d / "empty.tif", text=d / "text.tif", trunc=d / "trunc.tif", dir_tif=d / "dir.tif")
    return files


def _setup(kind: str, case_dir: Path, files) -> None:
    if not kind:
        return
    what, _, name = kind.partition(":")
    p = case_dir / name
    if what == "existing":
        p.write_bytes(b"precious existing output\n")
    elif what == "dir":
        p.mkdir()
    elif what == "dir-nonempty":
        p.mkdir()
        (p / "notes.txt").write_text("keep me\n")
    elif what == "copy-good":
        shutil.copyfile(files["good"], p)
    elif what == "synth-existing":
        p.mkdir()
        (p / "input.tif").write_bytes(b"precious\n")
    elif what.startswith("model-"):
        shutil.copytree(files["model"], p)
        if what == "model-corrupt-config":
            (p / "config.json").write_text('{"factor": 3, "arch": ')
        elif what == "model-truncated-weights":
            for w in p.glob("*.weights.h5"):
                w.write_bytes(w.read_bytes()[:200])
    elif what == "random":
        p.write_bytes(np.random.default_rng(0).bytes(4096))
    elif what == "empty":
        p.write_bytes(b"")
    elif what == "zip-no-rdf":
        import zipfile

        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "no rdf here")
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(kind)


def _digest(roots) -> dict:
    out = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                f = Path(dirpath) / n
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _listing(root: Path) -> set:
    return {str(p) for p in root.rglob("*")}


@pytest.fixture()
def ro_dir(tmp_path):
    """A folder nobody may write into (skips when running as root, who may)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if _can_write(ro):  # root: a mode is no obstacle; /sys refuses even root
        ro = Path("/sys")
    yield ro
    (tmp_path / "ro").chmod(0o755)


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case, fault_files, tmp_path, capsys, record_property, request, monkeypatch):
    from isonet_ij.cli import main

    record_property("category", case.category)
    d = tmp_path / "case"
    d.mkdir()
    fields = {k: str(v) for k, v in fault_files.items()}
    fields["d"] = str(d)
    if "{ro}" in case.cmd:
        ro = request.getfixturevalue("ro_dir")
        if _can_write(ro):
            pytest.skip("no folder here refuses writes")
        fields["ro"] = str(ro)
    _setup(case.setup, d, fault_files)
    if case.block:
        import sys

        # the package and every submodule an earlier test imported: all unimportable
        for name in [m for m in sys.modules if m == case.block or m.startswith(case.block + ".")] or [case.block]:
            monkeypatch.setitem(sys.modules, name, None)
    argv = [a.format(**fields) for a in case.cmd.split()]
    roots = [d, Path(fault_files["good"]).parent, fault_files["model"]]
    before, listed = _digest(roots), _listing(d)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    after = _digest(roots)
    lost = sorted(f for f in before if after.get(f) != before[f])
    new = sorted(_listing(d) - listed) if code != 0 else []
    tb = "Traceback" in out + err
    record_property("traceback", tb)
    record_property("data_lost", bool(lost))
    record_property("unsafe", code == 0 and case.code != 0)
    assert not tb, err
    assert code == case.code, f"exit {code}, stderr: {err}"
    assert not lost, f"changed or removed: {lost}"
    assert not new, f"left behind: {new}"
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING", "usage:", " "))]
    assert len(lines) == 1, err
    assert re.search(case.expect, lines[0]), lines[0]
    assert not (case.reject and re.search(case.reject, lines[0])), lines[0]


def test_training_bar_under_a_time_budget_counts_the_budget_not_epochs_x_steps(
        fault_files, tmp_path, capsys, record_property):
    """`isonet train --time-budget` (and `isonet demo`) showed 0/5000 steps with an hours-long ETA."""
    from isonet_ij.cli import main

    record_property("category", "progress")
    code = main(["train", str(fault_files["good"]), "-o", str(tmp_path / "m"), "--factor", "3",
                 "--psf", "gaussian:1,3", "--patch", "8", "--batch", "2", "--steps-per-epoch", "5",
                 "--time-budget", "4s"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "/5000" not in err  # 100 epochs x 50 steps: not what ends the run
    assert re.search(r"\d+/4 s of the budget, \d+ s left", err), err[-500:]
    assert re.search(r"val_psnr=\d+\.\d\d", err)  # the latest validation, once there is one
