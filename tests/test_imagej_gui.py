"""The IsoNet commands in ImageJ's GUI under Xvfb: menus, a scripted dialog, the Recorder.

The GUI needs a JVM with a display, and a process holds one JVM whose headless flag is
fixed at start; the session JVM of the other test modules is headless. So the GUI runs in
a child process under ``xvfb-run`` (this file, executed as a script), which writes what
it saw into a folder that the test then checks.

Screenshots for the docs (the menu, a restored xz view) come from the same child:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/test_imagej_gui.py \\
        OUT_DIR MODEL_DIR --screenshots benchmarks/results --input STACK.tif
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_java_and_ij_jar, require_xvfb_run

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.imagej
def test_menu_dialog_recorder_and_errors_in_the_gui(tmp_path, imagej_stack, imagej_tiny_model):
    from isonet_ij.restoration import restore

    require_java_and_ij_jar()
    xvfb = require_xvfb_run("the GUI needs a display")
    data, vs = imagej_stack
    np.save(tmp_path / "stack.npy", data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [xvfb, "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, str(tmp_path),
         str(imagej_tiny_model)],
        cwd=REPO, capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = json.loads((tmp_path / "gui.json").read_text())

    # the four items under Plugins > IsoNet
    assert got["menu"] == ["IsoNet Train", "IsoNet Restore", "IsoNet Segment", "IsoNet Estimate PSF"]
    # the menu item opened the dialog; the scripted dialog produced the result window
    assert got["dialog_title"] == "IsoNet Restore"
    assert got["dialog_fields"][0].startswith("stack.tif: 48 x 48 x 8 slices, 16-bit")
    assert any(f.startswith("Model folder") for f in got["dialog_fields"])
    assert got["result_title"] == "stack_isotropic"
    assert got["result_calibration"] == pytest.approx([0.2, 0.2, 0.2])
    res = np.load(tmp_path / "gui.npz")
    ref = restore(data, imagej_tiny_model, factor=3.0)
    np.testing.assert_allclose(res["dialog"], ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    # the Recorder wrote a macro line which, replayed, gives the same result
    line = got["recorded"]
    assert line == f'run("IsoNet Restore", "model=[{imagej_tiny_model}]");', got["recorder_text"]
    np.testing.assert_array_equal(res["replayed"], res["dialog"])
    # a canceled dialog does nothing and records nothing
    assert got["after_cancel"] == {"images": got["images_before_cancel"], "recorded": False}
    # bad input through the menu: IJ.error dialog with a plain message; ImageJ keeps running
    assert got["error_dialog_title"] == "IsoNet Segment"
    assert "needs a 3D stack with at least 2 z slices; 'flat' is a 2D image" in got["error_message"]
    assert got["flat_unchanged"] and got["imagej_alive"]
    assert got["event_thread_free"]


# --------------------------------------------------------------------------- the child


def _j(name):
    import jpype

    return jpype.JClass(name)


def _visible_window(cls_name: str, title: str, timeout: float = 60.0):
    Window = _j("java.awt.Window")
    cls = _j(cls_name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in Window.getWindows():
            if w.isShowing() and isinstance(w, cls) and str(w.getTitle()) == title:
                return w
        time.sleep(0.05)
    raise TimeoutError(f"no {cls_name} {title!r} within {timeout} s")


def _click(dialog, label: str) -> None:
    ActionEvent = _j("java.awt.event.ActionEvent")
    for b in dialog.getButtons():
        if str(b.getLabel()).strip() == label:
            dialog.actionPerformed(ActionEvent(b, ActionEvent.ACTION_PERFORMED, b.getLabel()))
            return
    raise KeyError(label)


def _menu_item(path):
    menu = None
    bar = _j("ij.Menus").getMenuBar()
    for i in range(bar.getMenuCount()):
        if str(bar.getMenu(i).getLabel()) == path[0]:
            menu = bar.getMenu(i)
    for name in path[1:]:
        menu = next(menu.getItem(k) for k in range(menu.getItemCount())
                    if str(menu.getItem(k).getLabel()) == name)
    return menu


def _choose_menu(path) -> None:
    """What a click on a menu item does: an ActionEvent from the item to ImageJ's frame."""
    ActionEvent = _j("java.awt.event.ActionEvent")
    item = _menu_item(path)
    _j("ij.IJ").getInstance().actionPerformed(
        ActionEvent(item, ActionEvent.ACTION_PERFORMED, item.getActionCommand()))


def _wait_image(title: str, timeout: float = 120.0):
    WM = _j("ij.WindowManager")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        imp = WM.getImage(title)
        if imp is not None and imp.getWindow() is not None and imp.getWindow().isShowing():
            return imp
        time.sleep(0.05)
    raise TimeoutError(f"no image {title!r} within {timeout} s")


