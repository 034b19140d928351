"""The ``isonet`` command line: parse, call the public functions, convert at the edge.

Each command group registers its sub-commands from its own ``_<group>.py`` module through
``register(subparsers)``; the orchestration they share is :mod:`isonet_ij.workflow`; heavy imports (TensorFlow, JVM) happen inside the command
functions, so ``isonet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__

__all__ = ["main", "build_parser"]

#: Modules (relative to this package) that contribute sub-commands, in help order.
_COMMAND_MODULES = ("_synth", "_train", "_restore", "_baseline", "_score", "_demo", "_segment", "_imagej", "_export", "_psf", "_bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isonet",
        description=(
            "Isotropic restoration of anisotropic 3D fluorescence microscopy volumes "
            "(IsoNet, Weigert et al. MICCAI 2017). Axes are (z, y, x); lengths in "
            "micrometres unless stated; PSF sigmas in voxels of the isotropic grid."
        ),
    )
    parser.add_argument("--version", action="version", version=f"isonet-ij {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--` passes the rest through (isonet bench NAME -- ARGS); argparse's subparsers drop it
    passthrough = None
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1 :]
    args = parser.parse_args(argv)
    if passthrough is not None:
        if not hasattr(args, "extra"):
            parser.error(f"`isonet {args.command}` takes no arguments after --")
        args.extra = [*args.extra, *passthrough]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("isonet: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, PermissionError, NotADirectoryError,
            IsADirectoryError) as exc:
        # Known, user-facing errors: one clear line, no traceback (use -v for one).
        if args.verbose:
            raise
        print(f"isonet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:
        from ..workflow import missing_extra

        advice = missing_extra(exc)
        if advice is None or args.verbose:
            raise
        print(f"isonet {args.command}: error: {advice}", file=sys.stderr)
        return 2
    return int(result or 0)


def _one_line(exc: BaseException) -> str:
    """The message of ``exc``; an OS error without one of ours names its file and reason."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return (f"cannot write or read {str(exc.filename)!r}: {exc.strerror.lower()}; "
                "choose a path you can write to")
    return " ".join(str(exc).split("\n")).strip() or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
