"""The synthetic shop's files: events/items/users Parquet with raw shop ids, and the planted truth.

Why apart from the simulation: the simulation works on integer codes and microseconds; only
here do they become the ids, names and timestamps a shop's export has ("U000123", "I00042",
"Home > Kitchen > Knives"), and the planted preferences go to ``truth/``, where nothing that
reads events/items/users can see them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics import schema as S
from analytics.synth_behaviour import DAY_US, US
from analytics.synth_catalogue import Catalogue
from analytics.synth_customers import ACTIVITY, COUNTRIES, PRICE_TIERS, Customers
from atomic import replace_with
from errors import RecsightError

__all__ = ["PERIOD_START", "TRUTH_README", "write_shop", "write_shop_in_blocks"]

PERIOD_START = datetime(2024, 1, 1)
"""Day 0 of every synthetic shop: fixed, so that a seed gives the same bytes on any day."""

TRUTH_FILE = "preferences.parquet"

TRUTH_README = """\
# Planted truth of the synthetic shop

`preferences.parquet` has one row per user: the hidden preferences that generated their
behaviour. Nothing here is visible in events/items/users; it exists so tests can check that
profiles, recommendations and explanations recover real causes.

| column | meaning |
|---|---|
| user_id | the raw shop id, as in events.parquet ("U000123") |
| activity | "low", "medium" or "high": the level the session rate was drawn around |
| sessions_per_day | the exact Poisson rate of sessions per active day used for this user |
| active_from, active_until | the span in which the user's sessions start (joining late / churning) |
| favourite_categories | list of 2-3 full three-level leaf category paths ("Home > Kitchen > Knives"), most preferred first (weights 0.6/0.4 or 0.5/0.3/0.2 when a session picks one), in force for the whole period, or until drift_ts when the user drifts |
| favourite_categories_after_drift | the same list from drift_ts on: favourite_categories with drift_from replaced by drift_to in the same position; equal to favourite_categories when the user does not drift |
| drift_ts | when the user's tastes changed (sessions starting at or after it use the new list); null if they never do |
| drift_from, drift_to | the leaf category dropped and the one taken up at drift_ts; null if no drift |
| favourite_brands | list of 1-3 brand names, all selling in the user's initial favourite categories |
| price_tier | "budget", "mid" or "premium" |
| price_rel_low, price_rel_high | the generating rule for price: an item is "in band" for this user when its price divided by the median item price of its leaf category (computable from items.parquet) lies in [price_rel_low, price_rel_high] |
| price_low, price_high | the same band in currency for the user's main favourite category (favourite_categories[0]): price_rel_low/high times that category's median item price |

