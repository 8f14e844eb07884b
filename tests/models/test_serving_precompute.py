"""Precomputed serving lists: what training stores per customer is exactly what the live path ranks.

``train`` ranks every customer with the serving path and writes each one's top
``K_PRECOMPUTED`` (feature rows, scores, titles) into the model version; ``Recommender.recommend``
answers from it without SQL, and falls back to the live path for cold starts, larger ``k``, and
model versions written before the table existed (or with a damaged one). ``rescore`` (the
counterfactuals' verification) always runs the live path.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics import schema as s
from errors import RecsightError
from models import registry
from models.precompute import K_PRECOMPUTED, TOP_ITEMS_FILE, TOP_ITEMS_META, precompute_top_items
from models.serving import Recommendation, Recommender, TopItems
from tests.models.test_splits import COLD_USER, build_shop
from tests.training import ONE_THREAD, fast_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("precompute")
    db = build_shop(folder / "shop.duckdb", n_users=60, n_items=40)
    fast_train(db, folder / "models", ONE_THREAD)
    return db, folder / "models"


@pytest.fixture(scope="module")
def recommender(trained) -> Recommender:
    rec = Recommender.load(*trained)
    yield rec
    rec.close()


def _users(rec: Recommender) -> list[str]:
    with rec.connection() as con:
        return [r[0] for r in con.execute(f"SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS} ORDER BY 1").fetchall()]


def assert_same(stored: Recommendation, live: Recommendation) -> None:
    """Same customer, items, order, titles, scores (1e-9) and feature rows (columns, types, values)."""
    assert stored.user_id == live.user_id
    assert stored.cold_start == live.cold_start
    assert [(i.rank, i.item_id, i.title) for i in stored.items] == [(i.rank, i.item_id, i.title) for i in live.items]
    np.testing.assert_allclose([i.score for i in stored.items], [i.score for i in live.items], rtol=0, atol=1e-9)
    # DuckDB may sum a feature's terms in another order over many customers than over one: the
    # last bit of a float64 sum can differ, nothing more.
    pd.testing.assert_frame_equal(stored.features, live.features, check_exact=False, rtol=1e-12, atol=1e-12)


def test_training_stores_every_customers_list_in_the_version(trained, recommender: Recommender) -> None:
    meta = recommender.artifact.metadata[TOP_ITEMS_META]
    assert meta["k"] == K_PRECOMPUTED
    assert (recommender.artifact.path / meta["file"]).is_file()
    assert meta["file"] == f"serving/{TOP_ITEMS_FILE}"
    assert recommender.top is not None and len(recommender.top) == meta["customers"] == len(_users(recommender))
    assert "serving precompute" in recommender.artifact.metadata["timings_s"]


def test_precomputed_lists_are_exactly_what_the_live_path_ranks(recommender: Recommender, monkeypatch) -> None:
    users = _users(recommender)
    assert len(users) == 60
    for k in (1, 10, K_PRECOMPUTED):
        for user in users[::3]:
            live = recommender.recommend_live(user, k)
            with monkeypatch.context() as patch:  # the precomputed answer runs no SQL at all
                patch.setattr(recommender, "_rank", _refuse)
                patch.setattr(recommender, "con", None)
                stored = recommender.recommend(user, k)
            assert_same(stored, live)
            assert 0 < len(stored.items) <= k
    # and the scores are the ranker's on the stored rows (what TreeSHAP explains), to the last bit
    stored = recommender.recommend(users[0], 10)
    np.testing.assert_array_equal(recommender.ranker.predict(stored.features), [i.score for i in stored.items])


def _refuse(*args, **kwargs):
    raise AssertionError("the live path ran")


def test_a_list_cut_at_k_answers_only_up_to_k_and_larger_k_runs_live(recommender: Recommender,
                                                                      tmp_path) -> None:
    art = recommender.artifact
    with recommender.connection() as con:  # the tables the recommender serves from
        meta = precompute_top_items(con, recommender.tables, recommender.models, tmp_path / "top3.parquet", k=3)
    assert meta["k"] == 3 and meta["rows"] == 3 * meta["customers"]
    top = TopItems.read(tmp_path / "top3.parquet", 3, recommender.ranker.features)
    user = _users(recommender)[5]
    assert top.get(user, 4) is None  # beyond the stored head: unknown here
    assert_same(top.get(user, 3), recommender.recommend_live(user, 3))
    assert_same(top.get(user, 2), recommender.recommend_live(user, 2))
    cut = Recommender(recommender.con, art, recommender.tables, recommender.models, recommender.config, top)
    assert_same(cut.recommend(user, 7), recommender.recommend_live(user, 7))  # the live path answered


def test_cold_start_and_unknown_customers_still_take_the_live_path(recommender: Recommender) -> None:
    assert COLD_USER not in recommender.top.spans
    result = recommender.recommend(COLD_USER, 5)
    assert result.cold_start and len(result.items) == 5
    with pytest.raises(RecsightError, match="unknown customer"):
        recommender.recommend("c_nobody", 5)
    with pytest.raises(RecsightError, match="k must be"):
        recommender.recommend(_users(recommender)[0], 0)


def test_rescore_runs_the_live_path(recommender: Recommender, monkeypatch) -> None:
    user = _users(recommender)[7]
    expected = recommender.recommend(user, 10)
    monkeypatch.setattr(recommender.top, "get", _refuse)
    assert_same(recommender.rescore(user, 10), expected)
    with recommender.connection() as con:
        last = con.execute(f"SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ? ORDER BY {s.TS} DESC LIMIT 1",
                           [user]).fetchone()[0]
    without = recommender.rescore(user, 10, without_items=[last])  # a history the table never saw
    assert last not in {i.item_id for i in expected.items}
    assert without.items
    assert [i.item_id for i in without.items] != [i.item_id for i in expected.items]


def _copy_models(models: Path, into: Path) -> Path:
    shutil.copytree(models, into)
    return into / registry.VERSIONS_DIR / (into / registry.CURRENT_FILE).read_text().strip()


def test_a_version_without_the_table_serves_the_same_lists_live(trained, recommender: Recommender,
                                                               tmp_path) -> None:
    db, models = trained
    version = _copy_models(models, tmp_path / "older")
    (version / "serving" / TOP_ITEMS_FILE).unlink()
    meta = json.loads((version / registry.METADATA_FILE).read_text())
    del meta[TOP_ITEMS_META]  # as a version written before the table existed
    (version / registry.METADATA_FILE).write_text(json.dumps(meta))
    older = Recommender.load(db, tmp_path / "older")
    try:
        assert older.top is None
        for user in _users(recommender)[:12:4]:
            assert_same(older.recommend(user, 10), recommender.recommend(user, 10))
    finally:
        older.close()


@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_a_damaged_table_is_a_warning_and_the_live_path_answers(trained, recommender: Recommender, tmp_path,
                                                               caplog, damage: str) -> None:
    db, models = trained
    version = _copy_models(models, tmp_path / damage)
    path = version / "serving" / TOP_ITEMS_FILE
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with caplog.at_level(logging.WARNING, logger="models.serving"):
        damaged = Recommender.load(db, tmp_path / damage)
    try:
        assert damaged.top is None
        assert "precomputed lists" in caplog.text and "live path" in caplog.text
        user = _users(recommender)[3]
        assert_same(damaged.recommend(user, 10), recommender.recommend(user, 10))
    finally:
        damaged.close()
