"""Forged Dash callback requests against the real app, as a signed-in low-privilege user would
send them (issue 13, items 1, 2 and the malformed bodies of 6).

* The customer store the browser holds (``cu-customer.data``) is sealed by the server and bound
  to the session: a support login cannot post a store naming a customer it never looked up (or
  one looked up in another session) and read that customer's reasons without an audit row.
* A callback request must match its registered callback (ids, properties, positions): the page
  router cannot be made to render /audit for support by putting the path in another position,
  and a page layout built for a role that may not open it refuses on its own.
* Malformed bodies (50,000-deep JSON, missing or ill-typed parts) are a 400, never a 500 page.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import access, audit
from service.users import ADMIN, ANALYST, SUPPORT, get_user
from settings import Settings
from tests.service.support import ACCOUNTS, signed_in_client
from tests.shop import TrainedShop

UPDATE = "/_dash-update-component"
ROUTER = "_pages_content.children"
REASONS_OUTPUT = '{"item":["ALL"],"type":"cu-reasons"}.children'
LOOKUP_OUTPUT = "..cu-result.children...cu-customer.data.."


def _rows(settings_: Settings) -> list[audit.AuditEntry]:
    return audit.read_entries(settings_.audit_db)


def _newest(settings_: Settings) -> int:
    return max((entry.seq for entry in _rows(settings_)), default=0)


def _reasons_request(store: Any, item_ids: list[str]) -> dict[str, Any]:
    """The reasons callback as the attack in the issue posts it: every item card as an output,
    the customer store as the one input."""
    return {
        "output": REASONS_OUTPUT,
        "outputs": [{"id": {"type": "cu-reasons", "item": item_id}, "property": "children"} for item_id in item_ids],
        "inputs": [{"id": "cu-customer", "property": "data", "value": store}],
        "changedPropIds": ["cu-customer.data"],
        "state": [],
    }


def _lookup_request(typed: str) -> dict[str, Any]:
    return {
        "output": LOOKUP_OUTPUT,
        "outputs": [{"id": "cu-result", "property": "children"}, {"id": "cu-customer", "property": "data"}],
        "inputs": [{"id": "cu-go", "property": "n_clicks", "value": 1},
                   {"id": "cu-search", "property": "n_submit", "value": 0},
                   {"id": "cu-initial", "property": "data", "value": None}],
        "state": [{"id": "cu-search", "property": "value", "value": typed}],
        "changedPropIds": ["cu-go.n_clicks"],
    }


def _look_up(client: Any, typed: str) -> dict[str, Any]:
    response = client.post(UPDATE, json=_lookup_request(typed))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["response"]["cu-customer"]["data"]


@pytest.fixture(scope="module")
def customers(api_settings: Settings, trained_shop: TrainedShop) -> list[tuple[str, str, list[str]]]:
    """(shop id, pseudonym, recommended item ids) of customers with a list to explain."""
    from workflows.lookup import K
    from workflows.recommenders import recommender_for

    recommender = recommender_for(api_settings)
    found = []
    for raw in trained_shop.raw_ids[10:40]:
        pseudonym = trained_shop.pseudonym(raw)
        try:
            items = [item.item_id for item in recommender.recommend(pseudonym, K).items]
        except Exception:  # noqa: BLE001 - a customer without a list is simply not used here
            continue
        if items:
            found.append((raw, pseudonym, items))
    assert len(found) >= 3
    return found


# --------------------------------------------------------------------------- item 1: forged store


def _reason_texts(response: Any) -> str:
    return response.get_data(as_text=True)


def test_a_forged_customer_store_reads_nothing_and_a_real_lookup_still_does(api_app, api_settings, customers):
    support = signed_in_client(api_app, SUPPORT)
    _raw, victim, items = customers[0]
    before = _newest(api_settings)
    for store in ({"user_id": victim}, {"user_id": victim, "version": None, "cold_start": False,
                                        "items": [[item, "x", rank] for rank, item in enumerate(items, 1)]}):
        response = support.post(UPDATE, json=_reasons_request(store, items))
        assert response.status_code in (400, 403), (response.status_code, _reason_texts(response)[:300])
        assert "rs-reasons" not in _reason_texts(response) and victim not in _reason_texts(response)
    refusals = [entry for entry in _rows(api_settings) if entry.seq > before]
    assert [(row.who, row.action, row.customer) for row in refusals] == [(ACCOUNTS[SUPPORT][0], audit.ACCESS_DENIED,
                                                                         None)] * 2  # who tried, for the admin
    before = _newest(api_settings)

    raw, pseudonym, _items = customers[1]
    store = _look_up(support, raw)
    (row,) = [entry for entry in _rows(api_settings) if entry.seq > before]
    assert (row.who, row.action, row.customer) == (ACCOUNTS[SUPPORT][0], audit.CUSTOMER_LOOKUP, pseudonym)
    listed = [entry[0] for entry in store["items"]]
    response = support.post(UPDATE, json=_reasons_request(store, listed))
    assert response.status_code == 200
    cards = response.get_json()["response"]
    assert set(cards) == {json.dumps({"item": item, "type": "cu-reasons"}, separators=(",", ":")) for item in listed}


def test_a_sealed_store_cannot_be_edited_to_name_another_customer(api_app, customers):
    support = signed_in_client(api_app, SUPPORT)
    raw, _pseudonym, _items = customers[1]
    _other_raw, victim, victim_items = customers[2]
    store = _look_up(support, raw)
    forged = dict(store, user_id=victim)
    response = support.post(UPDATE, json=_reasons_request(forged, victim_items))
    assert response.status_code in (400, 403) and victim not in _reason_texts(response)
    relisted = dict(store, items=[[item, "x", rank] for rank, item in enumerate(victim_items, 1)])
    why = {
        "output": "..cu-why-modal.is_open...cu-why-title.children...cu-why-body.children..",
        "outputs": [{"id": "cu-why-modal", "property": "is_open"}, {"id": "cu-why-title", "property": "children"},
                    {"id": "cu-why-body", "property": "children"}],
        "inputs": [[{"id": {"type": "cu-why", "item": victim_items[0]}, "property": "n_clicks", "value": 1}]],
        "state": [{"id": "cu-customer", "property": "data", "value": relisted}],
        "changedPropIds": [json.dumps({"item": victim_items[0], "type": "cu-why"}, separators=(",", ":"))
                           + ".n_clicks"],
    }
    assert support.post(UPDATE, json=why).status_code in (400, 403)


def test_a_store_is_bound_to_the_session_that_looked_the_customer_up(api_app, customers):
    first = signed_in_client(api_app, SUPPORT)
    raw, _pseudonym, _items = customers[0]
    store = _look_up(first, raw)
    listed = [entry[0] for entry in store["items"]]
    assert first.post(UPDATE, json=_reasons_request(store, listed)).status_code == 200
    other_admin = signed_in_client(api_app, ADMIN)  # another person's session
    assert other_admin.post(UPDATE, json=_reasons_request(store, listed)).status_code in (400, 403)
    again = signed_in_client(api_app, SUPPORT)  # the same person, signed in afresh
    assert again.post(UPDATE, json=_reasons_request(store, listed)).status_code in (400, 403)


# --------------------------------------------------------------------------- item 2: router bypass


def _router_output(app: Any) -> str:
    return next(key for key in app.callback_map if ROUTER in key)


def _router_request(app: Any, inputs: list[Any]) -> dict[str, Any]:
    return {
        "output": _router_output(app),
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": inputs,
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }


@pytest.mark.parametrize("role", [SUPPORT, ANALYST])
@pytest.mark.parametrize("inputs", [
    [{"id": "x", "property": "pathname", "value": "/audit"},
     {"id": "_pages_location", "property": "pathname", "value": "{allowed}"}],
    [{"id": "_pages_location", "property": "search", "value": "/audit"},
     {"id": "_pages_location", "property": "pathname", "value": "{allowed}"}],
    [{"id": "_pages_location", "property": "pathname", "value": "/audit"},
     {"id": "_pages_location", "property": "pathname", "value": "{allowed}"}],
    [{"id": "_pages_location", "property": "pathname", "value": "/audit"},
     {"id": "_pages_location", "property": "search", "value": ""},
     {"id": "_pages_location", "property": "pathname", "value": "{allowed}"}],
])
def test_the_router_cannot_be_made_to_render_the_audit_page(service_app, role, inputs):
    client = signed_in_client(service_app, role)
    allowed = "/user" if role == SUPPORT else "/"
    body = _router_request(service_app, json.loads(json.dumps(inputs).replace("{allowed}", allowed)))
    response = client.post(UPDATE, json=body)
    assert response.status_code in (400, 403), (response.status_code, response.get_data(as_text=True)[:300])
    assert "au-user" not in response.get_data(as_text=True)


def test_the_router_still_renders_the_pages_a_role_may_open(service_app):
    client = signed_in_client(service_app, SUPPORT)
    inputs = [{"id": "_pages_location", "property": "pathname", "value": "/user"},
              {"id": "_pages_location", "property": "search", "value": ""}]
    response = client.post(UPDATE, json=_router_request(service_app, inputs))
    assert response.status_code == 200 and "cu-search" in response.get_data(as_text=True)


@pytest.mark.parametrize("module", ["pages.audit", "pages.overview", "pages.model", "pages.user"])
def test_a_page_layout_refuses_a_role_that_may_not_open_it(service_app, service_settings, module):
    import importlib

    import dash

    page = dash.page_registry[module]
    marker = json.dumps(page["name"])  # the page's heading
    layout = importlib.import_module(module).layout
    for role in (ADMIN, ANALYST, SUPPORT):
        user = get_user(service_settings.users_file, ACCOUNTS[role][0])
        with service_app.server.test_request_context("/"):
            access.start_session(user)
            text = json.dumps(layout(), cls=_Encoder)
        may = role in access.page_roles(page["path"])
        assert (marker in text) == may, (module, role)
        assert may or "rs-page-refused" in text, (module, role)
    with service_app.server.test_request_context("/"):  # nobody signed in
        text = json.dumps(layout(), cls=_Encoder)
    assert marker not in text and "rs-page-refused" in text


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        import plotly

        return json.loads(json.dumps(o, cls=plotly.utils.PlotlyJSONEncoder))


# --------------------------------------------------------------------------- item 6: malformed bodies


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("data", [
    _deep(50_000),
    '{"output": "_pages_content.children", "inputs": ' + _deep(50_000) + "}",
    '{"output": ' + "{\"a\": " * 50_000 + "1" + "}" * 50_000 + "}",
    "not json",
    "[]",
    "null",
    '"text"',
    "{",
])
def test_a_malformed_body_is_a_400_not_a_500(service_app, data):
    client = signed_in_client(service_app, SUPPORT)
    response = client.post(UPDATE, data=data, content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True)[:200])
    assert response.is_json and response.get_json()["status"] == 400


def _mutations(app: Any) -> list[dict[str, Any]]:
    """The router request with each part missing or of the wrong type."""
    good = _router_request(app, [{"id": "_pages_location", "property": "pathname", "value": "/user"},
                                 {"id": "_pages_location", "property": "search", "value": ""}])
    bodies = []
    for key in ("outputs", "inputs", "output"):
        bodies.append({k: v for k, v in good.items() if k != key})
    for key, bad in (("outputs", "x"), ("outputs", {"id": 1}), ("outputs", [1, 2]), ("inputs", {"a": 1}),
                     ("inputs", ["x", "y"]), ("inputs", [[1], [2]]), ("state", "x"), ("state", [1]),
                     ("changedPropIds", "x"), ("changedPropIds", [1]), ("inputs", [{"id": "_pages_location"}] * 2),
                     ("inputs", [{"id": ["_pages_location"], "property": "pathname", "value": "/user"}] * 2),
                     ("outputs", [{"id": "_pages_content", "property": "children"}])):
        bodies.append(dict(good, **{key: bad}))
    return bodies


def test_missing_or_ill_typed_parts_are_a_400(service_app):
    client = signed_in_client(service_app, SUPPORT)
    for body in _mutations(service_app):
        response = client.post(UPDATE, json=body)
        assert response.status_code == 400, (body, response.status_code, response.get_data(as_text=True)[:200])
        assert response.get_json()["status"] == 400


_PATHS = st.sampled_from(["/audit", "/user", "/", "/model", "/audit/", "/no-page", "", None, 5, ["/audit"]])
_IDS = st.sampled_from(["_pages_location", "x", "_pages_content", {"id": "_pages_location"}, "", 3])
_PROPS = st.sampled_from(["pathname", "search", "hash", "", None])


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(inputs=st.lists(st.fixed_dictionaries({"id": _IDS, "property": _PROPS, "value": _PATHS}), max_size=4),
       drop=st.sampled_from([None, "outputs", "state", "changedPropIds"]))
def test_no_router_request_renders_the_audit_page_for_support(service_app, inputs, drop):
    client = _signed_in_once(service_app)
    body = _router_request(service_app, inputs)
    if drop:
        body.pop(drop)
    response = client.post(UPDATE, json=body)
    assert response.status_code in (200, 204, 400, 403), response.status_code
    text = response.get_data(as_text=True)
    assert "au-user" not in text and "Traceback" not in text


_clients: dict[int, Any] = {}


def _signed_in_once(app: Any) -> Any:
    """One support client per app for the generated examples (signing in costs a password hash)."""
    if id(app) not in _clients:
        _clients[id(app)] = signed_in_client(app, SUPPORT)
    return _clients[id(app)]

