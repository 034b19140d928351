"""A display for ImageJ on machines without one: a private Xvfb server.

ImageJ 1.x builds AWT menus and dialogs; with ``-Djava.awt.headless=true`` many of its own
commands fail (see :func:`isonet_ij.imagej.bridge.ensure_command_table` for what still
works). Under a virtual X server everything works. :func:`ensure_display` decides, once per
process and before the JVM starts, which of the two a run gets:

``"auto"``      the existing ``$DISPLAY``; else a private Xvfb when ``Xvfb`` is installed;
                else headless
``"xvfb"``      a private Xvfb even when ``$DISPLAY`` is set (error if not installed)
``"headless"``  no display at all (``java.awt.headless=true``)
``"display"``   the existing ``$DISPLAY`` (error if unset)

The Xvfb server ends with the Python process (Linux ``PR_SET_PDEATHSIG``; also stopped at
exit when no JVM is connected to it).
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import shutil
import subprocess

__all__ = ["DISPLAY_MODES", "DisplayError", "ensure_display", "start_xvfb", "stop_xvfb"]

log = logging.getLogger(__name__)

DISPLAY_MODES = ("auto", "xvfb", "headless", "display")

_xvfb: subprocess.Popen | None = None


class DisplayError(RuntimeError):
    """No display can be had as asked; the message says what to install or set."""


def start_xvfb(*, screen: str = "1600x1000x24", timeout: float = 10.0, attempts: int = 3) -> str:
    """Start a private Xvfb server, set ``$DISPLAY`` to it, and return its name (``":N"``).

    Xvfb picks a free display number itself (``-displayfd``); the server counts as started
    once its socket takes connections and it is still alive a moment later (a server that
    lost a race for its display number exits at once: then another is tried). It is
    terminated at interpreter exit (or by :func:`stop_xvfb`).

    Raises
    ------
    DisplayError
        ``Xvfb`` is not installed or did not start within ``timeout`` seconds.
    """
    global _xvfb
    if _xvfb is not None and _xvfb.poll() is None:
        return os.environ["DISPLAY"]
    exe = shutil.which("Xvfb")
    if exe is None:
        msg = (
            "Xvfb is not installed (Debian/Ubuntu: `apt-get install xvfb`); install it, run "
            "under `xvfb-run -a`, or use headless mode"
        )
        raise DisplayError(msg)
    reason = ""
    for _ in range(max(1, attempts)):
        proc, number, reason = _launch(exe, screen, timeout)
        if proc is not None:
            _xvfb = proc
            atexit.register(_stop_at_exit)
            display = f":{number}"
            os.environ["DISPLAY"] = display
            log.debug("started Xvfb on %s (pid %d)", display, proc.pid)
            return display
    msg = f"Xvfb did not start ({reason}); run under `xvfb-run -a` or use headless mode"
    raise DisplayError(msg)


def _launch(exe: str, screen: str, timeout: float):
    """One Xvfb start: ``(proc, number, "")`` or ``(None, None, reason)``."""
    import tempfile
    import time

    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [exe, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp",
                 "-ac"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            os.close(write_fd)
        try:
            number = _read_line(read_fd, timeout)
        finally:
            os.close(read_fd)
        ok = number.isdigit() and _wait_accepting(int(number), proc, timeout)
        if ok:
            time.sleep(0.2)
            ok = proc.poll() is None and _wait_accepting(int(number), proc, timeout)
        if ok:
            return proc, int(number), ""
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err.seek(0)
        lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
        tail = " | ".join(lines[-6:])
        reason = f"exit code {proc.returncode}" + (f": {tail}" if tail else "")
        return None, None, reason


def _read_line(fd: int, timeout: float) -> str:
    """Read up to a newline: Xvfb writes the number and the newline separately, and
    closing the pipe between the two writes kills it ("Cannot write display number")."""
    import time

    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def _wait_accepting(number: int, proc, timeout: float) -> bool:
    """Wait until the X server's socket takes connections (both the abstract and the file one)."""
    import socket
    import time

    path = f"/tmp/.X11-unix/X{number}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        ok = 0
        for address in ("\0" + path, path):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(address)
                    ok += 1
                except OSError:
                    pass
        if ok:
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the child when this process ends (``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _stop_at_exit() -> None:
    """Stop Xvfb at exit unless a JVM may still be connected to it.

    Killing the server under a connected JVM makes AWT's X error handler end the process
    with status 1; the server then ends with this process instead (PR_SET_PDEATHSIG).
    """
    try:
        import jpype

        if jpype.isJVMStarted():
            return
    except ImportError:
        pass
    stop_xvfb()


def stop_xvfb() -> None:
    """Terminate the Xvfb server started by :func:`start_xvfb` (if any)."""
    global _xvfb
    proc, _xvfb = _xvfb, None
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_display(mode: str = "auto") -> bool:
    """Arrange a display for ``mode`` (see module doc); return True when headless.

    Raises
    ------
    ValueError
        Unknown ``mode``.
    DisplayError
        ``"xvfb"`` without Xvfb, or ``"display"`` without ``$DISPLAY``.
    """
    if mode not in DISPLAY_MODES:
        msg = f"`display` must be one of {DISPLAY_MODES}, got {mode!r}"
        raise ValueError(msg)
    if mode == "headless":
        return True
    if mode == "display":
        if not os.environ.get("DISPLAY"):
            msg = (
                "no display: $DISPLAY is not set; run in a desktop session, under "
                "`xvfb-run -a`, or with an invisible display (--display xvfb / display='xvfb')"
            )
            raise DisplayError(msg)
        return False
    if mode == "xvfb":
        start_xvfb()
        return False
    if os.environ.get("DISPLAY"):
        return False
    try:
        start_xvfb()
    except DisplayError as exc:
        log.info("no display and no Xvfb (%s): ImageJ runs headless", exc)
        return True
    return False
