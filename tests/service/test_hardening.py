"""Hardening at the service boundary (issue 13, item 6), against the real app: security headers on
every answer, a Secure ``__Host-`` cookie over TLS, private shop and audit files, deep links by
pseudonym only, nothing audited reachable by another site's request, and refused page visits
and failed lookups in the audit log (the failed lookup's search as a pseudonym)."""

from __future__ import annotations

import re
import stat
from typing import Any

import pytest

from analytics.db import rewriting
from analytics.privacy import pseudonymise
from service import audit, headers
from service.users import ADMIN, ANALYST, SUPPORT
from settings import Settings, load_settings
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, app_settings, sign_in
from tests.shop import TrainedShop

BASE = "/api/v1"
SUE = ACCOUNTS[SUPPORT][0]


def _new_rows(settings: Settings, action: Any) -> list[audit.AuditEntry]:
    """The audit rows ``action()`` appends, oldest first."""
    before = max((entry.seq for entry in audit.read_entries(settings.audit_db)), default=0)
    action()
    return [entry for entry in audit.read_entries(settings.audit_db) if entry.seq > before][::-1]


@pytest.fixture(scope="module")
def customer(trained_shop: TrainedShop) -> tuple[str, str]:
    raw = trained_shop.raw_ids[9]
    return raw, trained_shop.pseudonym(raw)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("method, path", [
    ("GET", "/login"), ("GET", "/health"), ("GET", "/"), ("GET", "/user"), ("GET", "/audit"), ("GET", "/nope"),
    ("GET", "/_dash-layout"), ("POST", "/_dash-update-component"), ("GET", "/assets/recsight.css"),
    ("GET", f"{BASE}/openapi.json"), ("GET", f"{BASE}/users/U000001/profile"), ("GET", "/api/nope"),
    ("DELETE", "/login"),
])
def test_every_answer_carries_the_security_headers(api_app, support, signed_in, method, path):
    client = support if signed_in else api_app.server.test_client()
    response = client.open(path, method=method, json={} if method == "POST" else None)
    policy = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, (path, response.status_code)
    assert "'unsafe-eval'" not in policy and "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "same-origin"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # only over TLS


def test_the_page_allows_exactly_its_own_inline_scripts(support):
    response = support.get("/user")
    page = response.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page, re.DOTALL)
    assert any("DashRenderer" in body for body in inline)
    policy = response.headers["Content-Security-Policy"]
    script_src = next(part for part in policy.split("; ") if part.startswith("script-src"))
    assert set(script_src.split()[2:]) == set(headers.script_hashes(page))
    # one hash per distinct script: two pages' identical clientside functions share theirs
    assert len(script_src.split()[2:]) == len({body for body in inline if body.strip()})


# --------------------------------------------------------------------------- the cookie over TLS


def test_over_tls_the_session_cookie_is_secure_and_host_only(tmp_path):
    from app import create_app

    assert load_settings({"RECSIGHT_TLS": "1"}).tls and not load_settings({}).tls
    with pytest.raises(Exception, match="RECSIGHT_TLS"):
        load_settings({"RECSIGHT_TLS": "maybe"})
    app = create_app(app_settings(tmp_path, tls=True))
    client = app.server.test_client()
    assert client.get("/health", base_url="https://localhost").status_code == 200
    page = client.get("/login", base_url="https://localhost")
    token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    name, password = ACCOUNTS[ADMIN]
    response = client.post("/login", base_url="https://localhost",
                           data={"name": name, "password": password, "csrf": token})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-recsight_session=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie and "HttpOnly" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert client.get("/_dash-layout", base_url="https://localhost").status_code == 200


# --------------------------------------------------------------------------- private files


def test_the_audit_log_is_private(tmp_path):
    log = tmp_path / "audit.duckdb"
    audit.record(log, "ann", ADMIN, audit.SIGN_IN)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    log.chmod(0o644)  # a log from before this rule
    audit.record(log, "ann", ADMIN, audit.SIGN_OUT)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.parametrize("existing_mode", [None, 0o644])
def test_a_written_shop_file_is_private(tmp_path, existing_mode):
    shop = tmp_path / "shop.duckdb"
    if existing_mode is not None:
        with rewriting(shop) as rewrite:
            rewrite.con.execute("CREATE TABLE t (x INTEGER)")
        shop.chmod(existing_mode)
    with rewriting(shop) as rewrite:
        rewrite.con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        rewrite.con.execute("INSERT INTO t VALUES (1)")
    assert stat.S_IMODE(shop.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- deep links


def test_a_deep_link_by_shop_id_is_sent_to_the_pseudonym(support, customer):
    raw, pseudonym = customer
    response = support.get(f"/user/{raw}?tab=x")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/user/{pseudonym}?tab=x"
    assert support.get(f"/user/{pseudonym}").status_code == 200  # a pseudonym is served as it is
    assert support.get("/user/%01bad").headers["Location"] == "/user"  # no id at all: the bare page


def test_a_deep_link_of_a_role_that_may_not_open_it_reveals_no_pseudonym(api_app, customer):
    analyst = api_app.server.test_client()
    sign_in(analyst, ANALYST)
    response = analyst.get(f"/user/{customer[0]}")
    assert response.status_code == 403 and customer[1] not in response.get_data(as_text=True)


def test_the_layout_names_a_deep_linked_customer_by_pseudonym(api_app, api_settings, customer):
    import pages.user as page_module

    raw, pseudonym = customer
    with api_app.server.test_request_context("/"):
        text = repr(page_module.build_layout(raw))
    assert pseudonym in text and raw not in text


# --------------------------------------------------------------------------- other sites


@pytest.mark.parametrize("header", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                    {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}])
@pytest.mark.parametrize("route", ["profile", "report?format=html", "recommendations"])
def test_another_site_cannot_make_the_browser_look_a_customer_up(support, api_settings, customer, header, route):
    responses = []
    url = f"{BASE}/users/{customer[0]}/{route}"
    assert _new_rows(api_settings, lambda: responses.append(support.get(url, headers=header))) == []
    assert responses[0].status_code == 403


