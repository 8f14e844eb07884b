"""``GET /api/v1/users/<id>/recommendations?since=...`` (issue 14, item 4): what changed in the list
since a time, with the event behind each move, through the real app and its guard.

The app serves a copy of the session's trained shop, so the events appended here (through the
intake's use case, as ``POST /api/v1/events`` stores them) change no other test's shop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from analytics import schema as s
from service import audit, openapi
from service.users import SUPPORT
from tests.conftest import TEST_SECRET
from tests.service.support import sign_in
from tests.shop import TrainedShop
from workflows.intake import append_events

BASE = openapi.API_BASE
PATH = f"{BASE}/users/{{id}}/recommendations"


@pytest.fixture(scope="module")
def served(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, TrainedShop, Path]:
    """The real app over a copy of the shop: (app, shop copy, audit log)."""
    from app import create_app

    folder = tmp_path_factory.mktemp("api_changes")
    shop = trained_shop.copy_to(folder / "shop")
    settings = shop.settings(folder)
    app = create_app(settings)
    assert app.server.test_client().get("/health").status_code == 200
    return app, shop, settings.audit_db


@pytest.fixture(scope="module")
def support(served: tuple[Any, TrainedShop, Path]) -> Any:
    client = served[0].server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    return client


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@pytest.mark.parametrize("since", ["yesterday", "2025-05-01", "2025-05-01T12:00:00", "2025-02-30T12:00:00Z",
                                   "2025-05-01T12:00:00.1234567+00:00", "2025-05-01T12:00:00Z" + "0" * 20])
def test_since_that_is_no_time_with_its_offset_is_400(support: Any, served: Any, since: str) -> None:
    raw = served[1].raw_ids[3]
    response = support.get(f"{BASE}/users/{raw}/recommendations", query_string={"since": since})
    assert response.status_code == 400 and response.get_json()["status"] == 400


@pytest.mark.parametrize("offset", [timedelta(hours=1), -timedelta(days=8)])
def test_since_in_the_future_or_too_far_back_is_409(support: Any, served: Any, offset: timedelta) -> None:
    raw = served[1].raw_ids[3]
    response = support.get(f"{BASE}/users/{raw}/recommendations", query_string={"since": _iso(_now() + offset)})
    assert response.status_code == 409, response.get_data(as_text=True)
    schemathesis.openapi.from_dict(openapi.document())[PATH]["GET"].validate_response(response)


def test_since_reports_what_entered_and_the_event_behind_it(support: Any, served: Any) -> None:
    app, shop, audit_db = served
    raw, quiet = shop.raw_ids[5], shop.raw_ids[6]
    since = _now() - timedelta(minutes=5)
    before = support.get(f"{BASE}/users/{raw}/recommendations?k=10").get_json()
    items = [i["item_id"] for i in support.get(f"{BASE}/users/{quiet}/recommendations?k=10").get_json()["items"]]
    items = [i for i in items if i not in {b["item_id"] for b in before["items"]}][:3]
    batch = [{"event_id": f"api-changes-{n}", "user_id": raw, "item_id": item, "event_type": s.VIEW,
              "ts": _iso(_now() - timedelta(minutes=3) + timedelta(seconds=30 * n))} for n, item in enumerate(items)]
    assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)

    response = support.get(f"{BASE}/users/{raw}/recommendations", query_string={"k": "10", "since": _iso(since)})
    assert response.status_code == 200, response.get_data(as_text=True)
    schemathesis.openapi.from_dict(openapi.document())[PATH]["GET"].validate_response(response)
    body = response.get_json()
    changes = body["changes"]
    assert {e["item_id"] for e in changes["new_events"]} == set(items)
    assert all(e["ago"].endswith("ago") for e in changes["new_events"])
    now_ids = {i["item_id"] for i in body["items"]}
    before_ids = {i["item_id"] for i in before["items"]}
    assert {m["item_id"] for m in changes["entered"]} == now_ids - before_ids != set()
    assert {m["item_id"] for m in changes["left"]} == before_ids - now_ids
    for move in changes["entered"]:
        assert move["sentence"].startswith(f"New at #{move['rank_now']}")
        if move["cause"] is not None:
            assert move["cause"]["item_id"] in items and move["cause"]["title"] in move["sentence"]
    assert any(m["cause"] is not None for m in changes["entered"])

    entry = next(e for e in audit.read_entries(audit_db, action=audit.EXPLANATION_VIEW))
    assert entry.customer == shop.pseudonym(raw) and "since" in entry.detail and "entered" in entry.detail

    unchanged = support.get(f"{BASE}/users/{quiet}/recommendations", query_string={"since": _iso(since)}).get_json()
    assert unchanged["changes"]["new_events"] == [] and unchanged["changes"]["entered"] == []
    assert unchanged["items"] == support.get(f"{BASE}/users/{quiet}/recommendations").get_json()["items"]


def test_the_document_describes_since_and_changes() -> None:
    document = openapi.document()
    operation = document["paths"][PATH]["get"]
    since = next(p for p in operation["parameters"] if p["name"] == "since")
    assert since["schema"]["format"] == "date-time" and "Integrated Gradients" in since["description"]
    assert "409" in operation["responses"]
    assert document["components"]["schemas"]["Recommendations"]["properties"]["changes"]
