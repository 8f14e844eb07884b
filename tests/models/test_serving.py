"""Serving one customer: cold start, unknown customers, id lookup on the served shop, and the kept feature rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics.customers import resolve_customer
from analytics.privacy import pseudonymise
from errors import RecsightError
from models.config import QUICK
from models.serving import Recommender
from models.training import train
from tests.conftest import TEST_SECRET
from tests.models.test_splits import COLD_USER, build_shop


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("hybrid")
    db = build_shop(folder / "shop.duckdb")
    train(db, folder / "models", config=QUICK)
    return db, folder / "models"


@pytest.fixture(scope="module")
def recommender(trained) -> Recommender:
    rec = Recommender.load(*trained)
    yield rec
    rec.close()


def test_known_customer_gets_ranked_unseen_items_with_their_feature_rows(recommender: Recommender) -> None:
    user = "c_user0003"
    result = recommender.recommend(user, k=5)
    assert not result.cold_start
    assert [i.rank for i in result.items] == [1, 2, 3, 4, 5]
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)
    seen = {r[0] for r in recommender.con.execute("SELECT item_id FROM events WHERE user_id = ?", [user]).fetchall()}
    assert not seen & {i.item_id for i in result.items}
    assert all(i.title.startswith("Item ") for i in result.items)
    # The kept rows reproduce the scores, and TreeSHAP adds up to them (what explanations rely on).
    assert list(result.features["item_id"]) == [i.item_id for i in result.items]
    np.testing.assert_allclose(recommender.ranker.predict(result.features), scores, rtol=1e-9)
    np.testing.assert_allclose(recommender.ranker.contributions(result.features).sum(axis=1), scores, atol=1e-6)
    assert recommender.feature_label("attention_score").startswith("Deep-interest")


def test_cold_start_customer_gets_popular_items(recommender: Recommender) -> None:
    result = recommender.recommend(COLD_USER, k=5)
    assert result.cold_start
    assert len(result.items) == 5
    popular = [r[0] for r in recommender.con.execute(
        f"SELECT item_id FROM {recommender.tables.index.popular} ORDER BY pop_rank LIMIT 15").fetchall()]
    assert {i.item_id for i in result.items} <= set(popular)
    assert result.to_dict()["cold_start"] is True


def test_unknown_customer_is_a_one_line_error(recommender: Recommender) -> None:
    with pytest.raises(RecsightError, match="unknown customer") as info:
        recommender.recommend("c_nobody", k=5)
    assert "\n" not in str(info.value)
    with pytest.raises(RecsightError, match="unknown customer"), recommender.connection() as con:
        resolve_customer(con, "nobody", TEST_SECRET)


def test_resolve_customer_accepts_a_pseudonym_or_a_shop_id(recommender: Recommender, trained) -> None:
    with recommender.connection() as con:
        assert resolve_customer(con, "c_user0003") == "c_user0003"
    # A shop id is found through its keyed hash: register one such customer in a copy of the shop
    # (the users table is not part of the data fingerprint, so the trained model still loads).
    db, models = trained
    copy = db.parent / "copy.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    con.execute("INSERT INTO users (user_id) VALUES (?)", [pseudonymise("SHOP-42", TEST_SECRET)])
    con.close()
    rec = Recommender.load(copy, models)
    try:
        with rec.connection() as con:
            user = resolve_customer(con, " SHOP-42 ", TEST_SECRET)
        assert user == pseudonymise("SHOP-42", TEST_SECRET)
        assert rec.recommend(user, k=3).cold_start
        with pytest.raises(RecsightError, match="RECSIGHT_SECRET is not set"), rec.connection() as con:
            resolve_customer(con, "SHOP-42", "")
    finally:
        rec.close()
