"""Shared fixtures. Tests never read the developer's environment for secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from models.serving import Recommender
    from tests.shop import TrainedShop

TEST_SECRET = "test-secret-not-for-production"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSIGHT_SECRET", TEST_SECRET)


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    """Every test starts with no failed sign-in or lookup counted: the throttle's state is the
    process's (service/throttle.py) and the session's apps serve many tests."""
    from service import throttle

    throttle.current().reset()


@pytest.fixture
def shared_data() -> Path:
    """The real public datasets beside the checkout (../shared/data); skip if absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> TrainedShop:
    """The session's one trained shop (tests/shop.py), built on first use; never change it:
    copy it with ``trained_shop.copy_to(tmp_path)`` first."""
    from tests.shop import build_trained_shop

    return build_trained_shop(tmp_path_factory.mktemp("trained_shop"))


@pytest.fixture
def shop(trained_shop: TrainedShop, tmp_path: Path) -> TrainedShop:
    """A private copy of the trained shop, for a test that writes into it (live events, a
    compaction). Test packages with shops of their own (explain, faults) override it."""
    return trained_shop.copy_to(tmp_path / "shop")


@pytest.fixture
def recommender(shop: TrainedShop) -> Iterator[Recommender]:
    """A warmed recommender serving ``shop``, closed after the test."""
    from models.serving import Recommender

    rec = Recommender.load(shop.db, shop.models).warm()
    yield rec
    rec.close()
