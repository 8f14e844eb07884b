"""Throttling at the boundary (issue 13, item 4), against the real app on the session's trained
shop (``api_app``): sign-in per account and per address with backoff, for the form and for the
API's basic auth; an audit log that failed sign-ins cannot flood; customer lookups and
suggestions limited per login (API and lookup page together); admins alerted on bursts.

Before the fix, 30 wrong passwords all got 401 and the right one worked right after, each
failure was an audit row, 60 sequential shop ids all got their profile (so their pseudonym), and
a 4-hex-digit prefix got a full pseudonym suggested. Time is the throttle's injectable clock
(``clock``): no test sleeps. The last tests check the :class:`Throttle` arithmetic alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest

from service import audit, openapi, throttle
from service.users import SUPPORT
from settings import Settings
from tests.components import find
from tests.service.support import ACCOUNTS, sign_in
from tests.shop import TrainedShop

SUE, SUE_PASSWORD = ACCOUNTS[SUPPORT]
LIMITS = throttle.LIMITS


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttle.current(), "clock", fake)
    return fake


def _rows(settings: Settings, since: int, action: str) -> list[audit.AuditEntry]:
    return [entry for entry in audit.read_entries(settings.audit_db, action=action) if entry.seq > since]


def _newest(settings: Settings) -> int:
    return max((entry.seq for entry in audit.read_entries(settings.audit_db, limit=1)), default=0)


# --------------------------------------------------------------------------- sign-in


def test_thirty_wrong_passwords_on_the_form_lock_the_account_then_it_opens(api_app, api_settings, clock):
    client = api_app.server.test_client()
    since = _newest(api_settings)
    responses = [sign_in(client, name=SUE, password=f"wrong-{i}") for i in range(30)]
    statuses = [response.status_code for response in responses]
    free = LIMITS.account.free
    assert statuses == [401] * free + [429] * (30 - free)
    locked = responses[-1]
    assert locked.headers["Retry-After"] == "60"
    assert "Too many failed sign-ins. Try again in 60 seconds." in locked.get_data(as_text=True)
    assert sign_in(client, SUPPORT).status_code == 429  # the right password waits too
    # the audit log: the five failures, one row for the lock; the 25 refused attempts wrote nothing
    assert len(_rows(api_settings, since, audit.SIGN_IN_FAILED)) == free
    (burst,) = _rows(api_settings, since, audit.THROTTLED)
    assert burst.who == SUE and "locked for 1 minute for this account after 5 failed attempts" in burst.detail
    clock.advance(59)
    assert sign_in(client, SUPPORT).status_code == 429
    clock.advance(1)
    assert sign_in(client, SUPPORT).status_code == 302  # the lock has passed: the right password works


def test_each_failure_after_a_lock_doubles_it(api_app, clock):
    client = api_app.server.test_client()
    for i in range(LIMITS.account.free):
        sign_in(client, name=SUE, password=f"wrong-{i}")
    wait = 60
    for expected in (120, 240, 480, 900, 900):  # doubling, up to 15 minutes
        clock.advance(wait)  # the lock has passed: the next password is checked again
        assert sign_in(client, name=SUE, password="still-wrong").status_code == 401
        locked = sign_in(client, name=SUE, password="still-wrong")
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) == expected
        wait = expected


def test_thirty_wrong_passwords_on_basic_auth_lock_the_account_for_the_form_too(api_app, trained_shop, clock):
    client = api_app.server.test_client()
    url = f"/api/v1/users/{trained_shop.raw_ids[0]}/profile"
    responses = [client.get(url, auth=(SUE, f"wrong-{i}")) for i in range(30)]
    free = LIMITS.account.free
    assert [r.status_code for r in responses] == [401] * free + [429] * (30 - free)
    assert responses[-1].get_json() == {"status": 429, "message": "too many failed sign-ins: try again in 60 seconds"}
    assert responses[-1].headers["Retry-After"] == "60"
    assert client.get(url, auth=(SUE, SUE_PASSWORD)).status_code == 429
    assert sign_in(api_app.server.test_client(), SUPPORT).status_code == 429  # one account, one lock
    clock.advance(60)
    assert client.get(url, auth=(SUE, SUE_PASSWORD)).status_code == 200


def test_one_address_trying_many_accounts_is_locked(api_app, clock):
    client = api_app.server.test_client()
    free = LIMITS.address.free
    statuses = [sign_in(client, name=f"guess-{i}", password="x").status_code for i in range(free + 3)]
    assert statuses == [401] * free + [429] * 3  # each name failed once: the address is what locked
    assert sign_in(client, SUPPORT).status_code == 429
    other = api_app.server.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert sign_in(other, SUPPORT).status_code == 302  # another address is not locked out


def test_a_spray_of_failures_from_many_addresses_cannot_flood_the_audit_log(api_app, api_settings, clock):
    client = api_app.server.test_client()
    since = _newest(api_settings)
    per_minute = LIMITS.itemised_failures.limit
    for i in range(per_minute + 10):  # a new name from a new address each time: no lock ever starts
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{i}"
        assert sign_in(client, name=f"spray-{i}", password="x").status_code == 401
    assert len(_rows(api_settings, since, audit.SIGN_IN_FAILED)) == per_minute
    (flood,) = _rows(api_settings, since, audit.THROTTLED)
    assert "the rest are counted, not itemised" in flood.detail
    clock.advance(60)
    sign_in(client, name="spray-late", password="x")
    summary = _rows(api_settings, since, audit.THROTTLED)[0]
    assert summary.detail.startswith("10 further failed sign-ins of the last burst")
    assert len(_rows(api_settings, since, audit.SIGN_IN_FAILED)) == per_minute + 1


# --------------------------------------------------------------------------- lookups and suggestions


def test_support_cannot_map_shop_ids_to_pseudonyms_in_bulk(api_app, api_settings, clock, caplog):
    client = api_app.server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    since = _newest(api_settings)
    per_minute = LIMITS.lookups[0].limit
    with caplog.at_level(logging.WARNING, logger="service.throttle"):
        responses = [client.get(f"/api/v1/users/U{i:06d}/profile") for i in range(per_minute + 10)]
    assert all(r.status_code in (200, 404) for r in responses[:per_minute])
    refused = responses[per_minute:]
    assert {r.status_code for r in refused} == {429}
    assert refused[0].get_json()["message"] == "too many customer lookups: try again in 60 seconds"
    assert refused[0].headers["Retry-After"] == "60" and refused[0].headers["Cache-Control"] == "no-store"
    # one alert for the burst: an audit row for admins and a log line, not one per refused request
    (burst,) = _rows(api_settings, since, audit.THROTTLED)
    assert (burst.who, burst.role) == (SUE, SUPPORT) and burst.detail.startswith("lookups paused for 1 minute")
    assert len([r for r in caplog.records if "throttled" in r.getMessage()]) == 1
    assert len(_rows(api_settings, since, audit.CUSTOMER_LOOKUP)) == per_minute  # refused ones looked nobody up
    clock.advance(60)
    assert client.get("/api/v1/users/U000001/profile").status_code == 200


def test_the_daily_lookup_limit_holds_when_spread_out(api_app, clock, monkeypatch):
    small = dataclasses.replace(LIMITS, lookups=(throttle.Quota(30, 60), throttle.Quota(40, 24 * 3600)))
    monkeypatch.setattr(throttle.current(), "limits", small)
    client = api_app.server.test_client()
    sign_in(client, SUPPORT)
    statuses = []
    for i in range(45):
        clock.advance(10)  # six a minute: never over the minute's limit
        statuses.append(client.get(f"/api/v1/users/nobody-{i}/profile").status_code)
    assert statuses == [404] * 40 + [429] * 5


def _callback(app: Any, typed: str) -> dict[str, Any]:
    """The lookup page's search, as the browser posts it."""
    output = next(key for key in app.callback_map if "cu-result.children" in key)
    outputs = [{"id": part.rpartition(".")[0], "property": part.rpartition(".")[2]}
               for part in output.strip(".").split("...")]
    return {"output": output, "outputs": outputs, "changedPropIds": ["cu-go.n_clicks"],
            "inputs": [{"id": "cu-go", "property": "n_clicks", "value": 1},
                       {"id": "cu-search", "property": "n_submit", "value": 0},
                       {"id": "cu-initial", "property": "data", "value": None}],
            "state": [{"id": "cu-search", "property": "value", "value": typed}]}


