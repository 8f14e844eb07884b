"""Benchmark: replay a shop's test window through the live intake; static vs live lists (issue 14, item 5).

    .venv/bin/python bench/replay.py --datasets synthetic
    .venv/bin/python bench/replay.py --datasets online_retail taobao --max-targets 1500

Why: the evaluation table of ``cli.py evaluate`` scores the lists ranked at training time against
purchases made in the following window; a served shop keeps taking in events, and the list a
customer sees just before a purchase can know what they (and everyone) did since. This replays
the window in time order and scores both lists at each purchase.

Per shop:

1. the raw file is read with the shop's own adapter (``analytics.adapters``: the same validation
   as ``cli.py ingest``), keeping the shop's customer ids; the cutoff is the test cutoff of the
   temporal protocol (:func:`models.splits.make_split` on the whole file);
2. a shop file of the events *before* the cutoff (and their items) is ingested and trained on
   (quick configuration by default; cached under ``--workdir``, as ``bench/train_time.py`` does), so
   the served model knows nothing after the cutoff;
3. a private copy of it is served by one :class:`models.serving.Recommender`; the catalogue rows
   of items first seen in the window go in through ``workflows.intake.append_items`` first (a shop
   knows its catalogue before the first sale), then the window's events through
   ``workflows.intake.append_events`` (what ``POST /api/v1/events`` runs), in time order;
4. a *target* is the temporal protocol's: a purchase in the window of an item the customer had
   not touched before the cutoff (first purchase of that pair). It is scored at the customer's
   *first contact* with the item, while it is still untouched: the purchase's own second, or the
   first second of its invoice (purchases with the same ``session_id``), or the customer's first
   event on the item in the window (a view, a cart) when that is earlier. The question each target
   asks: did the list the customer saw just before they found the item hold it? Scoring a
   purchase that followed a view at the purchase itself would ask the live list for an item the
   customer has already touched, which it never offers (the candidate step drops the customer's
   history, as the ranker was trained to find new items).
   Just before a moment every event strictly earlier is appended, none of the same second or
   invoice; then ``recommend(customer, 10)`` on the same loaded recommender (its co-visitation
   links settled first) is the *live* list.
   The *static* list is the one precomputed at training time (``Recommender.top``).

Customers first seen in the window have no precomputed list: their static list, and their live
list until their first event is in, is the training window's popularity (items bought by the
most customers in the last protocol window before the cutoff). Each target is scored alone:
NDCG@10 and HR@10 of a one-item truth (:mod:`analytics.metrics`), averaged over targets.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import pandas as pd

from analytics import schema as S
from analytics.metrics import hit_rate_at_k, ndcg_at_k

__all__ = ["Shop", "Target", "Scored", "prepare_shop", "train_shop_once", "replay", "summary_rows", "raw_frames"]

K = 10
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SECRET = "bench-secret"
SOURCES = {
    "online_retail": ("online-retail", [DATA / "online_retail" / "online_retail.parquet"]),
    "taobao": ("taobao", [DATA / "taobao_userbehavior" / "UserBehavior_prefix.csv"]),
}
DATASETS = ("synthetic", "online_retail", "taobao")
_CONTRACT = list(S.EVENTS_COLUMNS)  # user_id, item_id, event_type, ts, session_id, quantity, price, rating
_CHUNK = 1_000  # the intake's batch limit (workflows.intake.MAX_EVENTS_PER_BATCH)


@dataclass(frozen=True)
class Shop:
    """A shop split at its temporal test cutoff, on disk under ``folder``."""

    name: str
    folder: Path  # train/ (generic files), train.duckdb, stream.parquet, items_new.parquet
    cutoff: datetime
    window_days: float

    @property
    def db(self) -> Path:
        return self.folder / "train.duckdb"


@dataclass(frozen=True)
class Target:
    """One purchase the protocol scores: customer (shop id and pseudonym), item, when it is scored."""

    user_raw: str
    user: str
    item: str
    moment: datetime  # first contact: the purchase's second, its invoice's first one, or the first window touch
    session_id: str | None
    new_customer: bool  # no event before the cutoff
    touched_in_window: bool  # the customer touched the item in the window before buying it (scored then)


@dataclass(frozen=True)
class Scored:
    """A target with the two lists it was scored against."""

    target: Target
    static: tuple[str, ...]
    live: tuple[str, ...]
    live_ranked: bool  # False: the live list was the popularity fallback (customer not yet known)
    live_fresh: bool  # the customer had window events before the moment: the live list was re-ranked


# --------------------------------------------------------------------------- the data


def raw_frames(fmt: str, paths: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, items) of a raw file as its ingest adapter stages them, customer ids unhashed.

    Why the adapter: the replayed events must pass the same validation and mapping (cancellations
    as returns, non-products refused...) as a plain ingest, or the two halves would not match."""
    from analytics.adapters import get_adapter

    adapter = get_adapter(fmt)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    events, items = [], []
    for i, unit in enumerate(adapter.units(list(paths))):
        staged = adapter.stage(con, unit, f"_rp{i}")
        if staged.events:
            events.append(con.execute(f"SELECT line, user_raw AS {S.USER_ID}, * EXCLUDE (line, user_raw) "
                                      f"FROM ({staged.events})").df())
        if staged.items:
            items.append(con.execute(f"SELECT * FROM ({staged.items})").df())
    con.close()
    frame = pd.concat(events, ignore_index=True)
    catalogue = pd.concat(items, ignore_index=True).drop_duplicates(S.ITEM_ID, keep="last") if items else \
        pd.DataFrame({S.ITEM_ID: frame[S.ITEM_ID].unique()})
    return frame, catalogue


