"""Shared fixtures. Tests never read the developer's environment for secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_SECRET = "test-secret-not-for-production"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSIGHT_SECRET", TEST_SECRET)


@pytest.fixture
def shared_data() -> Path:
    """The real public datasets beside the checkout (../shared/data); skip if absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
