"""Benchmark: recommend + explain for one customer, in process: median and 99th percentile per lookup.

    .venv/bin/python bench/recommend_explain.py                                # Beauty and Online Retail
    .venv/bin/python bench/recommend_explain.py --datasets synthetic --customers 100 --kind quick

What a support agent's lookup costs once the server has the model loaded: for each of
``--customers`` customers (a seeded sample of those with events), in a fresh child process that
loads the model once,

- ``recommend``: ``Recommender.recommend(user, k=10)``: a lookup in the model version's
  precomputed lists (``serving/top_items.parquet``, written by training) when it has them, else
  the live path;
- ``recommend (live path)``: ``Recommender.recommend_live(user, k=10)``, the same list computed
  now (candidates, features, attention, ranker): what a cold start, a larger ``k`` or a model
  version without precomputed lists costs, measured in the same run for the ratio;
- ``explain``: ``explain.explainer.explanation_payload`` on that result (TreeSHAP, attention
  attributions, reason sentences: what ``recommend --explain`` and the API's ``explain=true`` add);
- ``recommend + explain``: the two together, the figure the target (median < 100 ms) is about;
- ``explain_customer``: the lookup page's and report's whole explanation (profile card included),
  on the first ``--full-customers`` customers.

The first lookup after loading is reported apart (``first``): it pays one-off warm-up. Models
come from ``bench/train_time.py`` (trained once into --workdir if absent); ``--kind`` picks the
quick (demo) or full configuration.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import format_table, in_child, load_line, machine_line
from bench.train_time import DATASETS, DEFAULT_WORKDIR, trained_models

__all__ = ["percentile", "measure"]

K = 10


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def measure(db: str, models: str, n_customers: int, n_full: int, seed: int) -> dict:
    """In a child process: load once, then time every stage per customer (seconds)."""
    from explain.explainer import explanation_payload
    from models.serving import Recommender
    from workflows.explaining import explain_customer

    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    recommender = Recommender.load(Path(db), Path(models))
    load_s = time.perf_counter() - started
    precomputed = recommender.top.k if recommender.top is not None else None
    with recommender.connection() as con:
        customers = [row[0] for row in con.execute(
            "SELECT user_id FROM (SELECT DISTINCT user_id FROM events) ORDER BY hash(user_id || ?) LIMIT ?",
            [str(seed), n_customers + 1]).fetchall()]
    stages: dict[str, list[float]] = {"recommend": [], "explain": [], "recommend + explain": [],
                                      "recommend (live path)": [], "explain_customer": []}
    first: dict[str, float] = {}
    for i, user in enumerate(customers):
        t0 = time.perf_counter()
        result = recommender.recommend(user, K)
        t1 = time.perf_counter()
        explanation_payload(recommender, result, result.to_dict())
        t2 = time.perf_counter()
        timed = {"recommend": t1 - t0, "explain": t2 - t1, "recommend + explain": t2 - t0}
        t3 = time.perf_counter()
        recommender.recommend_live(user, K)
        timed["recommend (live path)"] = time.perf_counter() - t3
        if i < n_full + 1:
            t3 = time.perf_counter()
            explain_customer(recommender, user, K)
            timed["explain_customer"] = time.perf_counter() - t3
        if i == 0:
            first = timed  # warm-up: reported apart
            continue
        for stage, seconds in timed.items():
            stages[stage].append(seconds)
    recommender.close()
    return {"load_s": load_s, "first": first, "stages": stages, "precomputed": precomputed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "online-retail"], choices=DATASETS)
    parser.add_argument("--kind", choices=("quick", "full"), default="full", help="which trained configuration")
    parser.add_argument("--customers", type=int, default=300, help="lookups timed per dataset")
    parser.add_argument("--full-customers", type=int, default=50, help="of those, also timed with explain_customer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--synth-users", type=int, default=5000)
    args = parser.parse_args(argv)

    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    print(f"models: {args.kind} configuration; k={K}; one child process per dataset, model loaded once")
    rows = []
    for dataset in args.datasets:
        db, models = trained_models(dataset, args.workdir, args.kind, args.synth_users)
        result, peak = in_child(measure, str(db), str(models), args.customers, args.full_customers, args.seed)
        lists = (f"precomputed top {result['precomputed']} per customer" if result["precomputed"]
                 else "no precomputed lists (every recommend runs the live path)")
        print(f"\n{dataset}: model loaded in {result['load_s']:.2f} s ({lists}), peak RSS {peak:,.0f} MiB, "
              f"load average {load_line()}")
        for stage, values in result["stages"].items():
            if not values:
                continue
            ms = [v * 1000 for v in values]
            first = result["first"].get(stage)
            rows.append([f"{dataset}: {stage}", f"{statistics.median(ms):.1f}", f"{percentile(ms, 99):.1f}",
                         f"{min(ms):.1f}", f"{max(ms):.1f}", str(len(ms)),
                         f"{first * 1000:.0f}" if first is not None else "-", f"{peak:,.0f}"])
    print()
    print(format_table(["dataset: stage", "median ms", "p99 ms", "min ms", "max ms", "lookups", "first ms",
                        "peak MiB"], rows))
    print(f"load average at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
