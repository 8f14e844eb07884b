"""Global explanations: which features drive the ranker's lists, overall, per group and per segment.

Computed from the same exact TreeSHAP values as the per-item explanations, over the top ``k``
items of a sample of customers (the rows customers actually see, not every candidate), so "brand
affinity matters most" describes the lists the shop shows.

Computing it means running the serving SQL for a few hundred customers (seconds), too slow for a
dashboard page, so it is written next to the model version at training time
(:func:`write_global_importance`, run by ``workflows.training.train_shop``):
``global_importance.json`` (the summaries) and ``global_shap.parquet`` (one row per explained
item: segment, feature values and SHAP values, for dependence plots). No customer ids are
stored. :func:`global_importance` reads them back, or computes them for a model without them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as s
from atomic import replace_with, write_text
from errors import RecsightError
from models import registry
from models.batch import HistoryTables, Models, feature_frame
from models.features import feature_spec, rfm_segments
from models.serving import Recommender
from models.splits import TEMPORAL
from progress import SILENT, Progress

__all__ = ["GlobalImportance", "compute_global_importance", "sample_users", "write_global_importance",
           "save_global_importance", "load_global_importance", "global_importance", "SUMMARY_FILE", "ROWS_FILE"]

log = logging.getLogger(__name__)

SUMMARY_FILE = "global_importance.json"
ROWS_FILE = "global_shap.parquet"
DEFAULT_USERS = 300
DEFAULT_K = 10
_FORMAT = 1
# History-length buckets for order-only data, where RFM segments have no meaning.
_LENGTH_BUCKETS = ((1, 5, "1-5 events"), (6, 10, "6-10 events"), (11, 20, "11-20 events"), (21, None, "21+ events"))


@dataclass(frozen=True)
class GlobalImportance:
    """SHAP values of the top-k rows of sampled customers, and the summaries built from them."""

    features: list[str]
    base: float
    n_users: int
    k: int
    segment_by: str  # "RFM segment" (temporal data) or "history length" (order-only data)
    rows: pd.DataFrame  # segment, item_id, rank, score, value:<feature>..., shap:<feature>...

    def by_feature(self) -> pd.DataFrame:
        """feature, label, group, mean_abs_shap, mean_shap; largest mean |SHAP| first."""
        shap = self._shap()
        out = pd.DataFrame({
            "feature": self.features,
            "label": [feature_spec(f).label for f in self.features],
            "group": [feature_spec(f).group for f in self.features],
            "mean_abs_shap": shap.abs().mean().to_numpy() if len(shap) else np.zeros(len(self.features)),
            "mean_shap": shap.mean().to_numpy() if len(shap) else np.zeros(len(self.features)),
        })
        return out.sort_values(["mean_abs_shap", "feature"], ascending=[False, True], ignore_index=True)

    def by_group(self) -> pd.DataFrame:
        """group, mean_abs_shap of the group's summed SHAP per row (a group acts as one feature)."""
        shap = self._shap()
        groups = pd.Series({f: feature_spec(f).group for f in self.features})
        summed = shap.T.groupby(groups.reindex(shap.columns).to_numpy()).sum().T if len(shap) else pd.DataFrame()
        out = pd.DataFrame({"group": list(summed.columns), "mean_abs_shap": summed.abs().mean().to_numpy()})
        return out.sort_values(["mean_abs_shap", "group"], ascending=[False, True], ignore_index=True)

    def by_segment(self) -> pd.DataFrame:
        """segment, feature, label, group, mean_abs_shap, rows: importance within each segment."""
        shap = self._shap().abs()
        shap.insert(0, "segment", self.rows["segment"].fillna("unknown").to_numpy())
        long = shap.melt(id_vars="segment", var_name="feature", value_name="abs_shap")
        out = long.groupby(["segment", "feature"], as_index=False).agg(
            mean_abs_shap=("abs_shap", "mean"), rows=("abs_shap", "size"))
        out["label"] = [feature_spec(f).label for f in out["feature"]]
        out["group"] = [feature_spec(f).group for f in out["feature"]]
        return out.sort_values(["segment", "mean_abs_shap"], ascending=[True, False], ignore_index=True)[
            ["segment", "feature", "label", "group", "mean_abs_shap", "rows"]]

    def dependence(self, feature: str) -> pd.DataFrame:
        """value, contribution, segment of every sampled row, for a dependence scatter."""
        if feature not in self.features:
            raise RecsightError(f"the ranker has no feature {feature!r}")
        return pd.DataFrame({"value": self.rows[f"value:{feature}"].to_numpy(),
                             "contribution": self.rows[f"shap:{feature}"].to_numpy(),
                             "segment": self.rows["segment"].to_numpy()})

    def summary(self) -> dict:
        """The JSON-ready summaries (what the dashboard reads first)."""
        return {
            "format": _FORMAT, "n_users": self.n_users, "k": self.k, "rows": len(self.rows), "base": self.base,
            "segment_by": self.segment_by, "features": self.features,
            "by_feature": self.by_feature().to_dict("records"),
            "by_group": self.by_group().to_dict("records"),
            "by_segment": self.by_segment().to_dict("records"),
        }

    def _shap(self) -> pd.DataFrame:
        shap = self.rows[[f"shap:{f}" for f in self.features]]
        shap.columns = self.features
        return shap


def compute_global_importance(recommender: Recommender, n_users: int = DEFAULT_USERS, k: int = DEFAULT_K,
                              seed: int = 42) -> GlobalImportance:
    """Global importance of a loaded model over ``n_users`` customers sampled from its history."""
    with recommender.connection() as con:
        return _compute(con, recommender.tables, recommender.models,
                        recommender.artifact.metadata.get("protocol") == TEMPORAL, n_users, k, seed)


