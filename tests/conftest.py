"""Shared fixtures: the reference data next to the repository (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_DATA = (Path(__file__).resolve().parents[1] / "../shared/reference-data").resolve()


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DATA}")
    return REFERENCE_DATA
