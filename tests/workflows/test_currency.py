"""Prices in the shop's currency where a customer's list and profile are shown (issue 17): the
shopper preview's cards and the report's profile card (spend, price band), on the session's
trained shop (tests/shop.py, read only) and on hand-built values."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime

import pytest

from analytics import schema as s
from dashboard.report_profile import profile_card
from settings import Settings
from tests.components import find, text
from tests.shop import TrainedShop
from workflows.preview import PreviewCard, shopper_preview
from workflows.reports import in_currency

PROFILE = {"user_id": "c_1", "segment": "champions", "n_events": 753, "n_purchases": 11, "recency_days": 30.2,
           "frequency": 10, "monetary": 2368.83, "favourite_categories": [], "favourite_brands": [],
           "price_band": {"basis": "bought", "p25": 53.99, "median": 71.99, "p75": 150.99}, "time_based": True,
           "last_active": datetime(2024, 3, 27, 8, 15, 2)}


def _card(price: float | None, currency: str) -> PreviewCard:
    return PreviewCard(1, "I1", "Alpine 2-person tent", "Tents", "Acme", price, currency, "Strong match", "Because.")


def _shown(card_html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt[^>]*>(.*?)</dt><dd[^>]*>(.*?)</dd>", html.unescape(card_html)))


def test_the_preview_card_writes_its_price_with_the_currency() -> None:
    from pages._user_preview import preview_view

    view = preview_view([_card(1499.9, "GBP"), replace(_card(None, "GBP"), rank=2), replace(_card(0.0, "SEK"), rank=3)])
    prices = [text(find(view, f"cu-preview-{rank}").children[3]) for rank in (1, 2, 3)]
    assert prices == ["£1,499.90", "", "0.00 SEK"]  # an item without a known price shows none


def test_the_reports_profile_writes_spend_and_price_band_in_the_currency() -> None:
    shown = _shown(profile_card({**PROFILE, "currency": "USD"}, None))
    assert shown["Spent"] == "$2,368.83"
    assert shown["Price band"] == "$53.99 – $150.99 (median $71.99, bought)"
    assert "currency" not in "".join(shown).lower()  # it steers the writing; it is no row of its own
    assert _shown(profile_card(PROFILE, None))["Spent"] == "€2,368.83"  # the default, RECSIGHT_CURRENCY unset
    assert _shown(profile_card({**PROFILE, "monetary": 0.0, "currency": "GBP"}, None))["Spent"] == "£0.00"


@pytest.fixture(scope="module")
def settings(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return replace(trained_shop.settings(tmp_path_factory.mktemp("currency")), currency="GBP")


@pytest.fixture(scope="module")
def customer(trained_shop: TrainedShop) -> str:
    import duckdb

    with duckdb.connect(str(trained_shop.db), read_only=True) as con:
        return con.execute(f"SELECT {s.USER_ID} FROM {s.EVENTS} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                           ).fetchone()[0]


def test_the_shoppers_preview_carries_the_shops_currency(settings: Settings, customer: str) -> None:
    from pages._user_preview import preview_view

    cards = shopper_preview(settings, customer)
    assert cards and {card.currency for card in cards} == {"GBP"}
    priced = [card for card in cards if card.price is not None]
    assert priced, "no recommended item of the trained shop has a price"
    view = preview_view(cards)
    for card in priced:
        assert text(find(view, f"cu-preview-{card.rank}").children[3]).startswith("£")


def test_a_report_states_the_customers_spend_in_the_shops_currency(settings: Settings, customer: str) -> None:
    from workflows.lookup import K, explanation_for
    from workflows.recommenders import recommender_for
    from workflows.reports import report_bytes

    explanation = explanation_for(settings, customer)
    assert explanation.profile.get("monetary") is not None
    page = report_bytes(recommender_for(settings), customer, "html", K, explanation=explanation,
                        currency=settings.currency).decode()
    assert _shown(page)["Spent"].startswith(("£", "-£"))
    assert in_currency(explanation, "GBP").profile == {**explanation.profile, "currency": "GBP"}
