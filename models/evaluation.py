"""Evaluation: every model beside the baselines on the held-out test stage, overall and per segment.

Training (:func:`models.training.train`) stores this table with the version; :func:`evaluate`
(``cli.py evaluate``) recomputes it from the stored models and the database, so it is an
independent check, not a cached print.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import duckdb

from analytics import metrics
from analytics import schema as s
from analytics.db import connect_read_only
from analytics.paired import compare_to, verdict
from models import registry
from models.batch import HistoryTables, Models, feature_frame, prepare_history, rank_frame
from models.candidates import covisit_ranking, popularity_ranking
from models.config import EngineConfig, engine_config_from
from models.features import rfm_segments
from models.splits import LEAVE_ONE_OUT, Split, make_split
from progress import SILENT, Progress

__all__ = ["MODEL_NAMES", "evaluate", "evaluate_split", "format_evaluation", "comparison_lines"]

log = logging.getLogger(__name__)

MODEL_NAMES = ("popularity", "covisit", "attention", "ranker", "hybrid")
# History-length buckets (events) for leave-one-out segments.
_LENGTH_BUCKETS = ((1, 5, "1-5 events"), (6, 10, "6-10 events"), (11, 20, "11-20 events"), (21, None, "21+ events"))


def evaluate(db_path: Path, models_dir: Path, k: int = 10, progress: Progress = SILENT) -> dict:
    """Recompute the evaluation table of the current models on the database's test stage
    (``progress`` hears its phases: minutes on a large shop)."""
    con = connect_read_only(db_path)
    try:
        progress.phase("loading the models")
        artifact = registry.load_current(Path(models_dir), con)
        meta = artifact.metadata
        config = engine_config_from(meta["config"])
        models = Models.load(artifact.path, meta["features"], registry.served_model(meta))
        window = meta["split"]["window_days"]
        progress.phase("split")
        split = make_split(con, meta["protocol"], window=None if window is None else timedelta(days=window))
        result = evaluate_split(con, split, models, config, k=k, dataset=meta.get("dataset", Path(db_path).stem),
                                progress=progress)
        # Which ranker the version serves and why (chosen at training on the validation customers).
        result["served"] = meta.get("served") or {"model": models.served, "why": "trained before the choice existed"}
        return result
    finally:
        con.close()


def evaluate_split(
    con: duckdb.DuckDBPyConnection, split: Split, models: Models, config: EngineConfig,
    k: int = 10, dataset: str = "", progress: Progress = SILENT,
) -> dict:
    """Every model of :data:`MODEL_NAMES` on the test stage, overall and per segment."""
    test = split.test
    n = max(config.list_length, 2 * k)
    progress.phase("evaluation: features")
    tables = prepare_history(con, test.history, test.as_of, config, "ev")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ev_users AS SELECT DISTINCT {s.USER_ID} FROM {test.labels}")
    frame = feature_frame(con, tables, "ev_users", "ev", labels=test.labels, attention=models.attention)
    truth: dict[str, dict[str, float]] = {}
    for user, item, grade in con.execute(f"SELECT {s.USER_ID}, {s.ITEM_ID}, relevance FROM {test.labels}").fetchall():
        truth.setdefault(user, {})[item] = float(grade if split.target == "any behaviour" else 1)
    users = sorted(truth)
    seen = "ev_cand_seq"
    progress.phase("evaluation: rankings of every model")
    histories = models.attention.histories(con, test.history, users)
    rankings = {
        "popularity": popularity_ranking(con, tables.index, "ev_users", seen, n),
        "covisit": covisit_ranking(con, tables.index, "ev_cand", "ev_users", seen, n),
        "attention": _items(models.attention.top_k(histories, users, n, exclude_seen=True)),
        "ranker": _items(rank_frame(frame, models.ranker, n)),
        "hybrid": _items(rank_frame(frame, models.hybrid, n)),
    }
    catalogue_size, n_history_users = con.execute(
        f"SELECT (SELECT count(*) FROM {tables.items}), (SELECT count(DISTINCT {s.USER_ID}) FROM {test.history})"
    ).fetchone()
    item_users = dict(con.execute(f"SELECT {s.ITEM_ID}, item_users FROM {tables.items}").fetchall())
    common = {"catalogue_size": catalogue_size, "item_users": item_users, "n_users": n_history_users}
    progress.phase("evaluation: metrics")
    result = {
        "dataset": dataset,
        "protocol": split.protocol,
        "target": split.target,
        "k": k,
        "users": len(users),
        "models": {name: _rounded(metrics.evaluate_rankings(r, truth, k, **common)) for name, r in rankings.items()},
        "candidates": _candidate_recall(con, test.labels, "ev_cand", len(truth), (k, 50, 100, 200)),
        # The served model against each other one on the same customers, with a paired bootstrap
        # 95 % interval: whether a gap in the table is more than which customers were tested.
        "comparisons": {"metric": f"ndcg@{k}", "served": models.served,
                        "against": compare_to(models.served, rankings, truth, k)},
    }
    progress.phase("evaluation: segments")
    segment_of, by = _segments(con, split, tables, "ev_usr_profile")
    groups: dict[str, dict] = {}
    order = [name for _, _, name in _LENGTH_BUCKETS]  # buckets in length order, RFM segments by name
    for segment in sorted(set(segment_of.values()), key=lambda g: (order.index(g) if g in order else len(order), g)):
        members = {u: truth[u] for u in users if segment_of.get(u) == segment}
        groups[segment] = {
            name: {key: value for key, value in _rounded(metrics.evaluate_rankings(r, members, k, **common)).items()
                   if key in (f"hr@{k}", f"ndcg@{k}", f"recall@{k}", "users")}
            for name, r in rankings.items()
        }
    result["segments"] = {"by": by, "groups": groups}
    return result


def _items(ranked: dict[str, list[tuple[str, float]]]) -> dict[str, list[str]]:
    return {user: [item for item, _ in pairs] for user, pairs in ranked.items()}


def _rounded(values: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def _candidate_recall(con: duckdb.DuckDBPyConnection, labels: str, candidates: str, n_relevant_users: int,
                      budgets: tuple[int, ...]) -> dict[str, float]:
    """Share of the test targets inside the first N candidates: the ranker's ceiling at N."""
    total = con.execute(f"SELECT count(*) FROM {labels}").fetchone()[0] or 1
    out = {}
    for budget in budgets:
        found = con.execute(
            f"""SELECT count(*) FROM {candidates} c JOIN {labels} l USING ({s.USER_ID}, {s.ITEM_ID})
                WHERE c.cand_rank <= {budget}"""
        ).fetchone()[0]
        out[f"recall@{budget}"] = round(found / total, 6)
    return out


