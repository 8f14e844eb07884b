"""From a DuckDB history table to the padded index arrays the attention model reads."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from analytics import schema
from errors import RecsightError
from models.sequences import (
    MISSING,
    PAD,
    UNKNOWN,
    Vocabulary,
    build_histories,
    build_vocabulary,
    gather_windows,
    load_sequences,
)

T0 = dt.datetime(2024, 3, 1, 12, 0)


def _con(with_items: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    schema.create_tables(con)
    events = [
        ("c_a", "i1", schema.VIEW, T0),
        ("c_a", "i2", schema.PURCHASE, T0 + dt.timedelta(hours=2)),
        ("c_a", "i2", schema.VIEW, T0 + dt.timedelta(hours=2)),     # same time: the view comes first
        ("c_a", "i3", schema.CART, T0 + dt.timedelta(hours=3)),
        ("c_a", "i9", schema.VIEW, T0 + dt.timedelta(hours=4)),     # not in the items table
        ("c_b", "i3", schema.VIEW, T0 + dt.timedelta(days=1)),
    ]
    con.executemany(
        f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}) "
        "VALUES (?, ?, ?, ?)", events)
    if with_items:
        con.executemany(
            f"INSERT INTO {schema.ITEMS} ({schema.ITEM_ID}, {schema.CATEGORY}, {schema.BRAND}) VALUES (?, ?, ?)",
            [("i1", "Beauty > Nails", "Acme"), ("i2", "Beauty > Hair", None), ("i3", None, "Acme"),
             ("i4", "Beauty > Nails", "Zeta")])   # i4 is never in the history
    return con


def test_vocabulary_reserves_padding_unknown_and_missing():
    vocab = build_vocabulary(_con(), schema.EVENTS)
    assert vocab.items == ("i1", "i2", "i3", "i4", "i9")   # catalogue items count even if never seen
    idx = vocab.item_index(["i1", "i4", "never"])
    assert idx[0] >= 2 and idx[1] >= 2 and idx[2] == UNKNOWN
    assert vocab.categories == ("Beauty > Hair", "Beauty > Nails") and vocab.brands == ("Acme", "Zeta")
    i2, i3, i9 = vocab.item_index(["i2", "i3", "i9"])
    assert vocab.item_brand[i2] == MISSING and vocab.item_category[i3] == MISSING
    assert vocab.item_category[i9] == MISSING                  # no row in items: no category
    assert vocab.item_category[PAD] == PAD and vocab.item_category[UNKNOWN] == UNKNOWN
    assert list(vocab.category_index(["Beauty > Nails", None, "Other"]))[1:] == [MISSING, UNKNOWN]
    assert list(vocab.event_index([schema.VIEW, "teleport"]))[1] == UNKNOWN
    assert Vocabulary.from_state(vocab.to_state()).items == vocab.items


def test_sequences_are_time_ordered_with_views_before_same_time_purchases():
    con = _con()
    vocab = build_vocabulary(con, schema.EVENTS)
    seqs = load_sequences(con, schema.EVENTS, vocab)
    assert seqs.user_ids == ("c_a", "c_b")
    assert list(seqs.lengths) == [5, 1]
    a = slice(seqs.ptr[0], seqs.ptr[1])
    assert list(seqs.item_ids[a]) == ["i1", "i2", "i2", "i3", "i9"]
    assert list(seqs.event_types[a]) == [schema.VIEW, schema.VIEW, schema.PURCHASE, schema.CART, schema.VIEW]


def test_histories_keep_the_last_n_right_aligned_and_remember_everything_seen():
    con = _con()
    vocab = build_vocabulary(con, schema.EVENTS)
    hist = build_histories(con, schema.EVENTS, vocab, max_history=3)
    a, b = hist.rows(["c_a", "c_b"])
    assert list(hist.item_ids[a]) == ["i2", "i3", "i9"]          # last three, most recent last
    assert list(hist.event_types[a]) == [schema.PURCHASE, schema.CART, schema.VIEW]
    assert list(hist.items[b][:2]) == [PAD, PAD] and hist.item_ids[b, 2] == "i3"
    assert np.isnat(hist.ts[b, 0]) and hist.ts[b, 2] == np.datetime64(T0 + dt.timedelta(days=1))
    assert list(hist.lengths) == [5, 1]
    assert set(hist.seen(a)) == set(vocab.item_index(["i1", "i2", "i3", "i9"]))   # i1 is outside the window
    assert hist.rows(["nobody"])[0] == -1
    assert [e["item_id"] for e in hist.events_of("c_b")] == ["i3"] and hist.events_of("nobody") == []


def test_histories_for_chosen_users_only():
    con = _con()
    vocab = build_vocabulary(con, schema.EVENTS)
    hist = build_histories(con, schema.EVENTS, vocab, max_history=3, user_ids=["c_b", "c_absent"])
    assert hist.user_ids == ("c_b",)


def test_windows_before_a_position_hold_only_that_users_past():
    con = _con()
    vocab = build_vocabulary(con, schema.EVENTS)
    seqs = load_sequences(con, schema.EVENTS, vocab)
    # target = c_a's 4th behaviour (flat row 3): history rows 0..2; c_b's first: empty history
    w = gather_windows(seqs, np.array([0, 1]), np.array([3, seqs.ptr[1]]), length=4)
    assert list(w["rows"][0]) == [-1, 0, 1, 2]
    assert list(w["items"][1]) == [PAD] * 4
    assert list(w["events"][0][1:]) == list(vocab.event_index([schema.VIEW, schema.VIEW, schema.PURCHASE]))


def test_without_items_table_every_category_is_missing():
    con = _con(with_items=False)
    con.execute(f"DROP TABLE {schema.ITEMS}")
    vocab = build_vocabulary(con, schema.EVENTS)
    hist = build_histories(con, schema.EVENTS, vocab, max_history=2)
    real = hist.items != PAD
    assert np.all(hist.categories[real] == MISSING) and np.all(hist.brands[real] == MISSING)


def test_a_view_with_the_contract_columns_is_a_history_table():
    con = _con()
    cutoff = T0 + dt.timedelta(hours=3)
    con.execute(f"CREATE VIEW before_day2 AS SELECT * FROM {schema.EVENTS} WHERE {schema.TS} < TIMESTAMP '{cutoff}'")
    vocab = build_vocabulary(con, "before_day2")
    hist = build_histories(con, "before_day2", vocab, max_history=5)
    assert hist.user_ids == ("c_a",) and hist.lengths[0] == 3


@pytest.mark.parametrize("table, message", [
    ("missing_table", "does not exist"),
    ("events x; DROP TABLE events", "not a plain table"),
])
def test_bad_table_names_are_one_line_errors(table, message):
    with pytest.raises(RecsightError, match=message):
        build_vocabulary(_con(), table)


def test_empty_history_is_a_clear_error():
    con = _con()
    con.execute(f"CREATE VIEW nothing AS SELECT * FROM {schema.EVENTS} WHERE false")
    with pytest.raises(RecsightError, match="no events"):
        build_vocabulary(con, "nothing")
