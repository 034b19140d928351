"""The README's Python examples run as written (doctest, from the repository root)."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def in_repo_root():
    old = os.getcwd()
    os.chdir(REPO)
    try:
        yield REPO
    finally:
        os.chdir(old)


def test_readme_python_doctest_passes(in_repo_root):
    pytest.importorskip("onnxruntime")
    result = doctest.testfile(str(REPO / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_restore_docstring_example_passes(in_repo_root):
    pytest.importorskip("onnxruntime")
    from isonet_ij import restore

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(restore, "restore", globs={}):
        runner.run(test)
    assert runner.tries >= 4 and runner.failures == 0


def test_importing_the_package_starts_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, isonet_ij; from isonet_ij import read_volume, Config, load_model, restore;"
            "print('tensorflow' in sys.modules, sorted(set(isonet_ij.__all__) - set(dir(isonet_ij))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split()[0] == "False" and out.stdout.strip().endswith("[]")
