"""``isonet imagej`` and ``isonet fiji-install``: ImageJ with the IsoNet commands."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)

_IMAGEJ_DESCRIPTION = """\
Start ImageJ with the commands "IsoNet Train", "IsoNet Restore" and "IsoNet Segment"
(Plugins > IsoNet; callable from macros as run("IsoNet Restore", "model=[/path/model] ...")).

Without --batch: open ImageJ's window (needs a display) and wait until it is closed.
With --batch MACRO.ijm [ARG]: run the macro without showing anything, as ImageJ's own
-batch, e.g. a file with
    open(getArgument()); run("IsoNet Segment", ""); saveAs("Tiff", "/out/labels.tif");
Exit status 0 when the macro ran to its end, 1 when it stopped on an error (printed on
stderr). Without a display, a private Xvfb is started when installed (then every ImageJ
command works), else ImageJ runs headless (macros, the IsoNet commands, and ImageJ
commands that open no dialog work).

ImageJ comes from --fiji DIR or $FIJI_HOME (a Fiji.app, started through pyimagej), else from
ImageJ 1.x's ij.jar ($ISONET_IJ_JAR, else Debian's libij-java). Nothing is downloaded.
"""

_FIJI_INSTALL_DESCRIPTION = """\
Copy the Fiji script commands (IsoNet_Train.py, IsoNet_Restore.py, IsoNet_Segment.py, IsoNet_Estimate_PSF.py; SciJava
#@ parameters, for Fiji's Python mode) and the example batch macros into
FIJI_DIR/scripts/Plugins/IsoNet/. After restarting Fiji they appear under Plugins > IsoNet.
Fiji must run in Python mode with an environment where isonet-ij is installed (see
fiji_scripts/README.md).
"""


def register(subparsers) -> None:
    """Add the ``imagej`` and ``fiji-install`` sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("imagej", help="ImageJ with the IsoNet commands: GUI, or a macro in batch",
                              description=_IMAGEJ_DESCRIPTION, formatter_class=fmt)
    p.add_argument("--fiji", default=None, metavar="DIR",
                   help="Fiji installation (Fiji.app) to start through pyimagej (default $FIJI_HOME)")
    p.add_argument("--batch", default=None, metavar="MACRO.ijm",
                   help="run this ImageJ macro without GUI, then exit")
    p.add_argument("arg", nargs="?", default=None, metavar="ARG",
                   help="argument of the --batch macro (its getArgument())")
    p.add_argument("--heap", default=None, metavar="SIZE",
                   help="JVM maximum heap, e.g. 8g (-Xmx; default: the JVM's, 1/4 of the RAM)")
    p.add_argument("--display", choices=("auto", "xvfb", "headless", "display"), default="auto",
                   help="auto: $DISPLAY, else a private Xvfb, else headless (--batch); "
                   "xvfb: always a private Xvfb; headless: no display at all; display: $DISPLAY")
    p.set_defaults(func=cmd_imagej)

    f = subparsers.add_parser("fiji-install", help="copy the IsoNet script commands into a Fiji",
                              description=_FIJI_INSTALL_DESCRIPTION, formatter_class=fmt)
    f.add_argument("fiji", metavar="FIJI_DIR", help="the Fiji.app folder")
    f.add_argument("--force", action="store_true", help="replace files installed before")
    f.set_defaults(func=cmd_fiji_install)


def cmd_imagej(args) -> int:
    import sys

    from ..imagej.app import exit_now, run_batch, run_gui
    from ..imagej.display import DisplayError
    from ..imagej.jvm import JVMError

    if args.arg is not None and args.batch is None:
        msg = f"ARG {args.arg!r} is only used with --batch MACRO.ijm"
        raise ValueError(msg)
    if not args.verbose:  # scyjava logs "Fetching zulu-jre" even when it uses the system Java
        for name in ("scyjava", "jgo"):
            logging.getLogger(name).setLevel(logging.WARNING)
    display = args.display
    if args.batch is None:
        display = "display" if display == "auto" else display
        if display == "headless":
            msg = "the ImageJ window needs a display; use --batch MACRO.ijm for headless runs"
            raise ValueError(msg)
    try:
        if args.batch is not None:
            code = run_batch(args.batch, args.arg, fiji=args.fiji, display=display,
                             max_heap=args.heap)
        else:
            code = run_gui(fiji=args.fiji, display=display, max_heap=args.heap)
    except (JVMError, DisplayError, FileNotFoundError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"isonet imagej: error: {exc}", file=sys.stderr)
        code = 2
    # a JVM with AWT threads may never finish an orderly shutdown: end the process here
    exit_now(code)
    return code  # pragma: no cover - exit_now does not return


def scripts_dir() -> Path:
    """The ``fiji_scripts`` folder of this checkout."""
    here = Path(__file__).resolve().parents[2] / "fiji_scripts"
    if not here.is_dir():
        msg = (
            f"the Fiji scripts folder {str(here)!r} is missing (isonet-ij installed without its "
            "sources?); install from a checkout of the repository (pip install -e .)"
        )
        raise FileNotFoundError(msg)
    return here


def fiji_install(fiji, *, force: bool = False) -> list[Path]:
    """Copy the script commands and example macros into ``FIJI/scripts/Plugins/IsoNet``.

    Returns the installed files. Raises FileExistsError for an existing file without
    ``force``, FileNotFoundError when ``fiji`` is not a Fiji folder.
    """
    from ..imagej.jvm import find_fiji
    from ..volume_io import atomic_path

    root = find_fiji(fiji)
    src = scripts_dir()
    dest = root / "scripts" / "Plugins" / "IsoNet"
    files = sorted(src.glob("IsoNet_*.py")) + sorted((src / "examples").glob("*.ijm"))
    targets = [(f, dest / f.name if f.suffix == ".py" else dest / "Examples" / f.name) for f in files]
    clash = [t for _, t in targets if t.exists()]
    if clash and not force:
        msg = f"{str(clash[0])!r} exists (installed before?); pass --force to replace the IsoNet files"
        raise FileExistsError(msg)
    out = []
    for f, t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(t, force=force) as tmp:
            shutil.copyfile(f, tmp)
        out.append(t)
    return out


def cmd_fiji_install(args) -> int:
    files = fiji_install(args.fiji, force=args.force)
    for f in files:
        print(f)
    log.info("installed %d files; restart Fiji (in Python mode) to see Plugins > IsoNet", len(files))
    return 0
