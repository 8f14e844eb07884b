"""The JSON API answers a missing or broken model with a one-line 503, and recovers without a restart."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from models.registry import CURRENT_FILE, VERSIONS_DIR
from service.users import SUPPORT
from settings import Settings
from tests.faults.support import Shop, busy_customer, current_version, secret
from tests.service.support import ACCOUNTS, write_users


@pytest.fixture
def client(shop: Shop, tmp_path: Path):
    from app import create_app

    settings = Settings(db_path=shop.db, models_dir=shop.models, secret=secret(),
                        users_file=write_users(tmp_path / "users.json"), audit_db=tmp_path / "audit.duckdb")
    name, password = ACCOUNTS[SUPPORT]
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    test_client = create_app(settings).server.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Basic {token}"
    return test_client


def _point_at_broken_copy(shop: Shop) -> str:
    """A new version whose attention network is cut in half, made current (as a bad disk would)."""
    good = current_version(shop.models)
    broken = "20990101-000000-broken"
    shutil.copytree(shop.models / VERSIONS_DIR / good, shop.models / VERSIONS_DIR / broken)
    network = shop.models / VERSIONS_DIR / broken / "attention.pt"
    network.write_bytes(network.read_bytes()[:1000])
    (shop.models / CURRENT_FILE).write_text(broken + "\n")
    return good


def test_the_api_answers_a_broken_model_with_a_one_line_503_and_recovers_without_a_restart(client, shop: Shop) -> None:
    url = f"/api/v1/users/{busy_customer(shop.db)}/recommendations?k=5"
    assert client.get(url).status_code == 200

    good = _point_at_broken_copy(shop)
    broken = client.get(url)
    assert broken.status_code == 503 and broken.is_json
    message = broken.get_json()["message"]
    assert "\n" not in message and "attention model" in message and "corrupt" in message

    (shop.models / CURRENT_FILE).unlink()
    missing = client.get(url)
    assert missing.status_code == 503 and "no trained model" in missing.get_json()["message"]

    (shop.models / CURRENT_FILE).write_text(good + "\n")
    again = client.get(url)
    assert again.status_code == 200 and len(again.get_json()["items"]) == 5
