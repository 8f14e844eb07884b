"""The customer lookup's callback bodies, without a browser, on a small trained shop.

The shop is the session's trained shop (tests/shop.py, shared with the browser tests), with
one customer in the users table without any event (a cold start, ``COLD_RAW``). Shop ids are
the synthetic raw ids (``U000123``); the database only holds their pseudonyms.

Most tests call the bodies with a list as the audit recorder; the last ones post real callback
requests through the guarded server as a signed-in user, so the audit rows come from
``service.access.record_action`` itself.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import plotly
import pyarrow.parquet as pq
import pytest

from analytics import schema
from analytics.db import connect_read_only
from analytics.privacy import pseudonymise
from errors import RecsightError
from service import audit
from service.users import ADMIN, ANALYST, SUPPORT
from settings import Settings
from tests.components import find as _find
from tests.components import text as _text
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, app_settings, sign_in
from tests.shop import COLD_RAW, TrainedShop


class Recorder(list):
    """Stands in for service.access.record_action: keeps (action, customer, detail)."""

    def __call__(self, action: str, customer: str | None = None, detail: str | None = None) -> None:
        self.append((action, customer, detail))


@pytest.fixture(scope="module")
def shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's trained shop (read only), with this module's users and audit log."""
    return app_settings(tmp_path_factory.mktemp("user_page"), db_path=trained_shop.db, models_dir=trained_shop.models)


@pytest.fixture(scope="module")
def raw_ids(shop: Settings) -> list[str]:
    """Shop ids of customers with events, as the shop's own systems know them."""
    return sorted(set(pq.read_table(shop.db_path.parent / "synth" / "events.parquet",
                                    columns=[schema.USER_ID]).column(0).to_pylist()))


@pytest.fixture(scope="module")
def served(shop: Settings) -> Iterator[Any]:
    """An app for the shop; it serves one request so Dash hands it the page callbacks."""
    from app import create_app

    app = create_app(shop)
    client = app.server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    assert client.get("/user").status_code == 200
    yield app


@pytest.fixture(scope="module")
def pu(served: Any):
    """The page's callback bodies (``pages._user_callbacks``); its layout is ``pages.user``."""
    import pages._user_callbacks as module

    return module


@pytest.fixture(scope="module")
def page_module(served: Any):
    import pages.user as module

    return module


@pytest.fixture(scope="module")
def found(pu, shop, raw_ids) -> Any:
    """A lookup of the first customer by shop id (shared: explanations are cached per customer)."""
    return pu.lookup(raw_ids[0], shop, Recorder())




def _json(component: Any) -> str:
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


# --------------------------------------------------------------------------- lookup


def test_lookup_by_shop_id_shows_the_customer_and_the_models_list(pu, shop, raw_ids):
    from workflows.recommenders import recommender_for

    record = Recorder()
    view = pu.lookup(f"  {raw_ids[0]} ", shop, record)
    pseudonym = pseudonymise(raw_ids[0], TEST_SECRET)
    expected = recommender_for(shop).recommend(pseudonym, pu.K)
    assert view.customer["user_id"] == pseudonym and not view.customer["cold_start"]
    assert [row[0] for row in view.customer["items"]] == [item.item_id for item in expected.items]
    assert _text(_find(view.result, "cu-pseudonym")) == pseudonym
    for item in expected.items:
        card = _find(view.result, f"cu-item-{item.rank}")
        assert item.title in _text(card)
        assert _find(card, {"type": pu.WHY, "item": item.item_id}) is not None
        assert _find(card, {"type": pu.REASONS, "item": item.item_id}) is not None
    timeline = _find(view.result, "cu-timeline").figure
    with connect_read_only(shop.db_path) as con:
        events = con.execute(f"SELECT count(*) FROM {schema.EVENTS} WHERE {schema.USER_ID} = ?",
                             [pseudonym]).fetchone()[0]
    assert sum(len(trace.x) for trace in timeline.data) == min(events, 300)
    assert record == [(audit.CUSTOMER_LOOKUP, pseudonym, "looked up by shop id")]
    assert raw_ids[0] not in _json(view.result) + json.dumps(view.customer)  # only the pseudonym leaves


