"""The Performance page's figures on a small shop whose answers are known by hand: per model version
and variant, per position and over time, under the list, version and date filters."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from analytics.attribution import PerformanceFilter
from analytics.live_store import LiveStore
from tests.analytics.ingest_support import pid, secret
from workflows import performance
from workflows.intake import BatchTooLarge

T0 = datetime(2024, 3, 1, 12, 0, 0)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def shown(n: int, user: str, items: list[str], version: str, variant: str | None, minutes: float = 0,
          list_name: str = "home") -> dict:
    return {"event_id": f"s{n}", "user_id": user, "ts": at(minutes), "list": list_name, "items": items,
            "model_version": version, "experiment": "hp" if variant else None, "variant": variant}


def did(n: int, user: str, item: str, kind: str, minutes: float, **more: object) -> dict:
    return {"event_id": f"e{n}", "user_id": user, "item_id": item, "event_type": kind, "ts": at(minutes), **more}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """Variant A (v1) shown to u0..u3, variant B (v2) to u4 and u5, plus one product-page list
    for u5 a day later; four clicks, two purchases (revenue 10 each) inside the window, one
    click outside it."""
    db = tmp_path / "shop.duckdb"
    impressions = [shown(n, f"u{n}", ["i1", "i2", "i3"], "v1", "A") for n in range(4)]
    impressions += [shown(n, f"u{n}", ["i3", "i1", "i2"], "v2", "B") for n in (4, 5)]
    impressions.append(shown(6, "u5", ["i7"], "v2", None, minutes=24 * 60, list_name="product"))
    assert performance.append_impressions(db, impressions, secret()).accepted == 7
    LiveStore(db).append_events([
        did(1, "u0", "i1", "click", 5), did(2, "u1", "i1", "click", 6), did(3, "u1", "i1", "purchase", 7, price=10.0),
        did(4, "u2", "i2", "click", 8),
        did(5, "u4", "i3", "click", 9), did(6, "u4", "i3", "purchase", 10, price=5.0, quantity=2),
        did(7, "u3", "i3", "click", 26 * 60),  # outside the 24 hours
        did(8, "u5", "i9", "purchase", 11, price=99.0),  # never shown
    ], secret())
    return db


def _rows(frame, keys: list[str], measures: list[str]) -> dict:
    return {tuple(r[:len(keys)]): tuple(r[len(keys):]) for r in frame[keys + measures].values.tolist()}


def test_figures_per_variant_position_and_in_total(shop: Path) -> None:
    sums = performance.performance_figures(shop)
    measures = ["lists", "impressions", "customers", "clicks", "purchases", "revenue", "clickers", "buyers"]
    assert _rows(sums.total, [], measures) == {(): (7, 19, 6, 4, 2, 20.0, 4, 2)}
    variants = _rows(sums.by_variant, ["model_version", "experiment", "variant"], measures)
    assert variants == {("v1", "hp", "A"): (4, 12, 4, 3, 1, 10.0, 3, 1),
                        ("v2", None, None): (1, 1, 1, 0, 0, 0.0, 0, 0),
                        ("v2", "hp", "B"): (2, 6, 2, 1, 1, 10.0, 1, 1)}
    positions = _rows(sums.by_position, ["position"], ["lists", "impressions", "clicks", "purchases"])
    assert positions == {(1,): (7, 7, 3, 2), (2,): (6, 6, 1, 0), (3,): (6, 6, 0, 0)}


def test_over_time_is_hourly_for_a_short_span_and_daily_for_a_long_one(shop: Path) -> None:
    sums = performance.performance_figures(shop)
    assert sums.bucket == "hour" and sums.span == (date(2024, 3, 1), date(2024, 3, 2))
    periods = sorted({p.to_pydatetime() for p in sums.over_time["period"]})
    assert periods == [T0, T0 + timedelta(days=1)]
    assert performance.choose_bucket(date(2024, 3, 1), date(2024, 3, 3)) == "hour"
    assert performance.choose_bucket(date(2024, 3, 1), date(2024, 3, 4)) == "day"


def test_filters_narrow_every_figure(shop: Path) -> None:
    home = performance.performance_figures(shop, PerformanceFilter(list_name="home")).total
    assert (home["lists"].iloc[0], home["impressions"].iloc[0]) == (6, 18)
    v2 = performance.performance_figures(shop, PerformanceFilter(model_version="v2")).by_variant
    assert set(v2["variant"].dropna()) == {"B"} and int(v2["impressions"].sum()) == 7
    later = performance.performance_figures(shop, PerformanceFilter(start=date(2024, 3, 2), end=date(2024, 3, 2)))
    assert int(later.total["lists"].iloc[0]) == 1 and later.bucket == "hour"
    nothing = performance.performance_figures(shop, PerformanceFilter(unversioned=True)).total
    assert int(nothing["impressions"].iloc[0]) == 0 and float(nothing["revenue"].iloc[0]) == 0.0


def test_the_choices_and_the_per_customer_outcomes(shop: Path) -> None:
    choices = performance.performance_choices(shop)
    assert choices is not None
    assert (choices.lists, choices.versions, choices.bounds) == (["home", "product"], ["v1", "v2"],
                                                                 (date(2024, 3, 1), date(2024, 3, 2)))
    per_customer = performance.customer_outcomes(shop, experiment="hp")
    by_customer = _rows(per_customer, ["user_id"], ["variant", "impressions", "clicks", "purchases", "revenue"])
    assert by_customer[(pid("u1"),)] == ("A", 3, 1, 1, 10.0)
    assert by_customer[(pid("u4"),)] == ("B", 3, 1, 1, 10.0)
    assert len(by_customer) == 6


def test_impressions_without_any_event_yet_show_with_nothing_attributed(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    assert performance.performance_choices(db) is None and not performance.has_impressions(db)
    performance.append_impressions(db, [shown(1, "u1", ["i1", "i2"], "v1", None)], secret())
    total = performance.performance_figures(db).total
    assert (int(total["impressions"].iloc[0]), int(total["clicks"].iloc[0])) == (2, 0)


def test_a_batch_over_the_limit_is_refused_whole(tmp_path: Path) -> None:
    batch = [shown(n, "u1", ["i1"], "v1", None) for n in range(performance.MAX_IMPRESSIONS_PER_BATCH + 1)]
    with pytest.raises(BatchTooLarge, match="at most 1,000"):
        performance.append_impressions(tmp_path / "shop.duckdb", batch, secret())
    assert not performance.has_impressions(tmp_path / "shop.duckdb")