Effects of the planted preferences: sessions browse current favourite categories (~60 %) or
favourite brands (~15 %) or explore (~25 %), and 40 % continue the previous session's
interest; items within a session are drawn by popularity re-weighted x3 for a favourite brand
and x2 for an in-band price; click, cart and purchase probabilities rise for favourite
brands, in-band prices and favourite categories; ratings are higher for favourite brands and
in-band prices; returns are likelier out of band.
"""  # noqa: E501 (a Markdown table: one row per line)


def write_shop(out_dir: Path, cat: Catalogue, users: Customers, events: dict[str, np.ndarray]) -> None:
    """Write events/items/users Parquet and truth/ (preferences + README) into `out_dir`.

    Each file is replaced whole (see `_atomic`); raises `RecsightError` when the folder or a
    file cannot be written.
    """
    uid = _ids("U", np.arange(len(users.rate)), 6)
    iid = _ids("I", cat.item_number, 5)
    first_ts = np.full(len(users.rate), np.iinfo(np.int64).max)
    np.minimum.at(first_ts, events["user"], events["ts"])

    _make_folder(out_dir)
    _write(_events_table(events, uid, iid, cat), out_dir / "events.parquet")
    _write_rest(out_dir, cat, users, uid, iid, first_ts)


def write_shop_in_blocks(out_dir: Path, cat: Catalogue, users: Customers, blocks: Iterable[dict[str, np.ndarray]],
                         session_bound: int) -> np.ndarray:
    """`write_shop` for a shop too big to hold at once: ``blocks`` yields the events of one block
    of customers at a time (global user and session codes, sorted by (user, ts), blocks in user
    order), each appended to events.parquet as it comes, so memory holds one block. Session ids
    are padded to the width of ``session_bound`` (the ids of a block are drawn before the last
    block's). Returns the number of events per type code.
    """
    uid = _ids("U", np.arange(len(users.rate)), 6)
    iid = _ids("I", cat.item_number, 5)
    first_ts = np.full(len(users.rate), np.iinfo(np.int64).max)
    counts = np.zeros(len(S.EVENT_TYPES), np.int64)
    width = max(7, len(str(session_bound)))

    def write_events(tmp: Path) -> None:
        writer = None
        try:
            for events in blocks:
                np.minimum.at(first_ts, events["user"], events["ts"])
                counts[:] += np.bincount(events["type"], minlength=len(S.EVENT_TYPES))
                table = _events_table(events, uid, iid, cat, session_width=width)
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    _make_folder(out_dir)
    _atomic(out_dir / "events.parquet", write_events)
    _write_rest(out_dir, cat, users, uid, iid, first_ts)
    return counts


def _make_folder(out_dir: Path) -> None:
    try:
        (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create output folder {out_dir}: {exc.strerror}") from exc


def _write_rest(out_dir: Path, cat: Catalogue, users: Customers, uid: pa.Array, iid: pa.Array,
                first_ts: np.ndarray) -> None:
    """items, users and truth/ (everything but the events)."""
    _write(_items_table(cat, iid), out_dir / "items.parquet")
    _write(_users_table(users, uid, first_ts), out_dir / "users.parquet")
    _write(_truth_table(cat, users, uid), out_dir / "truth" / TRUTH_FILE)
    _write_text(TRUTH_README, out_dir / "truth" / "README.md")


def _ids(prefix: str, numbers: np.ndarray, min_width: int) -> pa.Array:
    """"U000123"-style ids built in Arrow (fast for millions), zero-padded to one width."""
    width = max(min_width, len(str(int(numbers.max()))) if len(numbers) else 1)
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(us_since_start: np.ndarray) -> pa.Array:
    base = int((PERIOD_START - datetime(1970, 1, 1)).total_seconds()) * US
    return pa.array(us_since_start + base, pa.timestamp("us"))


def _events_table(ev: dict[str, np.ndarray], uid: pa.Array, iid: pa.Array, cat: Catalogue,
                  session_width: int = 7) -> pa.Table:
    has_session = ev["session"] >= 0
    session = _ids("S", ev["session"], session_width)
    session = pc.if_else(pa.array(has_session), session, pa.nulls(len(session), pa.string()))
    has_qty = ev["qty"] > 0
    return pa.table({
        S.USER_ID: uid.take(pa.array(ev["user"])),
        S.ITEM_ID: iid.take(pa.array(ev["item"])),
        S.EVENT_TYPE: pa.array(S.EVENT_TYPES).take(pa.array(ev["type"])),
        S.TS: _timestamps(ev["ts"]),
        S.SESSION_ID: session,
        S.QUANTITY: pa.array(ev["qty"].astype(np.int32), mask=~has_qty),
        S.PRICE: pa.array(cat.item_price[ev["item"]]),
        S.RATING: pa.array(ev["rating"], from_pandas=True),
    })


def _items_table(cat: Catalogue, iid: pa.Array) -> pa.Table:
    order = pa.array(np.argsort(cat.item_number))
    table = pa.table({
        S.ITEM_ID: iid,
        S.TITLE: pa.array(cat.titles),
        S.CATEGORY: pa.array(cat.leaf_paths).take(pa.array(cat.item_leaf)),
        S.BRAND: pa.array(cat.brand_names).take(pa.array(cat.item_brand)),
        S.PRICE: pa.array(cat.item_price),
    })
    return table.take(order)


def _users_table(users: Customers, uid: pa.Array, first_ts: np.ndarray) -> pa.Table:
    """first_seen is the user's first event; null for the rare user whose only session ran
    past the end of the period and so has no event at all."""
    seen = first_ts < np.iinfo(np.int64).max
    return pa.table({
        S.USER_ID: uid,
        S.COUNTRY: pa.array(COUNTRIES).take(pa.array(users.country)),
        S.FIRST_SEEN: pc.if_else(pa.array(seen), _timestamps(np.where(seen, first_ts, 0)),
                                 pa.nulls(len(seen), pa.timestamp("us"))),
    })


def _truth_table(cat: Catalogue, users: Customers, uid: pa.Array) -> pa.Table:
    paths = np.array(cat.leaf_paths, dtype=object)
    brands = np.array(cat.brand_names, dtype=object)

    def lists(names: np.ndarray, codes: np.ndarray) -> list[list[str]]:
        return [list(names[row[row >= 0]]) for row in codes]

    drifts = users.drift_from >= 0
    drift_us = np.where(drifts, users.drift_day, 0.0) * DAY_US
    main_median = cat.leaf_median[users.fav_before[:, 0]]
    return pa.table({
        S.USER_ID: uid,
        "activity": pa.array(np.array(ACTIVITY, dtype=object)[users.activity]),
        "sessions_per_day": pa.array(users.rate),
        "active_from": _timestamps((users.join_day * DAY_US).astype(np.int64)),
        "active_until": _timestamps((users.leave_day * DAY_US).astype(np.int64)),
        "favourite_categories": pa.array(lists(paths, users.fav_before), pa.list_(pa.string())),
        "favourite_categories_after_drift": pa.array(lists(paths, users.fav_after), pa.list_(pa.string())),
        "drift_ts": pc.if_else(pa.array(drifts), _timestamps(drift_us.astype(np.int64)),
                               pa.nulls(len(drifts), pa.timestamp("us"))),
        "drift_from": pa.array(np.where(drifts, paths[np.maximum(users.drift_from, 0)], None)),
        "drift_to": pa.array(np.where(drifts, paths[np.maximum(users.drift_to, 0)], None)),
        "favourite_brands": pa.array(lists(brands, users.fav_brands), pa.list_(pa.string())),
        "price_tier": pa.array(np.array(PRICE_TIERS, dtype=object)[users.tier]),
        "price_rel_low": pa.array(users.rel_low),
        "price_rel_high": pa.array(users.rel_high),
        "price_low": pa.array(np.round(users.rel_low * main_median, 2)),
        "price_high": pa.array(np.round(users.rel_high * main_median, 2)),
    })


def _write(table: pa.Table, path: Path) -> None:
    _atomic(path, lambda tmp: pq.write_table(table, str(tmp)))


def _write_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through :mod:`atomic` (readers never see half a file), with ordinary permissions:
    the shop's files are data to share, not secrets."""
    try:
        replace_with(path, write, private=False)
    except OSError as exc:
        raise RecsightError(f"cannot write {path}: {exc.strerror or exc}") from exc
