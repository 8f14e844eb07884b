"""The event intake over HTTP (``POST /api/v1/events`` and ``/api/v1/items``): what the shop's
backend sees.

The app serves a copy of the session's trained shop (tests/shop.py), so nothing here changes the
shop other tests read. The backend signs in once through the form (a password hash per request
would make a thousand requests slow); one test uses HTTP basic auth as curl would, and the
durability test a real server process with basic auth.
"""

from __future__ import annotations

import io
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from analytics.adapters import reasons as R
from analytics.event_validation import ANCIENT_TIMESTAMP, FUTURE_TIMESTAMP, MISSING_EVENT_ID, NOT_AN_OBJECT
from analytics.live_read import open_live
from analytics.live_segments import live_folder, writer_lock
from service.openapi import MAX_BODY_BYTES
from service.users import ADMIN, ANALYST, INTAKE, SUPPORT
from settings import Settings
from tests.service.support import ACCOUNTS, sign_in, signed_in_client
from tests.shop import TrainedShop
from workflows import intake

EVENTS, ITEMS = "/api/v1/events", "/api/v1/items"


@pytest.fixture(scope="module")
def intake_shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> TrainedShop:
    return trained_shop.copy_to(tmp_path_factory.mktemp("intake_shop"))


@pytest.fixture(scope="module")
def intake_settings(intake_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return intake_shop.settings(tmp_path_factory.mktemp("intake_state"))


@pytest.fixture(scope="module")
def intake_app(intake_settings: Settings) -> Any:
    from app import create_app

    app = create_app(intake_settings)
    assert app.server.test_client().get("/health").status_code == 200  # serves before another app is built
    return app


@pytest.fixture(scope="module")
def backend(intake_app: Any) -> Any:
    """The shop's backend: a client signed in as the intake account."""
    return signed_in_client(intake_app, INTAKE)


def _event(shop: TrainedShop, n: int, tag: str, **changes: Any) -> dict[str, Any]:
    event = {"event_id": f"{tag}-{n}", "user_id": shop.raw_ids[n % len(shop.raw_ids)], "item_id": f"item-{n}",
             "event_type": "view", "ts": f"2024-03-01T10:00:{n % 60:02d}Z"}
    return {**event, **changes}


def _stored(db: Path, event_ids: list[str]) -> dict[str, int]:
    """How often each of ``event_ids`` is in the store (snapshot and live segment)."""
    con, _ = open_live(db)
    try:
        rows = con.execute("SELECT event_id, count(*) FROM live_events WHERE event_id IN (SELECT unnest(?)) "
                           "GROUP BY event_id", [event_ids]).fetchall()
    finally:
        con.close()
    return dict(rows)


# --------------------------------------------------------------------------- what a batch does


def test_a_batch_is_stored_once_however_often_it_is_sent(backend, intake_shop):
    tag = uuid.uuid4().hex[:8]
    batch = [_event(intake_shop, n, tag) for n in range(5)]
    first = backend.post(EVENTS, json=batch)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"accepted": 5, "duplicates": 0, "rejected": []}
    again = backend.post(EVENTS, json=batch)
    assert again.get_json() == {"accepted": 0, "duplicates": 5, "rejected": []}
    assert again.headers["Cache-Control"] == "no-store"
    mixed = backend.post(EVENTS, json=batch[:2] + [_event(intake_shop, 9, tag)])
    assert mixed.get_json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    ids = [e["event_id"] for e in batch] + [f"{tag}-9"]
    assert _stored(intake_shop.db, ids) == dict.fromkeys(ids, 1)


def test_bad_events_come_back_with_a_reason_each_and_the_rest_are_stored(backend, intake_shop):
    tag = uuid.uuid4().hex[:8]
    good = _event(intake_shop, 0, tag)
    batch = [good, {k: v for k, v in _event(intake_shop, 1, tag).items() if k != "event_id"},
             _event(intake_shop, 2, tag, event_type="wink"), _event(intake_shop, 3, tag, ts="2999-01-01T00:00:00"),
             _event(intake_shop, 4, tag, ts="1900-01-01T00:00:00"), "not an event", good]
    body = backend.post(EVENTS, json=batch).get_json()
    assert body["accepted"] == 1 and body["duplicates"] == 1
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, MISSING_EVENT_ID), (2, R.UNKNOWN_EVENT_TYPE), (3, FUTURE_TIMESTAMP), (4, ANCIENT_TIMESTAMP),
        (5, NOT_AN_OBJECT)]
    assert body["rejected"][1]["event_id"] == f"{tag}-2"
    assert _stored(intake_shop.db, [f"{tag}-{n}" for n in range(5)]) == {f"{tag}-0": 1}


def test_catalogue_rows_are_taken_and_bad_ones_refused(backend):
    item = f"item-{uuid.uuid4().hex[:8]}"
    body = backend.post(ITEMS, json=[{"item_id": item, "title": "Alpine 2-person tent", "category": "Outdoor",
                                      "price": 149.9}, {"item_id": item, "price": -2}]).get_json()
    assert body["accepted"] == 1 and [r["reason"] for r in body["rejected"]] == [R.NEGATIVE_PRICE]


# --------------------------------------------------------------------------- who may post


