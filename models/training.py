"""Train a shop's engine and publish it as one model version: what ``cli.py train`` runs.

``train`` splits the shop's events by protocol (:mod:`models.splits`), trains the attention
network and the two rankers on the training stage only, evaluates every model on the held-out
test stage beside the popularity and co-visitation baselines (:mod:`models.evaluation`), builds
the serving tables from all events, ranks every customer's list (:mod:`models.precompute`), and
publishes one model version (:mod:`models.registry`).

``distribution`` (:mod:`models.distribution`) runs the attention network, the rankers and the
precomputed lists on a Dask cluster and several torch processes; None (the default) is one process.

What the layers above want stored with a version (the dashboard's global SHAP view) they pass
as ``extras``: the engine does not import them.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from analytics import schema as s
from analytics.db import connect_read_only, machine_memory
from analytics.live_sql import folded_seq
from errors import RecsightError
from models import registry
from models.attention_training import train_attention
from models.batch import HistoryTables, Models, feature_frame, prepare_history
from models.config import QUICK, EngineConfig
from models.distribution import Cluster, Distribution, open_cluster
from models.evaluation import MODEL_NAMES, evaluate_split
from models.features import feature_names
from models.precompute import TOP_ITEMS_FILE, TOP_ITEMS_META, precompute_top_items
from models.ranker import Ranker, train_ranker
from models.splits import TEMPORAL, Split, detect_protocol, make_split
from progress import SILENT, Progress

__all__ = ["VersionExtra", "train", "choose_served"]

log = logging.getLogger(__name__)

_DUCKDB_MEMORY_SHARE = 0.4  # of the machine's RAM for DuckDB while training; the rest for Python's arrays

# Something more to store in a version being written: called as
# ``extra(folder, con, serving_tables, models, protocol, progress)`` after the models and serving
# tables are saved into the staging ``folder`` and before the lists are precomputed (``progress``
# hears its own phases, each shown after "extra: <name>"). It raises to abort the version (the
# previous one stays current).
VersionExtra = Callable[[Path, duckdb.DuckDBPyConnection, HistoryTables, Models, str, Progress], None]


class _Clock:
    """Seconds per training stage, logged as they end and stored in the metadata (``timings_s``)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str, since: float | None = None) -> None:
        now = time.perf_counter()
        seconds = now - (self.last if since is None else since)
        self.timings[name] = round(seconds, 2)
        log.info("%s: %.1f s", name, seconds)
        self.last = now

    def total(self) -> None:
        self.timings["total"] = round(time.perf_counter() - self.started, 2)


def train(db_path: Path, models_dir: Path, protocol: str | None = None, config: EngineConfig | None = None,
          extras: Sequence[VersionExtra] = (), progress: Progress = SILENT, serve: str | None = None,
          distribution: Distribution | None = None) -> dict[str, Any]:
    """Train every model on ``db_path``, evaluate it, and publish a new version in ``models_dir``.

    ``config`` None is the full :class:`EngineConfig` (``cli.py train --quick`` passes
    :data:`models.config.QUICK`); ``extras`` add files to the version (see :data:`VersionExtra`).
    ``progress`` hears each phase (and the counted ones' units: attention batches, the rankers'
    boosting rounds, customers of the precomputed lists), so a half-hour run says where it is.
    ``serve`` pins the served ranker ("hybrid" or "ranker"); None chooses it on the validation
    customers (:func:`choose_served`). ``distribution`` runs the heavy steps on a cluster
    (:class:`models.distribution.Distribution`; None: this process), recorded as ``engine``.
    Returns the summary ``cli.py train`` prints.
    """
    _check_serve(serve)  # before the minutes of training, not after
    config = EngineConfig() if config is None else config
    engine = distribution.describe() if distribution is not None else {"name": "local"}
    clock = _Clock()
    if distribution is not None:
        progress.phase("starting the dask cluster")
    with open_cluster(distribution) as cluster:
        if cluster is not None:
            clock.lap("cluster start")
        return _train(Path(db_path), Path(models_dir), protocol, config, extras, progress, serve, cluster, engine,
                      clock)


