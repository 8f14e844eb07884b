"""``POST /api/v1/impressions`` as the shop's backend sees it: the event intake's answers (200 with
per-impression refusals, 413, 415/400, 429 with Retry-After), for the intake role only, which in
turn may not open the Performance page.

The app serves a shop folder of its own without a shop file: impressions need none (they go to
``<db>.shown/``), so no trained model is built for these tests.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import duckdb
import pytest

from analytics.event_validation import MISSING_EVENT_ID
from analytics.impressions import EMPTY_ITEMS, TOO_MANY_ITEMS, UNPAIRED_VARIANT, attach_shown, shown_folder
from analytics.privacy import pseudonymise
from service import openapi
from service.openapi import MAX_BODY_BYTES
from service.users import ADMIN, ANALYST, INTAKE, SUPPORT
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, app_settings, sign_in, signed_in_client
from workflows import intake, performance

IMPRESSIONS = "/api/v1/impressions"


@pytest.fixture(scope="module")
def shown_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return app_settings(tmp_path_factory.mktemp("impressions_api"))


@pytest.fixture(scope="module")
def shown_app(shown_settings: Settings) -> Any:
    from app import create_app

    app = create_app(shown_settings)
    assert app.server.test_client().get("/health").status_code == 200  # serves before another app is built
    return app


@pytest.fixture(scope="module")
def backend(shown_app: Any) -> Any:
    return signed_in_client(shown_app, INTAKE)


def _impression(n: int, tag: str, **changes: Any) -> dict[str, Any]:
    return {"event_id": f"{tag}-{n}", "user_id": f"CUST-{n}", "ts": f"2024-03-01T10:00:{n % 60:02d}Z",
            "list": "home", "items": ["i1", "i2", "i3"], "model_version": "v1", "experiment": None,
            "variant": None, **changes}


def _stored(settings: Settings, tag: str) -> list[tuple]:
    con = duckdb.connect(":memory:")
    try:
        attach_shown(con, settings.db_path)
        return con.execute("SELECT event_id, user_id, position, item_id FROM shown WHERE starts_with(event_id, ?) "
                           "ORDER BY event_id, position", [tag]).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- what a batch does


def test_a_batch_is_stored_once_however_often_it_is_sent(backend, shown_settings):
    tag = uuid.uuid4().hex[:8]
    batch = [_impression(n, tag) for n in range(4)]
    first = backend.post(IMPRESSIONS, json=batch)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"accepted": 4, "duplicates": 0, "rejected": []}
    assert first.headers["Cache-Control"] == "no-store"
    again = backend.post(IMPRESSIONS, json=batch + [_impression(9, tag)])
    assert again.get_json() == {"accepted": 1, "duplicates": 4, "rejected": []}
    stored = _stored(shown_settings, tag)
    assert len(stored) == 5 * 3
    assert stored[:3] == [(f"{tag}-0", pseudonymise("CUST-0", TEST_SECRET), p, f"i{p}") for p in (1, 2, 3)]


def test_bad_impressions_come_back_with_a_reason_each_and_the_rest_are_stored(backend, shown_settings):
    tag = uuid.uuid4().hex[:8]
    batch = [_impression(0, tag), _impression(1, tag, items=[]), _impression(2, tag, items=["i"] * 101),
             _impression(3, tag, experiment="hp"), {"user_id": "x", "list": "home", "items": ["i1"]}]
    body = backend.post(IMPRESSIONS, json=batch).get_json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert [(r["index"], r["event_id"], r["reason"]) for r in body["rejected"]] == [
        (1, f"{tag}-1", EMPTY_ITEMS), (2, f"{tag}-2", TOO_MANY_ITEMS), (3, f"{tag}-3", UNPAIRED_VARIANT),
        (4, None, MISSING_EVENT_ID)]
    assert {row[0] for row in _stored(shown_settings, tag)} == {f"{tag}-0"}


# --------------------------------------------------------------------------- who may post


def test_the_intake_account_posts_with_basic_auth_as_curl_would(shown_app):
    client = shown_app.server.test_client()
    response = client.post(IMPRESSIONS, json=[_impression(0, uuid.uuid4().hex[:8])], auth=ACCOUNTS[INTAKE])
    assert response.status_code == 200 and response.get_json()["accepted"] == 1
    assert client.post(IMPRESSIONS, json=[]).status_code == 401


@pytest.mark.parametrize("role", [ADMIN, ANALYST, SUPPORT])
def test_people_may_not_post_impressions(shown_app, role):
    client = shown_app.server.test_client()
    assert sign_in(client, role).status_code == 302
    response = client.post(IMPRESSIONS, json=[_impression(0, "person")])
    assert response.status_code == 403 and response.get_json()["status"] == 403


def test_the_intake_account_may_not_open_the_performance_page(backend):
    assert backend.get("/performance").status_code == 403
    assert backend.get(IMPRESSIONS).status_code == 405  # its own route, but only POST


def test_analysts_open_the_performance_page(shown_app):
    analyst = signed_in_client(shown_app, ANALYST)
    assert analyst.get("/performance").status_code == 200


# --------------------------------------------------------------------------- 413, 415, 400


def test_an_oversized_body_is_refused_by_its_length_before_it_is_read(backend):
    unread = io.BytesIO(b"[]")
    response = backend.post(IMPRESSIONS, input_stream=unread, content_type="application/json",
                            environ_overrides={"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)})
    assert response.status_code == 413 and unread.tell() == 0


def test_a_batch_over_the_impression_limit_is_413(backend):
    batch = [_impression(n, "big", items=["i1"]) for n in range(performance.MAX_IMPRESSIONS_PER_BATCH + 1)]
    response = backend.post(IMPRESSIONS, json=batch)
    assert response.status_code == 413 and "at most 1,000" in response.get_json()["message"]


@pytest.mark.parametrize("body", [b"", b"[", b'{"impressions": []}', b'[{"event_id": NaN}]'])
def test_a_malformed_body_is_400(backend, body):
    response = backend.post(IMPRESSIONS, data=body, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["status"] == 400


def test_other_content_types_are_415(backend):
    assert backend.post(IMPRESSIONS, data="[]", content_type="text/plain").status_code == 415


# --------------------------------------------------------------------------- 429


def test_a_busy_writer_is_429_with_retry_after(backend, shown_settings, monkeypatch):
    from analytics.live_segments import writer_lock

    monkeypatch.setattr(intake, "APPEND_TIMEOUT_S", 0.05)
    with writer_lock(shown_folder(shown_settings.db_path)):  # another process writing impressions
        response = backend.post(IMPRESSIONS, json=[_impression(0, uuid.uuid4().hex[:8])])
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert backend.post(IMPRESSIONS, json=[_impression(0, uuid.uuid4().hex[:8])]).status_code == 200


def test_the_route_is_in_the_openapi_document():
    operation = openapi.document()["paths"][IMPRESSIONS]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == 1000
    assert {"200", "403", "413", "429"} <= set(operation["responses"])