def test_the_intake_account_works_with_basic_auth_and_no_browser_headers(intake_app, intake_shop):
    client = intake_app.server.test_client()  # no session: curl -u backend:... -H 'Content-Type: ...'
    tag = uuid.uuid4().hex[:8]
    response = client.post(EVENTS, json=[_event(intake_shop, 0, tag)], auth=ACCOUNTS[INTAKE])
    assert response.status_code == 200 and response.get_json()["accepted"] == 1
    wrong = client.post(EVENTS, json=[], auth=(ACCOUNTS[INTAKE][0], "not-the-password"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.post(EVENTS, json=[]).status_code == 401
    other_site = client.post(EVENTS, json=[], auth=ACCOUNTS[INTAKE], headers={"Sec-Fetch-Site": "cross-site"})
    assert other_site.status_code == 403


def test_the_intake_account_reads_nothing(backend, intake_shop):
    customer = intake_shop.raw_ids[0]
    for url in ("/", "/user", "/model", "/audit", "/no-such-page", "/api/v1/openapi.json",
                f"/api/v1/users/{customer}/recommendations", f"/api/v1/users/{customer}/profile", "/_dash-layout",
                "/_dash-dependencies", "/api/v1/no-such-route"):
        assert backend.get(url).status_code == 403, url
    assert backend.get(EVENTS).status_code == 405  # its own route, but only POST


@pytest.mark.parametrize("role", [ADMIN, ANALYST, SUPPORT])
def test_people_may_not_post_events(intake_app, role):
    client = intake_app.server.test_client()
    assert sign_in(client, role).status_code == 302
    for url in (EVENTS, ITEMS):
        response = client.post(url, json=[])
        assert response.status_code == 403 and response.get_json()["status"] == 403


# --------------------------------------------------------------------------- 413, 415, 400


def test_an_oversized_body_is_refused_by_its_length_before_it_is_read(backend):
    unread = io.BytesIO(b"[]")
    response = backend.post(EVENTS, input_stream=unread, content_type="application/json",
                            environ_overrides={"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)})
    assert response.status_code == 413 and response.get_json()["status"] == 413
    assert unread.tell() == 0  # not a byte read


def test_a_body_without_a_length_is_read_only_up_to_the_cap(backend):
    endless = io.BytesIO(b"[" + b'"x",' * (MAX_BODY_BYTES // 4 + 10) + b'"x"]')
    response = backend.post(EVENTS, input_stream=endless, content_type="application/json",
                            environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert endless.tell() <= MAX_BODY_BYTES + 1


def test_a_batch_over_the_event_limit_is_413(backend, intake_shop):
    batch = [_event(intake_shop, n, "big") for n in range(intake.MAX_EVENTS_PER_BATCH + 1)]
    response = backend.post(EVENTS, json=batch)
    assert response.status_code == 413 and "at most 1,000" in response.get_json()["message"]


@pytest.mark.parametrize("body", [b"", b"[", b"{]", b'[{"event_id": NaN}]', b"[Infinity]", b"\xff\xfe[]",
                                  b"[" * 100_000 + b"]" * 100_000, b"[" + b"9" * 5000 + b"]",
                                  b'{"events": []}', b'"a string"', b"null", b"12"])
def test_a_malformed_body_is_400(backend, body):
    response = backend.post(EVENTS, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:200]
    assert response.get_json()["status"] == 400


def test_other_content_types_and_query_parameters_are_refused(backend):
    assert backend.post(EVENTS, data="[]", content_type="text/plain").status_code == 415
    assert backend.post(EVENTS, data="[]").status_code == 415
    assert backend.post(f"{EVENTS}?dry_run=1", json=[]).status_code == 400


# --------------------------------------------------------------------------- 429


def test_a_busy_writer_is_429_with_retry_after(backend, intake_shop, monkeypatch):
    monkeypatch.setattr(intake, "APPEND_TIMEOUT_S", 0.05)
    with writer_lock(live_folder(intake_shop.db)):  # another process appending, as far as the server knows
        response = backend.post(EVENTS, json=[_event(intake_shop, 0, uuid.uuid4().hex[:8])])
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["status"] == 429


def test_a_full_queue_is_429_at_once(intake_app, backend, intake_shop, monkeypatch):
    from service.intake_api import MAX_IN_FLIGHT

    inside = threading.Semaphore(0)
    release = threading.Event()
    real_append = intake.append_events

    def slow_append(*args: Any, **kwargs: Any) -> intake.IntakeResult:  # a writer that takes its time
        inside.release()
        assert release.wait(timeout=30)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(intake, "append_events", slow_append)
    cookie = backend.get_cookie("recsight_session")
    answers: list[int] = []

    def post() -> None:
        client = intake_app.server.test_client()
        client.set_cookie(cookie.key, cookie.value)
        answers.append(client.post(EVENTS, json=[_event(intake_shop, 0, uuid.uuid4().hex[:8])]).status_code)

    threads = [threading.Thread(target=post) for _ in range(MAX_IN_FLIGHT)]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:  # every slot taken by a batch that is being written
            assert inside.acquire(timeout=30)
        response = backend.post(EVENTS, json=[])
        assert response.status_code == 429 and "queue is full" in response.get_json()["message"]
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    assert answers == [200] * MAX_IN_FLIGHT  # the queued batches were all taken in
    assert backend.post(EVENTS, json=[]).status_code == 200  # and the slots are free again
