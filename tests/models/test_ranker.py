"""LambdaRank training: determinism, exact contributions, persistence errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from errors import RecsightError
from models.ranker import Ranker, RankerConfig, train_ranker, validation_users

FEATURES = ["signal", "noise"]


def _frame(seed: int = 0, users: int = 80, per_user: int = 12) -> pd.DataFrame:
    """Candidates whose label follows ``signal`` (with noise); one or two positives per user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        signal = rng.normal(size=per_user)
        labels = np.zeros(per_user)
        labels[np.argsort(-signal - rng.normal(scale=0.3, size=per_user))[:2]] = [4, 1]
        for j in range(per_user):
            rows.append({"user_id": f"u{u:03d}", "item_id": f"i{j}", "cand_rank": j + 1,
                         "signal": signal[j], "noise": rng.normal(), "label": labels[j]})
    return pd.DataFrame(rows)


CONFIG = RankerConfig(num_leaves=7, min_data_in_leaf=5, max_rounds=60, early_stopping=10, valid_fraction=0.25)


def test_same_seed_same_model_and_ranking() -> None:
    frame = _frame()
    a = train_ranker(frame, FEATURES, CONFIG)
    b = train_ranker(frame, FEATURES, CONFIG)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    np.testing.assert_array_equal(a.predict(frame), b.predict(frame))


def test_ranker_learns_the_signal() -> None:
    model = train_ranker(_frame(), FEATURES, CONFIG)
    test = _frame(seed=1)
    test["score"] = model.predict(test)
    top = test.sort_values("score", ascending=False).groupby("user_id").head(1)
    assert (top["label"] > 0).mean() > 0.6  # chance: 2 positives in 12 = 0.17
    assert model.importance()["signal"] > model.importance()["noise"]


def test_contributions_add_up_to_the_raw_score() -> None:
    model = train_ranker(_frame(), FEATURES, CONFIG)
    test = _frame(seed=2).head(50)
    contrib = model.contributions(test)
    assert contrib.shape == (50, len(FEATURES) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict(test), atol=1e-9)


def test_validation_split_is_per_user_and_stable() -> None:
    users = pd.Series([f"u{i}" for i in range(200) for _ in range(3)])
    mask = validation_users(users, 0.2, seed=42)
    by_user = pd.DataFrame({"u": users, "m": mask}).groupby("u")["m"].nunique()
    assert (by_user == 1).all()  # never half a user on each side
    assert 0.1 < mask.mean() < 0.3
    np.testing.assert_array_equal(mask, validation_users(users, 0.2, seed=42))


def test_save_load_round_trip_and_bad_files(tmp_path: Path) -> None:
    model = train_ranker(_frame(), FEATURES, CONFIG)
    path = tmp_path / "ranker.txt"
    model.save(path)
    loaded = Ranker.load(path, FEATURES)
    test = _frame(seed=3)
    np.testing.assert_allclose(loaded.predict(test), model.predict(test))
    assert [p.name for p in tmp_path.iterdir()] == ["ranker.txt"]  # no temp file left behind
    with pytest.raises(RecsightError, match="does not match its feature list"):
        Ranker.load(path, ["other", "names"])
    with pytest.raises(RecsightError, match="missing"):
        Ranker.load(tmp_path / "absent.txt", FEATURES)
    path.write_text("tree\nnot a model at all\n")
    with pytest.raises(RecsightError, match="corrupt") as info:
        Ranker.load(path, FEATURES)
    assert "\n" not in str(info.value)


def test_no_positive_in_any_group_is_a_clear_error() -> None:
    frame = _frame().assign(label=0.0)
    with pytest.raises(RecsightError, match="nothing to learn"):
        train_ranker(frame, FEATURES, CONFIG)
