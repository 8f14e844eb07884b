"""k-anonymity per figure, not per selection: every number and every row the Shop overview and
the Model page show describes at least k customers, or says it is hidden.

The attack (issue 13, item 5): an analyst selects the ``loyal`` segment for one day. The
selection as a whole has at least k active customers, so it passed; but the KPIs said "4 bought
something" and showed revenue from those 4, the funnel had stages of 4 and 9 customers, the
day's revenue bar was a few people's spending, and the dependence plot drew one point per
customer. The tests call the page callback bodies on the session's trained shop with the real
k (10) and check each figure against counts read from the database.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from dash import html

from analytics import profiles, schema
from dashboard import shop_overview as so
from errors import RecsightError
from explain.global_view import global_importance
from settings import Settings
from tests.components import find as _find
from tests.components import text as _text

SEGMENT = profiles.LOYAL


def _counts(shop: Settings, day: str, group_sql: str = "NULL",
            segment: str | None = SEGMENT) -> dict[Any, dict[str, int]]:
    """Distinct customers (of ``segment``, or all) on ``day`` per group: active, and per funnel stage."""
    stages = ", ".join(f"count(DISTINCT e.{schema.USER_ID}) FILTER (WHERE e.{schema.EVENT_TYPE} = '{stage}') AS {stage}"
                       for stage in so.FUNNEL_STAGES)
    with duckdb.connect(str(shop.db_path), read_only=True) as con:
        frame = con.execute(f"""
            SELECT {group_sql} AS grp, count(DISTINCT e.{schema.USER_ID}) AS active, {stages}
            FROM {schema.EVENTS} AS e LEFT JOIN {schema.ITEMS} AS i USING ({schema.ITEM_ID})
            WHERE CAST(e.{schema.TS} AS DATE) = CAST(? AS DATE)
              AND (? IS NULL OR e.{schema.USER_ID} IN (SELECT {schema.USER_ID} FROM {profiles.USER_PROFILES}
                                                       WHERE {profiles.RFM_SEGMENT} = ?))
            GROUP BY ALL""", [day, segment, segment]).df()
    return {row["grp"]: row.drop("grp").to_dict() for _, row in frame.iterrows()}


@pytest.fixture(scope="module")
def day(shop: Settings) -> str:
    """The busiest day on which k or more loyal customers were active but fewer than k bought:
    a selection the page accepts whose buyers are a small group."""
    with duckdb.connect(str(shop.db_path), read_only=True) as con:
        row = con.execute(f"""
            SELECT CAST(e.{schema.TS} AS DATE) AS d, count(DISTINCT e.{schema.USER_ID}) AS active,
                   count(DISTINCT e.{schema.USER_ID})
                       FILTER (WHERE e.{schema.EVENT_TYPE} = '{schema.PURCHASE}') AS buyers
            FROM {schema.EVENTS} AS e
            WHERE e.{schema.USER_ID} IN (SELECT {schema.USER_ID} FROM {profiles.USER_PROFILES}
                                         WHERE {profiles.RFM_SEGMENT} = ?)
            GROUP BY ALL HAVING active >= ? AND buyers BETWEEN 1 AND ? - 1
            ORDER BY active DESC, d LIMIT 1""", [SEGMENT, shop.k_anonymity, shop.k_anonymity]).fetchone()
    assert row is not None, "the test shop has no such day"
    return row[0].isoformat()


def _small(count: Any, k: int) -> bool:
    return 0 < int(count) < k


def test_the_kpis_hide_every_number_about_fewer_than_k(ov, shop, day):
    k = shop.k_anonymity
    truth = _counts(shop, day)[None]
    assert _small(truth[schema.PURCHASE], k)  # the attack's premise: a few buyers in a big enough selection
    kpis = html.Div(ov.update_overview(day, day, SEGMENT, shop).kpis)
    cards = {name: _text(_find(kpis, ov.KPI_IDS[name])) + " · " + _text(_find(kpis, f"{ov.KPI_IDS[name]}-caption"))
             for name in ov.KPI_IDS}
    assert f"{truth[schema.PURCHASE]} bought" not in cards["users"]
    assert f"fewer than {k}" in cards["users"]
    assert cards["users"].startswith(f"{truth['active']:,}")  # the selection itself is shown
    for name in ("revenue", "conversion"):
        assert cards[name].startswith("—") and f"fewer than {k}" in cards[name], cards[name]
    assert "purchases" not in cards["events"] or f"fewer than {k}" in cards["events"]


def test_each_funnel_stage_shows_k_or_more_customers_or_says_it_is_hidden(ov, shop, day):
    k = shop.k_anonymity
    truth = _counts(shop, day)[None]
    assert any(_small(truth[stage], k) for stage in so.FUNNEL_STAGES)
    trace = ov.update_overview(day, day, SEGMENT, shop).funnel.data[0]
    for i, stage in enumerate(so.FUNNEL_STAGES):
        users, events, label = trace.customdata[i], trace.x[i], trace.text[i]
        if _small(truth[stage], k):
            assert users is None and events is None and f"fewer than {k}" in label, (stage, users, events, label)
        else:
            assert users == truth[stage] and (users == 0 or users >= k), (stage, users)


def test_each_day_of_the_activity_chart_hides_revenue_of_fewer_than_k_buyers(ov, shop, day):
    k = shop.k_anonymity
    truth = _counts(shop, day)[None]
    figure = ov.update_activity(day, day, SEGMENT, "day", shop)
    events, revenue = figure.data[0], figure.data[1]
    assert list(events.customdata) == [truth["active"]]  # k or more active: the day's events are shown
    assert list(revenue.y) == [None] and list(revenue.customdata) == [None]  # fewer than k bought
    assert f"fewer than {k}" in (figure.layout.title.text or "") + " ".join(a.text for a in figure.layout.annotations)


def test_each_category_and_brand_row_hides_money_of_fewer_than_k_buyers(ov, shop, day):
    """All customers on the day: some categories have k or more customers but fewer buyers."""
    k = shop.k_anonymity
    top_level = f"nullif(trim(split_part(i.{schema.CATEGORY}, '{schema.CATEGORY_SEPARATOR}', 1)), '')"
    truth = {**_counts(shop, day, top_level, None), **_counts(shop, day, f"nullif(trim(i.{schema.BRAND}), '')", None)}
    assert any(row["active"] >= k and _small(row[schema.PURCHASE], k) for row in truth.values())
    for by in ("events", "revenue"):
        categories, brands = ov.update_rankings(day, day, ov.ALL_CUSTOMERS, "top", by, shop)
        assert by == "revenue" or categories.data  # rows with k or more customers are shown
        for figure in (categories, brands):
            for name, _events, purchases, revenue, users in (figure.data[0].customdata if figure.data else []):
                assert users >= k and truth[name]["active"] == users, (name, users)
                if _small(truth[name][schema.PURCHASE], k):
                    assert purchases is None and revenue is None and by != "revenue", (name, purchases, revenue)


def test_each_segment_row_hides_revenue_of_fewer_than_k_buyers(ov, shop, day):
    k = shop.k_anonymity
    truth = _counts(shop, day)[None]
    _figure, table = ov.update_segments(day, day, SEGMENT, shop)
    rows = {_text(row.children[0]).lower(): [_text(cell) for cell in row.children[1:]]
            for row in table.children[0].children[1].children}
    customers, active, revenue = rows[SEGMENT]
    assert active == f"{truth['active']:,}" and revenue == "–"
    assert f"fewer than {k}" in _text(table)


def test_the_dependence_plot_has_no_point_for_fewer_than_k_customers(pm, shop):
    k = shop.k_anonymity
    saved = global_importance(shop.models_dir)
    top = saved.by_feature()["feature"].iloc[0]
    for segment in (None, *sorted(saved.rows["segment"].dropna().unique())):
        try:
            figure = pm.update_dependence(None, top, segment, shop)
        except RecsightError as exc:  # a segment under k is refused as a whole
            assert "hidden for privacy" in str(exc)
            continue
        points = [point for trace in figure.data
                  for point in (trace.customdata if trace.customdata is not None else [None] * len(trace.x))]
        assert points and all(point is not None for point in points), "a point without its customer count"
        assert all(point[0] >= k for point in points), [point[0] for point in points]
