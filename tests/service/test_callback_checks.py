"""The callback-request checker (service.callbacks) on its own terms: Dash's pattern-matching
rules (MATCH one, ALL/ALLSMALLER a list, ``1`` is not ``true``), each property's value type, the
body size, and a generated sweep over every server-side callback of the real app whose requests
are shaped as registered but carry any values: never a 500 (issue 13, item 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.users import ADMIN, SUPPORT
from tests.service.support import signed_in_client

UPDATE = "/_dash-update-component"


def _synthetic_map() -> dict[str, Any]:
    """One callback with a MATCH output, a MATCH input, an ALLSMALLER state and a plain state."""
    from dash import ALLSMALLER, MATCH, Input, Output, State

    def function(*_args: Any) -> None:
        return None

    return {'{"index":["MATCH"],"type":"a"}.children': {
        "callback": function, "output": Output({"type": "a", "index": MATCH}, "children"),
        "inputs": [Input({"type": "b", "index": MATCH}, "value").to_dict()],
        "state": [State({"type": "c", "index": ALLSMALLER}, "value").to_dict(), State("plain", "data").to_dict()],
    }}


def _synthetic_body(**changes: Any) -> dict[str, Any]:
    body = {"output": '{"index":["MATCH"],"type":"a"}.children',
            "outputs": {"id": {"type": "a", "index": 2}, "property": "children"},
            "inputs": [{"id": {"type": "b", "index": 2}, "property": "value", "value": "x"}],
            "state": [[{"id": {"type": "c", "index": 0}, "property": "value", "value": 1},
                       {"id": {"type": "c", "index": 1}, "property": "value"}],
                      {"id": "plain", "property": "data", "value": {"any": ["json"]}}],
            "changedPropIds": ['{"index":2,"type":"b"}.value']}
    body.update(changes)
    return body


def test_the_checker_follows_dashs_pattern_matching_rules():
    from service import callbacks

    table = _synthetic_map()
    call = callbacks.validate(_synthetic_body(), table)
    assert call.value("plain", "data") == {"any": ["json"]}
    assert call.value({"type": "c", "index": ["ALLSMALLER"]}, "value") == [1, None]
    assert callbacks.validate(_synthetic_body(state=[[], {"id": "plain", "property": "data"}]), table)
    with_suffix = _synthetic_body(outputs={"id": {"type": "a", "index": 2}, "property": "children@0123abcd"})
    assert callbacks.validate(with_suffix, table)  # allow_duplicate's suffix, as Dash strips it
    refused = [
        _synthetic_body(outputs=[{"id": {"type": "a", "index": 2}, "property": "children"}]),  # MATCH: one, not a list
        _synthetic_body(outputs={"id": {"type": "a", "index": 2, "x": 1}, "property": "children"}),  # another key
        _synthetic_body(outputs={"id": {"type": "z", "index": 2}, "property": "children"}),  # another type
        _synthetic_body(outputs={"id": {"type": "a", "index": [1]}, "property": "children"}),  # not a plain value
        _synthetic_body(inputs=[{"id": {"type": "b", "index": 2}, "property": "data", "value": "x"}]),
        _synthetic_body(state=[{"id": {"type": "c", "index": 0}, "property": "value"},  # ALLSMALLER: a list
                               {"id": "plain", "property": "data"}]),
        _synthetic_body(state=[[], {"id": "plain", "property": "data"}, {"id": "plain", "property": "data"}]),
        _synthetic_body(state=[{"id": "plain", "property": "data"}, []]),  # positions swapped
        _synthetic_body(state=None),
        _synthetic_body(changedPropIds=['{"index":2,.value']),
        _synthetic_body(changedPropIds="b.value"),
    ]
    for body in refused:
        with pytest.raises(callbacks.MalformedCallback):
            callbacks.validate(body, table)
    with pytest.raises(callbacks.UnknownCallback):
        callbacks.validate(_synthetic_body(output="other.children"), table)


def test_true_is_not_one_in_a_pattern_id():
    from dash import Input, Output

    from service import callbacks

    table = {"x.children": {"callback": print, "output": Output("x", "children"),
                            "inputs": [Input({"k": 1}, "n_clicks").to_dict()], "state": []}}
    body = {"output": "x.children", "outputs": {"id": "x", "property": "children"},
            "inputs": [{"id": {"k": 1}, "property": "n_clicks", "value": 1}]}
    assert callbacks.validate(body, table)
    body["inputs"][0]["id"] = {"k": True}
    with pytest.raises(callbacks.MalformedCallback):
        callbacks.validate(body, table)


@pytest.mark.parametrize("value", [-1, True, 1.5, "1", [1], {"n": 1}])
def test_values_must_have_their_propertys_type(service_app, value):
    client = signed_in_client(service_app, ADMIN)
    body = {"output": "..au-grid.rowData...au-summary.children...au-listing.data..",
            "outputs": [{"id": "au-grid", "property": "rowData"}, {"id": "au-summary", "property": "children"},
                        {"id": "au-listing", "property": "data"}],
            "inputs": [{"id": "au-user", "property": "value", "value": "all"},
                       {"id": "au-action", "property": "value", "value": "all"},
                       {"id": "au-dates", "property": "start_date", "value": None},
                       {"id": "au-dates", "property": "end_date", "value": None},
                       {"id": "au-refresh", "property": "n_clicks", "value": value}],
            "changedPropIds": ["au-refresh.n_clicks"]}
    assert client.post(UPDATE, json=body).status_code == 400
    body["inputs"][-1]["value"] = 3
    assert client.post(UPDATE, json=body).status_code == 200


def test_an_oversized_body_is_refused_before_it_is_read(service_app):
    from service import callbacks

    client = signed_in_client(service_app, SUPPORT)
    big = json.dumps({"output": "x", "pad": "a" * (callbacks.MAX_BODY_BYTES + 10)})
    response = client.post(UPDATE, data=big, content_type="application/json")
    assert response.status_code == 400 and "bytes" in response.get_json()["message"]


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**20) | st.text(max_size=12)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: (st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=6)


def _entry_for(dependency: dict[str, Any], draw: Any) -> Any:
    """A request entry for a registered dependency with a drawn value (pattern ids made concrete)."""
    component_id = dependency["id"]
    if not component_id.startswith("{"):
        return {"id": component_id, "property": dependency["property"], "value": draw(_JSON)}
    pattern = json.loads(component_id)
    concrete = {key: ("I00001" if isinstance(value, list) else value) for key, value in pattern.items()}
    entry = {"id": concrete, "property": dependency["property"], "value": draw(_JSON)}
    return [entry] if any(value in (["ALL"], ["ALLSMALLER"]) for value in pattern.values()) else entry


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_callback_request_ends_in_a_500(service_app, data):
    """Every server-side callback of the app, its request shaped as registered, any values."""
    client = _admin_once(service_app)
    outputs = sorted(key for key, entry in service_app.callback_map.items() if "callback" in entry)
    output = data.draw(st.sampled_from(outputs))
    entry = service_app.callback_map[output]
    registered = entry["output"] if isinstance(entry["output"], list) else [entry["output"]]
    sent = [_entry_for({"id": item.component_id_str(), "property": item.component_property}, data.draw)
            for item in registered]
    for item in sent:
        for one in item if isinstance(item, list) else [item]:
            one.pop("value")
    body = {"output": output, "outputs": sent if isinstance(entry["output"], list) else sent[0],
            "inputs": [_entry_for(spec, data.draw) for spec in entry["inputs"]],
            "state": [_entry_for(spec, data.draw) for spec in entry["state"]], "changedPropIds": []}
    response = client.post(UPDATE, json=body)
    assert response.status_code in (200, 204, 400, 403), (output, response.status_code)
    assert "Traceback" not in response.get_data(as_text=True)


_clients: dict[int, Any] = {}


def _admin_once(app: Any) -> Any:
    """One admin client per app for the generated examples (signing in costs a password hash)."""
    if id(app) not in _clients:
        _clients[id(app)] = signed_in_client(app, ADMIN)
    return _clients[id(app)]


def _router_body(app: Any, **changes: Any) -> dict[str, Any]:
    body = {"output": next(key for key in app.callback_map if "_pages_content.children" in key),
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/user"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"]}
    body.update(changes)
    return body


@pytest.mark.parametrize("changes", [
    {"changedPropIds": ['{"a":' + "[" * 5000 + "]" * 5000 + "}.value"]},  # deep JSON inside a string
    {"changedPropIds": ['{"a":1.value']},
    {"changedPropIds": ["{\ud800}.value"]},
    {"inputs": [{"id": "_pages_location", "property": "pathname", "value": "user"},
                {"id": "_pages_location", "property": "search", "value": ""}]},  # not an absolute path
])
def test_hostile_details_of_a_well_formed_request_are_a_400(service_app, changes):
    client = signed_in_client(service_app, SUPPORT)
    response = client.post(UPDATE, json=_router_body(service_app, **changes))
    assert response.status_code == 400, response.get_data(as_text=True)[:200]


def test_json_constants_that_are_not_json_are_a_400(service_app):
    client = signed_in_client(service_app, SUPPORT)
    text = json.dumps(_router_body(service_app)).replace('"value": ""', '"value": NaN', 1)
    assert "NaN" in text
    assert client.post(UPDATE, data=text, content_type="application/json").status_code == 400
    assert client.post(UPDATE, json=_router_body(service_app)).status_code == 200
