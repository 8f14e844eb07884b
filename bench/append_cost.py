"""Benchmark: the cost of appending a batch to the live segment does not grow with the store.

For each size it builds a store of about that many events (synthetic events written with DuckDB,
loaded by the plain ``generic`` ingest) and records as many client event ids as folded, as if
every stored event had come through the intake: the writer's record of known ids (the one thing
an append reads that grows with the store) is then at full size. Then, in a fresh child process
(its own peak memory), a ``LiveStore`` appends ``--batches`` batches of ``--batch`` new events
(the same validation, pseudonymisation, idempotency check and fsynced segment file as
``POST /api/v1/events``), one after the other:

- writer start: the first append, which loads the folded ids from the snapshot (once a process);
- append p50 / p90: the later appends; events/s: their events over their total wall time;
- re-send: a batch sent again while still in the live segment (all duplicates, found in memory);
- compaction: folding the appended batches into the store (copy + fold + profile rebuild: this one
  grows with the store, and runs off the append path);
- next append: the first append after that compaction (the writer merges the newly folded ids into
  its record instead of reloading them all);
- re-send folded: a batch sent again after the compaction (a hash match is confirmed against the
  snapshot's id table: a scan that grows with the store, paid only by such late re-sends).

    .venv/bin/python bench/append_cost.py --sizes 400000 10000000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.db import rewriting
from analytics.ingest import ingest_paths
from analytics.live_compact import compact
from analytics.live_sql import LIVE_DDL, LIVE_EVENT_IDS
from analytics.live_store import LiveStore, utc_now
from bench._common import format_table, human_count, in_child, load_line, machine_line

BENCH_SECRET = "bench-secret-not-for-production"


# --------------------------------------------------------------------------- the store


def build_store(folder: Path, n_events: int) -> tuple[Path, int, float]:
    """A shop of ``n_events`` synthetic events with as many folded event ids; (db, users, seconds)."""
    started = time.perf_counter()
    n_users, n_items = max(100, n_events // 40), max(2000, n_events // 400)
    events = folder / "events.parquet"
    con = duckdb.connect()
    con.execute(f"""
        COPY (
            SELECT 'u' || (hash(i) % {n_users}) AS user_id, 'p' || (hash(i * 7) % {n_items}) AS item_id,
                   CASE WHEN i % 20 = 0 THEN 'purchase' WHEN i % 7 = 0 THEN 'cart' ELSE 'view' END AS event_type,
                   TIMESTAMP '2024-01-01' + to_seconds(CAST(hash(i * 13) % (90 * 86400) AS BIGINT)) AS ts,
                   's' || (i // 6) AS session_id, NULL::INTEGER AS quantity,
                   CASE WHEN i % 20 = 0 THEN 5 + hash(i) % 200 END::DOUBLE AS price, NULL::DOUBLE AS rating
            FROM range({n_events}) r(i)
        ) TO '{events}' (FORMAT parquet)
    """)
    con.close()
    db = folder / "shop.duckdb"
    ingest_paths(db, "generic", [events], secret=BENCH_SECRET)
    with rewriting(db) as rewrite:  # as if every stored event had come through the intake
        for ddl in LIVE_DDL:
            rewrite.con.execute(ddl)
        rewrite.con.execute(f"INSERT INTO {LIVE_EVENT_IDS} SELECT 'stored-' || i, 0 FROM range({n_events}) r(i)")
    events.unlink()
    return db, n_users, time.perf_counter() - started


# --------------------------------------------------------------------------- measured (child process)


def _batch(tag: str, size: int, n_users: int) -> list[dict]:
    now = utc_now()
    return [{"event_id": f"{tag}-{j}", "user_id": f"u{(hash(tag) + j * 7919) % n_users}", "item_id": f"p{j % 997}",
             "event_type": "view" if j % 9 else "cart", "ts": now.isoformat(), "session_id": f"live-{tag}"}
            for j in range(size)]


def step_appends(db_path: str, n_users: int, batch: int, batches: int, round_no: int) -> dict[str, float]:
    """Everything an intake process does, timed (see the module docstring)."""
    db = Path(db_path)
    store = LiveStore(db)
    timed: list[float] = []
    payloads = [_batch(f"r{round_no}b{k}", batch, n_users) for k in range(batches + 1)]
    started = time.perf_counter()
    first = store.append_events(payloads[0], BENCH_SECRET)
    start_s = time.perf_counter() - started
    for payload in payloads[1:]:
        t0 = time.perf_counter()
        result = store.append_events(payload, BENCH_SECRET)
        timed.append(time.perf_counter() - t0)
        assert result.accepted == batch, result
    resend = []
    for payload in payloads[1:6]:
        t0 = time.perf_counter()
        assert store.append_events(payload, BENCH_SECRET).duplicates == batch
        resend.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    folded = compact(db)
    compact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    after = store.append_events(_batch(f"r{round_no}after", batch, n_users), BENCH_SECRET)
    after_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    late = store.append_events(payloads[1], BENCH_SECRET)
    late_s = time.perf_counter() - t0
    assert first.accepted == batch and folded.events == batch * (batches + 1) and late.duplicates == batch
    assert after.accepted == batch
    compact(db)  # leave no live segment behind for the next round
    return {"start": start_s, "p50": statistics.median(timed), "p90": sorted(timed)[int(0.9 * (len(timed) - 1))],
            "rate": batch * len(timed) / sum(timed), "resend": statistics.median(resend), "compact": compact_s,
            "after": after_s, "late": late_s}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[400_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds, the sizes interleaved")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are built (default: a temp dir)")
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"load before: {load_line()}")
    work = Path(tempfile.mkdtemp(prefix="recsight-append-", dir=args.workdir))
    try:
        stores = {}
        for size in args.sizes:
            (work / f"n{size}").mkdir()
            stores[size] = build_store(work / f"n{size}", size)
            print(f"  {human_count(size)} store built in {stores[size][2]:.1f} s (load {load_line()})", flush=True)
        runs: dict[int, list[tuple[dict[str, float], float]]] = {size: [] for size in args.sizes}
        for round_no in range(args.rounds):  # interleaved, so a busy neighbour weighs on every size alike
            for size in args.sizes:
                db, n_users, _ = stores[size]
                runs[size].append(in_child(step_appends, str(db), n_users, args.batch, args.batches, round_no))
            print(f"  round {round_no + 1} done (load {load_line()})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nappends of {args.batch} events, {args.batches} per round, {args.rounds} rounds; medians over the rounds")
    print(_table(args.sizes, stores, runs))
    medians = [statistics.median(r["p50"] for r, _ in runs[size]) for size in args.sizes]
    if len(medians) > 1:
        print(f"median append at {human_count(args.sizes[-1])} / at {human_count(args.sizes[0])}: "
              f"{medians[-1] / medians[0]:.2f}x (target < 1.5x)")
    print(f"load after: {load_line()}")
    return 0


def _table(sizes: list[int], stores: dict, runs: dict) -> str:
    rows = []
    for size in sizes:
        results = [r for r, _ in runs[size]]

        def med(key: str, results: list = results) -> float:
            return statistics.median(r[key] for r in results)

        p50s = [r["p50"] * 1000 for r in results]
        rows.append([human_count(size), f"{stores[size][2]:.1f}", f"{med('start') * 1000:.0f}",
                     f"{med('p50') * 1000:.1f} ({min(p50s):.1f}-{max(p50s):.1f})", f"{med('p90') * 1000:.1f}",
                     f"{med('rate'):,.0f}", f"{med('resend') * 1000:.1f}", f"{med('compact'):.2f}",
                     f"{med('after') * 1000:.0f}", f"{med('late') * 1000:.0f}",
                     f"{max(peak for _, peak in runs[size]):,.0f}"])
    return format_table(["stored events", "build s", "writer start ms", "append p50 ms (rounds)", "p90 ms",
                         "events/s", "re-send ms", "compaction s", "next append ms", "re-send folded ms",
                         "child MiB"], rows)


if __name__ == "__main__":
    sys.exit(main())
