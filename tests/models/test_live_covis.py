"""Live co-visitation equals a rebuild (issue 14, item 3): events appended through the intake move
the serving co-visitation tables of a loaded :class:`Recommender` exactly as training them again
over the snapshot and the live events would.

On a copy of the session's trained shop. The batches hold what changes step sequences in awkward
ways: a repeat of the customer's last item (a run: no new step), events sharing a timestamp (one
step), an event older than the customer's newest (a late event: every later position shifts), an
item and a customer first seen live, and a second batch for a customer already changed (a delta on
top of a delta).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from analytics import schema as s
from models.candidates import build_index
from models.live_covis import CovisLinks
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows.intake import append_events


def _served(rec: Recommender) -> dict[str, pd.DataFrame]:
    with rec.connection() as con:
        return {name: con.execute(f"SELECT src, dst, w, p FROM {table} ORDER BY src, dst").df()
                for name, table in rec.tables.index.covis_tables.items()}


def _rebuilt(rec: Recommender) -> dict[str, pd.DataFrame]:
    """The co-visitation tables trained from scratch over what the connection sees (snapshot + live)."""
    with rec.connection() as con:
        index = build_index(con, s.EVENTS, rec.config.candidates, "rebuilt_ix")
        return {name: con.execute(f"SELECT src, dst, w, p FROM {table} ORDER BY src, dst").df()
                for name, table in index.covis_tables.items()}


def _assert_equal(served: dict[str, pd.DataFrame], rebuilt: dict[str, pd.DataFrame]) -> None:
    assert served.keys() == rebuilt.keys()
    for name in served:
        a, b = served[name], rebuilt[name]
        assert a[["src", "dst"]].equals(b[["src", "dst"]]), f"{name}: other pairs than a rebuild"
        assert (a["w"] - b["w"]).abs().max() <= 1e-9 and (a["p"] - b["p"]).abs().max() <= 1e-9, name


def _history(rec: Recommender, user_id: str) -> list[tuple[str, datetime]]:
    with rec.connection() as con:
        return con.execute(f"SELECT {s.ITEM_ID}, {s.TS} FROM {s.EVENTS} WHERE {s.USER_ID} = ? "
                           f"ORDER BY {s.TS}, {s.ITEM_ID}", [user_id]).fetchall()


def _event(tag: str, raw: str, item: str, ts: datetime, kind: str = s.VIEW) -> dict:
    return {"event_id": tag, "user_id": raw, "item_id": item, "event_type": kind, "ts": ts.isoformat()}


def _batches(rec: Recommender, shop: TrainedShop) -> tuple[list[dict], list[dict]]:
    raws = sorted(shop.raw_ids)
    a, b, c = raws[0], raws[1], raws[2]
    with rec.connection() as con:
        popular = [r[0] for r in con.execute(f"SELECT {s.ITEM_ID} FROM {s.EVENTS} GROUP BY ALL "
                                             "ORDER BY count(*) DESC, 1 LIMIT 6").fetchall()]
        end = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    last_a = _history(rec, shop.pseudonym(a))[-1][0]
    first_b, second_b = (ts for _, ts in _history(rec, shop.pseudonym(b))[:2])
    t = [end + timedelta(minutes=n) for n in range(1, 12)]
    first = [
        _event("a1", a, last_a, t[0]),  # repeats the last item: the run goes on, no new step
        _event("a2", a, popular[0], t[1]),
        _event("a3", a, popular[1], t[2]), _event("a4", a, popular[2], t[2]),  # one step, two items
        _event("a5", a, "ITEM-NEW-LIVE", t[3]),  # an item the model never saw
        _event("a6", a, popular[0], t[4], s.CART),
        _event("b1", b, popular[3], first_b + (second_b - first_b) / 2),  # a late event, mid-history
        _event("b2", b, popular[4], t[5]),
        _event("n1", "CUSTOMER-NEW-LIVE", popular[0], t[1]), _event("n2", "CUSTOMER-NEW-LIVE", "ITEM-NEW-LIVE", t[2]),
        # three steps apart: a "next" pair, until the second batch puts a step between them
        _event("m1", "CUSTOMER-GAP", "ITEM-GAP-1", t[1]), _event("m2", "CUSTOMER-GAP", popular[0], t[2]),
        _event("m3", "CUSTOMER-GAP", popular[1], t[3]), _event("m4", "CUSTOMER-GAP", "ITEM-GAP-2", t[4]),
    ]
    second = [
        _event("a7", a, popular[5], t[6]), _event("a8", a, popular[1], t[7]),
        _event("c1", c, popular[5], t[6]), _event("c2", c, "ITEM-NEW-LIVE", t[6]),  # same ts
        _event("n3", "CUSTOMER-NEW-LIVE", popular[2], t[8]),
        _event("m5", "CUSTOMER-GAP", popular[2], t[1] + timedelta(seconds=30)),  # a late event: the pair goes
    ]
    return first, second


def test_live_covisitation_equals_a_rebuild_after_the_same_events(shop: TrainedShop,
                                                                 recommender: Recommender) -> None:
    trained = _served(recommender)
    first, second = _batches(recommender, shop)
    gap = []
    for batch in (first, second):
        assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)
        recommender.settle()
        served = _served(recommender)
        _assert_equal(served, _rebuilt(recommender))
        nxt = served["next"]
        gap.append(bool(((nxt["src"] == "ITEM-GAP-1") & (nxt["dst"] == "ITEM-GAP-2")).any()))
    assert gap == [True, False]  # a pair whose weight fell to zero is gone, as in a rebuild

    for name in served:  # the events moved every variant (else the comparison proves nothing)
        assert not served[name].equals(trained[name]), name
    assert (served["next"]["src"] == "ITEM-NEW-LIVE").any() and (served["next"]["dst"] == "ITEM-NEW-LIVE").any()

    # The links explanations cite follow the tables: the same as links read afresh from them.
    links = recommender.covis_links()
    with recommender.connection() as con:
        fresh = CovisLinks(con, recommender.tables.index.covis_tables)
    sources = sorted(set(served["next"]["src"]))[:200]
    targets = sorted(set(served["next"]["dst"]))
    variants = list(served)
    assert links.links(variants, sources, targets) == fresh.links(variants, sources, targets)
    assert links.links(variants, ["ITEM-NEW-LIVE"], targets)  # a source first seen live has links


def test_a_recommender_loaded_after_the_events_starts_from_the_same_tables(shop: TrainedShop,
                                                                           recommender: Recommender) -> None:
    first, second = _batches(recommender, shop)
    for batch in (first, second):
        assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)
    recommender.settle()  # both segments in one refresh
    fresh = Recommender.load(shop.db, shop.models)  # both segments applied at load
    try:
        _assert_equal(_served(fresh), _rebuilt(fresh))
        _assert_equal(_served(recommender), _served(fresh))
    finally:
        fresh.close()


def test_a_damaged_weights_file_stops_the_updates_not_the_serving(shop: TrainedShop,
                                                                  recommender: Recommender) -> None:
    trained = _served(recommender)
    for path in recommender.tables.index.folder.glob("*_w.parquet"):
        path.write_bytes(b"not parquet")
    first, _ = _batches(recommender, shop)
    assert append_events(shop.db, first, TEST_SECRET).accepted == len(first)
    user = shop.pseudonym(sorted(shop.raw_ids)[0])
    assert len(recommender.recommend(user, 10).items) == 10
    recommender.settle()  # the deferred update meets the damaged file
    assert recommender.live_covis is None
    assert len(recommender.recommend(user, 10).items) == 10
    served = _served(recommender)
    for name in trained:  # all or nothing: no variant half updated
        assert served[name].equals(trained[name]), name
