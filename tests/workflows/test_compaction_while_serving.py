"""A compaction changes nothing a customer sees, and serving goes on through it.

Before the lineage (analytics/fingerprint.py), the shop file a compaction wrote had another data
fingerprint than the model's, so the next load refused the model until a retrain. Now, on a copy
of the session's trained shop: a recommender loaded after the compaction gives the same lists as
one loaded before it (the folded events stay live for the model), follows events appended after
it, and the process's recommender cache reloads onto it. A shop file changed by anything but a
compaction, or a model of another shop, is still refused with the same clear error. The server's
timer (workflows/compactor.py) folds what the intake wrote.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from analytics import schema as s
from analytics.db import connect_read_only, rewriting
from analytics.live_segments import list_segments, live_folder
from analytics.live_sql import folded_seq
from analytics.privacy import pseudonymise
from errors import RecsightError
from models import registry
from models.serving import Recommendation, Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows import compactor, recommenders
from workflows.intake import append_events, compact


def _two_customers(rec: Recommender, shop: TrainedShop) -> tuple[tuple[str, str], str]:
    """(raw id, pseudonym) of one customer with a precomputed list, and another one's pseudonym."""
    found = shop.listed_customers(rec)
    return found[0], found[1][1]


def _events(rec: Recommender, raw_id: str, tag: str, n: int = 4) -> list[dict]:
    """Views of ``n`` popular items the customer never touched, after the shop's last event."""
    with rec.connection() as con:
        start = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
        items = [r[0] for r in con.execute(
            f"""SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.ITEM_ID} NOT IN
                (SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ?)
                GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT ?""", [pseudonymise(raw_id, TEST_SECRET), n]).fetchall()]
    return [{"event_id": f"{tag}-{i}", "user_id": raw_id, "item_id": item, "event_type": s.VIEW,
             "ts": (start + timedelta(minutes=i + 1)).isoformat()} for i, item in enumerate(items)]


def _same(a: Recommendation, b: Recommendation) -> None:
    assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
    for x, y in zip(a.items, b.items):
        assert abs(x.score - y.score) < 1e-9


