"""Data loss, unsafe results and calibration faults (issue 26): each case fails on 652cfc7.

Every CLI case asserts exit code 2, a one-line message, no traceback, and that inputs and
existing outputs are byte-identical before and after. Concurrency and kills use real
processes (``subprocess`` + ``os.kill(pid, SIGKILL)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from isonet_ij.cli import main
from isonet_ij.volume_io import read_volume, write_volume

from conftest import smooth_volume

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "models" / "isonet2_nuclei_demo.bioimageio.zip"


def snapshot(*roots) -> dict:
    """sha256 of every file under ``roots`` (files or folders)."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(argv, capsys, *keep, match: str = "") -> str:
    """Run the CLI in-process: exit 2, one line naming the problem, no traceback, ``keep`` unchanged."""
    before = snapshot(*keep)
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    assert snapshot(*keep) == before
    return lines[0]


def python(code: str) -> subprocess.Popen:
    """A real second process running ``code`` (prints READY when it holds what it should)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert p.stdout.readline().strip() == "READY"
    return p


def kill9(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def backdate(path: Path, seconds: float = 3600) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.fixture(scope="module")
def model(tiny_trained_model, tmp_path_factory):
    """A private copy of the tiny model (tests may claim, resume or compare it)."""
    d = tmp_path_factory.mktemp("safety") / "model"
    shutil.copytree(tiny_trained_model, d)
    return d


@pytest.fixture()
def tif(tmp_path):
    """The tiny model's training volume as a calibrated TIFF (dz 0.6, dx 0.2 um: factor 3)."""
    path = tmp_path / "in.tif"
    write_volume(path, smooth_volume((8, 36, 36)), voxel_size=(0.6, 0.2, 0.2))
    return path


def zarr_input(path: Path) -> Path:
    from isonet_ij.io_zarr import write_ome_zarr

    write_ome_zarr(path, smooth_volume((8, 36, 36)), voxel_size=(0.6, 0.2, 0.2), chunks=(8, 36, 36))
    return path


# --------------------------------------------------------------------------- outputs vs inputs


