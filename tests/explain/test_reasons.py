"""Reasons state only what the data shows: every claimed fact is re-derived here with plain SQL."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import schema as s
from analytics.privacy import pseudonymise
from explain.reasons import CustomerData, ItemFacts, build_reasons, load_customer
from explain.types import Contribution
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.explain.conftest import COLD_USER, Shop

DATE = re.compile(r"\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}\b")


def _sql(recommender: Recommender, sql: str, params: list) -> list[tuple]:
    with recommender.connection() as con:
        return con.execute(sql, params).fetchall()


def _distinct_items(recommender: Recommender, user: str, where: str, params: list, event_type: str,
                    since) -> int:
    return _sql(recommender, f"""
        SELECT count(DISTINCT e.{s.ITEM_ID}) FROM {s.EVENTS} e JOIN {s.ITEMS} i USING ({s.ITEM_ID})
        WHERE e.{s.USER_ID} = ? AND e.{s.EVENT_TYPE} = ? AND {where} AND (?::TIMESTAMP IS NULL OR e.{s.TS} >= ?)""",
                [user, event_type, *params, since, since])[0][0]


def _check(recommender: Recommender, user: str, item_id: str, reason) -> None:
    """Re-derive every fact of ``reason`` from the database; fail on any that does not hold."""
    c = reason.claims
    if reason.topic in ("brand", "category"):
        column = s.BRAND if reason.topic == "brand" else s.CATEGORY
        assert _sql(recommender, f"SELECT {column} FROM {s.ITEMS} WHERE {s.ITEM_ID} = ?", [item_id])[0][0] == c[column]
        for event_type, n in c["counts"].items():
            assert _distinct_items(recommender, user, f"i.{column} = ?", [c[column]], event_type, c["since"]) == n
            assert str(n) in reason.text
        shown = c[column] if column == s.BRAND else c[column].split(">")[-1].strip()
        assert shown in reason.text
        if c["last_ts"] is not None and c["since"] is None:
            assert f"{c['last_ts']:%b %Y}" in reason.text
    elif reason.topic == "department":
        for event_type, n in c["counts"].items():
            assert _distinct_items(recommender, user, f"split_part(i.{s.CATEGORY}, ' > ', 1) = ?",
                                   [c["department"]], event_type, None) == n
    elif reason.topic == "co-visitation":
        table = recommender.tables.index.covis_tables[c["variant"]]
        link = f"SELECT count(*) FROM {table} WHERE src = ? AND dst = ?"
        assert _sql(recommender, link, [c["source_item"], item_id])[0][0] == 1
        mine = f"SELECT count(*) FROM {s.EVENTS} WHERE {s.USER_ID} = ? AND {s.ITEM_ID} = ? AND {s.EVENT_TYPE} = ?"
        assert _sql(recommender, mine, [user, c["source_item"], c["event_type"]])[0][0] > 0
    elif reason.topic == "attention":
        mine = {r[0]: r[1] for r in _sql(recommender, f"""SELECT {s.ITEM_ID}, list(DISTINCT {s.EVENT_TYPE})
            FROM {s.EVENTS} WHERE {s.USER_ID} = ? GROUP BY 1""", [user])}
        assert set(c["items"]) <= set(mine)
        assert set(c["event_types"]) <= {t for item in c["items"] for t in mine[item]}
        assert "%" in reason.text or "lifts" in reason.text
    elif reason.topic == "popularity":
        distinct = f"SELECT count(DISTINCT {s.USER_ID}) FROM {s.EVENTS} WHERE {s.ITEM_ID} = ?"
        users = _sql(recommender, distinct, [item_id])[0][0]
        assert users == c["item_users"] and str(users) in reason.text
    elif reason.topic == "trend":
        n = _sql(recommender, f"SELECT count(*) FROM {s.EVENTS} WHERE {s.ITEM_ID} = ? AND {s.TS} >= ?",
                 [item_id, recommender.tables.as_of - timedelta(days=7)])[0][0]
        assert n == c["item_events_7d"]
    elif reason.topic == "price":
        price = f"SELECT {s.PRICE} FROM {s.ITEMS} WHERE {s.ITEM_ID} = ?"
        assert _sql(recommender, price, [item_id])[0][0] == c["price"]
        kind = s.PURCHASE if c["basis"] == "pay" else s.VIEW
        usual = _sql(recommender, f"""SELECT median(coalesce(e.{s.PRICE}, i.{s.PRICE})) FROM {s.EVENTS} e
            JOIN {s.ITEMS} i USING ({s.ITEM_ID})
            WHERE e.{s.USER_ID} = ? AND e.{s.EVENT_TYPE} = ?""", [user, kind])[0][0]
        assert usual == pytest.approx(c["usual_price"])
    elif reason.topic == "cold start":
        assert "popular" in reason.text
    elif reason.topic == "customer":
        n = _sql(recommender, f"SELECT count(*) FROM {s.EVENTS} WHERE {s.USER_ID} = ?", [user])[0][0]
        assert n == c["events"] and str(n) in reason.text
    elif reason.topic == "rank":
        assert "no single signal" in reason.text
    else:  # conversion / new: facts from the item's own statistics
        assert reason.topic in ("conversion", "new")


def test_every_reason_states_only_facts_found_in_the_data(recommender: Recommender, explained,
                                                          active_users: list[str]) -> None:
    topics = set()
    for user in active_users[:8] + [COLD_USER]:
        for explanation, reasons in explained(user).items:
            assert 1 <= len(reasons) <= 3 and explanation.reasons == [r.text for r in reasons]
            for reason in reasons:
                _check(recommender, user, explanation.item_id, reason)
                topics.add(reason.topic)
    assert {"brand", "category", "cold start"} <= topics  # the claims above were really exercised


def test_cold_start_reasons_say_the_list_is_popular_items(explained) -> None:
    result, items = explained(COLD_USER)
    assert result.cold_start
    for explanation, reasons in items:
        assert explanation.history == [] and [r.topic for r in reasons] == ["cold start"]
        assert "no history" in reasons[0].text and "popular" in reasons[0].text


def test_no_sentence_without_evidence_even_when_the_feature_pushes(recommender: Recommender,
                                                                   active_users: list[str]) -> None:
    user = active_users[0]
    customer = load_customer(recommender, user)
    touched = {e.brand for e in customer.events} | {e.category for e in customer.events}
    stranger = ItemFacts("I-none", "Unknown Thing", "Nowhere > Never > Nothing", "NoSuchBrand", 10.0)
    assert not {stranger.brand, stranger.category} & touched
    pushing = [Contribution("brand_share", "Affinity to the item's brand", "affinity", 0.0, 0.5),
               Contribution("category_share", "Affinity to the item's category", "affinity", 0.0, 0.4),
               Contribution("next_sum", "Often bought or viewed right after your recent items", "co-visitation",
                            0.0, 0.3)]
    reasons = build_reasons(customer, stranger, {}, pushing, [], 0.0, [], cold_start=False)
    assert [r.topic for r in reasons] == ["rank"] and "no single signal" in reasons[0].text


def test_order_only_data_never_cites_a_date(recommender: Recommender, explained, active_users: list[str]) -> None:
    user = active_users[1]
    result, items = explained(user)
    dated = [r.text for _, reasons in items for r in reasons]
    assert any(DATE.search(t) or "last 30 days" in t for t in dated)  # the temporal shop does cite dates
    customer = load_customer(recommender, user)
    order_only = CustomerData(customer.user_id, customer.events, customer.as_of, real_time=False)
    for explanation, _ in items:
        row = result.features[result.features[s.ITEM_ID] == explanation.item_id].iloc[0].to_dict()
        attributes = f"SELECT {s.CATEGORY}, {s.BRAND}, {s.PRICE} FROM {s.ITEMS} WHERE {s.ITEM_ID} = ?"
        facts = ItemFacts(explanation.item_id, explanation.title,
                          *_sql(recommender, attributes, [explanation.item_id])[0])
        for reason in build_reasons(order_only, facts, row, explanation.contributions, explanation.history,
                                    explanation.attention_share, [], cold_start=False):
            assert not DATE.search(reason.text) and "days" not in reason.text


def test_reasons_cite_the_planted_favourites_far_more_often_than_chance(shop: Shop, recommender: Recommender,
                                                                        explained, active_users: list[str]) -> None:
    truth = pd.read_parquet(shop.raw / "truth" / "preferences.parquet")
    truth["user_id"] = [pseudonymise(u, TEST_SECRET) for u in truth["user_id"]]
    favourites = {row.user_id: set(row.favourite_categories) | set(row.favourite_categories_after_drift)
                  | set(row.favourite_brands) for row in truth.itertuples()}
    n_categories, n_brands = _sql(
        recommender, f"SELECT count(DISTINCT {s.CATEGORY}), count(DISTINCT {s.BRAND}) FROM {s.ITEMS}", [])[0]
    hits, chance = [], []
    for user in active_users[:16]:
        for _, reasons in explained(user).items:
            for reason in reasons:
                if reason.topic in ("brand", "category"):
                    cited = reason.claims[s.BRAND if reason.topic == "brand" else s.CATEGORY]
                    hits.append(cited in favourites[user])
                    pool = n_brands if reason.topic == "brand" else n_categories
                    chance.append(len(favourites[user]) / pool)
    assert len(hits) >= 30
    assert np.mean(hits) > 2 * np.mean(chance)
