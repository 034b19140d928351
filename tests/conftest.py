"""Shared fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir():
    """``../shared/data/real`` beside the checkout (read-only; copy before writing)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real test volumes not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def imagej_jvm():
    """ImageJ 1.x (``ij.jar``) in a headless JVM, started once per test session.

    Returns ImageJ's version string. Skips only when Java or the jar is absent (CI
    installs both: ``default-jre-headless`` and ``libij-java``).
    """
    from isonet_ij.imagej import JVMError, find_ij_jar, find_java, start_jvm

    try:
        find_java()
        find_ij_jar()
    except (FileNotFoundError, JVMError) as exc:
        pytest.skip(f"ImageJ tests need Java and ij.jar: {exc}")
    return start_jvm(headless=True)