@pytest.mark.parametrize("out", ["in.zarr", "in.zarr/inner.zarr", "."], ids=["same", "inside", "holds"])
def test_restore_zarr_never_replaces_its_input(tmp_path, model, capsys, out, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = zarr_input(tmp_path / "in.zarr")
    out = tmp_path / out if out != "." else tmp_path / "all.zarr"
    if out.name == "all.zarr":  # an output folder that holds the input
        src = zarr_input(out / "in.zarr")
    refused(["restore", src, "--model", model, "-o", out, "--force"], capsys, src, model, match="input")


@pytest.mark.parametrize("case", ["export-weights", "restore-into-model", "train-model-file", "train-onto-input"])
def test_no_command_overwrites_its_inputs(tmp_path, model, tif, capsys, case):
    m = tmp_path / "m"
    shutil.copytree(model, m)
    if case == "export-weights":
        argv = ["export", m, "--format", "onnx", "-o", m / "weights_best.weights.h5", "--force"]
    elif case == "restore-into-model":
        argv = ["restore", tif, "--model", m, "-o", m / "weights_best.weights.h5", "--force"]
    elif case == "train-model-file":  # --force would remove MODEL/psf.tif: the training input
        shutil.copy(tif, m / "psf.tif")
        tif = m / "psf.tif"
        argv = ["train", tif, "-o", m, "--force", "--mode", "none", "--epochs", "1"]
    else:
        argv = ["train", tif, "-o", tif, "--force", "--mode", "none"]
    refused(argv, capsys, tif, m)


# --------------------------------------------------------------------------- exclusive claims


HOLD = "from isonet_ij.locks import exclusive_output\nimport time\nwith exclusive_output({!r}):\n" \
       "    print('READY', flush=True)\n    time.sleep(600)\n"


def test_second_chunked_run_is_refused_and_a_kill_releases_the_claim(tmp_path, model, tif, capsys):
    out = tmp_path / "out.zarr"
    assert main(["restore", str(tif), "--model", str(model), "-o", str(out)]) == 0
    capsys.readouterr()
    holder = python(HOLD.format(str(out)))  # another run writing out.zarr
    try:
        msg = refused(["restore", tif, "--model", model, "-o", out, "--resume"], capsys, tif, out,
                      match="another isonet run")
        assert str(out) in msg
    finally:
        kill9(holder)
    # killed: its lock file may stay, but no claim blocks --resume
    assert main(["restore", str(tif), "--model", str(model), "-o", str(out), "--resume"]) == 0
    assert "0 chunks computed" in capsys.readouterr().out


def test_second_training_into_the_same_model_folder_is_refused(tmp_path, model, tif, capsys):
    m = tmp_path / "m"
    shutil.copytree(model, m)
    holder = python(HOLD.format(str(m)))
    try:
        refused(["train", tif, "-o", m, "--resume", "--epochs", "2"], capsys, tif, m, match="another isonet run")
    finally:
        kill9(holder)
    from isonet_ij.locks import exclusive_output

    with exclusive_output(m):  # free again after the kill
        pass


# --------------------------------------------------------------------------- resume checks


def test_train_resume_refuses_another_volume_or_other_pair_settings(tmp_path, model, tif, capsys):
    m = tmp_path / "m"
    shutil.copytree(model, m)
    other = tmp_path / "other.tif"
    write_volume(other, smooth_volume((8, 36, 36), seed=5), voxel_size=(0.6, 0.2, 0.2))
    msg = refused(["train", other, "-o", m, "--resume", "--epochs", "1"], capsys, other, m,
                  match="another volume")
    assert "-o" in msg and "--force" in msg
    refused(["train", tif, "-o", m, "--resume", "--epochs", "1", "--arch", "isonet1"], capsys, tif, m,
            match="--arch isonet1")


def test_chunked_resume_checks_model_and_input(tmp_path, model, tif, capsys):
    from isonet_ij.chunked import restore_chunked

    out = tmp_path / "out.zarr"
    restore_chunked(str(tif), str(model), out=out)
    other_model = tmp_path / "m2"
    shutil.copytree(model, other_model)
    cfg = json.loads((other_model / "config.json").read_text())
    cfg["seed"] = 7
    (other_model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model \(config or weights\)"):
        restore_chunked(str(tif), str(other_model), out=out, resume=True)
    data = read_volume(tif).data.copy()
    data[4, 10, 10] += 1.0  # one voxel of the middle slice: same shape, same percentiles
    other = tmp_path / "other.tif"
    write_volume(other, data, voxel_size=(0.6, 0.2, 0.2))
    before = snapshot(out)
    with pytest.raises(ValueError, match="input data"):
        restore_chunked(str(other), str(model), out=out, resume=True)
    assert snapshot(out) == before
    assert restore_chunked(str(tif), str(model), out=out, resume=True)["skipped"] > 0


# --------------------------------------------------------------------------- packages


def _altered_package(tmp_path: Path, member: str) -> Path:
    pkg = tmp_path / "altered.zip"
    with zipfile.ZipFile(DEMO) as zin, zipfile.ZipFile(pkg, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == member:
                data = data[:-64] + bytes(b ^ 0x01 for b in data[-64:])
            zout.writestr(info, data)
    return pkg


@pytest.mark.parametrize("member", ["model.onnx", "psf.tif", "test_input.npy", "README.md"])
def test_package_with_an_altered_file_is_refused(tmp_path, member):
    pytest.importorskip("onnxruntime")
    from isonet_ij.artifacts import ArtifactError
    from isonet_ij.model import load_model

    with pytest.raises(ArtifactError, match=f"'{member}' does not match the sha256"):
        load_model(_altered_package(tmp_path, member), backend="onnx")


def test_exported_packages_carry_sha256_of_every_file():
    import yaml

    from isonet_ij.artifacts import verify_package_files

    with zipfile.ZipFile(DEMO) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        names = set(z.namelist()) - {"rdf.yaml"}
    listed = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("source"), str):
                listed.append(node)
            [walk(v) for v in node.values()]
        elif isinstance(node, list):
            [walk(v) for v in node]

    walk(rdf)
    assert {e["source"] for e in listed} == names
    assert all(len(e.get("sha256", "")) == 64 for e in listed)
    assert callable(verify_package_files)


def test_crafted_package_cannot_fill_tmp(tmp_path, monkeypatch):
    import tempfile

    from isonet_ij.artifacts import ArtifactError
    from isonet_ij.model import load_model

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("rdf.yaml", "type: model\n")
        with z.open("big.bin", "w", force_zip64=True) as fh:
            block = bytes(1 << 20)
            for _ in range(300):  # 300 MiB of zeros in a package of ~300 KiB
                fh.write(block)
    assert bomb.stat().st_size < 4 << 20
    with pytest.raises(ArtifactError, match="would extract to"):
        load_model(bomb)
    assert not list(tmp_path.glob("isonet_pkg_*"))


def test_extraction_folder_of_a_killed_process_is_removed(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import tempfile

    from isonet_ij.model import load_model

    code = (f"import os, tempfile\ntempfile.tempdir = {str(tmp_path)!r}\n"
            "d = tempfile.mkdtemp(prefix=f'isonet_pkg_{os.getpid()}_')\n"
            "open(os.path.join(d, 'model.onnx'), 'wb').write(bytes(1 << 20))\n"
            "print('READY', flush=True)\nimport time; time.sleep(600)\n")
    p = python(code)
    kill9(p)
    (left,) = tmp_path.glob("isonet_pkg_*")
    backdate(left)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    load_model(DEMO, backend="onnx")
    assert not list(tmp_path.glob("isonet_pkg_*"))


def test_part_file_of_a_killed_tiff_write_is_removed(tmp_path):
    target = tmp_path / "out.tif"
    code = ("from isonet_ij.volume_io import atomic_path\nimport time\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            "    print('READY', flush=True)\n    time.sleep(600)\n")
    kill9(python(code))
    (part,) = tmp_path.glob(".out.tif.*.part")
    backdate(part)
    write_volume(target, np.zeros((2, 4, 4), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


# --------------------------------------------------------------------------- calibration


def _ij_tiff(path, voxel, unit="micron", info=None):
    dz, dy, dx = voxel
    meta = {"spacing": dz, "unit": unit, "axes": "ZYX"}
    if info:
        meta["Info"] = json.dumps(info)
    tifffile.imwrite(path, smooth_volume((8, 36, 36)), imagej=True, resolution=(1 / dx, 1 / dy), metadata=meta)
    return path


def test_one_micron_pixels_are_calibrated(tmp_path):
    vol = read_volume(_ij_tiff(tmp_path / "a.tif", (8.0, 1.0, 1.0)))
    assert vol.voxel_size == (8.0, 1.0, 1.0) and vol.unit == "um"


def test_isotropic_one_to_one_stack_is_not_restored_with_the_models_factor(tmp_path, model, capsys):
    path = _ij_tiff(tmp_path / "iso.tif", (1.0, 1.0, 1.0))
    refused(["restore", path, "--model", model, "-o", tmp_path / "out.tif"], capsys, path, model,
            match="not an anisotropic stack")


def test_uncalibrated_restoration_is_not_restored_again(tmp_path, model, capsys):
    info = {"software": "isonet-ij 0", "command": "restore", "factor": 3.0, "z_grid": "acquired slice i at i*3"}
    path = _ij_tiff(tmp_path / "restored.tif", (1.0, 1.0, 1.0), unit="pixel", info=info)
    refused(["restore", path, "--model", model, "-o", tmp_path / "out.tif"], capsys, path, model,
            match="already an isotropic restoration")


def test_ome_tiff_sizes_are_read_in_their_own_units(tmp_path):
    path = tmp_path / "nm.ome.tif"
    md = {"axes": "ZYX", "PhysicalSizeX": 100.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 100.0,
          "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.8, "PhysicalSizeZUnit": "µm"}
    tifffile.imwrite(path, smooth_volume((8, 36, 36)), ome=True, metadata=md)
    vol = read_volume(path)
    assert vol.unit == "um"
    np.testing.assert_allclose(vol.voxel_size, (0.8, 0.1, 0.1))


def test_nm_calibration_is_written_to_ome_zarr_in_micrometres(tmp_path, model):
    from isonet_ij.chunked import restore_chunked
    from isonet_ij.io_zarr import open_zarr_volume

    path = tmp_path / "nm.tif"
    tifffile.imwrite(path, smooth_volume((8, 36, 36)), imagej=True, resolution=(1 / 200.0, 1 / 200.0),
                     metadata={"spacing": 600.0, "unit": "nm", "axes": "ZYX"})
    info = restore_chunked(str(path), str(model), out=tmp_path / "out.zarr")
    assert info["factor"] == pytest.approx(3.0)
    np.testing.assert_allclose(open_zarr_volume(tmp_path / "out.zarr").voxel_size, (0.2, 0.2, 0.2))


@pytest.mark.parametrize("shape", [(4, 5, 36, 36), (4, 4, 36, 36)])
def test_unlabelled_4d_stack_is_refused(tmp_path, model, capsys, shape):
    path = tmp_path / "4d.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint16))
    msg = refused(["restore", path, "--model", model, "-o", tmp_path / "out.tif", "--factor", "3"], capsys,
                  path, model, match="without axes labels")
    assert "ZC" in msg and "Hyperstack" in msg
