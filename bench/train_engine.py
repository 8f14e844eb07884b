"""Train and evaluate the whole engine on real data; print each dataset's table and timings.

    .venv/bin/python bench/train_engine.py                           # every dataset
    .venv/bin/python bench/train_engine.py --datasets beauty         # Amazon Beauty only
    .venv/bin/python bench/train_engine.py --datasets synthetic --synth-users 20000

Datasets (read from ../shared/data, loaded with analytics.ingest into DuckDB files under
--workdir, default /tmp/recsight-bench; a file already there is reused):

- ``beauty``: Amazon Beauty, leave-one-out, ranked against every item the user has not
  interacted with (the S3-Rec / SASRec full-ranking protocol);
- ``online-retail``: UCI Online Retail, temporal, the last month is the test window;
- ``taobao``: the Taobao UserBehavior prefix, temporal, the last day is the test window;
- ``synthetic``: the synthetic shop of ``cli.py synth``, temporal, the last week.

Each run is ``workflows.training.train_shop`` (what ``cli.py train`` runs: attention network, two rankers,
evaluation on the held-out stage, serving tables), timed once: a full training is minutes, so the
figure is one run, printed with the machine and its load (the machine is shared).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.ingest import ingest_paths
from analytics.synth import generate_shop
from bench._common import format_table, load_line, machine_line, progress_bar
from models.config import QUICK
from models.evaluation import MODEL_NAMES, format_evaluation
from models.registry import load_current
from workflows.training import train_shop

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SECRET = "bench-secret"  # pseudonyms only need to be stable inside the benchmark's own files
SOURCES = {
    "beauty": ("amazon-seq", [DATA / "amazon_beauty"]),
    "online-retail": ("online-retail", [DATA / "online_retail" / "online_retail.parquet"]),
    "taobao": ("taobao", [DATA / "taobao_userbehavior" / "UserBehavior_prefix.csv"]),
}


def load(name: str, workdir: Path, synth_users: int) -> Path:
    """The dataset's DuckDB file, ingested on first use."""
    db = workdir / f"{name}.duckdb"
    if db.exists():
        return db
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "synthetic":
        folder = workdir / f"synthetic-{synth_users}"
        generate_shop(folder, n_users=synth_users, n_items=max(2000, synth_users // 2), n_days=90, seed=42)
        fmt, paths = "generic", [folder]
    else:
        fmt, paths = SOURCES[name]
    with progress_bar(f"ingest {name}") as progress:
        ingest_paths(db, fmt, paths, secret=SECRET, progress=progress)
    return db


def run(name: str, workdir: Path, synth_users: int, quick: bool) -> str:
    db = load(name, workdir, synth_users)
    models = workdir / f"{name}-models"
    started = time.perf_counter()
    with progress_bar(f"train {name}") as progress:
        summary = train_shop(db, models, config=QUICK if quick else None, progress=progress)
    wall = time.perf_counter() - started
    meta = load_current(models).metadata
    evaluation = meta["metrics"]
    k = evaluation["k"]
    rows = [[m] + [f"{evaluation['models'][m][c]:.4f}" for c in (f"hr@{k}", f"ndcg@{k}", f"hr@{2 * k}",
                                                                 f"ndcg@{2 * k}", "mrr", f"coverage@{k}")]
            for m in MODEL_NAMES]
    table = format_table(["model", f"HR@{k}", f"NDCG@{k}", f"HR@{2 * k}", f"NDCG@{2 * k}", "MRR", f"cov@{k}"], rows)
    phases = ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in summary["timings_s"].items())
    return "\n".join([
        f"## {name}: {meta['protocol']}, target {evaluation['target']}, {evaluation['users']} test users",
        table,
        "candidate recall: " + ", ".join(f"{key} {v:.4f}" for key, v in evaluation["candidates"].items()),
        f"training wall time {wall:.0f} s ({phases}); attention epochs "
        f"{meta['attention_training'].get('epochs_run')}, ranker trees {meta['ranker_trees']}",
        "",
        format_evaluation(evaluation),
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "online-retail", "taobao", "synthetic"],
                        choices=["beauty", "online-retail", "taobao", "synthetic"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsight-bench"))
    parser.add_argument("--synth-users", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="the `train --quick` configuration")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    print(f"machine: {machine_line()}")
    print(f"load average at start: {load_line()}\n")
    for name in args.datasets:
        print(run(name, args.workdir, args.synth_users, args.quick), flush=True)
    print(f"load average at end: {load_line()}")


if __name__ == "__main__":
    main()