def child(out: Path, model: Path, shots: Path | None = None, stack_tif: Path | None = None) -> None:
    from isonet_ij.imagej import bridge
    from isonet_ij.imagej.app import run_gui
    from isonet_ij.imagej.convert import array_to_imageplus, imageplus_to_volume

    frame = run_gui(display="display", wait=False)
    frame.setLocation(0, 0)
    IJ, WM = _j("ij.IJ"), _j("ij.WindowManager")
    got = {}
    arrays = {}
    isonet = _menu_item(["Plugins", "IsoNet"])
    got["menu"] = [str(isonet.getItem(k).getLabel()) for k in range(isonet.getItemCount())]

    recorder = _j("ij.plugin.frame.Recorder")()
    recorder.setLocation(820, 0)
    if stack_tif is not None:
        imp = IJ.openImage(str(stack_tif))
        imp.setTitle("stack.tif")
    else:
        data = np.load(out / "stack.npy")
        imp = array_to_imageplus(data, title="stack.tif", voxel_size=(0.6, 0.2, 0.2))
    imp.show()
    _wait_image("stack.tif")

    # --- menu item -> dialog (filled by a script) -> result window
    seen = {}
    menu_returned = threading.Event()

    def fill_restore_dialog():
        gd = _visible_window("ij.gui.GenericDialog", "IsoNet Restore")
        seen["title"] = str(gd.getTitle())
        fields = gd.getStringFields()
        seen["fields"] = [str(lab.getText()) for lab in gd.getComponents()
                          if isinstance(lab, _j("java.awt.Label"))]
        fields.get(0).setText(str(model))
        # the menu call must return while its dialog is still open (the command runs off
        # the event thread); a call that blocked until OK would never set the event
        seen["menu_returned_with_dialog_open"] = menu_returned.wait(60)
        _click(gd, "OK")

    t = threading.Thread(target=fill_restore_dialog)
    t.start()
    t0 = time.monotonic()
    _choose_menu(["Plugins", "IsoNet", "IsoNet Restore"])
    got["menu_call_s"] = time.monotonic() - t0  # measured only: benchmarks/bench_latency.py reports it
    menu_returned.set()
    t.join(120)
    got["event_thread_free"] = seen["menu_returned_with_dialog_open"]
    got["dialog_title"] = seen["title"]
    got["dialog_fields"] = seen["fields"]
    result = _wait_image("stack_isotropic")
    got["result_title"] = str(result.getTitle())
    cal = result.getCalibration()
    got["result_calibration"] = [cal.pixelDepth, cal.pixelHeight, cal.pixelWidth]
    arrays["dialog"] = imageplus_to_volume(result).data

    # --- the Recorder's line, replayed as a macro on the input
    time.sleep(0.3)
    text = str(recorder.getText())
    got["recorder_text"] = text
    lines = [ln for ln in text.splitlines() if "IsoNet Restore" in ln]
    got["recorded"] = lines[-1] if lines else None
    IJ.runMacro(f'selectImage("stack.tif"); {got["recorded"]}')
    arrays["replayed"] = imageplus_to_volume(bridge.last_result("IsoNet Restore")).data

    # --- a canceled dialog: nothing happens, nothing is recorded
    got["images_before_cancel"] = int(WM.getImageCount())

    def cancel_segment():
        _click(_visible_window("ij.gui.GenericDialog", "IsoNet Segment"), "Cancel")

    t = threading.Thread(target=cancel_segment)
    t.start()
    _choose_menu(["Plugins", "IsoNet", "IsoNet Segment"])
    t.join(60)
    time.sleep(1.0)
    got["after_cancel"] = {"images": int(WM.getImageCount()),
                           "recorded": "IsoNet Segment" in str(recorder.getText())}

    # --- bad input through the menu: a 2D image -> IJ.error dialog, nothing modified
    flat = IJ.createImage("flat", "16-bit ramp", 64, 64, 1)
    flat.show()
    _wait_image("flat")
    before = imageplus_to_volume_2d(flat)
    err = {}

    def ok_then_read_error():
        _click(_visible_window("ij.gui.GenericDialog", "IsoNet Segment"), "OK")
        dlg = _visible_window("ij.gui.MessageDialog", "IsoNet Segment")
        err["title"] = str(dlg.getTitle())
        err["message"] = str(IJ.getErrorMessage())
        dlg.dispose()

    t = threading.Thread(target=ok_then_read_error)
    t.start()
    _choose_menu(["Plugins", "IsoNet", "IsoNet Segment"])
    t.join(60)
    got["error_dialog_title"] = err.get("title")
    got["error_message"] = err.get("message")
    time.sleep(0.5)
    got["flat_unchanged"] = bool(np.array_equal(imageplus_to_volume_2d(flat), before))
    got["imagej_alive"] = bool(IJ.getInstance() is not None and IJ.getInstance().isShowing())

    if shots is not None:
        screenshots(shots, result, imp)
    (out / "gui.json").write_text(json.dumps(got, indent=1))
    np.savez(out / "gui.npz", **arrays)


def imageplus_to_volume_2d(imp):
    return np.array(imp.getProcessor().getPixels(), dtype=np.int16).copy()


