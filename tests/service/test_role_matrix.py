"""The role matrix: every role (and nobody signed in) against every page, every Dash callback of
the app (downloads are callbacks too) and the API routes, over real HTTP requests.

What each role may reach is written here independently of service.access, from the design:
support works with one customer at a time (/user..., /customer... pages, and /search, which
searches as a customer), analysts see the
overview and the model pages (aggregates only), admins see everything including /audit; the
intake service account (the shop's backend) posts events and catalogue rows and sees nothing,
not even the not-found page or the app shell. A new page or callback fails this test until both
the matrix and this expectation cover it.
"""

from __future__ import annotations

import json
from typing import Any

import dash
import pytest

from service.users import ADMIN, ANALYST, INTAKE, SUPPORT
from tests.service.support import sign_in

ROLES = (ADMIN, ANALYST, SUPPORT, INTAKE)
NOT_FOUND = "/not-found-404"
ROUTER = "_pages_content.children"
SAMPLE_CUSTOMER = "c_00000000000000000000"


def may_open(role: str | None, page_path: str) -> bool:
    """The design's answer: may ``role`` open the page registered at ``page_path``?"""
    if role is None or role == INTAKE:
        return False
    if page_path == NOT_FOUND or role == ADMIN:
        return True
    if role == SUPPORT:
        return page_path.startswith(("/user", "/customer", "/search"))
    return page_path == "/" or page_path.startswith(("/model", "/performance", "/rules", "/experiments"))  # analyst


API_ROUTES = {  # URL -> roles that may call it; every API route of the app (checked below)
    f"/api/v1/users/{SAMPLE_CUSTOMER}/recommendations?k=10&explain=true": {ADMIN, SUPPORT},
    f"/api/v1/users/{SAMPLE_CUSTOMER}/recommendations": {ADMIN, SUPPORT},
    f"/api/v1/users/{SAMPLE_CUSTOMER}/profile": {ADMIN, SUPPORT},
    f"/api/v1/users/{SAMPLE_CUSTOMER}/report?format=pdf": {ADMIN, SUPPORT},
    f"/api/v1/users/{SAMPLE_CUSTOMER}/report?format=html": {ADMIN, SUPPORT},
    f"/api/v1/users/{SAMPLE_CUSTOMER}/report?format=csv": {ADMIN, SUPPORT},
    f"/api/v1/search?q=tent&user={SAMPLE_CUSTOMER}&explain=true": {ADMIN, SUPPORT},
    "/api/v1/search?q=tent": {ADMIN, SUPPORT},
    "/api/v1/openapi.json": {ADMIN, ANALYST, SUPPORT},
    "/api/v1/no-such-route": {ADMIN},  # an unknown API path: admin only (who then gets a JSON 404)
    "/api/": {ADMIN},
    "/api/v1/events": {INTAKE},  # its own route, but GET: 405 to the intake, 403 to everyone else
    "/api/v1/impressions": {INTAKE},  # the same
}
API_POSTS = {  # URL -> roles that may post to it (every other role: 403; nobody signed in: 401)
    "/api/v1/events": {INTAKE},
    "/api/v1/items": {INTAKE},
    "/api/v1/impressions": {INTAKE},
}


@pytest.fixture(scope="module")
def clients(service_app: Any) -> dict[str | None, Any]:
    """A test client per role, signed in through the form, and one nobody signed in."""
    result: dict[str | None, Any] = {None: service_app.server.test_client()}
    for role in ROLES:
        result[role] = service_app.server.test_client()
        assert sign_in(result[role], role).status_code == 302
    return result


def _pages() -> list[dict[str, Any]]:
    return list(dash.page_registry.values())


def _url(page: dict[str, Any]) -> str:
    """A URL that shows ``page`` (templates get a sample pseudonym for each variable)."""
    template = page.get("path_template")
    if not template:
        return page["path"]
    parts = [SAMPLE_CUSTOMER if part.startswith("<") else part for part in template.split("/")]
    return "/".join(parts)


def _page_path_of(callback: dict[str, Any]) -> str | None:
    module = callback["callback"].__module__
    return next((page["path"] for page in _pages()
                 if page["module"] == module or module in page.get("callback_modules", ())), None)


def test_the_app_owns_every_page_callback(service_app):
    """The matrix below covers every callback, so the app must hold them all."""
    modules = {entry["callback"].__module__ for entry in service_app.callback_map.values() if "callback" in entry}
    assert {"pages.overview", "pages.audit", "pages.model", "pages._user_callbacks"} <= modules
    assert any(ROUTER in output for output in service_app.callback_map)


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize("role", [None, *ROLES])
def test_every_page_is_open_to_exactly_its_roles(clients, role):
    client = clients[role]
    checked = []
    for page in _pages() + [{"path": NOT_FOUND, "path_template": None, "unknown": "/no-such-page/at-all"}]:
        url = page.get("unknown") or _url(page)
        response = client.get(url)
        if role is None:
            assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url
            continue
        allowed = may_open(role, page["path"])
        if allowed:
            assert response.status_code == 200, (role, url)
        else:  # 403, or the root sending a role to its own start page
            assert response.status_code in (302, 403), (role, url, response.status_code)
            if response.status_code == 302:
                target = response.headers["Location"]
                assert url == "/" and "/login" not in target and may_open(role, target), (role, url, target)
        checked.append((url, allowed))
    assert role in (None, INTAKE) or any(allowed for _, allowed in checked)


