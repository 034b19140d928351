"""Start (or attach to) a JVM with ImageJ: ImageJ 1.x through scyjava, or a Fiji through pyimagej.

:func:`start_jvm` is the ImageJ 1.x route: it never imports ``imagej`` (pyimagej), because
that import registers a Maven endpoint with scyjava and a later start then needs network
access to Maven. Java is never downloaded (``fetch="never"``): a system JDK/JRE must be
present. :func:`start_imagej` picks the route: a Fiji installation (``fiji=`` or
``$FIJI_HOME``) through ``imagej.init(DIR)``, else ``ij.jar``; and attaches to a JVM that is
already running with ImageJ (inside Fiji's Python mode).

Nothing here runs at import time; the JVM starts on the first :func:`start_jvm` call and
stays up for the life of the Python process (a JVM cannot be restarted in-process).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

__all__ = [
    "JVMError",
    "find_ij_jar",
    "find_java",
    "find_fiji",
    "start_jvm",
    "start_imagej",
    "start_fiji",
    "jvm_started",
    "jvm_headless",
    "DEBIAN_IJ_JARS",
]

_log = logging.getLogger(__name__)

#: Where Debian's ``libij-java`` puts ImageJ 1.x (``dpkg -L libij-java``), tried in order.
DEBIAN_IJ_JARS = ("/usr/share/java/ij.jar",)

#: Environment variable naming an ``ij.jar`` to use instead of the Debian one.
ENV_JAR = "ISONET_IJ_JAR"
#: Environment variable naming a Fiji installation (``Fiji.app``) to start through pyimagej.
ENV_FIJI = "FIJI_HOME"

_INSTALL_HINT = (
    "install ImageJ 1.x (Debian/Ubuntu: `apt-get install libij-java`) or set "
    f"{ENV_JAR}=/path/to/ij.jar"
)

# The options the running JVM was started with by this module (None: not started here).
_started_with: dict | None = None
# The pyimagej gateway when started through a Fiji installation.
_gateway = None


class JVMError(RuntimeError):
    """The JVM or ImageJ cannot be started as asked; the message says what to do."""


def find_ij_jar() -> Path:
    """Return the ImageJ 1.x jar to use.

    ``$ISONET_IJ_JAR`` when set (it must name an existing file), else Debian's
    ``/usr/share/java/ij.jar`` (package ``libij-java``).

    Returns
    -------
    Path
        An existing ``.jar`` file.

    Raises
    ------
    FileNotFoundError
        No jar found; the message says how to install one.
    """
    env = os.environ.get(ENV_JAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            msg = f"{ENV_JAR}={env!r} does not name an existing file; point it at an ij.jar"
            raise FileNotFoundError(msg)
        return path
    for cand in DEBIAN_IJ_JARS:
        path = Path(cand)
        if path.is_file():
            return path
    msg = f"ImageJ 1.x jar not found (looked for {', '.join(DEBIAN_IJ_JARS)}): {_INSTALL_HINT}"
    raise FileNotFoundError(msg)


def find_java() -> Path:
    """Return the ``java`` executable that the JVM will come from.

    ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else ``java`` on ``PATH``.

    Raises
    ------
    JVMError
        No Java found; the message says how to install one.
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        exe = Path(home) / "bin" / "java"
        if exe.is_file():
            return exe
        msg = f"JAVA_HOME={home!r} has no bin/java; fix JAVA_HOME or unset it"
        raise JVMError(msg)
    exe = shutil.which("java")
    if exe is None:
        msg = (
            "no Java runtime found (no JAVA_HOME, no `java` on PATH): install a JDK >= 11 "
            "(Debian/Ubuntu: `apt-get install default-jre-headless`) or set JAVA_HOME"
        )
        raise JVMError(msg)
    return Path(exe).resolve()


def jvm_started() -> bool:
    """True when a JVM is running in this process (started here or elsewhere)."""
    try:
        import jpype
    except ImportError:
        return False
    return bool(jpype.isJVMStarted())


