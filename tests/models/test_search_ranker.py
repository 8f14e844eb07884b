"""The personalised search ranker: planted brand preference, SHAP sums, anonymous search,
artifact round trip and corrupt files, and no leakage from a training target's future."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics import schema as S
from errors import RecsightError
from models.search_features import CUSTOMER_FEATURES, QUERY_FEATURES, ItemStats, personal_context
from models.search_index import SearchIndex, build_search_index
from models.search_ranker import SearchRanker, rank_search
from models.search_training import SearchTrainingConfig, category_query, stage_groups, train_search_ranker

BRANDS = ["Acme", "Bolt", "Crest", "Dyna", "Ember", "Fjord"]  # Acme the most popular, Fjord the least
KINDS = {"Capacitors": "capacitor", "Staples": "staples", "Gloves": "nitrile gloves",
         "Tape": "duct tape", "Thermometers": "digital thermometer"}
START = datetime(2024, 1, 1)
CONFIG = SearchTrainingConfig(with_attention=False, k_candidates=40)


def _item(kind: str, brand: str) -> str:
    return f"{kind[:3].lower()}-{brand.lower()}"


def _shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 items (a kind per category, one per brand); 300 customers who mostly stay with one
    brand, brands chosen with skewed popularity."""
    items = pd.DataFrame([{S.ITEM_ID: _item(kind, brand), S.TITLE: f"{brand} {words} model {i}",
                           S.CATEGORY: f"Industrial > Electrical > {kind}", S.BRAND: brand, S.PRICE: 10.0 + i}
                          for kind, words in KINDS.items() for i, brand in enumerate(BRANDS)])
    rng = np.random.default_rng(3)
    weights = np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    rows = []
    for u in range(300):
        favourite = BRANDS[rng.choice(len(BRANDS), p=weights)]
        for step in range(6):
            brand = favourite if rng.random() < 0.9 else BRANDS[rng.choice(len(BRANDS), p=weights)]
            kind = list(KINDS)[rng.integers(len(KINDS))]
            rows.append({S.USER_ID: f"u{u:03d}", S.ITEM_ID: _item(kind, brand), S.EVENT_TYPE: S.PURCHASE,
                         S.TS: START + timedelta(days=step)})
    return items, pd.DataFrame(rows)


