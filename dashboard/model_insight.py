"""What the model page shows, read from the stored model versions: the evaluation against the
baselines (overall and per segment), the model's metadata, and the faithfulness checks of its
explanations. Pure functions of a version's ``metadata.json``; nothing here touches customers.

The evaluation is computed at training time and stored with the version (``models.training.train``
writes ``metrics``), so the page reads JSON for it; versions and their metadata are read through
:mod:`models.registry`, the only reader of the models folder. The faithfulness checks
(:mod:`explain.faithfulness`) run the explanations on a small sample of customers against the
loaded model and return only aggregates, drawn by :mod:`dashboard.faithfulness_figures` (re-exported
here). Groups of fewer than ``k`` customers are suppressed: the page is for analysts, who see
aggregates only.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.faithfulness_figures import completeness_figure, deletion_figure
from dashboard.k_anonymity import dependence_bins
from dashboard.theme import DIMMED, INK, MUTED, PRIMARY, PRIMARY_LIGHT, empty_figure, style
from errors import RecsightError
from explain.faithfulness import Faithfulness
from models import registry
from models.features import label_of

__all__ = [
    "MODEL_LABELS", "BASELINES", "SERVED_SUFFIX", "served_label", "METRIC_COLUMNS", "VersionInfo", "list_versions",
    "read_metadata",
    "version_folder", "evaluation_table", "segment_table", "SegmentTable", "metadata_rows", "evaluation_figure",
    "segment_figure", "metric_choices", "metric_label", "metric_help", "importance_segments", "importance_view",
    "dependence_view", "feature_choices", "feature_label", "shap_additivity",
    "deletion_figure", "completeness_figure", "Faithfulness",  # from dashboard.faithfulness_figures, explain
]

log = logging.getLogger(__name__)

MODEL_LABELS: dict[str, str] = {
    "popularity": "Popularity (baseline)",
    "covisit": "Co-visitation (baseline)",
    "attention": "Attention network alone",
    "ranker": "Ranker without attention",
    "hybrid": "Hybrid",
}
SERVED_SUFFIX = " (served)"  # after the label of the ranker a version serves (registry.served_model)
_SHORT_LABELS: dict[str, str] = {"popularity": "Popularity", "covisit": "Co-visitation", "attention": "Attention",
                                  "ranker": "Ranker", "hybrid": "Hybrid"}
BASELINES: tuple[str, ...] = ("popularity", "covisit")
# Column order of the evaluation table; "@k" is filled in with the evaluation's k.
METRIC_COLUMNS: tuple[str, ...] = ("ndcg@k", "hr@k", "recall@k", "precision@k", "map@k", "mrr", "ndcg@2k", "hr@2k",
                                   "coverage@k", "novelty@k")
_METRIC_HELP = {
    "ndcg": "NDCG: rank-weighted hits, 1 = every target at the top",
    "hr": "Hit rate: share of customers with at least one target in the list",
    "recall": "Recall: share of each customer's targets found in the list",
    "precision": "Precision: share of the list that were targets",
    "map": "MAP: mean average precision",
    "mrr": "MRR: 1 / rank of the first target",
    "coverage": "Coverage: share of the catalogue recommended to anyone",
    "novelty": "Novelty: mean self-information of recommended items (higher = less obvious)",
}


@dataclass(frozen=True)
class VersionInfo:
    """One stored model version, as the version picker lists it."""

    name: str
    dataset: str
    trained_at: str
    protocol: str
    current: bool

    @property
    def label(self) -> str:
        flag = " · in use" if self.current else ""
        return f"{self.dataset} · {self.trained_at[:16].replace('T', ' ')} · {self.protocol}{flag}"


def list_versions(models_dir: Path | str) -> list[VersionInfo]:
    """The readable versions in ``models_dir``, the one in use first, then newest first.

    An unreadable pointer or version is left out (and logged) rather than failing the page: the
    picker still offers what can be shown.
    """
    try:
        current = registry.current(models_dir)
    except RecsightError as exc:
        log.warning("cannot tell which model version is in use: %s", exc)
        current = None
    found = []
    for name in registry.versions(models_dir):
        try:
            meta = registry.metadata(models_dir, name)
        except RecsightError as exc:
            log.warning("skipping model version %s: %s", name, exc)
            continue
        found.append(VersionInfo(name, str(meta.get("dataset", "?")), str(meta.get("trained_at", "")),
                                 str(meta.get("protocol", "?")), name == current))
    found.sort(key=lambda v: not v.current)  # stable: newest first within each group
    return found


def read_metadata(models_dir: Path | str, version: str | None = None) -> dict[str, Any]:
    """The metadata of ``version`` (default: the one in use), with a clear error when missing."""
    return registry.metadata(models_dir, version)


def version_folder(models_dir: Path | str, version: str) -> Path:
    """The folder of a listed version; anything else (a typo, ``../..``) is refused."""
    root = Path(models_dir)
    if version not in {v.name for v in list_versions(root)}:
        raise RecsightError(f"model version {str(version)[:60]!r} is not in {root}")
    return root / registry.VERSIONS_DIR / version


# --------------------------------------------------------------------------- evaluation


def _metrics(meta: dict[str, Any]) -> dict[str, Any]:
    metrics = meta.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("models"), dict):
        raise RecsightError("this model version has no evaluation: retrain it with `python cli.py train`")
    return metrics


def _columns(k: int) -> list[str]:
    return [c.replace("@2k", f"@{2 * k}").replace("@k", f"@{k}") for c in METRIC_COLUMNS]


def metric_choices(meta: dict[str, Any]) -> list[dict[str, str]]:
    """Dropdown options for the metrics the segment view can show (those stored per segment)."""
    metrics = _metrics(meta)
    k = int(metrics.get("k", 10))
    groups = (metrics.get("segments") or {}).get("groups") or {}
    stored: set[str] = set()
    for per_model in groups.values():
        for values in per_model.values():
            stored |= {key for key in values if key != "users"}
    return [{"label": metric_label(c), "value": c} for c in _columns(k) if c in stored]


def metric_label(column: str) -> str:
    base, _, at = column.partition("@")
    names = {"ndcg": "NDCG", "hr": "Hit rate", "recall": "Recall", "precision": "Precision", "map": "MAP",
             "mrr": "MRR", "coverage": "Coverage", "novelty": "Novelty"}
    return names.get(base, base) + (f"@{at}" if at else "")


def evaluation_table(meta: dict[str, Any], k_anonymity: int) -> tuple[pd.DataFrame, str | None]:
    """One row per model (baselines first, the served model last) with every stored metric and the
    served model's NDCG lift over the best baseline; or an empty frame and why it is hidden.

    The whole table is an aggregate over the evaluation's test customers, so it is hidden when
    there are fewer than ``k_anonymity`` of them.
    """
    metrics = _metrics(meta)
    k = int(metrics.get("k", 10))
    users = int(metrics.get("users", 0))
    if users < k_anonymity:
        return pd.DataFrame(), (f"The evaluation covers {users} test customers, fewer than {k_anonymity}: "
                                "hidden for privacy.")
    columns = _columns(k)
    served = registry.served_model(meta)
    rows = []
    for name, values in _ordered(metrics["models"]).items():
        row: dict[str, Any] = {"model": name, "label": served_label(name, served),
                               "kind": "baseline" if name in BASELINES else ("served" if name == served
                                                                               else "component")}
        row.update({c: _number(values.get(c)) for c in columns})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["model", "label", "kind", *columns])
    ndcg = f"ndcg@{k}"
    best = frame.loc[frame["kind"] == "baseline", ndcg].max()
    frame["lift"] = (frame[ndcg] / best - 1.0) if best and best == best and best > 0 else float("nan")
    return frame, None


def served_label(name: str, served: str) -> str:
    """A model's label in the tables, "(served)" after the one customers see."""
    return MODEL_LABELS.get(name, name) + (SERVED_SUFFIX if name == served else "")


