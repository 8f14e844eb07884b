"""Every audited action of the service boundary leaves exactly one row, with who, role, when,
which pseudonymous customer and what: sign-in (and a failed one), customer lookup, explanation
view and report export through the API. Requests that look nobody up (bad input, a refused role)
leave no customer row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from analytics.privacy import pseudonymise
from service import audit
from service.users import ANALYST, SUPPORT
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, sign_in
from tests.shop import TrainedShop

BASE = "/api/v1"
SUE = ACCOUNTS[SUPPORT][0]


@pytest.fixture(scope="module")
def customer(trained_shop: TrainedShop) -> tuple[str, str]:
    raw = trained_shop.raw_ids[5]
    return raw, trained_shop.pseudonym(raw)


def _new_rows(settings: Settings, action: Any) -> list[audit.AuditEntry]:
    """The rows ``action()`` appends, oldest first."""
    before = max((entry.seq for entry in audit.read_entries(settings.audit_db)), default=0)
    started = datetime.now(UTC).replace(tzinfo=None)
    action()
    rows = [entry for entry in audit.read_entries(settings.audit_db) if entry.seq > before][::-1]
    assert all(started <= entry.at_utc <= datetime.now(UTC).replace(tzinfo=None) for entry in rows)
    return rows


@pytest.mark.parametrize("route, action, detail", [
    ("recommendations?k=3", audit.CUSTOMER_LOOKUP, "API recommendations k=3; 3 items"),
    ("recommendations?k=3&explain=true", audit.EXPLANATION_VIEW, "API recommendations k=3 explained; 3 items"),
    ("profile", audit.CUSTOMER_LOOKUP, "API profile"),
    ("report?format=csv&k=2", audit.REPORT_EXPORT, "API csv report k=2"),
    ("report?format=html&k=2", audit.REPORT_EXPORT, "API html report k=2"),
])
@pytest.mark.parametrize("by", ["shop id", "pseudonym"])
def test_each_api_action_leaves_exactly_one_row(support, api_settings, customer, route, action, detail, by):
    raw, pseudonym = customer
    typed = raw if by == "shop id" else pseudonym
    responses = []
    (row,) = _new_rows(api_settings, lambda: responses.append(support.get(f"{BASE}/users/{typed}/{route}")))
    assert responses[0].status_code == 200
    assert (row.who, row.role, row.action, row.customer, row.detail) == (SUE, SUPPORT, action, pseudonym, detail)


def test_a_lookup_of_nobody_is_one_row_without_a_customer(support, api_settings):
    responses = []
    (row,) = _new_rows(api_settings, lambda: responses.append(support.get(f"{BASE}/users/U999999/profile")))
    assert responses[0].status_code == 404
    assert (row.who, row.action, row.customer) == (SUE, audit.CUSTOMER_LOOKUP, None)
    searched = pseudonymise("U999999", TEST_SECRET)  # what was searched, as a pseudonym
    assert row.detail == f"API profile: no customer matched (searched {searched})" and "U999999" not in row.detail


@pytest.mark.parametrize("url", [f"{BASE}/users/U000001/recommendations?k=0", f"{BASE}/users/a%20b/profile",
                                 f"{BASE}/users/U000001/report?format=docx", f"{BASE}/openapi.json"])
def test_requests_that_look_nobody_up_leave_no_row(support, api_settings, url):
    assert _new_rows(api_settings, lambda: support.get(url)) == []


def test_a_refused_role_leaves_no_customer_row(api_app, api_settings, customer):
    client = api_app.server.test_client()
    sign_in(client, ANALYST)
    assert _new_rows(api_settings, lambda: client.get(f"{BASE}/users/{customer[0]}/profile")) == []


def test_a_sign_in_and_a_failed_one_leave_one_row_each(api_app, api_settings):
    (row,) = _new_rows(api_settings, lambda: sign_in(api_app.server.test_client(), SUPPORT))
    assert (row.who, row.role, row.action, row.customer) == (SUE, SUPPORT, audit.SIGN_IN, None)
    (row,) = _new_rows(api_settings, lambda: sign_in(api_app.server.test_client(), name=SUE,
                                                     password="not-the-password"))
    assert (row.who, row.role, row.action) == (SUE, None, audit.SIGN_IN_FAILED)


def test_a_failed_api_basic_auth_leaves_one_row_and_looks_nobody_up(api_app, api_settings, customer):
    client = api_app.server.test_client()
    responses = []
    (row,) = _new_rows(api_settings, lambda: responses.append(
        client.get(f"{BASE}/users/{customer[0]}/profile", auth=(SUE, "not-the-password"))))
    assert responses[0].status_code == 401
    assert (row.who, row.action, row.customer) == (SUE, audit.SIGN_IN_FAILED, None)
