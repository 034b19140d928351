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