def test_a_recommender_loaded_after_a_compaction_serves_what_it_served_before(
        shop: TrainedShop, recommender: Recommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (raw, user), other = _two_customers(recommender, shop)
    settings = shop.settings(tmp_path / "state")
    cached = recommenders.recommender_for(settings)
    new = _events(recommender, raw, "before-compaction")
    assert append_events(shop.db, new, TEST_SECRET).accepted == len(new)
    recommender.settle()  # the links too (they follow the events a quarter second later)
    before, other_before = recommender.recommend(user, 10), recommender.recommend(other, 10)
    assert recommender.live is not None and recommender.live.changed(user)
    assert recommenders.recommender_for(settings) is cached

    result = compact(shop.db)
    assert result.events == len(new) and not list_segments(live_folder(shop.db))

    after = Recommender.load(shop.db, shop.models)  # refused with "trained on other data" before the fix
    try:
        assert after.artifact.base_seq == 0 and after.live is not None and after.live.changed(user)
        _same(after.recommend(user, 10), before)
        assert after.recommend(user, 10).features["user_events"].iloc[0] == before.features["user_events"].iloc[0]

        def no_live_path(*args: object, **kwargs: object) -> None:
            raise AssertionError("an unchanged customer must be served from the precomputed lists")

        monkeypatch.setattr(after, "_rank", no_live_path)
        _same(after.recommend(other, 10), other_before)
        monkeypatch.undo()

        more = _events(after, raw, "after-compaction", n=3)
        assert append_events(shop.db, more, TEST_SECRET).accepted == len(more)
        fresh = after.recommend(user, 10)
        assert fresh.features["user_events"].iloc[0] == before.features["user_events"].iloc[0] + len(more)
        assert not {e["item_id"] for e in more} & {i.item_id for i in fresh.items}
    finally:
        after.close()

    reloaded = recommenders.recommender_for(settings)  # the shop file changed: the cache reloads, and loads
    try:
        assert reloaded is not cached and reloaded.live is not None and reloaded.live.changed(user)
        assert cached._links._closed.is_set()  # the replaced one's background thread stops: it can be freed
        assert recommenders.recommender_for(settings) is reloaded
    finally:
        recommenders.forget_all()


def test_the_timer_loads_the_new_state_after_a_fold(shop: TrainedShop, recommender: Recommender,
                                                    tmp_path: Path) -> None:
    """The server's timer loads the recommender of the new shop file itself, so the first request
    after a compaction does not wait seconds for it."""
    settings = shop.settings(tmp_path / "state")
    before = recommenders.recommender_for(settings)
    (raw, _), _ = _two_customers(recommender, shop)
    append_events(shop.db, _events(recommender, raw, "timer-load"), TEST_SECRET)
    loaded: list[Recommender] = []
    thread = compactor.start(shop.db, 0.002, after=lambda: loaded.append(recommenders.recommender_for(settings)))
    try:
        assert thread is not None
        deadline = time.monotonic() + 60
        while not loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loaded and loaded[0] is not before
        assert recommenders.recommender_for(settings) is loaded[0]  # the request finds it loaded
    finally:
        compactor.stop(shop.db)
        recommenders.forget_all()


def test_a_second_compaction_keeps_the_lineage(shop: TrainedShop, recommender: Recommender) -> None:
    (raw, user), _ = _two_customers(recommender, shop)
    append_events(shop.db, _events(recommender, raw, "first"), TEST_SECRET)
    compact(shop.db)
    middle = Recommender.load(shop.db, shop.models)  # loaded between the two compactions
    try:
        append_events(shop.db, _events(middle, raw, "second", n=3), TEST_SECRET)
        middle.settle()
        expected = middle.recommend(user, 10)
    finally:
        middle.close()
    compact(shop.db)
    after = Recommender.load(shop.db, shop.models)
    try:
        assert after.artifact.base_seq == 0 and after.live is not None
        assert after.live.view.folded_seq == 2
        _same(after.recommend(user, 10), expected)
    finally:
        after.close()


def test_a_model_of_other_data_is_still_refused(shop: TrainedShop, recommender: Recommender) -> None:
    (raw, _), _ = _two_customers(recommender, shop)
    append_events(shop.db, _events(recommender, raw, "x"), TEST_SECRET)
    compact(shop.db)
    con = connect_read_only(shop.db)
    try:  # evaluation does not follow compactions: its split of this file is not the model's
        with pytest.raises(RecsightError, match="trained on other data"):
            registry.load_current(shop.models, con)
        assert registry.load_current(shop.models, con, follow_compactions=True).base_seq == 0
    finally:
        con.close()
    meta_file = registry.load_current(shop.models).path / registry.METADATA_FILE
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "fingerprint": "0" * 24}))  # trained on another shop
    with pytest.raises(RecsightError, match="trained on other data"):
        Recommender.load(shop.db, shop.models)
    meta_file.write_text(json.dumps({**meta, "live_seq": 7}))  # its snapshot is not in this lineage
    with pytest.raises(RecsightError, match="trained on other data"):
        Recommender.load(shop.db, shop.models)
    meta_file.write_text(json.dumps(meta))
    Recommender.load(shop.db, shop.models).close()
    with rewriting(shop.db) as rewrite:  # a plain ingest after the compaction breaks the chain
        rewrite.con.execute(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) "
                            "VALUES ('someone', 'something', 'view', TIMESTAMP '2031-01-01')")
    with pytest.raises(RecsightError, match="trained on other data"):
        Recommender.load(shop.db, shop.models)


def test_the_servers_timer_folds_what_the_intake_wrote(shop: TrainedShop, recommender: Recommender) -> None:
    assert compactor.compact_once(shop.db) is None  # nothing to fold: no new shop file
    (raw, _), _ = _two_customers(recommender, shop)
    append_events(shop.db, _events(recommender, raw, "timer"), TEST_SECRET)
    result = compactor.compact_once(shop.db)
    assert result is not None and result.events == 4
    assert not list_segments(live_folder(shop.db))
    with rewriting(shop.db) as rewrite:
        assert folded_seq(rewrite.con) == result.folded_through
        rewrite.discard()
    assert compactor.start(shop.db, 0) is None  # 0: never


def test_a_failed_scheduled_compaction_is_logged_not_raised(shop: TrainedShop, recommender: Recommender,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    (raw, _), _ = _two_customers(recommender, shop)
    append_events(shop.db, _events(recommender, raw, "fail"), TEST_SECRET)

    def broken(db_path: object) -> None:
        raise RecsightError("compaction failed, shop file and live segment unchanged: disk full")

    monkeypatch.setattr(compactor, "compact", broken)
    assert compactor.compact_once(shop.db) is None
    assert "disk full" in caplog.text
    assert list_segments(live_folder(shop.db))  # nothing lost: folded at the next tick


def test_the_timer_setting() -> None:
    from settings import load_settings
    assert load_settings({}).compact_minutes == 10
    assert load_settings({"RECSIGHT_COMPACT_MINUTES": "0"}).compact_minutes == 0
    with pytest.raises(RecsightError, match="RECSIGHT_COMPACT_MINUTES"):
        load_settings({"RECSIGHT_COMPACT_MINUTES": "-1"})

