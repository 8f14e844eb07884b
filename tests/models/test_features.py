"""Feature registry, and the leakage test: nothing from a stage's target window reaches
its candidates, features or attention scores."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analytics import schema as s
from models import features as f
from models.attention import AttentionConfig
from models.attention_training import train_attention
from models.batch import feature_frame, prepare_history
from models.config import EngineConfig
from models.splits import LEAVE_ONE_OUT, TEMPORAL, make_split
from tests.models.test_splits import build_shop

TINY_ATTENTION = AttentionConfig(epochs=1, dim=8, attention_hidden=4, head_hidden=8, negatives=8,
                                 max_history=10, batch_size=64, valid_users=20, valid_negatives=20)
WINDOW = timedelta(days=7)


def test_registry_names_and_labels_are_unique_and_readable() -> None:
    names = [spec.name for spec in f.FEATURES]
    labels = [spec.label for spec in f.FEATURES]
    assert len(set(names)) == len(names)
    assert len(set(labels)) == len(labels)
    assert all(label and label[0].isupper() and "_" not in label for label in labels)
    assert f.label_of("brand_share") == "Affinity to the item's brand"
    loo = f.feature_names(temporal=False, with_attention=False)
    assert "item_trend_7d" not in loo and f.ATTENTION_SCORE not in loo
    assert f.ATTENTION_SCORE in f.feature_names(temporal=True, with_attention=True)


def _frames(db: Path, protocol: str, users: list[str]) -> dict[str, pd.DataFrame]:
    """Feature rows (with attention scores) of both stages for a fixed set of users."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        split = make_split(con, protocol, window=WINDOW if protocol == TEMPORAL else None)
        attention = train_attention(con, split.train.history, TINY_ATTENTION)
        con.execute("CREATE TEMP TABLE fixed_users (user_id VARCHAR)")
        con.executemany("INSERT INTO fixed_users VALUES (?)", [(u,) for u in users])
        out = {}
        for stage in (split.train, split.test):
            tables = prepare_history(con, stage.history, stage.as_of, EngineConfig(), stage.name)
            frame = feature_frame(con, tables, "fixed_users", stage.name, attention=attention)
            out[stage.name] = frame.drop(columns="label").sort_values([s.USER_ID, s.ITEM_ID]).reset_index(drop=True)
        return out
    finally:
        con.close()


def _poison(db: Path, sql: str) -> None:
    con = duckdb.connect(str(db))
    con.execute(sql)
    con.close()


@pytest.mark.parametrize("protocol", [TEMPORAL, LEAVE_ONE_OUT])
def test_target_windows_never_reach_candidates_features_or_attention(tmp_path: Path, protocol: str) -> None:
    clean = build_shop(tmp_path / "clean.duckdb", order_only=protocol == LEAVE_ONE_OUT)
    poisoned = tmp_path / "poisoned.duckdb"
    shutil.copy(clean, poisoned)
    con = duckdb.connect(str(clean), read_only=True)
    users = [r[0] for r in con.execute(f"SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS} ORDER BY 1").fetchall()]
    end = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    con.close()
    if protocol == TEMPORAL:
        # Rewrite every test-window event to other items and types, and add a burst of purchases.
        _poison(poisoned, f"""
            UPDATE {s.EVENTS} SET {s.ITEM_ID} = 'i0' || right({s.ITEM_ID}, 1), {s.EVENT_TYPE} = 'purchase'
            WHERE {s.TS} >= TIMESTAMP '{end - WINDOW}';
            INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS})
            SELECT {s.USER_ID}, 'i29', 'purchase', TIMESTAMP '{end - timedelta(days=1)}'
            FROM (SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS})""")
    else:
        # Replace every user's last item (the leave-one-out test target).
        _poison(poisoned, f"""
            UPDATE {s.EVENTS} e SET {s.ITEM_ID} = 'i29'
            WHERE {s.TS} = (SELECT max({s.TS}) FROM {s.EVENTS} x WHERE x.{s.USER_ID} = e.{s.USER_ID})""")
    before, after = _frames(clean, protocol, users), _frames(poisoned, protocol, users)
    for stage in ("train", "test"):
        assert len(before[stage]) > 100
        assert before[stage][f.ATTENTION_SCORE].notna().all()
        pd.testing.assert_frame_equal(before[stage], after[stage])


def test_every_assembled_column_is_registered(tmp_path: Path) -> None:
    db = build_shop(tmp_path / "shop.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    split = make_split(con, TEMPORAL, window=WINDOW)
    tables = prepare_history(con, split.test.history, split.test.as_of, EngineConfig(), "t")
    con.execute(f"CREATE TEMP TABLE u AS SELECT DISTINCT {s.USER_ID} FROM {split.test.labels}")
    frame = feature_frame(con, tables, "u", "t", labels=split.test.labels)
    con.close()
    registered = set(f.feature_names(temporal=True, with_attention=False))
    assert registered <= set(frame.columns)
    assert set(frame.columns) - registered == {s.USER_ID, s.ITEM_ID, "label"}
    assert (frame["label"] > 0).any()
    # Affinity shares are shares: between 0 and 1.
    assert frame["brand_share"].between(0, 1).all() and frame["category_share"].between(0, 1).all()