def test_cutoff(events: pd.DataFrame) -> tuple[datetime, float]:
    """(the temporal protocol's test cutoff, its window in days) over the whole file."""
    from models.splits import TEMPORAL, make_split

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("raw_in", events[_CONTRACT])
    con.execute("CREATE TEMP TABLE raw_events AS SELECT * FROM raw_in")
    split = make_split(con, TEMPORAL, "raw_events")
    con.close()
    return split.test.as_of, split.window.total_seconds() / 86400


def prepare_shop(name: str, events: pd.DataFrame, items: pd.DataFrame, folder: Path) -> Shop:
    """Split at the cutoff and ingest the shop file of the earlier events (once: reused when there)."""
    from analytics.ingest import ingest_paths

    cutoff, window_days = test_cutoff(events)
    shop = Shop(name, folder, cutoff, window_days)
    if shop.db.exists() and (folder / "stream.parquet").exists():
        return shop
    train_dir = folder / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    before = events[events[S.TS] < cutoff]
    before[_CONTRACT].to_parquet(train_dir / "events.parquet", index=False)
    known = items[S.ITEM_ID].isin(set(before[S.ITEM_ID]))
    items[known].to_parquet(train_dir / "items.parquet", index=False)
    items[~known].to_parquet(folder / "items_new.parquet", index=False)
    ingest_paths(shop.db, "generic", [train_dir], secret=SECRET)
    events[events[S.TS] >= cutoff].to_parquet(folder / "stream.parquet", index=False)
    return shop


def train_shop_once(shop: Shop, models: Path, config: object | None) -> Path:
    """Train on the shop file unless ``models`` already holds a version (``train_shop``, as ``cli.py train``)."""
    from bench._common import progress_bar
    from models import registry
    from workflows.training import train_shop

    if registry.current(models) is None:
        with progress_bar(f"train {shop.name}") as progress:
            train_shop(shop.db, models, config=config, progress=progress)
    return models


# --------------------------------------------------------------------------- the targets


def find_targets(shop: Shop, stream: pd.DataFrame) -> list[Target]:
    """The protocol's targets in the window, with their moments (see the module docstring)."""
    from analytics.privacy import pseudonymise

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("stream", stream)
    con.execute(f"ATTACH '{shop.db}' AS shop (READ_ONLY)")
    rows = con.execute(f"""
        WITH firsts AS (
            SELECT {S.USER_ID} AS u, {S.ITEM_ID} AS i, min({S.TS}) AS ts, arg_min({S.SESSION_ID}, {S.TS}) AS sid
            FROM stream WHERE {S.EVENT_TYPE} = '{S.PURCHASE}' GROUP BY ALL),
        invoices AS (
            SELECT {S.USER_ID} AS u, {S.SESSION_ID} AS sid, min({S.TS}) AS start FROM stream
            WHERE {S.EVENT_TYPE} = '{S.PURCHASE}' AND {S.SESSION_ID} IS NOT NULL GROUP BY ALL)
        SELECT f.u, f.i, least(f.ts, coalesce(v.start, f.ts)) AS moment, f.sid
        FROM firsts f LEFT JOIN invoices v ON v.u = f.u AND v.sid = f.sid
        ORDER BY moment, f.u, f.i""").fetchall()
    con.close()
    pids = {raw: pseudonymise(raw, SECRET) for raw in {r[0] for r in rows}}
    con = duckdb.connect(str(shop.db), read_only=True)
    seen = set(con.execute(f"SELECT DISTINCT {S.USER_ID}, {S.ITEM_ID} FROM {S.EVENTS}").fetchall())
    customers = {u for (u,) in con.execute(f"SELECT DISTINCT {S.USER_ID} FROM {S.EVENTS}").fetchall()}
    con.close()
    first_touch = {key: pd.Timestamp(ts).to_pydatetime()
                   for key, ts in stream.groupby([S.USER_ID, S.ITEM_ID])[S.TS].min().items()}
    return [Target(raw, pids[raw], item, min(moment, first_touch[(raw, item)]), sid, pids[raw] not in customers,
                   first_touch[(raw, item)] < moment)
            for raw, item, moment, sid in rows if (pids[raw], item) not in seen]


