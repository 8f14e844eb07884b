"""Are the explanations true to the model, and fast enough? One table per measure, per dataset.

    .venv/bin/python bench/explain_faithfulness.py                                  # beauty, online-retail, synthetic
    .venv/bin/python bench/explain_faithfulness.py --datasets demo                  # data/shop.duckdb + data/models
    .venv/bin/python bench/explain_faithfulness.py --workdir /tmp/recsight-bench    # reuse train_engine.py's models

Datasets are ingested with ``bench/train_engine.py``'s ``load`` into ``--workdir`` and trained
with ``workflows.training.train_shop`` into ``<workdir>/<name>-models`` unless a model is already there
(so models trained by ``train_engine.py`` in the same workdir, full configuration, are reused;
otherwise ``--quick`` picks the quick configuration). The table says which configuration each
model used. ``demo`` reads the demo shop (data/shop.duckdb, data/models) and never trains.

Measures, over the top ``--k`` items of sampled customers with a history:

- SHAP additivity: max |base + sum(contributions) - score| over every explained item;
- Integrated Gradients completeness: |convergence delta| / |score - cold-start score|, median and
  worst, and the steps the adaptive rule needed;
- deletion test: the attention network's score drop when the top-3 attributed history events are
  removed, against 3 random ones (pairs with at least 6 events in the window);
- counterfactuals: found and verified by re-scoring, for the top item of a few customers;
- planted truth (synthetic shop only): the share of brand/category reasons that name one of the
  customer's planted favourites, beside two chance rates (a uniform brand or category of the
  catalogue; a uniform one among those the customer touched);
- latency: recommend, explain, and both, per customer (median, in process; the machine is shared,
  so its load is printed beside the numbers).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import schema as s
from analytics.privacy import pseudonymise
from bench._common import format_table, load_line, machine_line, progress_bar
from bench.train_engine import SECRET, load
from explain.explainer import explain_with_reasons
from explain.faithfulness import faithfulness_sample
from models import registry
from models.config import QUICK
from models.serving import Recommender
from workflows.explaining import counterfactual
from workflows.faithfulness import check_faithfulness
from workflows.training import train_shop

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    name: str
    config: str = ""
    protocol: str = ""
    users: int = 0
    pairs: int = 0
    shap_max_error: float = 0.0
    ig_relative: list[float] = field(default_factory=list)
    ig_steps: list[int] = field(default_factory=list)
    drops: list[tuple[float, float]] = field(default_factory=list)  # (top-3 drop, random-3 drop) per pair
    counterfactuals: int = 0
    verified: int = 0
    removed_sizes: list[int] = field(default_factory=list)
    recommend_ms: list[float] = field(default_factory=list)
    explain_ms: list[float] = field(default_factory=list)
    truth_hits: list[bool] = field(default_factory=list)
    chance_catalogue: list[float] = field(default_factory=list)
    chance_own: list[float] = field(default_factory=list)


def _model(name: str, workdir: Path, synth_users: int, quick: bool) -> tuple[Path, Path]:
    if name == "demo":
        return ROOT / "data" / "shop.duckdb", ROOT / "data" / "models"
    db = load(name, workdir, synth_users)
    models = workdir / f"{name}-models"
    if registry.current(models) is None:
        started = time.perf_counter()
        with progress_bar(f"train {name}") as progress:
            train_shop(db, models, config=QUICK if quick else None, progress=progress)
        print(f"[{name}] trained ({'quick' if quick else 'full'} configuration) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    return db, models


def measure(name: str, db: Path, models: Path, n_users: int, k: int, n_counterfactuals: int,
            truth: dict[str, set[str]] | None, seed: int) -> Result:
    """Every measure of one dataset's model, on the customers of ``faithfulness_sample``."""
    recommender = Recommender.load(db, models)
    meta = recommender.artifact.metadata
    out = Result(name, "quick" if meta.get("quick") else "full", meta["protocol"])
    try:
        users = faithfulness_sample(recommender, n_users, seed)
        recommender.recommend(users[0], k)  # warm-up: first-query costs are not per-customer costs
        for user in users:
            t0 = time.perf_counter()
            result = recommender.recommend(user, k)
            t1 = time.perf_counter()
            explained = explain_with_reasons(recommender, result)
            t2 = time.perf_counter()
            out.recommend_ms.append(1000 * (t1 - t0))
            out.explain_ms.append(1000 * (t2 - t1))
            out.users += 1
            _additivity(explained, out)
            if truth is not None:
                _truth(recommender, user, explained, truth, out)
        # IG completeness and the deletion test: the same checks (and customers) as the model page.
        faith = check_faithfulness(recommender, n_users=n_users, k=k, seed=seed)
        out.ig_relative, out.ig_steps, out.drops = faith.ig_relative, faith.ig_steps, faith.drops
        for user in users[:n_counterfactuals]:
            top = recommender.recommend(user, 1).items[0].item_id
            found = counterfactual(recommender, user, top, k=k)
            out.counterfactuals += 1
            if found.verified:
                out.verified += 1
                out.removed_sizes.append(len({h.item_id for h in found.removed}))
    finally:
        recommender.close()
    return out


def _additivity(explained, out: Result) -> None:
    """SHAP additivity of the explanations themselves: base value plus contributions against the score."""
    for explanation, _ in explained:
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        out.shap_max_error = max(out.shap_max_error, abs(total - explanation.score))
        out.pairs += 1


