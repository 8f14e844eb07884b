"""Global importance: written at training time next to the model, and equal to the per-item SHAP."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from errors import RecsightError
from explain.global_view import (
    ROWS_FILE,
    SUMMARY_FILE,
    compute_global_importance,
    global_importance,
    load_global_importance,
    sample_users,
    save_global_importance,
)
from models.serving import Recommender
from tests.explain.conftest import Shop


def test_training_saved_the_global_importance_without_customer_ids(shop: Shop, recommender: Recommender) -> None:
    folder = recommender.artifact.path
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert summary["features"] == recommender.ranker.features and summary["n_users"] > 0
    assert summary["segment_by"] == "RFM segment"
    rows = pd.read_parquet(folder / ROWS_FILE)
    assert "user_id" not in rows.columns and not rows.astype(str).apply(lambda c: c.str.startswith("c_").any()).any()
    loaded = global_importance(shop.models)  # from the models folder, through CURRENT
    assert loaded.by_feature().equals(global_importance(recommender).by_feature())


def test_importance_is_the_mean_absolute_shap_of_the_listed_items(recommender: Recommender) -> None:
    importance = compute_global_importance(recommender, n_users=25, k=5)
    assert importance.n_users == 25 and len(importance.rows) <= 25 * 5
    assert set(importance.rows["rank"]) <= set(range(1, 6))
    # rows reproduce SHAP of those items: base + sum = score
    shap = importance.rows[[f"shap:{f}" for f in importance.features]].to_numpy()
    np.testing.assert_allclose(importance.base + shap.sum(axis=1), importance.rows["score"], atol=1e-6)
    by_feature = importance.by_feature()
    assert list(by_feature["mean_abs_shap"]) == sorted(by_feature["mean_abs_shap"], reverse=True)
    np.testing.assert_allclose(by_feature.set_index("feature").loc[importance.features, "mean_abs_shap"],
                               np.abs(shap).mean(axis=0))
    by_group = importance.by_group()
    assert set(by_group["group"]) == set(by_feature["group"])
    # a group's importance is that of its summed SHAP: never more than the sum of its members'
    members = by_feature.groupby("group")["mean_abs_shap"].sum()
    for group, value in zip(by_group["group"], by_group["mean_abs_shap"]):
        assert value <= members[group] + 1e-12
    segments = importance.by_segment()
    assert set(segments["segment"]) == set(importance.rows["segment"].fillna("unknown"))
    assert segments.groupby("segment")["rows"].first().sum() == len(importance.rows)


def test_rows_are_what_the_sampled_customers_see(recommender: Recommender) -> None:
    importance = compute_global_importance(recommender, n_users=4, k=1, seed=7)
    with recommender.connection() as con:
        users = sample_users(con, recommender.tables.history, 4, seed=7)
    for user in users:
        top = recommender.recommend(user, k=1).items[0]
        same = importance.rows[importance.rows["item_id"] == top.item_id]
        assert (abs(same["score"] - top.score) < 1e-9).any()
    dependence = importance.dependence("category_share")
    assert list(dependence.columns) == ["value", "contribution", "segment"] and len(dependence) == len(importance.rows)
    with pytest.raises(RecsightError, match="no feature"):
        importance.dependence("nonsense")


def test_save_and_load_round_trip(recommender: Recommender, tmp_path) -> None:
    importance = compute_global_importance(recommender, n_users=10, k=3)
    assert load_global_importance(tmp_path) is None
    save_global_importance(importance, tmp_path)
    again = load_global_importance(tmp_path)
    assert again.summary() == importance.summary()
    (tmp_path / SUMMARY_FILE).write_text("{broken")
    with pytest.raises(RecsightError, match="unreadable"):
        load_global_importance(tmp_path)
    with pytest.raises(RecsightError, match="no global importance"):
        global_importance(tmp_path / "empty")
