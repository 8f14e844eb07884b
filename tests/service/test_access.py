"""The matrix's answers for pages and routes that do not exist yet (so new ones start closed),
malformed callback requests, and auditing an action as the signed-in user."""

from __future__ import annotations

import pytest

from analytics.privacy import pseudonymise
from errors import RecsightError
from service import access, audit
from service.users import ADMIN, ANALYST, SUPPORT, get_user
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS

EVERYONE = {ADMIN, ANALYST, SUPPORT}


@pytest.mark.parametrize("page_path, roles", [
    ("/", {ADMIN, ANALYST}),
    ("/model", {ADMIN, ANALYST}),
    ("/model-insight", {ADMIN, ANALYST}),
    ("/user", {ADMIN, SUPPORT}),
    ("/user/none", {ADMIN, SUPPORT}),
    ("/customer/report", {ADMIN, SUPPORT}),
    ("/audit", {ADMIN}),
    ("/not-found-404", EVERYONE),
    ("/reports", {ADMIN}),        # a page nobody has placed yet: admin only
    ("/admin/users", {ADMIN}),
])
def test_page_roles(page_path, roles):
    assert access.page_roles(page_path) == roles


@pytest.mark.parametrize("path, roles", [
    ("/api/v1/users/c_1/recommendations", {ADMIN, SUPPORT}),
    ("/api/v1/users/c_1/report", {ADMIN, SUPPORT}),
    ("/api/v1/openapi.json", EVERYONE),
    ("/api/v1/openapi.json/extra", {ADMIN}),
    ("/api/v1/stats", {ADMIN}),
    ("/download/everything.csv", {ADMIN}),  # a route nobody has placed yet: admin only
])
def test_route_roles(path, roles):
    assert access.route_roles(path) == roles


@pytest.mark.parametrize("body", [None, [], "text", {}, {"output": 5}, {"output": "no-such.children"},
                                  {"output": "..a.b...c.d.."}])
def test_malformed_callback_requests_are_for_nobody(service_app, body):
    config = service_app.server.config[access.ACCESS_KEY]
    assert access.callback_roles(body, config) == frozenset()


def test_an_unknown_address_shows_the_not_found_page_to_everyone(service_app):
    config = service_app.server.config[access.ACCESS_KEY]
    assert access.page_for_url("/no/such/page", config.strip_relative_path) is None
    assert access.url_roles("/no/such/page", config.strip_relative_path) == EVERYONE
    assert access.page_for_url("/audit/", config.strip_relative_path)["path"] == "/audit"  # as Dash resolves it
    assert access.url_roles("/audit/", config.strip_relative_path) == {ADMIN}


def test_an_action_is_audited_as_the_signed_in_user(service_app, service_settings):
    customer = pseudonymise("17850", TEST_SECRET)
    with service_app.server.test_request_context("/"):
        with pytest.raises(RecsightError, match="nobody is signed in"):
            access.record_action(audit.CUSTOMER_LOOKUP, customer=customer)
        access.start_session(get_user(service_settings.users_file, ACCOUNTS[SUPPORT][0]))
        entry = access.record_action(audit.CUSTOMER_LOOKUP, customer=customer, detail="typed id")
    assert (entry.who, entry.role, entry.action, entry.customer) == (
        ACCOUNTS[SUPPORT][0], SUPPORT, audit.CUSTOMER_LOOKUP, customer)
    assert audit.read_entries(service_settings.audit_db, limit=1) == [entry]


def test_outside_a_request_nobody_is_signed_in():
    assert access.current_user() is None