def popularity(db: Path, cutoff: datetime, window_days: float) -> tuple[str, ...]:
    """The training window's most bought items (distinct buyers in the last protocol window)."""
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        f"""SELECT {S.ITEM_ID} FROM {S.EVENTS} WHERE {S.EVENT_TYPE} = '{S.PURCHASE}'
              AND {S.TS} >= ?::TIMESTAMP - to_microseconds(CAST(? AS BIGINT))
            GROUP BY ALL ORDER BY count(DISTINCT {S.USER_ID}) DESC, {S.ITEM_ID} LIMIT {K}""",
        [cutoff, int(window_days * 86400e6)]).fetchall()
    con.close()
    return tuple(r[0] for r in rows)


# --------------------------------------------------------------------------- the replay


Probe = Callable[[object, Target, tuple[str, ...]], None]  # (recommender, target, live list) at scoring time


def _as_event(row: dict, dataset: str) -> dict:
    """One stream row as the intake's JSON event (nulls left out, the line as a stable event_id)."""
    event = {"event_id": f"{dataset}-{row['line']}"}
    for column in _CONTRACT:
        value = row[column]
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        event[column] = value.isoformat() if column == S.TS else value
    return event


def _append(db: Path, rows: list[dict], dataset: str) -> int:
    from workflows.intake import append_events

    accepted = 0
    for start in range(0, len(rows), _CHUNK):
        batch = [_as_event(r, dataset) for r in rows[start:start + _CHUNK]]
        result = append_events(db, batch, SECRET, timeout=None)
        if result.rejected:
            raise RuntimeError(f"the intake refused {len(result.rejected)} replayed events: {result.rejected[:3]}")
        accepted += result.accepted
    return accepted


