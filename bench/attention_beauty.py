"""The attention model alone on Amazon Beauty, leave-one-out, ranked against ALL unseen items.

Protocol (S3-Rec / SASRec full ranking): each user's last item is the test item; the model trains
on everything before it (its own early stopping holds out the second-to-last item); at test time it
reads the same history and ranks every catalogue item the user has not interacted with.
Prints HR/NDCG@10 and @20, training time, full-ranking time and score() throughput.

    .venv/bin/python bench/attention_beauty.py                 # all 22,363 users
    .venv/bin/python bench/attention_beauty.py --users 5000    # a fixed random sample (seed 0)

The data is loaded into a DuckDB file under /tmp (by analytics.ingest when it exists, else by the
small loader here: one purchase per sequence position, a day apart; item attributes split into a
brand (the rarest attribute, if rare) and a category path (the others, most frequent first)).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema
from bench._common import format_table, machine_line
from models.attention import AttentionConfig, AttentionModel
from models.attention_training import train_attention

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_beauty"
HISTORY = "beauty_test_history"


def load_beauty(db_path: Path) -> duckdb.DuckDBPyConnection:
    """Build (once) a DuckDB file with Beauty as events + items, and the test-history view."""
    fresh = not db_path.exists()
    con = duckdb.connect(str(db_path))
    if fresh:
        schema.create_tables(con)
        _fill(con)
    con.execute(
        f"CREATE OR REPLACE VIEW {HISTORY} AS SELECT * FROM {schema.EVENTS} "
        f"QUALIFY row_number() OVER (PARTITION BY {schema.USER_ID} ORDER BY {schema.TS} DESC) > 1"
    )
    return con


def _fill(con: duckdb.DuckDBPyConnection) -> None:
    base = dt.datetime(2014, 1, 1)
    rows = []
    for line in (DATA / "Beauty.txt").read_text().splitlines():
        user, *items = line.split()
        rows += [(f"u{user}", item, schema.PURCHASE, base + dt.timedelta(days=i)) for i, item in enumerate(items)]
    con.executemany(
        f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}) "
        "VALUES (?, ?, ?, ?)", rows)
    attrs = json.loads((DATA / "Beauty_item2attributes.json").read_text())
    freq = collections.Counter(a for values in attrs.values() for a in values)
    items = []
    for item, values in attrs.items():
        ordered = sorted(values, key=lambda a: (-freq[a], a))
        brand = ordered[-1] if ordered and freq[ordered[-1]] < 100 else None
        cats = [a for a in ordered if a != brand]
        items.append((item, " > ".join(f"c{a}" for a in cats) or None, f"b{brand}" if brand else None))
    con.executemany(
        f"INSERT INTO {schema.ITEMS} ({schema.ITEM_ID}, {schema.CATEGORY}, {schema.BRAND}) VALUES (?, ?, ?)", items)


def evaluate(model, con, users: list[str]) -> dict[str, float]:
    test = dict(con.execute(
        f"SELECT {schema.USER_ID}, {schema.ITEM_ID} FROM {schema.EVENTS} "
        f"QUALIFY row_number() OVER (PARTITION BY {schema.USER_ID} ORDER BY {schema.TS} DESC) = 1").fetchall())
    histories = model.histories(con, HISTORY, users)
    started = time.perf_counter()
    ranked = model.top_k(histories, users, k=20, exclude_seen=True)
    seconds = time.perf_counter() - started
    out = {"hr@10": 0.0, "ndcg@10": 0.0, "hr@20": 0.0, "ndcg@20": 0.0}
    for user in users:
        ids = [item for item, _ in ranked[user]]
        if test[user] in ids:
            rank = ids.index(test[user])
            for k in (10, 20):
                if rank < k:
                    out[f"hr@{k}"] += 1
                    out[f"ndcg@{k}"] += 1 / np.log2(rank + 2)
    metrics = {name: value / len(users) for name, value in out.items()}
    metrics["rank_seconds"] = seconds
    return metrics, histories


def throughput(model, histories, users: list[str], per_user: int = 200, repeats: int = 3) -> tuple[float, float]:
    """score() pairs/s on one big call (500 users x 200 items), and ms for one user's 300 candidates."""
    rng = np.random.default_rng(1)
    pick = rng.choice(len(users), min(500, len(users)), replace=False)
    user_ids = [users[i] for i in pick for _ in range(per_user)]
    items = list(rng.choice(model.vocab.items, len(user_ids)))
    model.score(histories, user_ids[:10], items[:10])   # first call imports torch internals
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.score(histories, user_ids, items)
        times.append(time.perf_counter() - started)
    single = []
    for i in pick[:50]:
        started = time.perf_counter()
        model.score(histories, [users[i]] * 300, list(rng.choice(model.vocab.items, 300)))
        single.append(time.perf_counter() - started)
    return len(user_ids) / float(np.median(times)), 1000 * float(np.median(single))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/recsight_beauty_attention.duckdb"))
    parser.add_argument("--users", type=int, default=0, help="evaluate a fixed random sample (0 = all)")
    parser.add_argument("--load", type=Path, help="evaluate this saved model instead of training")
    parser.add_argument("--save", type=Path, help="save the trained model here")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an AttentionConfig field, e.g. --set epochs=5")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    types = {f.name: f.type for f in fields(AttentionConfig)}
    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        overrides[name] = (float if "float" in str(types[name]) else int)(value)
    config = replace(AttentionConfig(), **overrides)

    con = load_beauty(args.db)
    started = time.perf_counter()
    model = AttentionModel.load(args.load) if args.load else train_attention(con, HISTORY, config)
    train_seconds = model.training["seconds"] if args.load else time.perf_counter() - started
    if args.save:
        model.save(args.save)
    config = model.config

    users = sorted(u for (u,) in con.execute(f"SELECT DISTINCT {schema.USER_ID} FROM {schema.EVENTS}").fetchall())
    if args.users:
        users = sorted(np.random.default_rng(0).choice(users, min(args.users, len(users)), replace=False).tolist())
    metrics, histories = evaluate(model, con, users)
    pairs_per_s, one_user_ms = throughput(model, histories, users)

    print(machine_line())
    print(f"config: {config}")
    print(f"training: {train_seconds:.0f} s, epochs run {model.training['epochs_run']}, best epoch "
          f"{model.training['best_epoch']} (valid sampled NDCG@10 {model.training['valid_sampled_ndcg@10']:.4f})")
    print(format_table(
        ["model", "users", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "train s", "rank s"],
        [["attention (DIN)", len(users), f"{metrics['hr@10']:.4f}", f"{metrics['ndcg@10']:.4f}",
          f"{metrics['hr@20']:.4f}", f"{metrics['ndcg@20']:.4f}", f"{train_seconds:.0f}",
          f"{metrics['rank_seconds']:.0f}"]]))
    print(f"score(): {pairs_per_s:,.0f} pairs/s (200 random items for each of 500 users in one call, median of 3); "
          f"one user's 300 candidates: {one_user_ms:.1f} ms (median of 50 users)")


if __name__ == "__main__":
    main()
