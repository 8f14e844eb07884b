"""One guarded app for the service tests, created once and served at once (Dash hands page
callbacks to the first app that serves a request, so it must serve before another is built)."""

from __future__ import annotations

from typing import Any

import pytest

from settings import Settings
from tests.service.support import app_settings


@pytest.fixture(scope="session")
def service_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return app_settings(tmp_path_factory.mktemp("service_app"))


@pytest.fixture(scope="session")
def service_app(service_settings: Settings) -> Any:
    from app import create_app

    app = create_app(service_settings)
    assert app.server.test_client().get("/health").status_code == 200
    return app


@pytest.fixture
def client(service_app: Any) -> Any:
    """A fresh test client (its own cookie jar: nobody signed in)."""
    return service_app.server.test_client()