@pytest.mark.parametrize("header", [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                                    {"Origin": "http://localhost"}])
def test_the_app_itself_and_api_clients_still_look_up(api_app, support, customer, header):
    assert support.get(f"{BASE}/users/{customer[0]}/profile", headers=header).status_code == 200
    basic = api_app.server.test_client()  # an API client: basic auth, no browser headers
    assert basic.get(f"{BASE}/users/{customer[0]}/profile", auth=ACCOUNTS[SUPPORT]).status_code == 200


@pytest.mark.parametrize("header", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"},
                                    {"Origin": "http://localhost:9999"}])
def test_another_site_cannot_post_here(api_app, header):
    client = api_app.server.test_client()
    sign_in(client, SUPPORT)
    assert client.post("/logout", headers=header).status_code == 403
    assert client.get("/_dash-layout").status_code == 200  # still signed in
    assert client.post("/_dash-update-component", json={}, headers=header).status_code == 403
    other = api_app.server.test_client()
    assert sign_in(other, ADMIN).status_code == 302
    assert other.post("/login", data={"name": "ann"}, headers=header).status_code == 403


def test_a_customer_page_opened_from_another_site_waits_for_a_click(support, customer):
    pseudonym = customer[1]
    assert support.get(f"/user/{pseudonym}", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200
    layout = _router(support, f"/user/{pseudonym}")
    assert _props(layout, "cu-search")["value"] == pseudonym  # filled in ...
    assert _props(layout, "cu-link").get("data") is None and _props(layout, "cu-from-elsewhere")  # ... no lookup
    assert support.get(f"/user/{pseudonym}", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _props(_router(support, f"/user/{pseudonym}"), "cu-link")["data"] == pseudonym


def _router(client: Any, pathname: str) -> Any:
    """The page layout the pages router renders for ``pathname`` (Dash's JSON)."""
    from service import access

    callback_map = client.application.config[access.ACCESS_KEY].callback_map
    output = next(key for key in callback_map if "_pages_content.children" in key)
    body = {"output": output,
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


def _props(tree: Any, component_id: str) -> dict[str, Any] | None:
    """The props of the component with ``component_id`` anywhere in ``tree``, or None."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and props.get("id") == component_id:
            return props
        children = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    return next((found for child in children if (found := _props(child, component_id)) is not None), None)


# --------------------------------------------------------------------------- the audit log


@pytest.mark.parametrize("role, path, page", [(SUPPORT, "/audit", "/audit"), (SUPPORT, "/model", "/model"),
                                              (ANALYST, "/user/U000123", "/user")])
def test_a_refused_page_visit_is_audited(api_app, api_settings, role, path, page):
    client = api_app.server.test_client()
    sign_in(client, role)
    responses = []
    (row,) = _new_rows(api_settings, lambda: responses.append(client.get(path)))
    assert responses[0].status_code == 403
    assert (row.who, row.role, row.action, row.customer) == (ACCOUNTS[role][0], role, audit.ACCESS_DENIED, None)
    assert row.detail.startswith(f"page {page} refused") and "U000123" not in row.detail


def test_a_page_refused_inside_the_app_is_audited(api_app, api_settings):
    """Navigation inside the app asks Dash's pages router for the page (no page load)."""
    client = api_app.server.test_client()
    sign_in(client, SUPPORT)
    output = next(key for key in api_app.callback_map if "_pages_content.children" in key)
    body = {"output": output,
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/audit"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
    responses = []
    (row,) = _new_rows(api_settings, lambda: responses.append(client.post("/_dash-update-component", json=body)))
    assert responses[0].status_code == 403
    assert (row.who, row.action, row.customer) == (SUE, audit.ACCESS_DENIED, None)
    assert row.detail.startswith("page /audit refused")
    output, entry = next((key, entry) for key, entry in api_app.callback_map.items() if "ov-activity" in key)
    outputs = [{"id": "ov-activity", "property": "figure"},  # the figure and the table behind it (its CSV)
               {"id": {"table": "activity", "type": "ov-csv-data"}, "property": "data"}]
    other = {"output": output, "outputs": outputs, "changedPropIds": [],
             "inputs": [{**spec, "value": None} for spec in entry["inputs"]],
             "state": [{**spec, "value": None} for spec in entry["state"]]}
    responses.clear()
    assert _new_rows(api_settings, lambda: responses.append(client.post("/_dash-update-component", json=other))) == []
    assert responses[0].status_code == 403  # another page's callback: refused, but no page visit


def test_a_failed_lookup_records_what_was_searched_as_a_pseudonym(support, api_settings):
    (row,) = _new_rows(api_settings, lambda: support.get(f"{BASE}/users/U999999/profile"))
    searched = pseudonymise("U999999", TEST_SECRET)
    assert (row.action, row.customer) == (audit.CUSTOMER_LOOKUP, None)
    assert row.detail == f"API profile: no customer matched (searched {searched})"
    (row,) = _new_rows(api_settings, lambda: support.get(f"{BASE}/users/c_c701/profile"))
    assert row.detail == "API profile: no customer matched (searched c_c701)"  # a pseudonym's start, as typed
