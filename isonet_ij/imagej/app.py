"""ImageJ with the IsoNet commands, started from Python: the GUI, or a macro run headless.

:func:`run_gui` opens ImageJ's window with Plugins > IsoNet and waits until it is closed.
:func:`run_batch` runs an ImageJ macro file without showing anything (as ImageJ's own
``-batch``): ``open(path); run("IsoNet Segment", ""); saveAs("Tiff", out);`` works from a
shell or a cluster job. Without a display it starts a private Xvfb when installed (all of
ImageJ's commands then work), else runs truly headless (macros, the IsoNet commands, and
ImageJ commands that open no dialog work).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["run_batch", "run_gui", "exit_now"]

log = logging.getLogger(__name__)


def _j(name: str):
    import jpype

    return jpype.JClass(name)


def run_batch(macro, arg: str | None = None, *, fiji=None, display: str = "auto",
              max_heap: str | None = None) -> int:
    """Run an ImageJ macro file in batch mode with the IsoNet commands available.

    Parameters
    ----------
    macro : str or Path
        ``.ijm`` macro file.
    arg : str, optional
        The macro's ``getArgument()``.
    fiji, display, max_heap
        See :func:`isonet_ij.imagej.start_imagej` (``display="auto"``: ``$DISPLAY``, else
        a private Xvfb, else headless).

    Returns
    -------
    int
        0 when the macro ran to its end without an error; 1 when it stopped on an error
        (macro error or an IsoNet command error) or ImageJ reported one it went on after
        (``open()`` of a missing file); the message is printed on stderr.
    """
    from . import bridge
    from .jvm import start_imagej

    path = Path(macro).expanduser()
    if not path.is_file():
        msg = f"macro file not found: {str(path)!r}"
        raise FileNotFoundError(msg)
    text = path.read_text(encoding="utf-8", errors="replace")
    start_imagej(fiji=fiji, display=display, max_heap=max_heap)
    bridge.install_commands(menus=False)
    n_errors = len(bridge.errors())
    Interpreter = _j("ij.macro.Interpreter")
    Interpreter.batchMode = True
    interp = Interpreter()
    interp.setIgnoreErrors(True)  # errors come back as a message, never as a dialog
    IJ, System = _j("ij.IJ"), _j("java.lang.System")
    last_error = System.identityHashCode(IJ.getErrorMessage())
    ret = interp.run(text, arg or "")
    System.out.flush()
    new_errors = bridge.errors()[n_errors:]
    message = interp.getErrorMessage()
    if message is not None and str(message).strip():
        print(f"isonet imagej: macro error in {path.name}: {str(message).strip()}", file=sys.stderr)
        return 1
    ij_error = IJ.getErrorMessage()  # IJ.error(...) of ImageJ itself, e.g. open() of a missing file
    if not new_errors and ij_error is not None and System.identityHashCode(ij_error) != last_error:
        text = " ".join(str(ij_error).split())
        print(f"isonet imagej: {path.name}: ImageJ reported an error: {text} (the macro went on "
              "after it; fix the macro or its input)", file=sys.stderr)
        return 1
    if new_errors:
        for name, text in new_errors:
            print(f"isonet imagej: {name}: {text}", file=sys.stderr)
        return 1
    if ret is not None and str(ret) == "[aborted]":
        print(f"isonet imagej: macro {path.name} was aborted", file=sys.stderr)
        return 1
    return 0


def run_gui(*, fiji=None, display: str = "display", max_heap: str | None = None,
            wait: bool = True):
    """Open ImageJ's main window with the IsoNet commands under Plugins > IsoNet.

    Parameters
    ----------
    fiji, display, max_heap
        See :func:`isonet_ij.imagej.start_imagej`; the GUI needs a display
        (``display="xvfb"`` gives an invisible one, for tests).
    wait : bool
        Block until the ImageJ window is closed (File > Quit), then return 0; else return
        the ``ij.ImageJ`` frame at once.
    """
    from . import bridge
    from .jvm import find_fiji, gateway, jvm_headless, jvm_started, start_fiji, start_imagej

    fiji_dir = find_fiji(fiji)
    if sys.platform == "darwin" and fiji_dir is not None and not jvm_started():
        # macOS: AWT needs the main thread, so pyimagej's "gui" mode blocks until Fiji
        # quits; the commands are installed from its start-up callback
        import imagej

        imagej.when_imagej_starts(lambda ij: bridge.install_commands(menus=True))
        start_fiji(fiji_dir, headless=False, max_heap=max_heap, mode="gui")
        return 0
    start_imagej(fiji=fiji, display=display, max_heap=max_heap)
    if jvm_headless():
        msg = "ImageJ's window needs a display, but this JVM runs headless"
        raise RuntimeError(msg)
    IJ = _j("ij.IJ")
    if IJ.getInstance() is None:
        gw = gateway()
        if gw is not None:
            gw.ui().showUI()
        else:
            ImageJ = _j("ij.ImageJ")
            ImageJ(ImageJ.EMBEDDED)
    for _ in range(100):
        if IJ.getInstance() is not None:
            break
        time.sleep(0.1)
    bridge.install_commands(menus=True)
    frame = IJ.getInstance()
    if not wait:
        return frame
    while IJ.getInstance() is not None and IJ.getInstance().isShowing():
        time.sleep(0.3)
    return 0


def exit_now(code: int) -> None:
    """Flush every output stream and end the process without JVM shutdown.

    A JVM with AWT threads (a display) may never finish JPype's orderly shutdown, and
    stopping a private Xvfb first would make AWT end the process with status 1; the
    process ends here instead (the Xvfb server ends with it).
    """
    try:
        import jpype

        if jpype.isJVMStarted():
            System = _j("java.lang.System")
            System.out.flush()
            System.err.flush()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))
