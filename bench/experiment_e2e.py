"""Benchmark: an A/B experiment between the quick and the full model, run with the shopper simulator.

    .venv/bin/python bench/experiment_e2e.py                       # 1,000 customers, 4,000 visits
    .venv/bin/python bench/experiment_e2e.py --users 5000 --visits 20000 --workdir /tmp/e2e

Issue 18 end to end, on a synthetic shop whose tastes are known: generate the shop, ingest it,
train it twice into one models folder (``train --quick``, then the full configuration), define an
experiment "quick-vs-full" (50/50) between the two versions that started before the simulated
visits, run ``cli.py simulate``'s workflow, and analyse the experiment as the Experiments page does.
Prints the truth the simulator knows (expected clicks per visit of each variant's lists), the
simulated counts, the offline test NDCG@10 of both versions, and the page's figures and verdict.
The shop and its models are kept under ``--workdir`` (reused when there), so the pages can be
served on them afterwards (``RECSIGHT_DB=<workdir>/shop.duckdb RECSIGHT_MODELS=<workdir>/models``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import format_table, load_line, machine_line

SECRET = "bench-secret"
EXPERIMENT = "quick-vs-full"


def _shop(workdir: Path, users: int, secret: str, export: Path | None) -> tuple[Path, Path]:
    """The shop and its models folder with the quick and the full version (trained once, then reused);
    from the synthetic export ``export`` when given (the replay's shop), else a new one."""
    from analytics.ingest import ingest_paths
    from analytics.synth import generate_shop
    from models import registry
    from models.config import QUICK
    from workflows.training import train_shop

    db, models, shop = workdir / "shop.duckdb", workdir / "models", workdir / "shop"
    if len(registry.versions(models)) >= 2:
        return db, models
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if export is None:
        generate_shop(shop, n_users=users, n_items=max(800, users * 4 // 5), n_days=60, seed=21)
    else:
        shutil.copytree(export, shop)
    ingest_paths(db, "generic", [shop], secret=secret)
    for kind, config in (("quick", QUICK), ("full", None)):
        started = time.perf_counter()
        train_shop(db, models, config=config)
        print(f"trained {kind} in {time.perf_counter() - started:.0f} s; load {load_line()}", flush=True)
    return db, models


def main(argv: list[str] | None = None) -> int:
    from analytics import experiments_store as xs
    from analytics.experiment_stats import verdict
    from analytics.experiments_store import Experiment, Variant
    from models import registry
    from settings import Settings
    from workflows import experiments as work
    from workflows.simulate import SimulationConfig, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsight-bench/experiment-e2e"))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--visits", type=int, default=4000)
    parser.add_argument("--hours", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--secret", default=SECRET, help="the pseudonymisation secret of a shop already in --workdir")
    parser.add_argument("--export", type=Path, default=None,
                        help="a synthetic shop's folder to use (bench/replay.py's synthetic-N, to compare with its "
                             "replay of the same shop) instead of generating one")
    args = parser.parse_args(argv)
    print(f"machine: {machine_line()}\nload average at the start: {load_line()}", flush=True)
    db, models = _shop(args.workdir, args.users, args.secret, args.export)
    quick, full = registry.versions(models)[-1], registry.versions(models)[0]  # newest first: full, then quick
    settings = Settings(db_path=db, models_dir=models, secret=args.secret, audit_db=args.workdir / "audit.duckdb",
                        users_file=args.workdir / "users.json")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    shutil.rmtree(xs.experiments_folder(db), ignore_errors=True)  # a fresh experiment each run
    experiment = Experiment(EXPERIMENT, "Quick vs full model", "The full model lifts click-through over the quick one",
                            "click_through", (Variant("quick", 0.5, quick), Variant("full", 0.5, full)),
                            start=now - timedelta(hours=args.hours + 1))
    work.save_experiment(settings, experiment, "bench", lambda detail: None, now=now - timedelta(hours=args.hours + 2))
    result = simulate(settings, args.workdir / "shop" / "truth",
                      SimulationConfig(visits=args.visits, seed=args.seed, span_hours=args.hours))
    report = work.analyse_experiment(settings, EXPERIMENT)
    rows = []
    for name, version in (("quick", quick), ("full", full)):
        tally = result.by_variant[name]
        meta = registry.metadata(models, version)
        served = registry.served_model(meta)
        ndcg = meta["metrics"]["models"][served]["ndcg@10"]
        rows.append([name, version, served, f"{ndcg:.4f} ({meta['metrics']['users']} customers)", f"{tally.visits:,}",
                     f"{tally.expected_clicks / tally.visits:.3f}", f"{tally.clicks / tally.visits:.3f}",
                     f"{tally.purchases:,}"])
    print(f"\n{args.visits:,} visits over {args.hours} h in {result.seconds:.0f} s; {result.events:,} events sent")
    print(format_table(["variant", "model version", "serves", "offline NDCG@10", "visits",
                        "expected clicks/visit (truth)", "simulated clicks/visit", "purchases"], rows))
    if report.analysis is not None:
        analysis = report.analysis.to_dict()
        for v in analysis["variants"]:
            print(f"{v['variant']}: click-through {v['value']:.4f} (95 % interval {v['low']:.4f}-{v['high']:.4f}), "
                  f"{v['customers']:,} customers")
        for c in analysis["comparisons"]:
            print(f"{c['variant']} vs {c['control']}: lift {c['lift']:+.2%} ({c['lift_low']:+.2%} to "
                  f"{c['lift_high']:+.2%}), p = {c['p_value']:.3f}")
        print(f"sample ratio: p = {analysis['srm']['p_value']:.3f}, flagged {analysis['srm']['flagged']}")
        print("verdict:", verdict(report.analysis))
    else:
        print("no analysis:", report.message)
    print(f"load average at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