def _grab(path: Path, x, y, w, h) -> None:
    Rectangle, ImageIO, File = (_j("java.awt.Rectangle"), _j("javax.imageio.ImageIO"),
                                _j("java.io.File"))
    img = _j("java.awt.Robot")().createScreenCapture(Rectangle(x, y, w, h))
    ImageIO.write(img, "png", File(str(path)))


def screenshots(shots: Path, restored, stack) -> None:
    """benchmarks/results/imagej_menu.png and imagej_restored_xz.png (real screen grabs)."""
    IJ, WM = _j("ij.IJ"), _j("ij.WindowManager")
    InputEvent = _j("java.awt.event.InputEvent")
    shots.mkdir(parents=True, exist_ok=True)
    for w in WM.getNonImageWindows() or []:  # Log, Recorder
        w.setVisible(False)
    for image_id in WM.getIDList() or []:
        img = WM.getImage(image_id)
        if img is not None and img.getWindow() is not None:
            img.getWindow().setVisible(False)
    time.sleep(0.5)

    # --- the menu: Plugins > IsoNet opened with real mouse clicks
    robot = _j("java.awt.Robot")()
    robot.setAutoDelay(80)
    fm = IJ.getInstance().getFontMetrics(_j("ij.Menus").getFont())
    x = 8
    for label in ("File", "Edit", "Image", "Process", "Analyze"):
        x += fm.stringWidth(label) + 21
    plugins_x = x + fm.stringWidth("Plugins") // 2
    robot.mouseMove(plugins_x, 12)
    robot.mousePress(InputEvent.BUTTON1_DOWN_MASK)
    robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK)
    time.sleep(0.5)
    plugins = _menu_item(["Plugins"])
    labels = [str(plugins.getItem(k).getLabel()) for k in range(plugins.getItemCount())]
    n_before = labels.index("IsoNet")
    n_sep = labels[:n_before].count("-")
    item_y = 33 + (n_before - n_sep) * 19 + n_sep * 9
    robot.mouseMove(plugins_x + 10, item_y)
    robot.mousePress(InputEvent.BUTTON1_DOWN_MASK)
    robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK)
    time.sleep(0.8)
    robot.mouseMove(plugins_x + 260, item_y + 21)  # hover "IsoNet Restore"
    time.sleep(0.5)
    _grab(shots / "imagej_menu.png", 0, 0, 660, 220)
    robot.keyPress(_j("java.awt.event.KeyEvent").VK_ESCAPE)
    robot.keyRelease(_j("java.awt.event.KeyEvent").VK_ESCAPE)
    robot.mouseMove(plugins_x, 600)
    robot.mousePress(InputEvent.BUTTON1_DOWN_MASK)
    robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK)
    time.sleep(0.5)

    # --- xz views side by side in one ImageJ window: input (nearest) | restored
    from isonet_ij.imagej.convert import imageplus_to_volume

    y = restored.getHeight() // 2
    f = stack.getCalibration().pixelDepth / stack.getCalibration().pixelWidth
    b = imageplus_to_volume(restored).data[:, y, :]
    acquired = imageplus_to_volume(stack).data[:, y, :].astype(np.float32)
    a = acquired[np.clip(np.rint(np.arange(b.shape[0]) / f).astype(int), 0, acquired.shape[0] - 1)]
    def unit(v):
        lo, hi = np.percentile(v, (0.5, 99.8))
        return np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1).astype(np.float32)
    gap = np.ones((b.shape[0], 4), np.float32)
    montage = np.concatenate([unit(a), gap, unit(b)], axis=1)
    from isonet_ij.imagej.convert import array_to_imageplus

    view = array_to_imageplus(montage, title=f"xz at y={y}: input (anisotropic) | IsoNet Restore",
                              display_range=(0.0, 1.0))
    zoom = max(1, min(4, 1200 // montage.shape[1]))
    view = view.resize(montage.shape[1] * zoom, montage.shape[0] * zoom, "none")
    view.setTitle(f"xz at y={y}: input (anisotropic, factor "
                  f"{stack.getCalibration().pixelDepth / stack.getCalibration().pixelWidth:g}) | IsoNet Restore")
    view.show()
    win = None
    for _ in range(100):
        win = view.getWindow()
        if win is not None and win.isShowing():
            break
        time.sleep(0.05)
    win.setLocation(0, 80)
    time.sleep(1.0)
    bounds = win.getBounds()
    _grab(shots / "imagej_restored_xz.png", 0, 0, min(1600, max(610, bounds.width)),
          min(1000, 80 + bounds.height))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="GUI child of test_imagej_gui.py")
    parser.add_argument("out", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--input", type=Path, default=None, help="a calibrated stack .tif")
    a = parser.parse_args()
    code = 0
    try:
        child(a.out, a.model, a.screenshots, a.input)
    except BaseException:  # noqa: BLE001 - report and end; the JVM cannot shut down cleanly
        import traceback

        traceback.print_exc()
        code = 1
    from isonet_ij.imagej.app import exit_now

    exit_now(code)