def _train(db_path: Path, models_dir: Path, protocol: str | None, config: EngineConfig,
           extras: Sequence[VersionExtra], progress: Progress, serve: str | None, cluster: Cluster | None,
           engine: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """:func:`train` once the cluster (if any) is up."""
    con = connect_read_only(db_path)
    spill = _bound_memory(con, models_dir)
    try:
        progress.phase("split")
        protocol = protocol or detect_protocol(con)
        split = make_split(con, protocol)
        data_fingerprint = registry.fingerprint(con)
        live_seq = folded_seq(con)  # what of the live segment the snapshot holds: serving after a compaction
        clock.lap("split")
        models = _fit(con, split, config, clock, progress, cluster)
        served = choose_served(models.ranker, models.hybrid, serve)
        models.served = served["model"]
        evaluation = evaluate_split(con, split, models, config, dataset=Path(db_path).stem, progress=progress)
        clock.lap("evaluation")
        progress.phase("serving tables")
        serving = prepare_history(con, s.EVENTS, None, config, "serve")
        serving_as_of = con.execute(f"SELECT max({s.TS}) + INTERVAL 1 MICROSECOND FROM {s.EVENTS}").fetchone()[0]
        clock.lap("serving tables")

        def fill(folder: Path) -> dict[str, Any]:
            progress.phase("saving the models")
            _save_models(folder, con, serving, models)
            for extra in extras:
                progress.phase(f"extra: {_extra_name(extra)}")
                extra(folder, con, serving, models, protocol, progress)
            # Every customer's list, ranked now by the serving path over the tables just saved, so
            # a request for a known customer is a lookup (Recommender.recommend).
            tables, out = dataclasses.replace(serving, as_of=serving_as_of), folder / "serving" / TOP_ITEMS_FILE
            top_items = (precompute_top_items(con, tables, models, out, progress=progress) if cluster is None else
                         cluster.precompute(con, tables, models, db_path, folder, data_fingerprint, out, progress))
            clock.lap("serving precompute", time.perf_counter() - top_items["seconds"])
            clock.total()
            return {
                "dataset": Path(db_path).stem,
                "fingerprint": data_fingerprint,
                "live_seq": live_seq,
                "protocol": protocol,
                "split": _split_summary(split),
                "features": {"ranker": models.ranker.features, "hybrid": models.hybrid.features},
                "served": served,
                "config": dataclasses.asdict(config),
                "quick": config == QUICK,
                "engine": engine,
                "metrics": evaluation,
                "ranker_trees": {"ranker": models.ranker.booster.num_trees(),
                                 "hybrid": models.hybrid.booster.num_trees()},
                "attention_training": {k: v for k, v in models.attention.training.items() if k != "epochs"},
                "serving_as_of": serving_as_of.isoformat(),
                TOP_ITEMS_META: top_items,
                "timings_s": clock.timings,
                "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }

        path = registry.write_version(models_dir, fill)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return {"models": str(path), "protocol": protocol, "target": evaluation["target"],
            "timings_s": clock.timings, "candidates": evaluation["candidates"],
            "ndcg@10": {name: evaluation["models"][name]["ndcg@10"] for name in MODEL_NAMES},
            "served": served}


def _bound_memory(con: duckdb.DuckDBPyConnection, models_dir: Path) -> Path:
    """Cap DuckDB's memory during training at :data:`_DUCKDB_MEMORY_SHARE` of the machine's RAM
    and let it spill to a folder beside the versions (returned; the caller removes it).

    Why: DuckDB allows itself 80 % of RAM by default, and training holds the network's sequences
    and the feature frames in Python beside it: at 10M events the two together passed 20 GiB on a
    24 GiB machine (BENCHMARKS.md, "Scale curve"). The training tables are session temp tables of
    an in-memory database, which spill only where a temp directory is set.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".spill-", dir=models_dir))
    con.execute(f"SET memory_limit = '{int(machine_memory() * _DUCKDB_MEMORY_SHARE) // 2**20}MB'")
    con.execute("SET temp_directory = ?", [str(spill)])
    return spill


def _fit(con: duckdb.DuckDBPyConnection, split: Split, config: EngineConfig, clock: _Clock,
         progress: Progress, cluster: Cluster | None = None) -> Models:
    """The attention network, then both rankers on the training stage's feature rows (the hybrid
    with the network's score as one more feature); on ``cluster``'s processes and workers if given."""
    fit_attention = train_attention if cluster is None else cluster.train_attention
    fit_ranker = train_ranker if cluster is None else cluster.train_ranker
    attention = fit_attention(con, split.train.history, config.attention, progress=progress)
    clock.lap("attention")
    progress.phase("training features")
    tables = prepare_history(con, split.train.history, split.train.as_of, config, "tr")
    con.execute(f"CREATE OR REPLACE TEMP TABLE tr_users AS SELECT DISTINCT {s.USER_ID} FROM {split.train.labels}")
    frame = feature_frame(con, tables, "tr_users", "tr", labels=split.train.labels, attention=attention)
    clock.lap("training features")
    temporal = split.protocol == TEMPORAL
    ranker = fit_ranker(frame, feature_names(temporal, with_attention=False), config.ranker, progress, "ranker")
    hybrid = fit_ranker(frame, feature_names(temporal, with_attention=True), config.ranker, progress,
                        "hybrid ranker")
    del frame
    clock.lap("rankers")
    return Models(ranker, hybrid, attention)


def choose_served(ranker: Ranker, hybrid: Ranker, pinned: str | None = None) -> dict[str, Any]:
    """The ranker customers are served, chosen on the training stage's held-out customers (the
    rankers' early-stopping validation, never the test stage that the evaluation reports): the
    hybrid only where the attention feature earns its place there, the simpler ranker otherwise
    (ties included). The reason is stored and shown, so nobody has to guess why. ``pinned`` (``train
    --serve``) overrides the choice, and the reason says so beside the validation scores."""
    _check_serve(pinned)
    with_attention, without = hybrid.validation or 0.0, ranker.validation or 0.0
    verdict = "beats" if with_attention > without else "does not beat"
    evidence = (f"on the validation customers the hybrid (NDCG@10 {with_attention:.4f}) {verdict} the ranker "
                f"without the attention feature ({without:.4f})")
    served = pinned or ("hybrid" if with_attention > without else "ranker")
    return {"model": served, "validation": {"hybrid": round(with_attention, 6), "ranker": round(without, 6)},
            "why": f"pinned with train --serve {pinned}; {evidence}" if pinned else evidence}


def _save_models(folder: Path, con: duckdb.DuckDBPyConnection, serving: HistoryTables, models: Models) -> None:
    """The trained parts and the serving tables into the version's staging folder (rankers first:
    a run killed here leaves a staging folder nobody reads)."""
    models.ranker.save(folder / registry.RANKER_FILE)
    models.hybrid.save(folder / registry.HYBRID_FILE)
    models.attention.save(folder / registry.ATTENTION_FILE)
    serving.index.save(folder / "serving", con)
    con.execute(f"COPY {serving.items} TO '{folder / 'serving' / (serving.items + '.parquet')}' (FORMAT PARQUET)")


def _extra_name(extra: VersionExtra) -> str:
    """``write_global_importance`` -> ``global importance``: the phase an extra is shown as."""
    name = getattr(extra, "__name__", "") or type(extra).__name__
    return name.removeprefix("write_").strip("_").replace("_", " ") or "extra"


def _check_serve(pinned: str | None) -> None:
    if pinned is not None and pinned not in registry.SERVABLE:
        raise RecsightError(f"--serve must be one of {', '.join(registry.SERVABLE)}, not {pinned!r}")


def _split_summary(split: Split) -> dict[str, Any]:
    return {
        "target": split.target,
        "window_days": split.window.total_seconds() / 86400 if split.window else None,
        "train_cutoff": split.train.as_of.isoformat() if split.train.as_of else None,
        "test_cutoff": split.test.as_of.isoformat() if split.test.as_of else None,
    }