def start_jvm(*, headless: bool = True, max_heap: str | None = None, jar=None) -> str:
    """Start the JVM with ImageJ 1.x on the class path; a no-op when already started.

    Parameters
    ----------
    headless : bool
        Pass ``-Djava.awt.headless=true``. Headless ImageJ can compute (thresholds,
        filters called directly) but ``IJ.run`` command lookup and dialogs fail; use
        ``headless=False`` under a display (e.g. ``xvfb-run``) for those.
    max_heap : str, optional
        JVM maximum heap, e.g. ``"4g"`` or ``"512m"`` (``-Xmx``); JVM default if None.
    jar : str or Path, optional
        ImageJ jar; default :func:`find_ij_jar`.

    Returns
    -------
    str
        ImageJ's version string (``IJ.getFullVersion()``), e.g. ``"1.53t99"``.

    Raises
    ------
    FileNotFoundError
        No ImageJ jar (see :func:`find_ij_jar`).
    JVMError
        No Java, scyjava/JPype not installed, no display for ``headless=False``, or a JVM
        already running without ImageJ on its class path (a JVM cannot be restarted: start
        it through this function first).

    Notes
    -----
    Calling again with different options does not restart the JVM; it logs a warning and
    returns the running one. All class-path entries must be known before the start
    (ImageJ's class loader does not see jars added later).
    """
    global _started_with
    wanted = {"headless": bool(headless), "max_heap": max_heap}
    if jvm_started():
        return _attach_to_running_jvm(wanted)
    if max_heap is not None and not _valid_heap(max_heap):
        msg = f"`max_heap` must look like '512m' or '4g', got {max_heap!r}"
        raise ValueError(msg)
    jar = Path(jar) if jar is not None else find_ij_jar()
    if not jar.is_file():
        msg = f"`jar` {str(jar)!r} does not exist: {_INSTALL_HINT}"
        raise FileNotFoundError(msg)
    java = find_java()
    if not headless and not os.environ.get("DISPLAY"):
        msg = (
            "headless=False needs a display but DISPLAY is not set: run under "
            "`xvfb-run -a ...` or use headless=True"
        )
        raise JVMError(msg)
    _start_scyjava(java, jar, headless=headless, max_heap=max_heap)
    _started_with = wanted
    version = _ij_version()
    if version is None:  # pragma: no cover - the jar was on the class path
        msg = f"the JVM started but ImageJ classes are missing from {str(jar)!r}"
        raise JVMError(msg)
    _log.debug("JVM started with ImageJ %s (%s)", version, jar)
    return version


def _attach_to_running_jvm(wanted: dict) -> str:
    """ImageJ's version in the JVM already running; ``wanted`` options cannot apply any more."""
    version = _ij_version()
    if version is None:
        msg = (
            "a JVM is already running in this process without ImageJ (ij.jar) on its "
            "class path, and a JVM cannot be restarted: call "
            "isonet_ij.imagej.start_jvm() before anything else starts Java"
        )
        raise JVMError(msg)
    if _started_with is not None and _started_with != wanted:
        _log.warning(
            "JVM already running with %s; ignoring the new options %s", _started_with, wanted
        )
    return version


def _start_scyjava(java: Path, jar: Path, *, headless: bool, max_heap: str | None) -> None:
    """Start the JVM of ``java`` through scyjava with ``jar`` on the class path (no fetching)."""
    try:
        import scyjava
        import scyjava.config as sjconfig
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = f"scyjava/JPype are not installed ({exc}): pip install 'isonet-ij[imagej]'"
        raise JVMError(msg) from exc

    if "JAVA_HOME" not in os.environ:
        # JPype finds libjvm through JAVA_HOME first; point it at the java we found so
        # scyjava's own guess (from sys.path) cannot pick something else.
        home = java.parent.parent
        if (home / "lib" / "server" / "libjvm.so").exists():
            os.environ["JAVA_HOME"] = str(home)
    sjconfig.set_java_constraints(fetch="never")
    sjconfig.add_classpath(str(jar))
    if headless:
        sjconfig.add_option("-Djava.awt.headless=true")
    if max_heap is not None:
        sjconfig.add_option(f"-Xmx{max_heap}")
    try:
        scyjava.start_jvm()
    except Exception as exc:  # JPype raises a variety of types here
        msg = f"could not start the JVM from {str(java)!r} with {str(jar)!r}: {exc}"
        raise JVMError(msg) from exc


def _valid_heap(value: str) -> bool:
    value = str(value).strip().lower()
    return len(value) > 1 and value[:-1].isdigit() and value[-1] in "kmg" or value.isdigit()


def _ij_version() -> str | None:
    """ImageJ's full version from the running JVM, or None when ImageJ is not loadable."""
    import jpype

    try:
        IJ = jpype.JClass("ij.IJ")
    except Exception:  # noqa: BLE001 - ClassNotFound surfaces under several types
        return None
    return str(IJ.getFullVersion())


def jvm_headless() -> bool:
    """True when the running JVM has no display (``java.awt.GraphicsEnvironment``)."""
    import jpype

    return bool(jpype.JClass("java.awt.GraphicsEnvironment").isHeadless())


def find_fiji(fiji=None) -> Path | None:
    """The Fiji installation to use: ``fiji``, else ``$FIJI_HOME``, else None.

    Raises
    ------
    FileNotFoundError
        The folder does not exist or holds no ``jars/`` folder (not a Fiji installation).
    """
    where = "--fiji" if fiji is not None else ENV_FIJI
    if fiji is None:
        fiji = os.environ.get(ENV_FIJI) or None
    if fiji is None:
        return None
    path = Path(fiji).expanduser()
    if path.name != "Fiji.app" and (path / "Fiji.app").is_dir():
        path = path / "Fiji.app"
    if not path.is_dir() or not (path / "jars").is_dir():
        msg = (
            f"{where} {str(fiji)!r} is not a Fiji installation (no jars/ folder); give the "
            "Fiji.app folder"
        )
        raise FileNotFoundError(msg)
    return path