def _segments(con: duckdb.DuckDBPyConnection, split: Split, tables: HistoryTables,
              profile: str) -> tuple[dict[str, str], str]:
    """RFM segment (temporal) or history-length bucket (leave-one-out) of each test user."""
    if split.protocol == LEAVE_ONE_OUT:
        cases = " ".join(
            f"WHEN user_events >= {lo}" + (f" AND user_events <= {hi}" if hi else "") + f" THEN '{name}'"
            for lo, hi, name in _LENGTH_BUCKETS
        )
        rows = con.execute(f"SELECT {s.USER_ID}, CASE {cases} END FROM {profile}").fetchall()
        return dict(rows), "history length"
    return rfm_segments(con, tables.history, "ev_users", tables.as_of), "RFM segment"


def format_evaluation(result: dict) -> str:
    """The evaluation as a readable table: one row per model, then the per-segment NDCG."""
    k = result["k"]
    columns = [f"hr@{k}", f"ndcg@{k}", f"hr@{2 * k}", f"ndcg@{2 * k}", f"recall@{k}", f"map@{k}", "mrr",
               f"coverage@{k}", f"novelty@{k}"]
    lines = [
        f"dataset {result['dataset']} | protocol {result['protocol']} | target {result['target']} "
        f"| {result['users']} test users",
        f"{'model':<12}" + "".join(f"{c:>13}" for c in columns),
    ]
    for name, values in result["models"].items():
        lines.append(f"{name:<12}" + "".join(f"{values.get(c, 0.0):>13.4f}" for c in columns))
    cand = result.get("candidates", {})
    if cand:
        lines.append("candidate recall (ranker ceiling): " + ", ".join(f"{key} {v:.4f}" for key, v in cand.items()))
    lines += comparison_lines(result)
    segments = result.get("segments", {})
    if segments.get("groups"):
        names = list(result["models"])
        lines.append(f"ndcg@{k} by {segments['by']}:")
        lines.append(f"{'segment':<16}{'users':>7}" + "".join(f"{m:>12}" for m in names))
        for segment, per_model in segments["groups"].items():
            users = next(iter(per_model.values())).get("users", 0)
            lines.append(f"{segment:<16}{users:>7}" + "".join(f"{per_model[m][f'ndcg@{k}']:>12.4f}" for m in names))
    return "\n".join(lines)


def comparison_lines(result: dict) -> list[str]:
    """The served model against each other model, one line each: the difference in the metric,
    relative too, its paired bootstrap 95 % interval and the customers behind it. Nothing for an
    evaluation stored before the comparisons were."""
    comparisons = result.get("comparisons") or {}
    if not comparisons.get("against"):
        return []
    metric, served = comparisons["metric"], comparisons["served"]
    why = (result.get("served") or {}).get("why")
    lines = [f"served: {served}" + (f" ({why})" if why else "")]
    lines.append(f"{served} against each model, {metric} difference (paired bootstrap 95% interval):")
    for name, c in comparisons["against"].items():
        relative = "" if c["relative"] is None else f" ({c['relative']:+.1%})"
        lines.append(f"  vs {name:<11}{c['difference']:+.4f}{relative}  [{c['low']:+.4f}, {c['high']:+.4f}]  "
                     f"{c['users']:,} customers: {verdict(c['low'], c['high'])}")
    return lines