def _ordered(models: dict[str, Any]) -> dict[str, Any]:
    order = list(MODEL_LABELS)
    return dict(sorted(models.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


@dataclass(frozen=True)
class SegmentTable:
    """Per-segment results for one metric: ``frame`` has ``segment``, ``users`` and one column per
    model; ``suppressed`` segments had fewer than k test customers and are left out."""

    frame: pd.DataFrame
    by: str
    metric: str
    suppressed: int
    models: list[str]


def segment_table(meta: dict[str, Any], k_anonymity: int, metric: str | None = None) -> SegmentTable:
    """The chosen metric (default NDCG@k) per segment and model, segments under k customers hidden."""
    metrics = _metrics(meta)
    k = int(metrics.get("k", 10))
    metric = metric or f"ndcg@{k}"
    segments = metrics.get("segments") or {}
    groups = segments.get("groups") or {}
    models = list(_ordered(metrics["models"]))
    rows, suppressed = [], 0
    for name, per_model in groups.items():
        users = max((int(v.get("users", 0)) for v in per_model.values()), default=0)
        if users < k_anonymity:
            suppressed += 1
            continue
        row: dict[str, Any] = {"segment": str(name), "users": users}
        row.update({m: _number((per_model.get(m) or {}).get(metric)) for m in models})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["segment", "users", *models])
    if not frame.empty:
        frame = frame.sort_values("users", ascending=False, kind="stable").reset_index(drop=True)
    return SegmentTable(frame, str(segments.get("by", "segment")), metric, suppressed, models)


def evaluation_figure(table: pd.DataFrame, metric: str, height: int = 300) -> go.Figure:
    """The chosen metric per model as bars, the served model in the accent colour."""
    if table.empty or metric not in table.columns:
        return empty_figure("No evaluation to show", height)
    colours = [PRIMARY if kind == "served" else (DIMMED if kind == "baseline" else PRIMARY_LIGHT)
               for kind in table["kind"]]
    values = [0.0 if v is None or v != v else float(v) for v in table[metric]]
    fig = go.Figure(go.Bar(
        x=values, y=table["label"], orientation="h", marker=dict(color=colours),
        text=[f"{v:.4f}" for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}<br>" + metric_label(metric) + " %{x:.4f}<extra></extra>",
    ))
    style(fig, height)
    fig.update_yaxes(autorange="reversed", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(range=[0, max(values + [1e-9]) * 1.22], tickfont=dict(color=MUTED))
    return fig


def segment_figure(table: SegmentTable, height: int = 320) -> go.Figure:
    """A heat map: segments (rows) by models (columns), the chosen metric in each cell."""
    frame = table.frame
    if frame.empty:
        return empty_figure("No segment has enough test customers to show", height)
    z = frame[table.models].astype(float).to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=[_SHORT_LABELS.get(m, m) for m in table.models],
        y=[f"{s[:1].upper()}{s[1:]} ({u:,})" for s, u in zip(frame["segment"], frame["users"])],
        colorscale=[[0, "#f4f6f9"], [1, PRIMARY]], showscale=False,
        text=[[("–" if v != v else f"{v:.3f}") for v in row] for row in z], texttemplate="%{text}",
        hovertemplate="%{y}<br>%{x}: %{z:.4f}<extra></extra>",
    ))
    style(fig, height)
    fig.update_yaxes(autorange="reversed", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(side="top", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)")
    return fig


def metric_help() -> list[str]:
    """One line per metric family, for the table's footnote."""
    return list(_METRIC_HELP.values())


# --------------------------------------------------------------------------- metadata


def metadata_rows(meta: dict[str, Any], version: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs describing the version: data, training, size, timings, packages."""
    split = meta.get("split") or {}
    trees = meta.get("ranker_trees") or {}
    attention = meta.get("attention_training") or {}
    timings = meta.get("timings_s") or {}
    packages = meta.get("packages") or {}
    features = (meta.get("features") or {}).get("hybrid") or []
    rows = [
        ("Model version", version or ""),
        ("Dataset", str(meta.get("dataset", ""))),
        ("Data fingerprint", str(meta.get("fingerprint", ""))),
        ("Trained at", str(meta.get("trained_at", ""))),
        ("Serving data as of", str(meta.get("serving_as_of", ""))),
        ("Evaluation protocol", _protocol(meta, split)),
        ("Training cutoff", str(split.get("train_cutoff") or "")),
        ("Test cutoff", str(split.get("test_cutoff") or "")),
        ("Training budget", "quick (demo)" if meta.get("quick") else "full"),
        ("Ranker features", f"{len(features)}" if features else ""),
        ("Trees (ranker / hybrid)", f"{trees.get('ranker', '?')} / {trees.get('hybrid', '?')}" if trees else ""),
        ("Attention network", _attention(attention)),
        ("Training time", _timings(timings)),
        ("Packages", ", ".join(f"{k} {v}" for k, v in packages.items())),
    ]
    return [(label, value) for label, value in rows if value]


def _protocol(meta: dict[str, Any], split: dict[str, Any]) -> str:
    text = str(meta.get("protocol", ""))
    if split.get("target"):
        text += f", target: {split['target']}"
    if split.get("window_days"):
        text += f", test window {float(split['window_days']):g} days"
    return text


def _attention(info: dict[str, Any]) -> str:
    if not info:
        return ""
    parts = []
    if "epochs_run" in info:
        parts.append(f"{info['epochs_run']} epoch{'s' if info['epochs_run'] != 1 else ''}")
    if info.get("sampled"):  # a bounded epoch: say how much of the data each one saw
        parts.append(f"{int(info['examples_per_epoch']):,} of {int(info['examples_total']):,} training examples "
                     "per epoch (a random sample each epoch)")
    elif "train_examples" in info:
        parts.append(f"{int(info['train_examples']):,} training examples")
    if info.get("stopped_by_budget"):
        parts.append("stopped by the time budget")
    if "valid_sampled_ndcg@10" in info:
        parts.append(f"validation sampled NDCG@10 {float(info['valid_sampled_ndcg@10']):.3f}")
    return ", ".join(parts)


def _timings(timings: dict[str, Any]) -> str:
    if not timings:
        return ""
    total = timings.get("total")
    steps = ", ".join(f"{k} {float(v):.1f} s" for k, v in timings.items() if k != "total")
    return (f"{float(total):.1f} s: " if total is not None else "") + steps


# --------------------------------------------------------------------------- global importance


def importance_segments(rows: pd.DataFrame, k_anonymity: int) -> tuple[list[str], int]:
    """Segments of the global-importance sample with at least ``k_anonymity`` customers (largest
    first), and how many were suppressed. Each sampled customer has exactly one rank-1 row."""
    if rows.empty or "segment" not in rows.columns:
        return [], 0
    sizes = rows.loc[rows["rank"] == 1, "segment"].fillna("unknown").value_counts()
    shown = [str(name) for name, size in sizes.items() if size >= k_anonymity]
    return shown, int((sizes < k_anonymity).sum())


def _sample(importance: Any, segment: str | None, k_anonymity: int) -> Any:
    """``importance`` (an ``explain.global_view.GlobalImportance``) restricted to one segment."""
    if segment is None:
        customers = int((importance.rows["rank"] == 1).sum()) if not importance.rows.empty else 0
        if customers < k_anonymity:
            raise RecsightError(f"the importance sample has {customers} customers, fewer than {k_anonymity}: "
                                "hidden for privacy")
        return importance
    shown, _ = importance_segments(importance.rows, k_anonymity)
    if segment not in shown:
        raise RecsightError(f"segment {segment!r} has fewer than {k_anonymity} sampled customers: hidden for privacy")
    rows = importance.rows[importance.rows["segment"].fillna("unknown") == segment].reset_index(drop=True)
    return dataclasses.replace(importance, rows=rows)


def importance_view(importance: Any, by: str, segment: str | None, k_anonymity: int) -> pd.DataFrame:
    """Mean |SHAP| per feature (``by="feature"``) or per feature group (``by="group"``), over the
    whole sample or one segment; a ``label``/``mean_abs_shap`` frame for the importance bars."""
    sample = _sample(importance, segment, k_anonymity)
    if by == "group":
        frame = sample.by_group()
        return pd.DataFrame({"label": [g[:1].upper() + g[1:] for g in frame["group"]],
                             "mean_abs_shap": frame["mean_abs_shap"]})
    if by != "feature":
        raise RecsightError(f"unknown importance view {by!r}: choose feature or group")
    return sample.by_feature()[["label", "mean_abs_shap", "feature", "group"]]


def dependence_view(importance: Any, feature: str, segment: str | None,
                    k_anonymity: int) -> tuple[pd.DataFrame, int]:
    """The dependence plot's points over the sample (one segment's, or all): bins of at least
    ``k_anonymity`` customers (``k_anonymity.dependence_bins``), and the rows without a value.

    A row is one customer's item, so a point per row would be one customer. The rows carry no
    customer id; a customer's rows are consecutive and start at rank 1, which tells them apart.
    """
    sample = _sample(importance, segment, k_anonymity)
    frame = sample.dependence(feature)
    customers = (sample.rows["rank"] == 1).cumsum().to_numpy()
    return dependence_bins(frame["value"], frame["contribution"], customers, k_anonymity)


def feature_choices(importance: Any) -> list[dict[str, str]]:
    """Dropdown options for the dependence plot: every feature, most important first."""
    frame = importance.by_feature()
    return [{"label": label, "value": feature} for feature, label in zip(frame["feature"], frame["label"])]


def feature_label(feature: str) -> str:
    """The words the page shows for a ranker feature (the dependence plot's axis)."""
    return label_of(feature)


def shap_additivity(importance: Any) -> float:
    """Largest |base + sum of SHAP values - score| over the sampled rows: TreeSHAP's exactness
    on the lists customers see (0 up to float rounding when the explanations are faithful)."""
    rows = importance.rows
    if rows.empty:
        return 0.0
    shap = rows[[f"shap:{f}" for f in importance.features]].to_numpy(dtype=float)
    return float(np.max(np.abs(importance.base + shap.sum(axis=1) - rows["score"].to_numpy(dtype=float))))
