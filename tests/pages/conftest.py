"""Fixtures of the page tests: the session's trained shop served by a real app (pages can only be
imported once an app exists), and the page modules it registered. A test module with a shop of
its own (a copy, another k) defines ``shop`` and ``served`` itself; the page fixtures follow it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from settings import Settings
from tests.service.support import app_settings
from tests.shop import TrainedShop


@pytest.fixture(scope="module")
def shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The trained shop, read only, at the shipped k-anonymity (not a test value)."""
    settings = app_settings(tmp_path_factory.mktemp("pages"), db_path=trained_shop.db, models_dir=trained_shop.models)
    assert settings.k_anonymity == 10
    return settings


@pytest.fixture(scope="module")
def served(shop: Settings) -> Iterator[Any]:
    """An app for the shop: pages can only be imported once one exists."""
    from app import create_app

    app = create_app(shop)
    assert app.server.test_client().get("/health").status_code == 200
    yield app


@pytest.fixture(scope="module")
def ov(served: Any):
    import pages.overview as module

    return module


@pytest.fixture(scope="module")
def pm(served: Any):
    import pages.model as module

    return module
