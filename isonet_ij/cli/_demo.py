"""``isonet demo``: the main job on built-in defaults (:func:`isonet_ij.workflow.run_demo`)."""

from __future__ import annotations

import argparse

__all__ = ["register", "cmd_demo"]


def register(subparsers) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo", help="synthesize, train, restore, score, segment, montage",
                              description=_description(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    p.add_argument("--minutes", type=float, default=5.0, help="training time in minutes (default 5)")
    p.add_argument("--pretrained", action="store_true",
                   help="skip training: restore with the committed demo model "
                        "(models/isonet2_nuclei_demo.bioimageio.zip)")
    p.add_argument("--size", type=int, default=128, help="phantom edge length, voxels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--force", action="store_true", help="replace existing outputs in DIR")
    p.set_defaults(func=cmd_demo)


def _description() -> str:
    from ..workflow import DEMO_DESCRIPTION

    return DEMO_DESCRIPTION


def cmd_demo(args) -> int:
    from ..workflow import DemoOptions, run_demo

    print(run_demo(DemoOptions(output=args.output, minutes=args.minutes, pretrained=args.pretrained,
                               size=args.size, seed=args.seed, threads=args.threads, force=args.force)))
    return 0
