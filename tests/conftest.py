"""Fixtures shared by every test module (owned by the reader role; others add theirs locally)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("KOQA_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository; tests that need it skip when it is absent."""
    if not (SHARED / "README.md").exists():
        pytest.skip(f"needs the shared assets folder, not found at {SHARED} (set KOQA_SHARED)")
    return SHARED
