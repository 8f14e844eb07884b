"""The replay benchmark's core (bench/replay.py) on a tiny synthetic shop: its two promises.

Why test a benchmark: its table is only worth reading if (1) no target is scored with anything
from its own second, its own invoice or later, while everything strictly earlier *is* in, and
(2) the static list it compares against is exactly the list training precomputed. Both are
checked here from outside the replay: through the recommender's own connection at scoring time,
and against the precomputed lists file read directly.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from analytics import schema as s
from analytics.synth import generate_shop
from bench.replay import Target, popularity, prepare_shop, raw_frames, replay, summary_rows, train_shop_once
from models import registry
from models.precompute import TOP_ITEMS_FILE
from tests.training import FAST


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 400-customer shop split at its test cutoff, trained (FAST) on the earlier part, replayed."""
    root = tmp_path_factory.mktemp("replay")
    generate_shop(root / "synth", n_users=400, n_items=600, n_days=90, seed=11)
    events, items = raw_frames("generic", [root / "synth"])
    shop = prepare_shop("synthetic", events, items, root / "shop")
    models = train_shop_once(shop, root / "models", FAST)
    stream = pd.read_parquet(shop.folder / "stream.parquet")
    checks: list[tuple[Target, int, object, int, int, int]] = []

    def probe(rec: object, target: Target, live: tuple[str, ...]) -> None:
        with rec.connection() as con:  # what the recommender itself sees at the moment it ranks
            n_live, newest = con.execute(f"SELECT count(*), max({s.TS}) FROM live_events").fetchone()
            same_invoice = con.execute(
                f"SELECT count(*) FROM events WHERE {s.USER_ID} = ? AND {s.SESSION_ID} = ? AND {s.TS} >= ? "
                f"AND {s.EVENT_TYPE} = '{s.PURCHASE}'", [target.user, target.session_id, shop.cutoff]).fetchone()[0]
            touched = con.execute(  # any event of the customer on the item: scored at first contact
                f"SELECT count(*) FROM events WHERE {s.USER_ID} = ? AND {s.ITEM_ID} = ? AND {s.TS} >= ?",
                [target.user, target.item, shop.cutoff]).fetchone()[0]
        earlier = int((stream[s.TS] < target.moment).sum())
        checks.append((target, n_live, newest, same_invoice, touched, earlier))

    scored, counts = replay(shop, models, probe=probe)
    return {"shop": shop, "models": models, "scored": scored, "counts": counts, "checks": checks}


def test_every_target_is_scored_on_strictly_earlier_events_only(replayed: dict) -> None:
    checks = replayed["checks"]
    assert len(checks) >= 5, "the tiny shop must have a few target moments"
    for target, n_live, newest, same_invoice, touched, earlier in checks:
        assert newest is None or newest < target.moment, "an event of the target's second or later was in"
        assert same_invoice == 0, "the target's own invoice was in"
        assert touched == 0, "the customer had touched the target item already: it is scored at first contact"
        assert n_live == earlier, "every event strictly earlier than the moment must be in, and only those"
    assert replayed["counts"]["moments"] == len(checks)


def test_static_list_is_the_list_precomputed_at_training_time(replayed: dict) -> None:
    artifact = registry.load_current(replayed["models"])
    top = pd.read_parquet(artifact.path / "serving" / TOP_ITEMS_FILE)
    lists = {user: group[s.ITEM_ID].tolist()[:10] for user, group in top.groupby(s.USER_ID, sort=False)}
    shop = replayed["shop"]
    fallback = list(popularity(shop.db, shop.cutoff, shop.window_days))
    known = 0
    for x in replayed["scored"]:
        expected = lists.get(x.target.user)
        if x.target.new_customer:
            assert expected is None and list(x.static) == fallback
        else:
            known += 1
            assert list(x.static) == expected
            if not x.live_fresh:  # nothing new of theirs yet: recommend() answers the same precomputed list
                assert x.live == x.static
    assert known > 0


def test_targets_follow_the_temporal_protocol(replayed: dict) -> None:
    """A purchase in the window of an item the customer had not touched before the cutoff, scored at
    the customer's first contact with it (a view before the purchase moves the moment there)."""
    shop = replayed["shop"]
    with duckdb.connect(str(shop.db), read_only=True) as con:
        seen = set(con.execute(f"SELECT DISTINCT {s.USER_ID}, {s.ITEM_ID} FROM {s.EVENTS}").fetchall())
        (last,) = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()
    assert last < shop.cutoff, "the trained shop holds nothing from the window"
    stream = pd.read_parquet(shop.folder / "stream.parquet")
    for x in replayed["scored"]:
        assert x.target.moment >= shop.cutoff
        assert (x.target.user, x.target.item) not in seen
        mine = stream[(stream[s.USER_ID] == x.target.user_raw) & (stream[s.ITEM_ID] == x.target.item)]
        assert x.target.moment <= mine[s.TS].min(), "scored after the customer's first contact with the item"
        bought = mine.loc[mine[s.EVENT_TYPE] == s.PURCHASE, s.TS].min()
        assert x.target.touched_in_window == (mine[s.TS].min() < bought)
    rows = summary_rows("tiny", replayed["scored"])
    assert rows[0][1] == str(len(replayed["scored"]))
