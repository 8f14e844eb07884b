"""A small trained shop and the real app serving it, shared by the API and privacy tests.

The demo path in small: synthetic shop (400 customers, 200 items) -> ingest -> profiles ->
``models.pipeline.train(quick=True)`` with fewer trees and one thread (these tests are about
the service boundary, not model quality; two threads per job on the shared 2-core machine are
slower). About 20 s, so it is built once per test process: the fixtures below are imported by
several test modules, and pytest would run a session fixture once per importing module, hence
the module-level cache.

``api_app`` is a second app beside ``service_app`` (tests/service/conftest.py, no shop): it
serves one request at once, so Dash hands it the page callbacks it registered (see app.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest

from analytics import schema
from analytics.ingest import ingest_paths
from analytics.privacy import pseudonymise
from analytics.profiles import refresh_profiles
from analytics.synth import generate_shop
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.service.support import write_users
from tests.training import fast_train

N_USERS, N_ITEMS, N_DAYS, SEED = 400, 200, 60, 11


@dataclass(frozen=True)
class TrainedShop:
    """A shop database, its trained models and the export it was built from."""

    folder: Path
    export: Path  # synth output: events/items/users Parquet with the raw customer ids
    db: Path
    models: Path
    raw_ids: tuple[str, ...]  # every customer id of users.parquet, as the shop knows them

    def pseudonym(self, raw_id: str) -> str:
        return pseudonymise(raw_id, TEST_SECRET)

    def settings(self, state: Path) -> Settings:
        """Settings serving this shop, with users (one per role) and audit log in ``state``."""
        return Settings(db_path=self.db, models_dir=self.models, secret=TEST_SECRET,
                        users_file=write_users(state / "users.json"), audit_db=state / "audit.duckdb")


def build_trained_shop(folder: Path) -> TrainedShop:
    export, db, models = folder / "export", folder / "shop.duckdb", folder / "models"
    generate_shop(export, n_users=N_USERS, n_items=N_ITEMS, n_days=N_DAYS, seed=SEED)
    ingest_paths(db, "generic", [export], secret=TEST_SECRET)
    refresh_profiles(db)
    fast_train(db, models)
    users = pq.read_table(export / "users.parquet", columns=[schema.USER_ID]).column(0).to_pylist()
    return TrainedShop(folder, export, db, models, tuple(str(u) for u in users))


_cache: dict[str, Any] = {}
_lock = threading.Lock()


@pytest.fixture(scope="session")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> TrainedShop:
    with _lock:
        if "shop" not in _cache:
            _cache["shop"] = build_trained_shop(tmp_path_factory.mktemp("trained_shop"))
    return _cache["shop"]


@pytest.fixture(scope="session")
def api_settings(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with _lock:
        if "settings" not in _cache:
            _cache["settings"] = trained_shop.settings(tmp_path_factory.mktemp("api_state"))
    return _cache["settings"]


@pytest.fixture(scope="session")
def api_app(api_settings: Settings) -> Any:
    """The real app (``app.create_app``) serving the trained shop."""
    with _lock:
        if "app" not in _cache:
            from app import create_app

            app = create_app(api_settings)
            assert app.server.test_client().get("/health").status_code == 200
            _cache["app"] = app
    return _cache["app"]


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