def _append_catalogue(db: Path, items: pd.DataFrame) -> None:
    from workflows.intake import append_items

    rows = [{c: v for c, v in r.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
            for r in items.to_dict("records")]
    for start in range(0, len(rows), _CHUNK):
        append_items(db, rows[start:start + _CHUNK], timeout=None)


def replay(shop: Shop, models: Path, *, max_targets: int | None = None, seed: int = 3,
           probe: Probe | None = None) -> tuple[list[Scored], dict]:
    """Stream the window into a private copy of the shop and score each (sampled) target moment.

    Returns the scored targets and counts (events appended, batches, seconds)."""
    from errors import RecsightError
    from models.serving import Recommender

    stream = pd.read_parquet(shop.folder / "stream.parquet").sort_values([S.TS, "line"], kind="stable")
    targets = find_targets(shop, stream)
    moments = sorted({(t.moment, t.user) for t in targets})
    if max_targets is not None and len(moments) > max_targets:
        moments = sorted(random.Random(seed).sample(moments, max_targets))
    chosen = set(moments)
    targets = [t for t in targets if (t.moment, t.user) in chosen]
    fallback = popularity(shop.db, shop.cutoff, shop.window_days)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recsight-replay-") as tmp:
        db = Path(tmp) / shop.db.name
        shutil.copy2(shop.db, db)
        _append_catalogue(db, pd.read_parquet(shop.folder / "items_new.parquet"))
        rec = Recommender.load(db, models)
        try:
            static = {t.user: _items(rec.top.get(t.user, K)) if rec.top is not None else None for t in targets}
            rows = stream.to_dict("records")
            at, appended, scored, by_moment = 0, 0, [], {}
            for t in targets:
                by_moment.setdefault((t.moment, t.user), []).append(t)
            for moment, user in moments:
                end = at
                while end < len(rows) and rows[end][S.TS] < moment:
                    end += 1
                appended += _append(db, rows[at:end], shop.name) if end > at else 0
                at = end
                group = by_moment[(moment, user)]
                rec.settle()  # the links include every earlier event (a server's lag is a quarter second)
                try:
                    live, ranked = _items(rec.recommend(user, K)), True
                except RecsightError:  # not a customer yet: nothing of theirs is in the store
                    live, ranked = fallback, False
                if probe is not None:
                    probe(rec, group[0], live)
                fresh = rec.live is not None and rec.live.changed(user)
                scored += [Scored(t, static[user] or fallback, live, ranked, fresh) for t in group]
        finally:
            rec.close()
    return scored, {"appended": appended, "stream": len(stream), "seconds": time.perf_counter() - started,
                    "moments": len(moments)}


def _items(recommendation: object | None) -> tuple[str, ...] | None:
    return None if recommendation is None else tuple(i.item_id for i in recommendation.items)


# --------------------------------------------------------------------------- the table


def summary_rows(name: str, scored: Sequence[Scored]) -> list[list[str]]:
    """Table rows: all targets, then by kind of customer and by whether the window showed the item."""
    groups = [("all", scored),
              ("  known customers", [x for x in scored if not x.target.new_customer]),
              ("  new customers", [x for x in scored if x.target.new_customer]),
              ("  bought at first contact", [x for x in scored if not x.target.touched_in_window]),
              ("  touched in window, then bought", [x for x in scored if x.target.touched_in_window])]
    rows = []
    for label, members in groups:
        if not members:
            continue
        values = [sum(f(list(getattr(x, which)), {x.target.item: 1.0}, K) for x in members) / len(members)
                  for f in (ndcg_at_k, hit_rate_at_k) for which in ("static", "live")]
        rows.append([f"{name} {label}", f"{len(members):,}"] + [f"{v:.4f}" for v in values]
                    + [f"{sum(x.live_ranked for x in members):,}", f"{sum(x.live_fresh for x in members):,}"])
    return rows


HEADERS = ["shop / targets", "targets", "static NDCG@10", "live NDCG@10", "static HR@10", "live HR@10",
           "live by recommend()", "re-ranked live"]


def _bench_config(kind: str) -> object | None:
    from models.config import QUICK

    return QUICK if kind == "quick" else None


def _raw(name: str, workdir: Path, synth_users: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if name == "synthetic":
        from analytics.synth import generate_shop

        folder = workdir / f"synthetic-{synth_users}"
        if not (folder / "events.parquet").exists():
            generate_shop(folder, n_users=synth_users, n_items=max(2000, synth_users // 2), n_days=90, seed=42)
        return raw_frames("generic", [folder])
    fmt, paths = SOURCES[name]
    return raw_frames(fmt, paths)


def run_shop(name: str, args: argparse.Namespace) -> list[list[str]]:
    """Prepare, train (cached), replay and print one shop; return its table rows."""
    from bench._common import load_line

    t0 = time.perf_counter()
    folder = args.workdir / "replay" / (f"synthetic-{args.synth_users}" if name == "synthetic" else name)
    shop = prepare_shop(name, *_raw(name, args.workdir, args.synth_users), folder)
    t1 = time.perf_counter()
    models = train_shop_once(shop, folder / f"models-{args.kind}", _bench_config(args.kind))
    t2 = time.perf_counter()
    scored, counts = replay(shop, models, max_targets=args.max_targets, seed=args.seed)
    print(f"\n{name}: cutoff {shop.cutoff:%Y-%m-%d %H:%M:%S} (window {shop.window_days:g} days); prepare "
          f"{t1 - t0:.0f} s, training ({args.kind}, cached if 0) {t2 - t1:.0f} s, replay {counts['seconds']:.0f} s: "
          f"{counts['appended']:,} of {counts['stream']:,} window events appended, {counts['moments']:,} "
          f"target moments scored; load {load_line()}", flush=True)
    rows = summary_rows(name, scored)
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench._common import format_table, load_line, machine_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--max-targets", type=int, default=None,
                        help="score a seeded sample of this many target moments (customer, second) per shop")
    parser.add_argument("--kind", choices=("quick", "full"), default="quick", help="training configuration")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsight-bench"))
    parser.add_argument("--synth-users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    rows = []
    for name in args.datasets:
        rows += run_shop(name, args)
        print(format_table(HEADERS, rows), flush=True)
    print(f"\nk={K}; static = the list precomputed at training time (popularity for customers new in the window); "
          "live = recommend() on the same loaded model after every strictly earlier event was appended "
          "(popularity while the customer has no event yet); re-ranked live = the customer had window events "
          "before the moment, so recommend() ranked them live rather than returning the precomputed list")
    print(format_table(HEADERS, rows))
    print(f"wall time {time.perf_counter() - started:.0f} s; load average at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