def write_global_importance(folder: Path, con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models,
                            protocol: str, _progress: Progress = SILENT, n_users: int = DEFAULT_USERS,
                            k: int = DEFAULT_K) -> None:
    """Compute and save the global importance into a model version folder (the training hook; one
    phase, with nothing to count)."""
    importance = _compute(con, tables, models, protocol == TEMPORAL, n_users, k, 42)
    save_global_importance(importance, Path(folder))
    log.info("global importance of %d customers' top %d written to %s", importance.n_users, k, folder)


def _compute(con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models, temporal: bool,
             n_users: int, k: int, seed: int) -> GlobalImportance:
    if n_users <= 0 or k <= 0:
        raise RecsightError("the global importance needs a positive number of customers and items")
    con.execute("CREATE OR REPLACE TEMP TABLE gi_users (user_id VARCHAR)")
    con.executemany("INSERT INTO gi_users VALUES (?)", [[u] for u in sample_users(con, tables.history, n_users, seed)])
    frame = feature_frame(con, tables, "gi_users", "gi", attention=models.attention)
    ranker = models.serving
    if frame.empty:
        raise RecsightError("no customer in the sample has candidates: nothing to summarise")
    frame = frame.assign(score=ranker.predict(frame))
    frame = frame.sort_values([s.USER_ID, "score", "cand_rank"], ascending=[True, False, True], kind="stable")
    frame = frame[frame.groupby(s.USER_ID).cumcount() < k].reset_index(drop=True)
    raw = ranker.contributions(frame)
    segment = _segments(con, tables, "gi_usr_profile", temporal)
    rows = pd.DataFrame({
        "segment": frame[s.USER_ID].map(segment).to_numpy(),
        s.ITEM_ID: frame[s.ITEM_ID].to_numpy(),
        "rank": frame.groupby(s.USER_ID).cumcount().to_numpy() + 1,
        "score": frame["score"].to_numpy(),
    })
    values = ranker.matrix(frame)
    extra = {f"value:{f}": values[:, j] for j, f in enumerate(ranker.features)}
    extra |= {f"shap:{f}": raw[:, j] for j, f in enumerate(ranker.features)}
    rows = pd.concat([rows, pd.DataFrame(extra)], axis=1)
    return GlobalImportance(list(ranker.features), float(raw[0, -1]), int(frame[s.USER_ID].nunique()), k,
                            "RFM segment" if temporal else "history length", rows)


def sample_users(con: duckdb.DuckDBPyConnection, history: str, n_users: int, seed: int = 42) -> list[str]:
    """A fixed pseudo-random sample of the customers with events in ``history`` (same seed, same sample)."""
    rows = con.execute(
        f"""SELECT {s.USER_ID} FROM (SELECT DISTINCT {s.USER_ID} FROM {history})
            ORDER BY md5({s.USER_ID} || ?), {s.USER_ID} LIMIT ?""", [str(seed), n_users]).fetchall()
    return [r[0] for r in rows]


def _segments(con: duckdb.DuckDBPyConnection, tables: HistoryTables, profile: str, temporal: bool) -> dict[str, str]:
    if temporal:
        return rfm_segments(con, tables.history, "gi_users", tables.as_of)
    cases = " ".join(f"WHEN user_events >= {lo}" + (f" AND user_events <= {hi}" if hi else "") + f" THEN '{name}'"
                     for lo, hi, name in _LENGTH_BUCKETS)
    return dict(con.execute(f"SELECT {s.USER_ID}, CASE {cases} END FROM {profile}").fetchall())


def save_global_importance(importance: GlobalImportance, folder: Path) -> None:
    """Write the summaries and the rows into ``folder`` (atomically, file by file)."""
    folder = Path(folder)
    try:
        write_text(folder / SUMMARY_FILE, json.dumps(importance.summary(), indent=1, default=float))
        replace_with(folder / ROWS_FILE, lambda tmp: importance.rows.to_parquet(tmp, index=False))
    except OSError as exc:
        raise RecsightError(f"cannot write the global importance into {folder}: {exc.strerror}") from None


def load_global_importance(folder: Path) -> GlobalImportance | None:
    """The saved global importance of a model version folder; None if it has none."""
    folder = Path(folder)
    summary_path, rows_path = folder / SUMMARY_FILE, folder / ROWS_FILE
    if not summary_path.exists() or not rows_path.exists():
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        rows = pd.read_parquet(rows_path)
        if summary.get("format") != _FORMAT:
            raise ValueError("format")
        return GlobalImportance(list(summary["features"]), float(summary["base"]), int(summary["n_users"]),
                                int(summary["k"]), summary["segment_by"], rows)
    except (OSError, ValueError, KeyError, TypeError):
        raise RecsightError(f"the global importance in {folder} is unreadable; retrain or recompute it") from None


def global_importance(source: Recommender | Path, n_users: int = DEFAULT_USERS, k: int = DEFAULT_K,
                      save: bool = False) -> GlobalImportance:
    """The global importance of a model: saved with its version, else computed.

    ``source`` is a loaded :class:`Recommender` (computed when nothing is saved; ``save`` then
    writes it next to the version for the next caller) or a models folder / version folder
    (must hold the saved files).
    """
    if isinstance(source, Recommender):
        loaded = load_global_importance(source.artifact.path)
        if loaded is not None:
            return loaded
        computed = compute_global_importance(source, n_users, k)
        if save:
            save_global_importance(computed, source.artifact.path)
        return computed
    folder = Path(source)
    if registry.current(folder) is not None:  # a models folder, not a version folder
        folder = registry.load_current(folder).path
    loaded = load_global_importance(folder)
    if loaded is None:
        raise RecsightError(f"no global importance saved in {folder}: retrain, or compute it from a loaded model")
    return loaded
