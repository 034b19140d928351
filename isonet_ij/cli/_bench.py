"""``isonet bench``: run the project's benchmark scripts with one of two profiles.

The scripts live in ``benchmarks/`` of a source checkout (they are not part of the
wheel); each caches its finished cells and writes a Markdown table (and JSON) to
``benchmarks/results/``. This command only picks the script and the profile's arguments.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: benchmark -> (script, {profile: arguments}); extra arguments after ``--`` are appended.
BENCHMARKS = {
    "table1": ("bench_engine_quality.py", {"quick": ["--size", "128", "--minutes", "1", "--seeds", "0"],
                                           "full": ["--size", "128", "--minutes", "15", "--seeds", "0,1,2",
                                                    "--ablations", "--out", "benchmarks/results/table1.md"]}),
    "peer": ("bench_peer.py", {"quick": ["--size", "128", "--minutes", "1", "--real", "A1,A3"],
                               "full": ["--size", "128", "--minutes", "15", "--real", "A1,A3"]}),
    "border": ("bench_border.py", {"quick": ["--size", "128", "--steps", "150", "--repeats", "1"],
                                   "full": ["--size", "128", "--steps", "300", "--repeats", "3"]}),
    "segmentation": ("bench_segmentation.py", {"quick": ["--size", "256", "--seeds", "0", "--minutes", "2"],
                                               "full": ["--size", "256", "--seeds", "0", "1", "2", "--minutes", "15"]}),
    "speed": ("bench_engine_speed.py", {"quick": ["--repeat", "1"], "full": ["--repeat", "3"]}),
    "psf-auto": ("bench_psf_auto.py", {"quick": ["--steps", "100", "--real-steps", "40"],
                                       "full": ["--steps", "300", "--real-steps", "120"]}),
    "real": ("bench_real.py", {"quick": ["--train-steps", "150", "--steps-z", "4,8"],
                               "full": ["--train-steps", "600", "--steps-z", "4,8"]}),
    "oracle": ("bench_oracle.py", {"quick": ["--minutes", "2", "--seeds", "0", "--engine", "rounds2"],
                                   # the quick profile of every case is the committed oracle.md
                                   "full": ["--minutes", "15", "--seeds", "0,1,2", "--engine", "rounds2",
                                            "--variants", "tta", "--out", "benchmarks/results/oracle_full.md"]}),
    "chunked": ("bench_chunked.py", {"quick": ["--shape", "16", "512", "512", "--max-memory", "400M",
                                               "--no-check-ratio"],
                                     "full": ["--shape", "16", "2800", "2816", "--max-memory", "450M"]}),
}

#: scripts whose full-profile cells are kept in the repository (benchmarks/results/cells/NAME):
#: a full run takes hours on a CPU, so it is done over several sessions and each resumes
#: from the cells committed by the last; quick-profile cells stay in the ignored cache.
COMMITTED_CELLS = ("table1", "peer", "segmentation", "real", "psf-auto", "border", "oracle")

_DESCRIPTION = """\
Run a benchmark of benchmarks/ (source checkout) and write its table to
benchmarks/results/. Profiles: quick (one seed, about a minute per model; `all` took 59
minutes on 2 CPU cores before `oracle` was added, which adds about 90: benchmarks/results/quick_profile.md; tables go to
benchmarks/results/quick/, so the committed results stay) and full (the committed results: 15 minutes per model, all seeds). Every script caches finished cells,
so an interrupted run resumes where it stopped (full-profile cells are kept in
benchmarks/results/cells/, committed, so a run spread over several sessions resumes). Arguments after `--` go to the script
(e.g. `isonet bench table1 -- --pairings nuclei`; `isonet bench table1 --profile full --
--cached-only`, and the same for peer and oracle, renders the table from the cells done so far without
training, `--note TEXT` at its top; see
`python benchmarks/SCRIPT --help`).

""" + "\n".join(f"  {name:13s} benchmarks/{script}" for name, (script, _) in BENCHMARKS.items())


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the source checkout this package runs from.

    Raises FileNotFoundError, with what to do, when this ``isonet_ij`` is an installed copy
    (a wheel holds no benchmarks): the scripts, their harness and their committed results
    exist only in a source checkout.
    """
    package = Path(__file__).resolve().parents[1]
    here = package.parent / "benchmarks"
    if not all((here / name).is_file() for name in ("common.py", BENCHMARKS["table1"][0])):
        msg = (f"`isonet bench` needs a source checkout: this isonet_ij ({package}) has no benchmarks/ "
               f"folder beside it (looked for {here}); the benchmark scripts and their results are not "
               "part of the installed package. To run them: clone the isonet-ij repository, then, in the "
               "clone, `bash scripts/install.sh` (installs it in .venv in editable mode) and "
               "`.venv/bin/isonet bench NAME` (or `.venv/bin/python benchmarks/SCRIPT.py --help`)")
        raise FileNotFoundError(msg)
    return here


def command_lines(name: str, profile: str, extra=()) -> list[list[str]]:
    """The command line(s) ``isonet bench NAME`` runs (``all``: every benchmark)."""
    names = list(BENCHMARKS) if name == "all" else [name]
    folder = benchmarks_dir()
    lines = []
    for n in names:
        # quick tables land beside, not over, the committed (full) results
        if profile == "quick":
            out = ["--out", str(folder / "results" / "quick" / f"{n}.md")]
        elif n in COMMITTED_CELLS:
            out = ["--cache", str(folder / "results" / "cells" / n)]
        else:
            out = []
        lines.append([sys.executable, str(folder / BENCHMARKS[n][0]), *BENCHMARKS[n][1][profile], *out, *extra])
    return lines


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("bench", help="run a benchmark (source checkout) into benchmarks/results/",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=[*BENCHMARKS, "all"])
    p.add_argument("--profile", choices=("quick", "full"), default="quick", help="default quick")
    p.add_argument("--dry-run", action="store_true", help="print the command lines only")
    p.add_argument("extra", nargs="*", metavar="-- ARGS", help="arguments for the script, after --")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    extra = list(args.extra)
    for cmd in command_lines(args.name, args.profile, extra):
        print(" ".join(cmd), flush=True)
        if args.dry_run:
            continue
        rc = subprocess.call(cmd, cwd=benchmarks_dir().parent)
        if rc != 0:
            print(f"isonet bench: {Path(cmd[1]).name} failed (exit {rc}); rerun to resume from its cache",
                  file=sys.stderr)
            return rc
    return 0
