"""Protocols: which events each stage may see and which it must predict.

``build_shop`` (a tiny shop with sequential structure) is shared by the engine's tests.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from analytics import schema as s
from errors import RecsightError
from models import splits

BASE = datetime(2024, 1, 1)
COLD_USER = "c_cold0000000000000000"


def build_shop(path: Path, *, n_users: int = 60, n_items: int = 30, days: int = 60, order_only: bool = False,
               seed: int = 0) -> Path:
    """A small shop whose customers walk the catalogue in order (item j -> j+1), with some noise.

    Items have a category path, a brand and a price; one extra customer has no events (cold start).
    Order-only shops (leave-one-out) have one purchase per day per customer, all starting on BASE.
    """
    rng = random.Random(seed)
    con = duckdb.connect(str(path))
    s.create_tables(con)
    con.executemany(
        f"INSERT INTO {s.ITEMS} VALUES (?, ?, ?, ?, ?)",
        [(f"i{j:02d}", f"Item {j}", f"C{j % 3} > S{j % 6}", f"B{j % 4}", 5.0 + j) for j in range(n_items)],
    )
    rows = []
    for u in range(n_users):
        user = f"c_user{u:04d}"
        item = rng.randrange(n_items)
        length = rng.randint(5, 12)
        offsets = sorted(rng.uniform(0, days) for _ in range(length))
        for step in range(length):
            if order_only:
                ts, kind = BASE + timedelta(days=step), s.PURCHASE
            else:
                ts = BASE + timedelta(days=offsets[step])
                kind = rng.choices([s.VIEW, s.CART, s.PURCHASE], weights=[0.6, 0.15, 0.25])[0]
            rows.append((user, f"i{item:02d}", kind, ts))
            item = (item + 1) % n_items if rng.random() < 0.75 else rng.randrange(n_items)
    con.executemany(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) VALUES (?, ?, ?, ?)",
                    rows)
    users = sorted({r[0] for r in rows}) + [COLD_USER]
    con.executemany(f"INSERT INTO {s.USERS} ({s.USER_ID}) VALUES (?)", [(u,) for u in users])
    con.close()
    return path


@pytest.fixture
def loo_con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(build_shop(tmp_path / "loo.duckdb", order_only=True)), read_only=True)
    yield con
    con.close()


@pytest.fixture
def temporal_con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(build_shop(tmp_path / "shop.duckdb")), read_only=True)
    yield con
    con.close()


def _rows(con, sql):
    return con.execute(sql).fetchall()


def test_detect_protocol(loo_con, temporal_con) -> None:
    assert splits.detect_protocol(loo_con) == splits.LEAVE_ONE_OUT
    assert splits.detect_protocol(temporal_con) == splits.TEMPORAL


def test_leave_one_out_holds_out_the_last_and_second_to_last_event(loo_con) -> None:
    split = splits.make_split(loo_con, splits.LEAVE_ONE_OUT)
    ordered = {}
    for user, item in _rows(loo_con, f"SELECT {s.USER_ID}, {s.ITEM_ID} FROM {s.EVENTS} ORDER BY {s.USER_ID}, {s.TS}"):
        ordered.setdefault(user, []).append(item)
    test_labels = {u: i for u, i, _ in _rows(loo_con, f"SELECT * FROM {split.test.labels}")}
    train_labels = {u: i for u, i, _ in _rows(loo_con, f"SELECT * FROM {split.train.labels}")}
    test_hist = _rows(loo_con, f"SELECT {s.USER_ID}, count(*) FROM {split.test.history} GROUP BY 1")
    train_hist = _rows(loo_con, f"SELECT {s.USER_ID}, count(*) FROM {split.train.history} GROUP BY 1")
    for user, n in test_hist:
        assert n == len(ordered[user]) - 1
    for user, n in train_hist:
        assert n == len(ordered[user]) - 2
    for user, items in ordered.items():
        if user in test_labels:
            assert test_labels[user] == items[-1]
            assert items[-1] not in items[:-1]  # labels never repeat a seen item
        else:
            assert items[-1] in items[:-1]
        if user in train_labels:
            assert train_labels[user] == items[-2]
    assert len(test_labels) > 0.8 * len(ordered)
    assert split.target == "next item"


def test_temporal_windows_and_targets(temporal_con, monkeypatch) -> None:
    end = temporal_con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    split = splits.make_split(temporal_con, splits.TEMPORAL, window=timedelta(days=7))
    t_test, t_valid = end - timedelta(days=7), end - timedelta(days=14)
    assert split.test.as_of == t_test and split.train.as_of == t_valid
    assert temporal_con.execute(f"SELECT max({s.TS}) FROM {split.train.history}").fetchone()[0] < t_valid
    assert temporal_con.execute(f"SELECT max({s.TS}) FROM {split.test.history}").fetchone()[0] < t_test
    # Train labels come from [t_valid, t_test) and are never items of the user's train history.
    bad = temporal_con.execute(
        f"""SELECT count(*) FROM {split.train.labels} l JOIN {split.train.history} h USING ({s.USER_ID}, {s.ITEM_ID})"""
    ).fetchone()[0]
    assert bad == 0
    # Few purchasing users in this tiny shop: the target falls back to every graded behaviour.
    assert split.target == "any behaviour"
    monkeypatch.setattr(splits, "MIN_PURCHASE_USERS", 1)
    purchase_split = splits.make_split(temporal_con, splits.TEMPORAL, window=timedelta(days=7), prefix="p")
    assert purchase_split.target == "purchase"
    label_types = temporal_con.execute(
        f"""SELECT DISTINCT e.{s.EVENT_TYPE} FROM {purchase_split.test.labels} l
            JOIN {s.EVENTS} e USING ({s.USER_ID}, {s.ITEM_ID}) WHERE e.{s.TS} >= ?""", [t_test]).fetchall()
    assert (s.PURCHASE,) in label_types


def test_default_window_by_span() -> None:
    assert splits.default_window(timedelta(days=373)) == timedelta(days=30)
    assert splits.default_window(timedelta(days=90)) == timedelta(days=7)
    assert splits.default_window(timedelta(days=9)) == timedelta(days=1)


def test_bad_protocol_and_too_short_data_are_clear_errors(temporal_con) -> None:
    with pytest.raises(RecsightError, match="unknown protocol"):
        splits.make_split(temporal_con, "random")
    with pytest.raises(RecsightError, match="too short"):
        splits.make_split(temporal_con, splits.TEMPORAL, window=timedelta(days=40))