def _connect(items: pd.DataFrame, events: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    S.create_tables(con)
    con.register("items_frame", items)
    con.register("events_frame", events)
    con.execute(f"INSERT INTO {S.ITEMS} ({S.ITEM_ID}, {S.TITLE}, {S.CATEGORY}, {S.BRAND}, {S.PRICE}) "
                f"SELECT {S.ITEM_ID}, {S.TITLE}, {S.CATEGORY}, {S.BRAND}, {S.PRICE} FROM items_frame")
    con.execute(f"INSERT INTO {S.EVENTS} ({S.USER_ID}, {S.ITEM_ID}, {S.EVENT_TYPE}, {S.TS}) "
                f"SELECT {S.USER_ID}, {S.ITEM_ID}, {S.EVENT_TYPE}, {S.TS} FROM events_frame")
    return con


@pytest.fixture(scope="module")
def shop() -> tuple[duckdb.DuckDBPyConnection, SearchIndex, SearchRanker, ItemStats]:
    items, events = _shop()
    con = _connect(items, events)
    index = build_search_index(con, None)
    ranker = train_search_ranker(con, index, S.EVENTS, CONFIG)
    yield con, index, ranker, ItemStats.from_connection(con, index)
    con.close()


def _fjord_fan(con: duckdb.DuckDBPyConnection) -> None:
    """A customer who bought Fjord (the least popular brand) three times, no capacitor."""
    for day, kind in enumerate(("Staples", "Gloves", "Tape")):
        con.execute(f"INSERT INTO {S.EVENTS} ({S.USER_ID}, {S.ITEM_ID}, {S.EVENT_TYPE}, {S.TS}) VALUES (?, ?, ?, ?)",
                    ["fan", _item(kind, "Fjord"), S.PURCHASE, START + timedelta(days=day)])


def test_a_brand_fan_gets_their_brand_first_and_anonymous_search_does_not(shop) -> None:
    con, index, ranker, stats = shop
    _fjord_fan(con)
    try:
        context = personal_context(con, S.EVENTS, "fan")
        assert context is not None and context.brand_events == {"Fjord": 3}
        personal = rank_search(index, ranker, "capacitors", 5, stats=stats, personal=context)
        anonymous = rank_search(index, ranker, "capacitors", 5, stats=stats)
    finally:
        con.execute(f"DELETE FROM {S.EVENTS} WHERE {S.USER_ID} = 'fan'")
    assert personal.personalised and personal.hits[0].item_id == _item("Capacitors", "Fjord")
    assert not anonymous.personalised and anonymous.hits[0].item_id != _item("Capacitors", "Fjord")
    assert all(h.item_id.startswith("cap-") for h in anonymous.hits)  # the query decides the kind
    assert [h.rank for h in personal.hits] == [1, 2, 3, 4, 5]
    assert "capacitor" in {m.term for m in personal.hits[0].candidate.matched[S.TITLE]}


def test_shap_contributions_add_up_to_every_score(shop) -> None:
    con, index, ranker, stats = shop
    context = personal_context(con, S.EVENTS, "u001")
    for personal in (context, None):
        result = rank_search(index, ranker, "digital thermometer", 10, stats=stats, personal=personal)
        contrib = ranker.contributions(result.frame, result.personalised)
        assert contrib.shape == (len(result.frame), len(result.features) + 1)
        np.testing.assert_allclose(contrib.sum(axis=1), result.frame["score"], atol=1e-6, rtol=0)
        assert [h.score for h in result.hits] == result.frame["score"].head(len(result.hits)).tolist()


def test_anonymous_search_reads_query_features_only(shop) -> None:
    con, index, ranker, stats = shop
    assert personal_context(con, S.EVENTS, "nobody-at-all") is None  # no events: anonymous
    result = rank_search(index, ranker, "duct tape", 3, stats=stats)
    assert result.frame[list(CUSTOMER_FEATURES)].isna().all().all()
    assert set(result.features) <= set(QUERY_FEATURES) and len(result.hits) == 3
    assert result.hits[0].item_id.startswith("tap-")
    # the personal booster given NaN customer features still answers (LightGBM's missing branch)
    assert np.isfinite(ranker.predict(result.frame, personalised=True)).all()
    with pytest.raises(RecsightError):
        rank_search(index, ranker, "   ", 3, stats=stats)


def test_save_load_round_trip_and_corrupt_files(shop, tmp_path: Path) -> None:
    con, index, ranker, stats = shop
    folder = tmp_path / "search"
    ranker.save(folder)
    loaded = SearchRanker.load(folder)
    context = personal_context(con, S.EVENTS, "u002")
    frame = rank_search(index, ranker, "staples", 5, stats=stats, personal=context).frame
    for personalised in (True, False):
        np.testing.assert_array_equal(loaded.predict(frame, personalised), ranker.predict(frame, personalised))
    assert loaded.info["groups"] == ranker.info["groups"]
    (folder / "ranker.txt").write_text("tree\nnot a booster\n")
    with pytest.raises(RecsightError, match="corrupt"):
        SearchRanker.load(folder)
    (folder / "search_ranker.json").write_text("{not json")
    with pytest.raises(RecsightError, match="corrupt"):
        SearchRanker.load(folder)
    with pytest.raises(RecsightError, match="missing"):
        SearchRanker.load(tmp_path / "nowhere")


def test_a_training_target_ignores_events_at_or_after_it(shop) -> None:
    con, index, _, _ = shop
    events = con.execute(f"SELECT * FROM {S.EVENTS} ORDER BY {S.USER_ID}, {S.TS}").df()
    user = "u007"
    # stage 3 targets the user's 4th of 6 events: rewrite their 5th and 6th to another brand's items
    changed = events.copy()
    later = changed.index[(changed[S.USER_ID] == user) & (changed[S.TS] > START + timedelta(days=3))]
    changed.loc[later, S.ITEM_ID] = [_item("Capacitors", "Fjord"), _item("Gloves", "Fjord")]
    con.register("changed_frame", changed)
    con.execute("CREATE OR REPLACE TEMP TABLE changed_events AS SELECT * FROM changed_frame")

    def retrieve(query: str):
        return index.retrieve(query, CONFIG.k_candidates)

    before = stage_groups(con, index, S.EVENTS, 3, retrieve, CONFIG)
    after = stage_groups(con, index, "changed_events", 3, retrieve, CONFIG)
    mine = [f.loc[f[S.USER_ID] == user].reset_index(drop=True) for f in (before, after)]
    assert len(mine[0]) and mine[0]["label"].sum() == 1
    pd.testing.assert_frame_equal(mine[0], mine[1])
    # and the customer features are those of the events strictly before the target
    target = events[events[S.USER_ID] == user].iloc[3]
    assert mine[0]["target"].iloc[0] == target[S.ITEM_ID]
    earlier = events[(events[S.USER_ID] == user) & (events[S.TS] < target[S.TS])]
    brands = earlier[S.ITEM_ID].map(lambda i: next(b for b in BRANDS if i.endswith(b.lower())))
    expected = (brands == brands.iloc[0]).mean()
    row = mine[0][mine[0][S.ITEM_ID].str.endswith(brands.iloc[0].lower())].iloc[0]
    assert row["brand_share"] == pytest.approx(expected)


def test_category_query_drops_the_top_level_stopwords_and_repeats() -> None:
    assert category_query("Industrial & Scientific > Fasteners > Screws > Wood Screws") == "fasteners screws wood"
    assert category_query("Industrial & Scientific > Tapes, Adhesives & Sealants > Duct Tape") == \
        "tapes adhesives sealants duct tape"
    assert category_query("Industrial & Scientific") is None and category_query(None) is None