def _truth(recommender: Recommender, user: str, explained, truth: dict[str, set[str]], out: Result) -> None:
    favourites = truth.get(user)
    if favourites is None:
        return
    with recommender.connection() as con:
        brands, categories = con.execute(
            f"""SELECT count(DISTINCT i.{s.BRAND}), count(DISTINCT i.{s.CATEGORY}) FROM {s.ITEMS} i""").fetchone()
        touched = con.execute(
            f"""SELECT list(DISTINCT i.{s.BRAND}), list(DISTINCT i.{s.CATEGORY}) FROM {s.EVENTS} e
                JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE e.{s.USER_ID} = ?""", [user]).fetchone()
    own = {"brand": set(touched[0] or []), "category": set(touched[1] or [])}
    pool = {"brand": brands, "category": categories}
    for _, reasons in explained:
        for reason in reasons:
            if reason.topic not in ("brand", "category"):
                continue
            out.truth_hits.append(reason.claims[reason.topic] in favourites)
            out.chance_catalogue.append(len(favourites & _universe(recommender, reason.topic)) / pool[reason.topic])
            out.chance_own.append(len(favourites & own[reason.topic]) / max(1, len(own[reason.topic])))


_UNIVERSE: dict[tuple[int, str], set[str]] = {}


def _universe(recommender: Recommender, topic: str) -> set[str]:
    key = (id(recommender), topic)
    if key not in _UNIVERSE:
        column = s.BRAND if topic == "brand" else s.CATEGORY
        with recommender.connection() as con:
            _UNIVERSE[key] = {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM {s.ITEMS}").fetchall()}
    return _UNIVERSE[key]


def _planted(workdir: Path, synth_users: int) -> dict[str, set[str]]:
    truth = pd.read_parquet(workdir / f"synthetic-{synth_users}" / "truth" / "preferences.parquet")
    return {pseudonymise(row.user_id, SECRET): set(row.favourite_categories) | set(row.favourite_categories_after_drift)
            | set(row.favourite_brands) for row in truth.itertuples()}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: list[Result]) -> str:
    """The tables, one per measure, one row per dataset (what BENCHMARKS.md quotes)."""
    rows = [[r.name, r.config, r.protocol, r.users, r.pairs, f"{r.shap_max_error:.1e}",
             f"{_median(r.ig_relative):.1e}", f"{max(r.ig_relative, default=float('nan')):.1e}",
             f"{int(_median(r.ig_steps)) if r.ig_steps else 0}/{max(r.ig_steps, default=0)}"] for r in results]
    lines = ["## Additivity and completeness",
             format_table(["dataset", "model", "protocol", "users", "items", "SHAP max |err|",
                           "IG |delta|/gap median", "IG worst", "IG steps med/max"], rows), ""]
    rows = []
    for r in results:
        if not r.drops:
            rows.append([r.name, 0, "-", "-", "-", "-"])
            continue
        top, rnd = np.array(r.drops).T
        rows.append([r.name, len(r.drops), f"{top.mean():.4f}", f"{rnd.mean():.4f}",
                     f"{top.mean() / rnd.mean():.1f}" if rnd.mean() > 0 else "-", f"{np.mean(top > rnd):.3f}"])
    lines += ["## Deletion test: the attention network's score drop, top-3 attributed events removed vs 3 random ones",
              format_table(["dataset", "pairs", "top-3 drop (mean)", "random-3 drop (mean)", "ratio",
                            "pairs where top-3 drops more"], rows), ""]
    rows = [[r.name, r.counterfactuals, r.verified,
             f"{_median(r.removed_sizes):.0f}" if r.removed_sizes else "-"] for r in results]
    lines += ["## Counterfactuals (top item out of the top k, verified by re-scoring)",
              format_table(["dataset", "asked", "verified", "median items removed"], rows), ""]
    planted = [r for r in results if r.truth_hits]
    if planted:
        rows = [[r.name, len(r.truth_hits), f"{np.mean(r.truth_hits):.3f}", f"{np.mean(r.chance_catalogue):.3f}",
                 f"{np.mean(r.chance_own):.3f}"] for r in planted]
        lines += ["## Reasons against the planted favourites",
                  format_table(["dataset", "brand/category reasons", "precision", "chance (catalogue)",
                                "chance (customer's own)"], rows), ""]
    rows = [[r.name, f"{_median(r.recommend_ms):.0f}", f"{_median(r.explain_ms):.0f}",
             f"{_median([a + b for a, b in zip(r.recommend_ms, r.explain_ms)]):.0f}",
             f"{np.percentile(r.explain_ms, 90):.0f}" if r.explain_ms else "-"] for r in results]
    lines += ["## Latency per customer, top 10, in process (ms, median)",
              format_table(["dataset", "recommend", "explain", "both", "explain p90"], rows)]
    return "\n".join(lines)


def main() -> None:
    """Measure each dataset named on the command line and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "online-retail", "synthetic"],
                        choices=["beauty", "online-retail", "synthetic", "demo"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsight-bench"))
    parser.add_argument("--synth-users", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="train missing models with `train --quick`")
    parser.add_argument("--users", type=int, default=80, help="customers sampled per dataset")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--counterfactuals", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    print(f"machine: {machine_line()}")
    print(f"load average at start: {load_line()}", flush=True)
    results = []
    for name in args.datasets:
        db, models = _model(name, args.workdir, args.synth_users, args.quick)
        truth = _planted(args.workdir, args.synth_users) if name == "synthetic" else None
        started = time.perf_counter()
        results.append(measure(name, db, models, args.users, args.k, args.counterfactuals, truth, args.seed))
        version = registry.load_current(models).path.name
        print(f"[{name}] measured in {time.perf_counter() - started:.0f} s (model {version})", flush=True)
    print()
    print(report(results))
    print(f"\nload average at end: {load_line()}")


if __name__ == "__main__":
    main()
