"""The Rules page (pages/rules.py): its layout, preview, save, remove and restore bodies, the
catalogue's suggestions, and through the server: an analyst's save is one audit row in their name
and support cannot reach the page's callbacks. On a copy of the trained shop (saves write rules
beside it)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from analytics.rules_store import load_rules, rules_folder
from models.serving import Recommender
from service import audit
from service.users import ANALYST, SUPPORT
from settings import Settings
from tests.components import find, text
from tests.service.support import ACCOUNTS, app_settings, sign_in
from tests.shop import TrainedShop
from workflows.recommenders import recommender_for

K = 10


@pytest.fixture(scope="module")
def shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the trained shop: the page's saves write ``<db>.rules/`` beside it."""
    copy = trained_shop.copy_to(tmp_path_factory.mktemp("rules_shop"))
    return app_settings(tmp_path_factory.mktemp("rules_state"), db_path=copy.db, models_dir=copy.models)


@pytest.fixture(scope="module")
def rp(served: Any):
    import pages.rules as module

    return module


@pytest.fixture(scope="module")
def listed_item(shop: Settings, served: Any) -> str:
    """The item in the most customers' top ten."""
    rec: Recommender = recommender_for(shop)
    assert rec.top is not None
    counts = Counter(i.item_id for user in rec.top.spans for i in rec.recommend(user, K).items)
    return counts.most_common(1)[0][0]


def form(**values: Any) -> dict[str, Any]:
    base = {"kind": "exclude", "target_type": "item", "target": "", "amount": None, "countries": [],
            "segments": [], "start": "", "end": "", "name": "", "note": ""}
    return base | values


def test_layout_lists_the_rules_and_offers_the_form(rp, shop: Settings) -> None:
    layout = rp.build_layout(shop)
    for component_id in ("rl-grid", "rl-form", "rl-kind", "rl-target", "rl-target-list", "rl-preview", "rl-save",
                         "rl-remove", "rl-history", "rl-version"):
        assert find(layout, component_id) is not None, component_id
    countries = find(layout, "rl-countries").options
    assert countries and all(option["value"] for option in countries)  # the shop's customers' countries


def test_preview_then_save_then_remove_and_restore(rp, shop: Settings, listed_item: str) -> None:
    version = rp.rules_listing(shop).version
    draft = form(target=listed_item, name="Out of stock", note="supplier late")
    preview = rp.preview_draft(draft, version, shop)
    summary = text(find(preview, "rl-preview-summary"))
    assert "customers' lists change" in summary and "items enter" in summary
    assert load_rules(rules_folder(shop.db_path)).version == version  # a preview saves nothing

    rows: list[str] = []
    saved = rp.save_draft(draft, version, shop, author="ana", record=rows.append)
    assert text(saved.status).startswith("Saved rule 'Out of stock' as rule set v")
    assert saved.version == version + 1 and rows == [
        f"rules v{saved.version}: added 'Out of stock': exclude item {listed_item}; all customers; always"]
    (row,) = [r for r in saved.rows if r["name"] == "Out of stock"]
    assert (row["author"], row["state"], row["note"]) == ("ana", "active", "supplier late")
    assert f"v{saved.version} (current)" in text(saved.history)

    stale = rp.save_draft(form(target=listed_item, name="Again"), version, shop, author="bo", record=rows.append)
    assert "changed since you opened them" in text(stale.status)  # built on an old version

    removed = rp.remove(row["rule_id"], saved.version, shop, author="bo", record=rows.append)
    assert not any(r["name"] == "Out of stock" for r in removed.rows) and removed.version == saved.version + 1
    back = rp.restore(saved.version, removed.version, shop, author="ana", record=rows.append)
    assert any(r["name"] == "Out of stock" for r in back.rows) and len(rows) == 3
    assert {"label": f"v{saved.version} (1 rules, ana)", "value": saved.version} in back.restore_options


def test_every_problem_of_the_form_is_its_own_line_and_nothing_is_saved(rp, shop: Settings) -> None:
    version = rp.rules_listing(shop).version
    rows: list[str] = []
    view = rp.save_draft(form(kind="pin", target="", amount="0", name="", end="2020-01-01", start="2021-01-01"),
                         version, shop, author="ana", record=rows.append)
    lines = view.status.children.children  # the refusal: one list item per problem
    assert len(lines) == 4 and not rows and view.version == version
    assert "The target is empty: name the item, category or brand." in [text(li) for li in lines]
    unknown = rp.save_draft(form(target="NO-SUCH-ITEM", name="ghost"), version, shop, author="ana",
                            record=rows.append)
    assert "No item 'NO-SUCH-ITEM' in the shop's catalogue" in text(unknown.status)
    nobody = rp.save_draft(form(target="x", name="y"), version, shop)  # no request: nobody is signed in
    assert text(nobody.status) == "Nobody is signed in."


def test_suggestions_come_from_the_catalogue(rp, shop: Settings, listed_item: str) -> None:
    items = rp.target_options("item", listed_item[:4], shop)
    assert listed_item in [option.value for option in items] or len(items) == 20
    brands = rp.target_options("brand", "", shop)
    assert brands and all("items)" in option.label for option in brands)
    categories = rp.target_options("category", "", shop)
    assert categories and rp.target_options("colour", "", shop) == []


def _callback(served: Any, output_fragment: str, inputs: list[Any], state: list[Any], changed: str) -> dict[str, Any]:
    output = next(key for key in served.callback_map if output_fragment in key)
    outputs = [{"id": part.rpartition(".")[0], "property": part.rpartition(".")[2]}
               for part in output.strip(".").split("...")]
    return {"output": output, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": state, "changedPropIds": [changed]}


def test_a_save_through_the_server_is_one_audit_row_and_support_is_refused(rp, served, shop: Settings,
                                                                           listed_item: str) -> None:
    version = rp.rules_listing(shop).version
    values = form(target=listed_item, name="Server-side recall")
    fields = dict(zip(rp.rv.FORM_FIELDS, values.values()))
    state = [{"id": "rl-version", "property": "data", "value": version},
             {"id": "rl-remove-pick", "property": "value", "value": None},
             {"id": "rl-restore-pick", "property": "value", "value": None},
             *[{"id": component, "property": "value", "value": fields[component]} for component in rp.rv.FORM_FIELDS]]
    body = _callback(served, "rl-status.children", [
        {"id": "rl-save", "property": "n_clicks", "value": 1}, {"id": "rl-remove", "property": "n_clicks", "value": 0},
        {"id": "rl-restore", "property": "n_clicks", "value": 0}], state, "rl-save.n_clicks")
    support = served.server.test_client()
    sign_in(support, SUPPORT)
    assert support.post("/_dash-update-component", json=body).status_code == 403
    analyst = served.server.test_client()
    sign_in(analyst, ANALYST)
    before = len(audit.read_entries(shop.audit_db, action=audit.RULES_CHANGE))
    response = analyst.post("/_dash-update-component", json=body)
    assert response.status_code == 200
    answer = json.dumps(response.get_json()["response"])
    assert "Server-side recall" in answer and f'"data": {version + 1}' in answer
    entries = audit.read_entries(shop.audit_db, action=audit.RULES_CHANGE)
    assert len(entries) == before + 1
    newest = entries[0]
    assert (newest.who, newest.role, newest.customer) == (ACCOUNTS[ANALYST][0], ANALYST, None)
    assert newest.detail.startswith(f"rules v{version + 1}: added 'Server-side recall'")
    assert load_rules(rules_folder(shop.db_path)).rules[-1].author == ACCOUNTS[ANALYST][0]
