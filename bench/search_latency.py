"""Benchmark: one search with its top 10 explained, as the API answers it (issue 15: a personalised
query p50 < 60 ms, p99 < 200 ms on a 12,000-item catalogue).

    .venv/bin/python bench/search_latency.py --db SHOP.duckdb --models MODELS [--queries 100]

On a shop trained by ``cli.py train`` (its model version holds the search index and ranker):
one loaded :class:`Recommender`, warmed, and ``workflows.search.search_payload(rec, q, user, 10,
explain=True)`` timed per call for queries made of words from the catalogue's titles and
category paths (one to three words), anonymous and as a customer with history (a different
customer per query). The first call of each kind is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as S
from bench._common import format_table, load_line, machine_line
from bench.recommend_explain import percentile
from models.serving import Recommender
from workflows.search import search_payload, searcher_for


def _queries(rec: Recommender, n: int, seed: int) -> list[str]:
    index = searcher_for(rec).index
    words = sorted({w.lower() for column in (S.TITLE, S.CATEGORY) for text in index.items[column].dropna()
                    for w in str(text).replace(">", " ").split() if w.isalpha() and len(w) > 2})
    rng = random.Random(seed)
    return [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(n)]


def measure(rec: Recommender, queries: list[str], customers: list[str | None]) -> list[float]:
    """Seconds per explained search (the first call not counted)."""
    search_payload(rec, queries[0], customers[0], 10, explain=True)
    times = []
    for query, user in zip(queries, customers, strict=True):
        started = time.perf_counter()
        search_payload(rec, query, user, 10, explain=True)
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine_line())
    print(load_line())
    rec = Recommender.load(args.db, args.models).warm()
    try:
        searcher_for(rec).index.warm()
        queries = _queries(rec, args.queries, args.seed)
        with rec.connection() as con:
            users = [r[0] for r in con.execute(
                f"SELECT {S.USER_ID} FROM {S.EVENTS} GROUP BY {S.USER_ID} HAVING count(*) >= 5 "
                f"ORDER BY hash({S.USER_ID}) LIMIT ?", [args.queries]).fetchall()]
        rows = []
        for name, customers in (("anonymous", [None] * len(queries)), ("as a customer", users)):
            times = measure(rec, queries[:len(customers)], customers)
            ms = [t * 1000 for t in times]
            rows.append([name, f"{statistics.median(ms):.1f}", f"{percentile(ms, 99):.1f}", f"{min(ms):.1f}",
                         f"{max(ms):.1f}", str(len(ms))])
        n_items = len(searcher_for(rec).index)
    finally:
        rec.close()
    print(f"\nsearch with the top 10 explained (search_payload, explain=True); catalogue of {n_items:,} items")
    print(format_table(["search", "p50 ms", "p99 ms", "min ms", "max ms", "n"], rows))
    print(load_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
