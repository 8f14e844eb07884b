"""Benchmark: after a new event, that customer's explained top 10 (issue 14: p50 < 100 ms, p99 < 300 ms).

    .venv/bin/python bench/live_latency.py                         # demo-sized synthetic shop (5,000 customers)
    .venv/bin/python bench/live_latency.py --synth-users 400 --customers 50

On a private copy of the synthetic shop and its quick models (trained once by
``bench/train_time.py`` into --workdir; the copy gets the live segment, the originals never do),
one loaded :class:`Recommender` serves ``--customers`` customers. For each: a batch of three
views (and a cart) on popular items is appended through ``workflows.intake.append_events``, the
path ``POST /api/v1/events`` takes; then the customer's explained top 10 is timed:

- ``refresh``: reading the segment file just written (``Recommender.catch_up``);
- ``recommend (changed customer)``: ``recommend(user, 10)``, which now ranks live over the fresh
  history (the precomputed list predates the events), refresh included;
- ``explain``: ``explanation_payload`` on that list (TreeSHAP, IG over the fresh window, reasons);
- ``recommend + explain (changed)``: the figure the target is about;
- ``recommend + explain (unchanged)``: another customer on the precomputed fast path, for scale.

The append itself is not timed here (``bench/append_cost.py`` measures it).
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq

from analytics import schema as S
from analytics.privacy import pseudonymise
from bench._common import format_table, load_line, machine_line
from bench.recommend_explain import percentile
from bench.train_engine import SECRET
from bench.train_time import DEFAULT_WORKDIR, trained_models
from explain.explainer import explanation_payload
from models.serving import Recommender
from workflows.intake import append_events

K = 10
STAGES = ("refresh", "recommend (changed customer)", "explain", "recommend + explain (changed)",
          "recommend + explain (unchanged)")


def _private_copy(db: Path, models: Path, folder: Path) -> tuple[Path, Path]:
    """The shop file and models folder copied into ``folder`` (the live segment goes beside the copy)."""
    shutil.copy2(db, folder / db.name)
    shutil.copytree(models, folder / models.name)
    return folder / db.name, folder / models.name


def _raw_ids(db: Path, synth_users: int) -> list[str]:
    users = db.parent / f"synthetic-{synth_users}" / "users.parquet"
    return sorted(str(u) for u in pq.read_table(users, columns=[S.USER_ID]).column(0).to_pylist())


def measure(db: Path, models: Path, raw_ids: list[str], n_customers: int, seed: int) -> dict[str, list[float]]:
    """Append for each sampled customer, then time their explained list; seconds per stage."""
    rec = Recommender.load(db, models).warm()
    try:
        assert rec.top is not None, "the models have no precomputed lists: retrain"
        with rec.connection() as con:
            last = con.execute(f"SELECT max({S.TS}) FROM {S.EVENTS}").fetchone()[0]
            popular = [r[0] for r in con.execute(
                f"SELECT {S.ITEM_ID} FROM {S.EVENTS} GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT 200").fetchall()]
        known = [(raw, pseudonymise(raw, SECRET)) for raw in raw_ids]
        known = [(raw, user) for raw, user in known if user in rec.top.spans]
        rng = random.Random(seed)
        sample = rng.sample(known, min(2 * n_customers, len(known)))
        changed, unchanged = sample[:n_customers], sample[n_customers:]
        times: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for n, (raw, user) in enumerate(changed):
            items = rng.sample(popular, 3)
            ts = last + timedelta(minutes=n + 1)
            batch = [{"event_id": f"bench-{n}-{j}", "user_id": raw, "item_id": item, "event_type": kind,
                      "ts": (ts + timedelta(seconds=j)).isoformat()}
                     for j, (item, kind) in enumerate([(i, S.VIEW) for i in items] + [(items[0], S.CART)])]
            append_events(db, batch, SECRET)
            t0 = time.perf_counter()
            rec.catch_up()
            t1 = time.perf_counter()
            result = rec.recommend(user, K)
            t2 = time.perf_counter()
            explanation_payload(rec, result, result.to_dict())
            t3 = time.perf_counter()
            assert rec.live is not None and rec.live.changed(user)
            times["refresh"].append(t1 - t0)
            times["recommend (changed customer)"].append(t2 - t0)
            times["explain"].append(t3 - t2)
            times["recommend + explain (changed)"].append(t3 - t0)
        for _, user in unchanged:
            t0 = time.perf_counter()
            result = rec.recommend(user, K)
            explanation_payload(rec, result, result.to_dict())
            times["recommend + explain (unchanged)"].append(time.perf_counter() - t0)
        return times
    finally:
        rec.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50, help="changed customers timed")
    parser.add_argument("--synth-users", type=int, default=5000, help="size of the synthetic shop")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    print(f"machine: {machine_line()}")
    print(f"load average at the start: {load_line()}")
    db, models = trained_models("synthetic", args.workdir, "quick", args.synth_users)
    raw_ids = _raw_ids(db, args.synth_users)
    with tempfile.TemporaryDirectory(prefix="recsight-live-bench-") as tmp:
        copy_db, copy_models = _private_copy(db, models, Path(tmp))
        times = measure(copy_db, copy_models, raw_ids, args.customers, args.seed)
    print(f"\nsynthetic shop, {args.synth_users:,} customers, quick models; k={K}; one batch of 4 events "
          "appended before each changed customer's request")
    rows = []
    for stage in STAGES:
        ms = [t * 1000 for t in times[stage]]
        if ms:
            rows.append([stage, f"{percentile(ms, 50):.1f}", f"{percentile(ms, 99):.1f}", f"{min(ms):.1f}",
                         f"{max(ms):.1f}", str(len(ms))])
    print(format_table(["stage", "p50 ms", "p99 ms", "min ms", "max ms", "n"], rows))
    print(f"load average at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
