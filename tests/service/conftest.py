"""The service tests' apps, each created once and served at once (Dash hands page callbacks to the
first app that serves a request, so an app must serve before another is built).

* ``service_app`` — the guarded app without a shop (sign-in, roles, pages that need no model);
* ``api_app`` — the real app serving the session's trained shop (``trained_shop``, tests/shop.py),
  with one user per role and its own audit log (``api_settings``); ``live_api`` serves it with
  waitress on a loopback port; ``support`` and ``admin`` are test clients signed in to it (one
  per test module), ``spec`` the OpenAPI document for validating its answers.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from service import openapi
from service.users import ADMIN, SUPPORT
from settings import Settings
from tests.service.support import app_settings, signed_in_client
from tests.shop import TrainedShop


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


@pytest.fixture(scope="session")
def api_settings(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return trained_shop.settings(tmp_path_factory.mktemp("api_state"))


@pytest.fixture(scope="session")
def api_app(api_settings: Settings) -> Any:
    """The real app (``app.create_app``) serving the trained shop."""
    from app import create_app

    app = create_app(api_settings)
    assert app.server.test_client().get("/health").status_code == 200
    return app


@pytest.fixture(scope="session")
def live_api(api_app: Any) -> Iterator[str]:
    """``api_app`` served by waitress on a free loopback port in a thread: its base URL."""
    from waitress.server import create_server

    from app import THREADS

    server = create_server(api_app.server, host="127.0.0.1", port=0, threads=THREADS, ident="recsight-api-test")
    thread = threading.Thread(target=server.run, name="waitress-api-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        thread.join(timeout=5)


@pytest.fixture
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lookup and suggestion limits out of reach, for the tests that send hundreds of lookups as
    one login on purpose (fuzzing); the throttle's own tests (test_throttle.py) use the real ones."""
    from service import throttle

    plenty = (throttle.Quota(10**9, 60),)
    monkeypatch.setattr(throttle.current(), "limits",
                        dataclasses.replace(throttle.current().limits, lookups=plenty, suggestions=plenty))


@pytest.fixture(scope="module")
def support(api_app: Any) -> Any:
    """A test client of ``api_app`` signed in as support (through the real sign-in form)."""
    return signed_in_client(api_app, SUPPORT)


@pytest.fixture(scope="module")
def admin(api_app: Any) -> Any:
    """A test client of ``api_app`` signed in as admin."""
    return signed_in_client(api_app, ADMIN)


@pytest.fixture(scope="module")
def spec() -> Any:
    """The served OpenAPI document as schemathesis reads it (``spec[path]["GET"].validate_response``)."""
    import schemathesis

    return schemathesis.openapi.from_dict(openapi.document())