def test_lookup_by_pseudonym(pu, shop, raw_ids):
    record = Recorder()
    pseudonym = pseudonymise(raw_ids[1], TEST_SECRET)
    view = pu.lookup(pseudonym, shop, record)
    assert view.customer["user_id"] == pseudonym
    assert record == [(audit.CUSTOMER_LOOKUP, pseudonym, "looked up by pseudonym")]


def test_unknown_customer_is_an_empty_state_with_one_audit_row(pu, shop, raw_ids):
    record = Recorder()
    view = pu.lookup("U999999", shop, record)
    assert view.customer is None
    assert "Unknown customer 'U999999'" in _text(_find(view.result, "cu-not-found-message"))
    searched = pseudonymise("U999999", TEST_SECRET)  # what was searched, never the id itself
    assert record == [(audit.CUSTOMER_LOOKUP, None, f"no customer matched (searched {searched})")]
    pseudonym = pseudonymise(raw_ids[2], TEST_SECRET)
    almost = pu.lookup(pseudonym[:14], shop, Recorder())  # most of a pseudonym (12 hex digits): suggestions
    assert pseudonym in _text(_find(almost.result, "cu-not-found"))


@pytest.mark.parametrize("typed, message", [("", "Type a customer id"), ("U0\x00' OR 1=1", "control characters"),
                                            ("9" * 500, "at most 128")])
def test_bad_input_is_a_message_and_looks_nobody_up(pu, shop, typed, message):
    record = Recorder()
    view = pu.lookup(typed, shop, record)
    assert view.customer is None and message in _text(view.result)
    assert record == []


def test_a_cold_start_customer_gets_popular_items_and_a_note(pu, shop):
    view = pu.lookup(COLD_RAW, shop, Recorder())
    assert view.customer["cold_start"] and len(view.customer["items"]) == pu.K
    assert "no behaviour to personalise from" in _text(_find(view.result, "cu-cold-start"))
    assert "No profile yet" in _text(view.result)


def test_no_model_is_a_message(pu, shop, tmp_path):
    from dataclasses import replace

    with pytest.raises(RecsightError, match="no trained model"):
        pu.lookup("U000001", replace(shop, models_dir=tmp_path / "none"), Recorder())


# --------------------------------------------------------------------------- explanations


def test_reasons_fill_every_card_with_the_explanations_sentences(pu, shop, found):
    from workflows.explaining import explain_customer
    from workflows.recommenders import recommender_for

    ids = [row[0] for row in found.customer["items"]]
    shown = pu.reasons(found.customer, ids, shop)
    expected = {item.item_id: item.reasons for item in
                explain_customer(recommender_for(shop), found.customer["user_id"], pu.K).items}
    assert len(shown) == len(ids)
    for item_id, block in zip(ids, shown):
        assert [_text(li) for li in block.children] == expected[item_id][:pu.REASONS_SHOWN]


def test_why_shows_the_waterfall_the_history_and_a_counterfactual(pu, shop, found, monkeypatch):
    record = Recorder()
    item_id, title, rank = found.customer["items"][0]
    view = pu.why(found.customer, item_id, shop, record)
    assert title in _text(view.title)
    movers = _find(view.body, "cu-why-waterfall").figure  # an agent's view: shares, no raw units
    assert movers.data[0].type == "bar" and "share of everything" in movers.layout.title.text
    assert "raw units" not in _text(_find(view.body, "cu-why-note"))
    monkeypatch.setattr(pu, "_raw_units", lambda: True)  # an admin: the analyst's raw waterfall
    raw = pu.why(found.customer, item_id, shop, record)
    assert _find(raw.body, "cu-why-waterfall").figure.data[0].type == "waterfall"
    assert "raw units" in _text(_find(raw.body, "cu-why-note"))
    assert _find(view.body, "cu-why-history").figure.data  # attributions and attention weights
    assert _text(_find(view.body, "cu-why-reasons"))
    assert "What would change it" in _text(_find(view.body, "cu-why-counterfactual"))
    assert record == [(audit.EXPLANATION_VIEW, found.customer["user_id"], f"why #{rank} {item_id}")] * 2