def test_the_lookup_page_shares_the_limit_with_the_api(api_app, clock):
    client = api_app.server.test_client()
    sign_in(client, SUPPORT)
    for i in range(LIMITS.lookups[0].limit):
        assert client.get(f"/api/v1/users/nobody-{i}/profile").status_code == 404
    response = client.post("/_dash-update-component", json=_callback(api_app, "U000001"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Too many lookups in a short time: try again in 60 seconds." in body
    assert json.loads(body)["response"]["cu-customer"]["data"] is None


def test_suggestions_need_most_of_a_pseudonym_and_are_limited_per_login(api_app, trained_shop: TrainedShop, clock):
    client = api_app.server.test_client()
    sign_in(client, SUPPORT)
    pseudonym = trained_shop.pseudonym(trained_shop.raw_ids[0])

    def suggested(typed: str) -> bool:
        response = client.post("/_dash-update-component", json=_callback(api_app, typed))
        assert response.status_code == 200
        return pseudonym in response.get_data(as_text=True)

    assert not suggested(pseudonym[:6])  # "c_" and 4 hex digits: nothing (it used to name the customer)
    assert not suggested(pseudonym[:13])
    allowed = LIMITS.suggestions[0].limit
    assert [suggested(pseudonym[:14]) for _ in range(allowed + 2)] == [True] * allowed + [False] * 2


# --------------------------------------------------------------------------- alerts and the contract


def test_admins_see_a_burst_on_the_audit_page(api_app, api_settings, clock, caplog):
    import pages.audit as audit_page

    client = api_app.server.test_client()
    with caplog.at_level(logging.WARNING, logger="service.throttle"):
        for i in range(LIMITS.account.free):
            sign_in(client, name="mallory", password=f"guess-{i}")
    assert any("throttled: mallory: sign-in locked" in r.getMessage() for r in caplog.records)
    notice = find(audit_page.build_layout(api_settings), "au-alerts")
    assert notice is not None
    text = json.dumps(notice.to_plotly_json(), default=lambda o: o.to_plotly_json())
    assert "throttled burst" in text and "mallory: sign-in locked for 1 minute" in text


def test_the_api_document_states_the_429():
    document = openapi.document()
    for path, item in document["paths"].items():
        if path.startswith(f"{openapi.API_BASE}/"):
            (operation,) = item.values()  # GET for the support routes, POST for the intake's
            answer = operation["responses"]["429"]
            assert "Retry-After" in answer["headers"], path


# --------------------------------------------------------------------------- the arithmetic


def test_failures_are_forgotten_an_hour_after_the_last_and_a_sign_in_clears_them():
    fake = Clock()
    counters = throttle.Throttle(clock=fake)
    for _ in range(LIMITS.account.free - 1):
        counters.sign_in_failed("Sue", "10.0.0.1")
    fake.advance(LIMITS.account.forget_s + 1)
    assert counters.sign_in_failed(" sue ", "10.0.0.2").alerts == []  # the count started again
    for _ in range(LIMITS.account.free - 2):
        counters.sign_in_failed("sue", "10.0.0.3")
    counters.signed_in("SUE")
    assert counters.sign_in_failed("sue", "10.0.0.4").alerts == []
    assert counters.sign_in_wait("sue", "10.0.0.4") is None


def test_the_tables_stay_bounded(monkeypatch):
    monkeypatch.setattr(throttle, "MAX_TRACKED", 10)
    counters = throttle.Throttle(clock=Clock())
    for i in range(100):
        counters.sign_in_failed(f"name-{i}", f"10.0.{i}.1")
        counters.use("lookups", f"login-{i}")
    assert len(counters._accounts) == len(counters._addresses) == len(counters._uses["lookups"]) == 10