def _router_request(service_app: Any, pathname: str) -> dict[str, Any]:
    output = next(key for key in service_app.callback_map if ROUTER in key)
    return {
        "output": output,
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }


@pytest.mark.parametrize("role", [None, *ROLES])
def test_the_pages_router_renders_only_pages_the_role_may_open(service_app, clients, role):
    client = clients[role]
    for page in _pages() + [{"path": NOT_FOUND, "path_template": None}]:
        url = _url(page)
        response = client.post("/_dash-update-component", json=_router_request(service_app, url))
        if role is None:
            assert response.status_code == 401, url
        elif may_open(role, page["path"]):
            assert response.status_code == 200, (role, url, response.get_data(as_text=True)[:300])
        else:
            assert response.status_code == 403 and response.get_json()["status"] == 403, (role, url)


def test_the_router_refuses_a_request_without_a_path(service_app, clients):
    body = _router_request(service_app, "/")
    body["inputs"] = []  # not what the router takes (its path and query): malformed, refused before it runs
    assert clients[ADMIN].post("/_dash-update-component", json=body).status_code == 400


# --------------------------------------------------------------------------- callbacks


def _spec(item: dict[str, Any], value: Any = None, with_value: bool = True) -> Any:
    """One input/output of a callback request as the browser would send it: wildcard ids get
    a concrete index (ALL becomes a list of one)."""
    component_id = item["id"]
    if isinstance(component_id, str) and component_id.startswith("{"):
        parsed = json.loads(component_id)
        has_all = any(v == ["ALL"] for v in parsed.values())
        concrete = {k: (0 if isinstance(v, list) else v) for k, v in parsed.items()}
        entry = {"id": concrete, "property": item["property"]} | ({"value": value} if with_value else {})
        return [entry] if has_all else entry
    return {"id": component_id, "property": item["property"]} | ({"value": value} if with_value else {})


def _callback_request(output: str, entry: dict[str, Any]) -> dict[str, Any]:
    outputs = [_spec(item, with_value=False) for item in entry["output_specs"]]
    return {
        "output": output,
        "outputs": outputs if len(outputs) > 1 or output.startswith("..") else outputs[0],
        "inputs": [_spec(item) for item in entry["inputs"]],
        "state": [_spec(item) for item in entry["state"]],
        "changedPropIds": [],
    }


def _output_specs(output: str) -> list[dict[str, str]]:
    parts = output.strip(".").split("...") if output.startswith("..") else [output]
    specs = []
    for part in parts:
        component_id, _, prop = part.rpartition(".")
        specs.append({"id": component_id, "property": prop})
    return specs


def _page_callbacks(service_app: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(output, entry) for output, entry in service_app.callback_map.items()
            if "callback" in entry and ROUTER not in output]


@pytest.mark.parametrize("role", [None, *ROLES])
def test_every_callback_runs_for_exactly_the_roles_of_its_page(service_app, clients, role):
    client = clients[role]
    callbacks = _page_callbacks(service_app)
    assert len(callbacks) >= 6
    for output, entry in callbacks:
        page_path = _page_path_of(entry)
        body = _callback_request(output, dict(entry, output_specs=_output_specs(output)))
        response = client.post("/_dash-update-component", json=body)
        if role is None:
            assert response.status_code == 401, output
        elif role != INTAKE and (page_path is None or may_open(role, page_path)):  # shell: every person
            assert response.status_code in (200, 204), (role, output, response.status_code)
        else:
            assert response.status_code == 403, (role, output, response.status_code)


def test_an_unknown_callback_is_refused(clients):
    body = {"output": "no-such.children", "outputs": {"id": "no-such", "property": "children"},
            "inputs": [], "state": [], "changedPropIds": []}
    assert clients[ADMIN].post("/_dash-update-component", json=body).status_code == 403
    assert clients[ADMIN].post("/_dash-update-component", data="not json").status_code == 400  # malformed


# --------------------------------------------------------------------------- API routes


@pytest.mark.parametrize("role", [None, *ROLES])
def test_api_routes_are_open_to_exactly_their_roles(clients, role):
    client = clients[role]
    assert client.get("/health").status_code == 200
    for url, roles in API_ROUTES.items():
        status = client.get(url).status_code
        if role is None:
            assert status == 401, url
        elif role in roles:
            assert status not in (401, 403), (role, url)
        else:
            assert status == 403, (role, url)
    for url, roles in API_POSTS.items():
        status = client.post(url, json=[]).status_code  # this app has no shop: 503 to the intake
        if role is None:
            assert status == 401, url
        elif role in roles:
            assert status not in (401, 403), (role, url)
        else:
            assert status == 403, (role, url)


def test_the_matrix_covers_every_api_route_of_the_app(service_app):
    """A new API route fails here until API_ROUTES (and so the matrix above) includes it."""
    from urllib.parse import urlsplit

    adapter = service_app.server.url_map.bind("localhost")
    covered = {adapter.match(urlsplit(url).path)[0] for url in API_ROUTES}
    covered |= {adapter.match(url, method="POST")[0] for url in API_POSTS}
    api_endpoints = {rule.endpoint for rule in service_app.server.url_map.iter_rules()
                     if rule.rule.startswith("/api/")}
    assert api_endpoints and api_endpoints <= covered, api_endpoints - covered
