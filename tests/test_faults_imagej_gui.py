"""Fault cases that need ImageJ's GUI (Xvfb): the Recorder's macro for IsoNet Estimate PSF.

With "plot" ticked, Estimate PSF opens a table and a plot window; ImageJ's Recorder wrote
``selectWindow(...)`` for them *before* the command's ``run(...)`` line, so the recorded
macro failed on replay (the window did not exist yet). The child process (this file, run
under ``xvfb-run`` as in ``tests/test_imagej_gui.py``) uses the dialog through the menu,
then replays what the Recorder wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import require_java_and_ij_jar, require_xvfb_run

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.imagej
def test_estimate_psf_with_plot_records_a_macro_that_replays(tmp_path, record_property):
    record_property("category", "imagej")
    require_java_and_ij_jar()
    xvfb = require_xvfb_run("the Recorder needs the GUI")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([xvfb, "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = json.loads((tmp_path / "gui.json").read_text())
    lines = got["recorded"]
    runs = [i for i, ln in enumerate(lines) if ln.startswith('run("IsoNet Estimate PSF"')]
    assert runs, got["recorder_text"]
    assert not any(ln.startswith("selectWindow(") for ln in lines[: runs[0]]), got["recorder_text"]
    assert got["replay_error"] is None, got
    assert got["replay_ran"]


def _j(name):
    import jpype

    return jpype.JClass(name)


def child(out: Path) -> None:
    from test_imagej_gui import _choose_menu, _click, _visible_window, _wait_image

    from isonet_ij.imagej import bridge
    from isonet_ij.imagej.app import run_gui
    from isonet_ij.imagej.convert import array_to_imageplus
    from isonet_ij.phantoms import synthesize

    run_gui(display="display", wait=False)
    IJ = _j("ij.IJ")
    data = synthesize("nuclei", size=64, psf="gaussian:2,8", factor=4, seed=0)["input"]
    imp = array_to_imageplus(data, title="beads.tif", voxel_size=(0.4, 0.1, 0.1), unit="um")
    imp.show()
    _wait_image("beads.tif")
    recorder = _j("ij.plugin.frame.Recorder")()
    time.sleep(0.5)

    def tick_plot_and_ok():
        gd = _visible_window("ij.gui.GenericDialog", "IsoNet Estimate PSF")
        for box in gd.getCheckboxes():
            if "plot" in str(box.getLabel()).lower():
                box.setState(True)
        _click(gd, "OK")

    t = threading.Thread(target=tick_plot_and_ok)
    t.start()
    n = len(bridge.errors())
    _choose_menu(["Plugins", "IsoNet", "IsoNet Estimate PSF"])
    t.join(120)
    for _ in range(600):  # the command runs off the event thread
        if bridge.last_result("IsoNet Estimate PSF") is not None or len(bridge.errors()) > n:
            break
        time.sleep(0.1)
    time.sleep(1.5)  # window activations reach the Recorder through the event queue
    text = str(recorder.getText())
    lines = [ln for ln in text.splitlines() if ln.strip()]
    got = {"recorder_text": text, "recorded": lines, "errors": bridge.errors()[n:]}
    # replay what was recorded from the stack on
    before = bridge.last_result("IsoNet Estimate PSF")
    macro = 'selectImage("beads.tif");\n' + "\n".join(
        ln for ln in lines if not ln.startswith(("//", "selectImage(\"beads"))) + "\nreturn \"ran\";"
    interp = _j("ij.macro.Interpreter")()
    interp.setIgnoreErrors(True)
    ret = interp.run(macro, "")
    err = interp.getErrorMessage()
    got["replay_error"] = None if err is None else str(err)
    got["replay_ran"] = ret is not None and str(ret) == "ran" and bridge.last_result("IsoNet Estimate PSF") is not before
    (out / "gui.json").write_text(json.dumps(got, indent=1, default=str))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    code = 0
    try:
        child(Path(sys.argv[1]))
    except BaseException:  # noqa: BLE001 - report and end; the JVM cannot shut down cleanly
        import traceback

        traceback.print_exc()
        code = 1
    from isonet_ij.imagej.app import exit_now

    exit_now(code)
