"""The Model page's faithfulness figures, and the tables behind them (what their CSV downloads hold).

Each figure and its table come from one computation: the deletion bars are the two means of
:func:`deletion_table`, and the completeness histogram is drawn on the bins of
:func:`completeness_bins` (explicit edges, so the browser cannot bin differently from the table).
Only aggregates leave here: means over the checked items and counts per bin, never one
customer's row. Re-exported by :mod:`dashboard.model_insight`, where the page finds them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.csv_tables import ShownTable, shown_table, table_from_rows
from dashboard.theme import DIMMED, MUTED, PRIMARY, PRIMARY_LIGHT, empty_figure, style
from explain.faithfulness import IG_TOLERANCE, Faithfulness

__all__ = ["deletion_figure", "completeness_figure", "deletion_table", "completeness_bins", "completeness_table",
           "DELETION_SERIES", "MAX_COMPLETENESS_BINS"]

DELETION_SERIES: tuple[str, str] = ("3 most attributed events", "3 random events")
MAX_COMPLETENESS_BINS = 24
_BIN_SIZES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)  # decades; binary fractions, so every edge is exact
_FLOOR = 1e-12  # an exact zero error is drawn at 10^-12


def deletion_table(faith: Faithfulness) -> ShownTable:
    """The deletion test's two bars: the mean attention-score drop when the 3 most attributed
    history events are removed, and when 3 random ones are, over the checked items."""
    rows = []
    for index, name in enumerate(DELETION_SERIES):
        mean = float(np.mean([pair[index] for pair in faith.drops])) if faith.drops else None
        rows.append((name, mean, len(faith.drops)))
    return table_from_rows(("Events removed", "Mean attention-score drop", "Items"), rows)


def deletion_figure(faith: Faithfulness, height: int = 300) -> go.Figure:
    """Mean score drop of the attention network: top-3 attributed events against 3 random ones."""
    if not faith.drops:
        return empty_figure("No customer had enough history for the deletion test", height)
    fig = go.Figure()
    for (name, mean, _items), colour in zip(deletion_table(faith).rows, (PRIMARY, DIMMED)):
        fig.add_trace(go.Bar(
            name=name, x=["Events removed"], y=[mean], marker=dict(color=colour), text=[f"{mean:.3f}"],
            textposition="outside", hovertemplate="%{x}<br>" + name + ": mean drop %{y:.4f}<extra></extra>",
        ))
    style(fig, height)
    fig.update_layout(barmode="group", showlegend=True, legend=dict(orientation="h", y=1.12, x=0),
                      margin=dict(l=8, r=16, t=36, b=8))
    fig.update_yaxes(title_text="attention score drop", title_font=dict(color=MUTED, size=11))
    return fig


def completeness_bins(faith: Faithfulness) -> pd.DataFrame:
    """Items per bin of log10 relative IG error: columns ``start``, ``end`` (a bin holds
    start <= x < end) and ``items``; at most :data:`MAX_COMPLETENESS_BINS` bins, empty ones kept
    so the table reads like the histogram."""
    values = _log_errors(faith)
    if values.size == 0:
        return pd.DataFrame({"start": [], "end": [], "items": []})
    low, high = float(values.min()), float(values.max())
    size = next((s for s in _BIN_SIZES if math.floor(high / s) - math.floor(low / s) < MAX_COMPLETENESS_BINS),
                _BIN_SIZES[-1])
    first = math.floor(low / size)
    count = math.floor(high / size) - first + 1
    index = np.floor(values / size).astype(int) - first
    starts = [(first + i) * size for i in range(count)]
    return pd.DataFrame({"start": starts, "end": [s + size for s in starts],
                         "items": np.bincount(index, minlength=count)[:count]})


def completeness_table(faith: Faithfulness) -> ShownTable:
    """The histogram's bars: items per bin of log10 relative error."""
    return shown_table(completeness_bins(faith), {"start": "From (log10 relative error)",
                                                  "end": "To (log10 relative error)", "items": "Items"},
                       counts=("items",))


def completeness_figure(faith: Faithfulness, height: int = 300) -> go.Figure:
    """How far each item's Integrated Gradients fall from adding up exactly (log scale), with
    the tolerance the attribution aims for; binned as :func:`completeness_bins` says."""
    values = _log_errors(faith)
    if values.size == 0:
        return empty_figure("No customer history to attribute", height)
    bins = completeness_bins(faith)
    fig = go.Figure(go.Histogram(
        x=values, marker=dict(color=PRIMARY_LIGHT, line=dict(color=PRIMARY, width=1)),
        xbins=dict(start=float(bins["start"].iloc[0]), end=float(bins["end"].iloc[-1]),
                   size=float(bins["end"].iloc[0] - bins["start"].iloc[0])),
        hovertemplate="10^%{x} relative error<br>%{y} items<extra></extra>",
    ))
    # Half a bin of room on both sides (the first tick would otherwise sit in the corner, on the
    # y axis's "0"), the tolerance line always inside, and its label on the side with room.
    half = float(bins["end"].iloc[0] - bins["start"].iloc[0]) / 2
    tolerance = float(np.log10(IG_TOLERANCE))
    low = min(float(bins["start"].iloc[0]), tolerance) - half
    high = max(float(bins["end"].iloc[-1]), tolerance) + half
    fig.add_vline(x=tolerance, line=dict(color=MUTED, dash="dash", width=1), annotation_text="tolerance 1%",
                  annotation_position="top left" if tolerance > (low + high) / 2 else "top right",
                  annotation_font=dict(size=11, color=MUTED))
    style(fig, height)
    fig.update_xaxes(title_text="log10 |IG delta| / |score − baseline|", title_font=dict(color=MUTED, size=11),
                     range=[low, high])
    fig.update_yaxes(title_text="items", title_font=dict(color=MUTED, size=11))
    return fig


def _log_errors(faith: Faithfulness) -> np.ndarray:
    return np.log10(np.array([max(float(v), _FLOOR) for v in faith.ig_relative], dtype=float))
