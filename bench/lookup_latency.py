"""Benchmark: how fast the customer lookup answers on the demo shop (target: under 300 ms).

Times the body of the lookup callback (``pages._user_callbacks.lookup``: hash the typed shop id, find the
customer, rank their list, read the profile card and the timeline, build the page, append the
audit row) for many customers, after one warm-up lookup (the server loads the model once per
process). Also times the lookup's parts on their own, and the slower steps that run after the
page is shown, each behind its own loading indicator: the reasons under the cards (the whole
explanation), a "Why?" dialog (with its verified counterfactual; of the first item of each list,
or of the first ``--why`` items), a what-if (the customer's three latest items taken out) and a
CSV export (with the verified "what would change it" sentences).

Reads the shop and models named by the environment (``set -a && . ./.env.local && set +a`` for
the demo's secret); the audit rows go to a temporary file, never the real log.

    .venv/bin/python bench/lookup_latency.py                   # 40 customers of data/shop.duckdb
    .venv/bin/python bench/lookup_latency.py --customers 100 --explain 5
    .venv/bin/python bench/lookup_latency.py --customers 30 --explain 5 --why 10   # Why? of every listed item
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as S
from analytics.profile_card import profile_card
from bench._common import format_table, load_line, machine_line
from dashboard import customer_view as cv
from service import audit
from settings import load_settings
from workflows import lookup as lookup_work
from workflows.whatif import what_if

TARGET_MS = 300.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _row(name: str, seconds: list[float]) -> list[str]:
    ms = [s * 1000 for s in seconds]
    return [name, f"{statistics.median(ms):.0f}", f"{_percentile(ms, 0.99):.0f}", f"{min(ms):.0f}", f"{max(ms):.0f}",
            str(len(ms))]


def _timed(into: list[float], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its wall time appended to ``into``."""
    started = time.perf_counter()
    result = fn(*args)
    into.append(time.perf_counter() - started)
    return result


def _card_and_timeline(settings: Any, user: str) -> Any:
    """What the lookup page reads from the shop: the profile card and the timeline."""
    with lookup_work.shop_cursor(settings.db_path) as con:
        profile_card(con, user)
        return cv.timeline(con, user)


def _latest_items(settings: Any, user: str, n: int) -> list[str]:
    """The customer's ``n`` most recently touched items (what an agent would take out in a what-if)."""
    with lookup_work.shop_cursor(settings.db_path) as con:
        return [row[0] for row in con.execute(
            f"SELECT {S.ITEM_ID} FROM {S.EVENTS} WHERE {S.USER_ID} = ? GROUP BY ALL ORDER BY max({S.TS}) DESC LIMIT ?",
            [user, n]).fetchall()]


def _typed_ids(settings: Any, demo: Path, n: int, seed: int) -> list[str]:
    """Shop ids as an agent would type them (the demo's raw ids), else pseudonyms from the shop."""
    events = demo / "events.parquet"
    if events.exists():
        import pyarrow.parquet as pq

        ids = sorted(set(pq.read_table(events, columns=[S.USER_ID]).column(0).to_pylist()))
    else:
        with lookup_work.shop_cursor(settings.db_path) as con:
            ids = [row[0] for row in con.execute(f"SELECT DISTINCT {S.USER_ID} FROM {S.EVENTS}").fetchall()]
    return random.Random(seed).sample(ids, min(n, len(ids)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=40, help="customers looked up (one lookup each)")
    parser.add_argument("--explain", type=int, default=5, help="customers whose reasons, Why? and export are timed")
    parser.add_argument("--why", type=int, default=1,
                        help="items per explained customer whose Why? dialog is timed (the first N of the list)")
    parser.add_argument("--demo", type=Path, default=Path("data/demo"), help="the synthetic shop's raw files")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="recsight-lookup-bench-") as scratch:
        settings = replace(load_settings(), audit_db=Path(scratch) / "audit.duckdb",
                           users_file=Path(scratch) / "users.json")
        settings.require_secret()
        from app import create_app

        app = create_app(settings)  # page modules need an app; serve once so it owns their callbacks
        app.server.test_client().get("/health")
        import pages._user_callbacks as page
        from workflows.recommenders import recommender_for, resolve_customer

        def record(action: str, customer: str | None = None, detail: str | None = None) -> None:
            audit.record(settings.audit_db, "bench", "support", action, customer=customer, detail=detail)

        typed = _typed_ids(settings, args.demo, args.customers + 1, args.seed)
        print(f"machine: {machine_line()}")
        print(f"load average at the start: {load_line()} (other work on the machine slows wall times)")
        started = time.perf_counter()
        page.lookup(typed[0], settings, record)  # loads the model, as a server's first request does
        print(f"warm-up (loads the model version {recommender_for(settings).artifact.path.name}): "
              f"{time.perf_counter() - started:.2f} s; shop {settings.db_path}, {len(typed) - 1} customers")

        whole: list[float] = []
        parts: dict[str, list[float]] = {name: [] for name in
                                         ("find (hash + check)", "recommend (rank top 10)", "profile card + timeline",
                                          "timeline figure", "audit row")}
        rec = recommender_for(settings)
        for text in typed[1:]:
            view = _timed(whole, page.lookup, text, settings, record)
            assert view.customer is not None, f"lookup of {text!r} found nobody"
            user = _timed(parts["find (hash + check)"], resolve_customer, rec, text, settings.secret)
            _timed(parts["recommend (rank top 10)"], rec.recommend, user, page.K)
            frame, total = _timed(parts["profile card + timeline"], _card_and_timeline, settings, user)
            _timed(parts["timeline figure"], cv.timeline_figure, frame, total)
            _timed(parts["audit row"], record, audit.CUSTOMER_LOOKUP, user, "bench")

        later: dict[str, list[float]] = {"reasons (whole explanation)": [], "Why? dialog (with counterfactual)": [],
                                         "what-if (without the 3 latest items)": [], "CSV export": []}
        for text in typed[1:1 + args.explain]:
            store = page.lookup(text, settings, record).customer
            ids = [row[0] for row in store["items"]]
            lookup_work._cache.clear()  # time the explanation itself, not the cache
            _timed(later["reasons (whole explanation)"], page.reasons, store, ids, settings)
            for item_id in ids[:args.why]:
                _timed(later["Why? dialog (with counterfactual)"], page.why, store, item_id, settings, record)
            _timed(later["what-if (without the 3 latest items)"], what_if, settings, store["user_id"],
                   store["version"], _latest_items(settings, store["user_id"], 3), None)
            _timed(later["CSV export"], page.export, store, "csv", settings, record)

    rows = [_row("lookup (what the agent waits for)", whole)]
    rows += [_row(f"  of which {name}", times) for name, times in parts.items()]
    rows += [_row(f"after the page: {name}", times) for name, times in later.items() if times]
    print(format_table(["step", "median ms", "p99 ms", "min ms", "max ms", "n"], rows))
    median = statistics.median(whole) * 1000
    verdict = "meets" if median < TARGET_MS else "misses"
    print(f"lookup median {median:.0f} ms {verdict} the {TARGET_MS:.0f} ms target "
          f"(p99 {_percentile([w * 1000 for w in whole], 0.99):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
