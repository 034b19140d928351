"""``isonet imagej --batch MACRO [ARG]``: the example macros run from a shell (subprocesses)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isonet_ij.volume_io import read_volume, write_volume

pytestmark = pytest.mark.imagej

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "fiji_scripts" / "examples"


def isonet(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "isonet_ij", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def java_and_jar():
    from isonet_ij.imagej import JVMError, find_ij_jar, find_java

    try:
        find_java()
        find_ij_jar()
    except (FileNotFoundError, JVMError) as exc:
        pytest.skip(f"ImageJ tests need Java and ij.jar: {exc}")


def test_segment_macro_runs_headless_from_the_shell(java_and_jar, tmp_path, imagej_stack):
    from isonet_ij.segment import segment_nuclei

    data, vs = imagej_stack
    src = tmp_path / "my stack.tif"
    out = tmp_path / "out dir" / "my labels.tif"
    out.parent.mkdir()
    write_volume(src, data, voxel_size=vs)
    proc = isonet("imagej", "--display", "headless", "--batch", EXAMPLES / "segment_stack.ijm",
                  f"{src}|{out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = read_volume(out)
    np.testing.assert_array_equal(labels.data, segment_nuclei(data, voxel_size=vs))
    assert labels.voxel_size == pytest.approx(vs)


def test_folder_macro_restores_and_segments_every_stack(java_and_jar, tmp_path, imagej_stack,
                                                        imagej_tiny_model):
    pytest.importorskip("tensorflow")
    from isonet_ij.restoration import restore

    data, vs = imagej_stack
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    write_volume(stacks / "a stack.tif", data, voxel_size=vs)
    write_volume(stacks / "b.tif", data[::-1].copy(), voxel_size=(0.4, 0.2, 0.2))
    (stacks / "notes.txt").write_text("not an image")
    out = tmp_path / "results"
    # display "auto": no $DISPLAY here, so a private Xvfb (or headless without Xvfb)
    env_display = os.environ.pop("DISPLAY", None)
    try:
        proc = isonet("imagej", "--batch", EXAMPLES / "batch_restore_and_segment.ijm",
                      f"{stacks}|{imagej_tiny_model}|{out}")
    finally:
        if env_display is not None:
            os.environ["DISPLAY"] = env_display
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "restored and segmented 2 stacks" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "a stack_isotropic.tif", "a stack_labels.tif", "b_isotropic.tif", "b_labels.tif"]
    a = read_volume(out / "a stack_isotropic.tif")
    ref = restore(data, imagej_tiny_model, factor=3.0)
    np.testing.assert_allclose(a.data, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    assert a.voxel_size == pytest.approx((0.2, 0.2, 0.2))
    b = read_volume(out / "b_isotropic.tif")
    assert b.data.shape == (15, 48, 48)  # factor 2 from its own calibration
    assert read_volume(out / "b_labels.tif").data.dtype == np.uint16


def test_a_failing_macro_exits_1_with_the_message(java_and_jar, tmp_path, imagej_stack):
    data, vs = imagej_stack
    src = tmp_path / "s.tif"
    write_volume(src, data, voxel_size=vs)
    macro = tmp_path / "typo.ijm"
    macro.write_text('open(getArgument());\nrun("IsoNet Segment", "fil=2d");\nprint("not reached");\n')
    proc = isonet("imagej", "--display", "headless", "--batch", macro, src)
    assert proc.returncode == 1
    assert "unknown option `fil`; did you mean `fill`?" in proc.stderr
    assert "not reached" not in proc.stdout
    proc = isonet("imagej", "--display", "headless", "--batch", tmp_path / "missing.ijm")
    assert proc.returncode == 2 and "macro file not found" in proc.stderr


def test_fiji_install_copies_the_script_commands(tmp_path):
    from isonet_ij.cli import main

    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    assert main(["fiji-install", str(fiji)]) == 0
    dest = fiji / "scripts" / "Plugins" / "IsoNet"
    assert sorted(p.name for p in dest.glob("*.py")) == [
        "IsoNet_Estimate_PSF.py", "IsoNet_Restore.py", "IsoNet_Segment.py", "IsoNet_Train.py"]
    assert (dest / "Examples" / "batch_restore_and_segment.ijm").is_file()
    assert main(["fiji-install", str(fiji)]) == 2  # exists: needs --force
    assert main(["fiji-install", str(fiji), "--force"]) == 0
    assert main(["fiji-install", str(tmp_path)]) == 2  # not a Fiji folder
    shutil.rmtree(fiji)
