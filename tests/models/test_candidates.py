"""Co-visitation, steps and candidate sets on hand-made histories."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from analytics import schema as s
from models import candidates as c

T0 = datetime(2024, 1, 1)


def _con(events: list[tuple[str, str, int]], items: list[tuple[str, str, str]] = ()) -> duckdb.DuckDBPyConnection:
    """In-memory shop from (user, item, minute) triples; items are (id, category, brand)."""
    con = duckdb.connect()
    s.create_tables(con)
    con.executemany(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) VALUES (?, ?, ?, ?)",
                    [(u, i, s.VIEW, T0 + timedelta(minutes=m)) for u, i, m in events])
    if items:
        con.executemany(f"INSERT INTO {s.ITEMS} ({s.ITEM_ID}, {s.CATEGORY}, {s.BRAND}) VALUES (?, ?, ?)", list(items))
    return con


def _weights(con, table) -> dict[tuple[str, str], tuple[float, float]]:
    return {(a, b): (w, p) for a, b, w, p in con.execute(f"SELECT src, dst, w, p FROM {table}").fetchall()}


def test_forward_and_backward_covisitation_weights() -> None:
    con = _con([("A", "x", 1), ("A", "y", 2), ("A", "z", 3), ("B", "x", 1), ("B", "y", 2)])
    index = c.build_index(con, s.EVENTS, c.CandidateConfig(), "t")
    nxt = _weights(con, index.covis_tables["next"])
    # x->y: distance 1 for both users; x->z: distance 2 (1/2); y->z: distance 1.
    assert nxt[("x", "y")][0] == pytest.approx(2.0)
    assert nxt[("x", "z")][0] == pytest.approx(0.5)
    assert nxt[("y", "z")][0] == pytest.approx(1.0)
    assert nxt[("x", "y")][1] == pytest.approx(0.8)  # share of x's mass
    assert ("y", "x") not in nxt
    prev = _weights(con, index.covis_tables["prev"])
    assert prev[("y", "x")][0] == pytest.approx(2.0)
    assert prev[("z", "x")][0] == pytest.approx(0.5)
    near = _weights(con, index.covis_tables["near"])
    assert near[("x", "y")][0] == 2.0 and near[("y", "x")][0] == 2.0  # once per user


def test_steps_merge_baskets_and_collapse_repeated_views() -> None:
    con = _con([("C", "a", 1), ("C", "b", 1), ("C", "c", 2),
                ("D", "v", 1), ("D", "v", 2), ("D", "v", 3), ("D", "w", 4)])
    c.build_sequences(con, s.EVENTS, "seq")
    rows = con.execute(f"SELECT {s.USER_ID}, {s.ITEM_ID}, pos, step FROM seq ORDER BY 1, 3, 2").fetchall()
    assert rows == [("C", "a", 1, 2), ("C", "b", 1, 2), ("C", "c", 2, 1), ("D", "v", 1, 2), ("D", "w", 2, 1)]
    index = c.build_index(con, s.EVENTS, c.CandidateConfig(), "t")
    nxt = _weights(con, index.covis_tables["next"])
    assert nxt[("a", "b")][0] == pytest.approx(1.0) and nxt[("b", "a")][0] == pytest.approx(1.0)
    assert nxt[("v", "w")][0] == pytest.approx(1.0)  # the repeats do not add distance or weight


def _shop(unbranded: str = "") -> duckdb.DuckDBPyConnection:
    events = []
    for u in range(12):  # everyone walks i0 -> i1 -> i2 -> i3; user 0 stops at i1
        path = ["i0", "i1"] if u == 0 else ["i0", "i1", "i2", "i3"]
        events += [(f"u{u}", item, 10 * u + k) for k, item in enumerate(path)]
    events += [("u99", "i9", 500), ("u99", "i8", 501)]
    items = [(f"i{j}", f"C{j % 2}", None if f"i{j}" == unbranded else f"B{j % 3}") for j in range(10)]
    return _con(events, items)


def test_candidates_exclude_seen_items_are_ranked_and_capped() -> None:
    con = _shop()
    config = c.CandidateConfig(n_candidates=5, n_popular=8)
    index = c.build_index(con, s.EVENTS, config, "t")
    con.execute("CREATE TEMP TABLE users AS SELECT 'u0' AS user_id UNION ALL SELECT 'u5'")
    c.generate(con, index, s.EVENTS, "users", "cand")
    rows = con.execute("SELECT user_id, item_id, cand_rank, next_sum, next_s1 FROM cand ORDER BY 1, 3").fetchall()
    by_user = {}
    for user, item, rank, next_sum, next_s1 in rows:
        by_user.setdefault(user, []).append((item, rank, next_sum, next_s1))
    u0 = by_user["u0"]
    assert [r for _, r, _, _ in u0] == list(range(1, len(u0) + 1)) and len(u0) <= 5
    assert not {"i0", "i1"} & {i for i, *_ in u0}  # seen items are never candidates
    assert u0[0][0] == "i2"  # what follows the last item comes first
    # next_s1 = weight from the last step alone: i1 -> i2 at distance 1 for 11 users.
    assert u0[0][3] == pytest.approx(11.0)
    assert {"i0", "i1", "i2", "i3"}.isdisjoint(i for i, *_ in by_user["u5"])


def test_items_without_a_brand_keep_their_co_visitation_rank() -> None:
    con = _shop(unbranded="i2")
    index = c.build_index(con, s.EVENTS, c.CandidateConfig(), "t")
    con.execute("CREATE TEMP TABLE users AS SELECT 'u0' AS user_id")
    c.generate(con, index, s.EVENTS, "users", "cand")
    assert con.execute("SELECT item_id FROM cand WHERE cand_rank = 1").fetchone()[0] == "i2"


def test_baselines_fill_with_popular_items_and_skip_seen() -> None:
    con = _shop()
    index = c.build_index(con, s.EVENTS, c.CandidateConfig(), "t")
    con.execute("CREATE TEMP TABLE users AS SELECT 'u0' AS user_id")
    c.generate(con, index, s.EVENTS, "users", "cand")
    popular = c.popularity_ranking(con, index, "users", s.EVENTS, 3)
    assert popular["u0"][:2] == ["i2", "i3"]  # i0/i1 most popular but seen
    covisit = c.covisit_ranking(con, index, "cand", "users", s.EVENTS, 4)
    assert covisit["u0"][0] == "i2" and len(covisit["u0"]) == 4
    assert not {"i0", "i1"} & set(covisit["u0"])


def test_bucketed_index_build_equals_the_one_pass_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large history's co-visitation weights are built in customer buckets (issue 19): the
    untruncated weights and the served tables must equal the one-pass build row for row."""
    from models import covis_build

    events = []
    for u in range(40):  # revisits, baskets (same minute) and pairs repeated within one history
        path = [f"i{(u * 7 + k * (u % 5 + 1)) % 17}" for k in range(3 + u % 9)]
        events += [(f"u{u}", item, 3 * k - (k % 4 == 1)) for k, item in enumerate(path * (1 + u % 2))]
    con = _con(events)
    one_pass = c.build_index(con, s.EVENTS, c.CandidateConfig(), "one")
    c.build_sequences(con, s.EVENTS, "seq")
    monkeypatch.setattr(covis_build, "BUCKET_ROWS", 40)
    assert covis_build.bucket_count(con, "seq") > 5
    bucketed = c.build_index(con, s.EVENTS, c.CandidateConfig(), "bk")
    for name, table in one_pass.covis_tables.items():
        for suffix in (c.WEIGHTS_SUFFIX, ""):
            mine, theirs = table + suffix, bucketed.covis_tables[name] + suffix
            assert con.execute(f"DESCRIBE {theirs}").fetchall() == con.execute(f"DESCRIBE {mine}").fetchall()
            rows = con.execute(f"SELECT * FROM {mine} ORDER BY ALL").fetchall()
            assert len(rows) > 20
            assert con.execute(f"SELECT * FROM {theirs} ORDER BY ALL").fetchall() == rows
