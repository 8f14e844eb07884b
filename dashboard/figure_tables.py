"""The table behind each figure and table of the Overview and Model pages: what its "Download
CSV" holds.

Each builder takes the very frame the figure is drawn from (the page builds both in one go, so
the two can never disagree) and keeps exactly the rows the figure shows and the columns it
shows or hovers, under readable headers (a revenue header names the shop's currency, "Revenue
(EUR)": the cells stay plain numbers a spreadsheet can sum). Values hidden for k-anonymity are missing in those
frames and stay missing here, and so does anything the figure leaves out because it would give
a hidden value away (the funnel's share after a hidden stage). No builder adds a customer-level
column: these pages are aggregates only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from dashboard.csv_tables import ShownTable, shown_table, table_from_rows
from dashboard.model_insight import MODEL_LABELS, SegmentTable, metric_label
from dashboard.money import money_label
from dashboard.overview_figures import STAGE_LABELS, segment_label

__all__ = [
    "funnel_table", "activity_table", "ranking_table", "segment_sizes_table", "segment_activity_table",
    "evaluation_grid_table", "comparisons_table", "metric_bars_table", "segment_metric_table", "top_importance",
    "importance_table", "dependence_table", "pairs_table",
]

_COUNTS = ("events", "purchases", "users", "customers", "active", "rows", "items")


# --------------------------------------------------------------------------- overview


def funnel_table(frame: pd.DataFrame) -> ShownTable:
    """Each funnel stage's events and customers and the share of the step before, as the funnel
    labels them; a hidden stage is empty, and so is the share of the stage after it."""
    rows, before = [], None
    for stage, events, users in zip(frame["stage"], frame["events"], frame["users"]):
        count = None if pd.isna(events) else int(events)
        share = count / before if count is not None and before else None
        rows.append((STAGE_LABELS.get(stage, str(stage).title()), count, None if pd.isna(users) else int(users),
                     share))
        before = count
    return table_from_rows(("Stage", "Events", "Customers", "Share of previous step"), rows)


def activity_table(frame: pd.DataFrame, freq: str, currency: str) -> ShownTable:
    """Events, customers, purchases and revenue (in ``currency``) per day (or week, by its Monday)."""
    period = "Day" if freq == "day" else "Week starting"
    return shown_table(frame, {"period": period, "events": "Events", "users": "Customers",
                               "purchases": "Purchases", "revenue": money_label("Revenue", currency)}, counts=_COUNTS)


def ranking_table(frame: pd.DataFrame, label: str, currency: str) -> ShownTable:
    """A top-categories or top-brands ranking, in its order, with every measure its hover shows."""
    return shown_table(frame, {label: label.capitalize(), "events": "Events", "purchases": "Purchases",
                               "revenue": money_label("Revenue", currency), "users": "Customers"}, counts=_COUNTS)


def segment_sizes_table(frame: pd.DataFrame) -> ShownTable:
    """The segment-size bars: customers, their share of the customers shown, and how many were
    active in the selected dates (missing where fewer than k were)."""
    shown = frame.assign(segment=frame["segment"].map(segment_label))
    return shown_table(shown, {"segment": "Segment", "customers": "Customers", "share": "Share of customers shown",
                               "active": "Active in the selected dates"}, counts=_COUNTS)


def segment_activity_table(frame: pd.DataFrame, currency: str) -> ShownTable:
    """The segment-activity table as the page lists it (segment, customers, active, revenue in ``currency``)."""
    shown = frame.assign(segment=frame["segment"].map(segment_label))
    return shown_table(shown, {"segment": "Segment", "customers": "Customers", "active": "Active",
                               "revenue": money_label("Revenue", currency)}, counts=_COUNTS)


# --------------------------------------------------------------------------- model


def evaluation_grid_table(table: pd.DataFrame) -> ShownTable:
    """The evaluation grid: one row per model, every stored metric, and the served model's lift
    over the best baseline (a fraction: 0.25 is +25%)."""
    metrics = [c for c in table.columns if c not in ("model", "label", "kind", "lift")]
    return shown_table(table, {"label": "Model", **{c: metric_label(c) for c in metrics}, "lift": "vs best baseline"})


def comparisons_table(metrics: dict) -> ShownTable | None:
    """The served model against each other model (``metrics["comparisons"]``, the evaluation's
    paired bootstrap): difference, relative difference, the 95 % interval's ends and customers.
    None for a version evaluated before the comparisons were stored."""
    stored = metrics.get("comparisons") or {}
    if not stored.get("against"):
        return None
    label = metric_label(stored["metric"])
    frame = pd.DataFrame([{"against": MODEL_LABELS.get(name, name), **c} for name, c in stored["against"].items()])
    return shown_table(frame, {"against": "Against", "difference": f"{label} difference", "relative": "Relative",
                               "low": "95% interval from", "high": "95% interval to", "users": "Customers"},
                       counts=("users",))


def metric_bars_table(table: pd.DataFrame, metric: str) -> ShownTable:
    """The "models side by side" bars: the chosen metric per model."""
    return shown_table(table, {"label": "Model", metric: metric_label(metric)})


def segment_metric_table(segments: SegmentTable) -> ShownTable:
    """The heat map: the chosen metric per segment (rows) and model (columns), with each
    segment's test customers; segments under k customers are not in it."""
    frame = segments.frame.assign(segment=segments.frame["segment"].map(segment_label))
    label = metric_label(segments.metric)
    return shown_table(frame, {"segment": segment_label(segments.by.replace("_", " ")), "users": "Test customers",
                               **{m: f"{MODEL_LABELS.get(m, m)}: {label}" for m in segments.models}},
                       counts=("users",))


def top_importance(frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` labels of a ``label``/``mean_abs_shap`` frame, largest first (ties in their
    order): the bars the importance figure draws, handed to it so figure and table agree."""
    means = frame.groupby("label", sort=False)["mean_abs_shap"].mean()
    return means.sort_values(ascending=False, kind="stable").head(top).rename_axis("label").reset_index()


def importance_table(shown: pd.DataFrame, by: str) -> ShownTable:
    """The importance bars (:func:`top_importance`): mean |SHAP| per feature or feature group."""
    return shown_table(shown, {"label": "Feature group" if by == "group" else "Feature",
                               "mean_abs_shap": "Mean |SHAP|"})


def dependence_table(bins: pd.DataFrame, label: str) -> ShownTable:
    """The dependence plot's points: per bin of at least k customers, the mean feature value, the
    mean contribution, its spread, and the bin's items and customers (means only, never a row)."""
    return shown_table(bins.assign(feature=label), {
        "feature": "Feature", "value": "Mean feature value", "contribution": "Mean SHAP contribution",
        "spread": "Spread of contributions (std)", "rows": "Items", "customers": "Customers"}, counts=_COUNTS)


def pairs_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> ShownTable:
    """A two-column list as the page shows it (the checks, the model metadata)."""
    return table_from_rows(columns, rows)
