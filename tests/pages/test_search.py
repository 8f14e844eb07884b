"""The search page's callback bodies, without a browser, on the session's trained shop: both
columns and their audit rows, the Why? dialog read from the stored results, and plain messages
for a blank query or a customer nobody matches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from errors import RecsightError
from service import audit
from service.users import SUPPORT
from settings import Settings
from tests.components import find, text
from tests.service.support import app_settings, sign_in
from tests.shop import TrainedShop


class Recorder(list):
    """Stands in for service.access.record_action: keeps (action, customer, detail)."""

    def __call__(self, action: str, customer: str | None = None, detail: str | None = None) -> None:
        self.append((action, customer, detail))


@pytest.fixture(scope="module")
def settings(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return app_settings(tmp_path_factory.mktemp("search_page"), db_path=trained_shop.db,
                        models_dir=trained_shop.models)


@pytest.fixture(scope="module")
def page(settings: Settings) -> Any:
    """The page module, after an app served it once (Dash hands it its callbacks then)."""
    from app import create_app

    client = create_app(settings).server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    assert client.get("/search").status_code == 200
    import pages.search as module

    return module


def test_both_columns_with_their_audit_rows(page, settings, trained_shop, monkeypatch):
    from models.search_index import SearchIndex

    retrievals: list[str] = []
    retrieve = SearchIndex.retrieve
    monkeypatch.setattr(SearchIndex, "retrieve", lambda self, q, k=200: retrievals.append(q) or retrieve(self, q, k))
    raw = trained_shop.raw_ids[3]
    record = Recorder()
    view, data = page.run_search("set", raw, settings, record)
    assert retrievals == ["set"]  # the query is embedded and matched once for both columns
    assert find(view, "se-anonymous") is not None and find(view, "se-personalised") is not None
    stored = json.loads(data)
    pseudonym = trained_shop.pseudonym(raw)
    assert stored["personalised"]["user_id"] == pseudonym and raw not in data  # the shop id never reaches the page
    assert record == [(audit.EXPLANATION_VIEW, pseudonym, record[0][2])]
    item = stored["personalised"]["items"][0]
    is_open, title, body = page.open_why("personalised", item["item_id"], data)
    assert is_open and item["title"][:10] in text(title)
    assert text(find(body, "se-why-reasons")).startswith("Ranked #1 because")


def test_an_anonymous_search_is_audited_as_a_search(page, settings):
    record = Recorder()
    view, _ = page.run_search("set", None, settings, record)
    assert find(view, "se-personalised") is None
    assert [(action, customer) for action, customer, _ in record] == [(audit.SEARCH, None)]


def test_blank_queries_and_unknown_customers_get_a_plain_message(page, settings):
    with pytest.raises(RecsightError, match="type a word"):
        page.run_search("  ", None, settings, Recorder())
    record = Recorder()
    view, _ = page.run_search("set", "NO-SUCH-CUSTOMER", settings, record)
    assert "unknown customer" in text(find(view, "se-customer-problem")).lower()
    assert record[0][:2] == (audit.CUSTOMER_LOOKUP, None)
    with pytest.raises(RecsightError, match="search again"):
        page.open_why("personalised", "NOT-AN-ITEM", None)


def test_search_as_the_customer_on_the_customer_page(page, settings, trained_shop):
    from pages import _user_search

    pseudonym = trained_shop.pseudonym(trained_shop.raw_ids[3])
    record = Recorder()
    view, data = _user_search.search_as({"user_id": pseudonym}, "set", settings, record)
    assert len(json.loads(data)["payload"]["items"]) == _user_search.K
    assert find(view, "se-as-customer-1") is not None
    assert record == [(audit.EXPLANATION_VIEW, pseudonym, record[0][2])] and "search as this customer" in record[0][2]
    with pytest.raises(RecsightError, match="look a customer up first"):
        _user_search.search_as(None, "set", settings, Recorder())
    with pytest.raises(RecsightError, match="type a word"):
        _user_search.search_as({"user_id": pseudonym}, " ", settings, Recorder())