def start_imagej(*, fiji=None, display: str = "auto", max_heap: str | None = None) -> str:
    """Start ImageJ for the bridge, or attach to the one running in this process.

    Parameters
    ----------
    fiji : str or Path, optional
        A Fiji installation (``Fiji.app``); default ``$FIJI_HOME``. Started through
        pyimagej (``imagej.init(DIR)``). Without one, ImageJ 1.x from ``ij.jar``
        (``$ISONET_IJ_JAR`` or Debian's ``libij-java``) through scyjava.
    display : {"auto", "xvfb", "headless", "display"}
        How to get a display before the JVM starts (see :mod:`isonet_ij.imagej.display`):
        ``"auto"`` uses ``$DISPLAY``, else starts a private Xvfb, else runs headless.
    max_heap : str, optional
        JVM maximum heap (``-Xmx``), e.g. ``"8g"``.

    Returns
    -------
    str
        ImageJ's version (``IJ.getFullVersion()``).

    Raises
    ------
    JVMError, FileNotFoundError
        No Java, no ImageJ jar, not a Fiji folder, pyimagej failing to start Fiji.

    Notes
    -----
    When a JVM is already running (a second call, or inside Fiji's Python mode), nothing
    is started: it is used as it is (``fiji``, ``display`` and ``max_heap`` are ignored,
    with a log message when they were given).
    """
    from .display import ensure_display

    if jvm_started():
        version = _ij_version()
        if version is None:
            msg = (
                "a JVM is already running in this process without ImageJ on its class "
                "path, and a JVM cannot be restarted; start ImageJ first"
            )
            raise JVMError(msg)
        if fiji is not None or max_heap is not None:
            _log.info("ImageJ %s is already running; --fiji/--heap are ignored", version)
        return version
    fiji_dir = find_fiji(fiji)
    if max_heap is not None and not _valid_heap(max_heap):
        msg = f"`max_heap` must look like '512m' or '4g', got {max_heap!r}"
        raise ValueError(msg)
    headless = ensure_display(display)
    if fiji_dir is None:
        return start_jvm(headless=headless, max_heap=max_heap)
    return start_fiji(fiji_dir, headless=headless, max_heap=max_heap)


def start_fiji(fiji_dir: Path, *, headless: bool, max_heap: str | None, mode: str | None = None) -> str:
    """Start a local Fiji through pyimagej (no downloads: local jars only).

    ``fiji_dir`` is the ``Fiji.app`` folder (:func:`find_fiji`); its bundled Java serves
    when no system Java is found. ``headless`` picks pyimagej's ``"headless"`` mode, else
    ``"interactive"``; ``mode`` overrides it (``"gui"`` blocks until Fiji quits: macOS).
    ``max_heap`` as in :func:`start_imagej`. Returns ImageJ's version; raises
    :class:`JVMError` when Java or pyimagej is missing or Fiji fails to start.
    """
    global _gateway, _started_with
    try:
        find_java()
    except JVMError:
        bundled = sorted((fiji_dir / "java").glob("*/*/bin/java")) + sorted(
            (fiji_dir / "java").glob("*/*/Contents/Home/bin/java"))
        if not bundled:
            raise
        os.environ["JAVA_HOME"] = str(bundled[-1].parent.parent)
    try:
        import scyjava.config as sjconfig

        import imagej
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = f"pyimagej is not installed ({exc}): pip install 'isonet-ij[imagej]'"
        raise JVMError(msg) from exc
    sjconfig.set_java_constraints(fetch="never")
    if max_heap is not None:
        sjconfig.add_option(f"-Xmx{max_heap}")
    mode = mode or ("headless" if headless else "interactive")
    try:
        _gateway = imagej.init(str(fiji_dir), mode=mode)
    except Exception as exc:  # pyimagej / JPype raise many types
        msg = f"could not start Fiji from {str(fiji_dir)!r} through pyimagej ({mode}): {exc}"
        raise JVMError(msg) from exc
    _started_with = {"headless": headless, "max_heap": max_heap, "fiji": str(fiji_dir)}
    version = _ij_version()
    if version is None:  # pragma: no cover
        msg = f"Fiji started from {str(fiji_dir)!r} but ImageJ 1.x classes are missing"
        raise JVMError(msg)
    return version


def gateway():
    """The pyimagej gateway when ImageJ was started from a Fiji installation, else None."""
    return _gateway