def test_counterfactual_box_says_why_when_the_search_fails(pu, shop, monkeypatch):
    def fail(*args, **kwargs):
        raise RecsightError("the model files are being replaced")

    monkeypatch.setattr(pu.work, "counterfactual_for", fail)
    item = SimpleNamespace(item_id="I00001", counterfactual="")
    box = _text(pu._counterfactual(shop, item))
    assert "No counterfactual for this item: The model files are being replaced." in box


def test_why_refuses_other_items_and_stale_lookups_without_auditing(pu, shop, found):
    record = Recorder()
    with pytest.raises(RecsightError, match="not in this customer's list"):
        pu.why(found.customer, "I99999", shop, record)
    stale = dict(found.customer, version="20000101-000000-000000")
    with pytest.raises(RecsightError, match="model was updated"):
        pu.why(stale, found.customer["items"][0][0], shop, record)
    with pytest.raises(RecsightError, match="look a customer up first"):
        pu.why(None, "I00001", shop, record)
    assert record == []


def test_compare_two_items(pu, shop, found):
    record = Recorder()
    (a, title_a, _), (b, title_b, _) = found.customer["items"][:2]
    body = pu.compare(found.customer, b, a, shop, record)
    assert _text(_find(body, "cu-compare-summary"))
    bars = _find(body, "cu-compare-figure").figure
    assert title_b in bars.layout.title.text and title_a in bars.layout.title.text
    assert record == [(audit.EXPLANATION_VIEW, found.customer["user_id"], f"compare {b} with {a}")]
    for left, right, message in ((a, a, "two different items"), (a, None, "pick two items")):
        with pytest.raises(RecsightError, match=message):
            pu.compare(found.customer, left, right, shop, record)
    assert len(record) == 1


def test_export_csv_is_the_customers_report(pu, shop, found, raw_ids):
    record = Recorder()
    payload = pu.export(found.customer, "csv", shop, record)
    pseudonym = found.customer["user_id"]
    assert payload["filename"].startswith(f"recsight-{pseudonym}-") and payload["filename"].endswith(".csv")
    text = base64.b64decode(payload["content"]).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["user_id"] for row in rows} == {pseudonym}
    assert {row["item_id"] for row in rows} == {row[0] for row in found.customer["items"]}
    assert raw_ids[0] not in text
    assert record == [(audit.REPORT_EXPORT, pseudonym, "csv report")]
    with pytest.raises(RecsightError, match="unknown report format"):
        pu.export(found.customer, "docx", shop, record)
    assert len(record) == 1


# --------------------------------------------------------------------------- layout


def test_deep_link_prefills_the_search_and_looks_up_once_loaded(page_module, served):
    with served.server.test_request_context("/"):
        page = page_module.build_layout("c_0123456789abcdef0123")
        assert _find(page, "cu-search").value == "c_0123456789abcdef0123"
        assert _find(page, "cu-link").data == "c_0123456789abcdef0123"  # the page's script looks it up
        by_id = page_module.build_layout("U 001")  # a shop id: shown (and looked up) by its pseudonym only
        assert _find(by_id, "cu-search").value == _find(by_id, "cu-link").data == pseudonymise("U 001", TEST_SECRET)
        long = page_module.build_layout("x" * 1000)
        assert _find(long, "cu-search").value == pseudonymise("x" * 128, TEST_SECRET)
        blank = page_module.build_layout()
    assert _find(blank, "cu-link").data is None and _find(blank, "cu-intro") is not None


# --------------------------------------------------------------------------- through the server


def _callback(served: Any, output_fragment: str, inputs: list[Any], state: list[Any], changed: str) -> dict[str, Any]:
    output = next(key for key in served.callback_map if output_fragment in key)
    outputs = [{"id": part.rpartition(".")[0], "property": part.rpartition(".")[2]}
               for part in output.strip(".").split("...")]
    return {"output": output, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": state, "changedPropIds": [changed]}


def _entries(shop: Settings, action: str) -> list[audit.AuditEntry]:
    return audit.read_entries(shop.audit_db, action=action)


def test_each_action_through_the_server_leaves_exactly_one_audit_row(served, shop, raw_ids):
    client = served.server.test_client()
    sign_in(client, SUPPORT)
    before = {action: len(_entries(shop, action)) for action in audit.ACTIONS}
    lookup = _callback(served, "cu-result.children", [
        {"id": "cu-go", "property": "n_clicks", "value": 1},
        {"id": "cu-search", "property": "n_submit", "value": 0},
        {"id": "cu-initial", "property": "data", "value": None},
    ], [{"id": "cu-search", "property": "value", "value": raw_ids[3]}], "cu-go.n_clicks")
    response = client.post("/_dash-update-component", json=lookup)
    assert response.status_code == 200
    store = response.get_json()["response"]["cu-customer"]["data"]
    assert store["user_id"] == pseudonymise(raw_ids[3], TEST_SECRET)

    item_id = store["items"][0][0]
    button = {"item": item_id, "type": "cu-why"}
    why = _callback(served, "cu-why-body.children", [[{"id": button, "property": "n_clicks", "value": 1}]],
                    [{"id": "cu-customer", "property": "data", "value": store}],
                    json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks")
    assert client.post("/_dash-update-component", json=why).status_code == 200

    export = _callback(served, "cu-download.data", [
        {"id": f"cu-export-{fmt}", "property": "n_clicks", "value": int(fmt == "csv")} for fmt in ("html", "pdf", "csv")
    ], [{"id": "cu-customer", "property": "data", "value": store}], "cu-export-csv.n_clicks")
    response = client.post("/_dash-update-component", json=export)
    assert response.status_code == 200 and response.get_json()["response"]["cu-download"]["data"]["filename"]

    after = {action: _entries(shop, action) for action in audit.ACTIONS}
    for action in (audit.CUSTOMER_LOOKUP, audit.EXPLANATION_VIEW, audit.REPORT_EXPORT):
        assert len(after[action]) == before[action] + 1, action
        newest = after[action][0]
        assert (newest.who, newest.role, newest.customer) == (ACCOUNTS[SUPPORT][0], SUPPORT, store["user_id"])

    analyst = served.server.test_client()
    sign_in(analyst, ANALYST)
    assert analyst.post("/_dash-update-component", json=lookup).status_code == 403
    assert len(_entries(shop, audit.CUSTOMER_LOOKUP)) == before[audit.CUSTOMER_LOOKUP] + 1


def test_a_bug_is_one_line_on_the_page_never_a_traceback(served, pu, monkeypatch):
    def broken(_settings: Settings) -> Any:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(pu.work, "recommender_for", broken)
    client = served.server.test_client()
    sign_in(client, ADMIN)
    lookup = _callback(served, "cu-result.children", [
        {"id": "cu-go", "property": "n_clicks", "value": 1},
        {"id": "cu-search", "property": "n_submit", "value": 0},
        {"id": "cu-initial", "property": "data", "value": None},
    ], [{"id": "cu-search", "property": "value", "value": "U000001"}], "cu-go.n_clicks")
    response = client.post("/_dash-update-component", json=lookup)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Something went wrong on the server" in text
    assert "secret internals" not in text and "Traceback" not in text
