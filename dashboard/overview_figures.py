"""Plotly figures for the shop overview, built from the frames of :mod:`dashboard.shop_overview`.

Pure functions: a frame in, a ``go.Figure`` out, no database and no Dash, so they are tested
directly and reused by reports. The look (fonts, palette, grid) is the one theme of
:mod:`dashboard.theme`, shared with the explanation figures; an empty frame gives a figure with a
short message instead of blank axes.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics import schema
from dashboard.theme import ACCENT, DIMMED, GRID, INK, MUTED, PRIMARY, empty_figure, style

__all__ = ["funnel_figure", "activity_figure", "ranking_figure", "segments_figure"]

_FUNNEL_SHADES = ("#2f5573", "#4a7294", "#7398b5", "#a3bfd4")
_STAGE_LABELS = {schema.VIEW: "Viewed", schema.CLICK: "Clicked", schema.CART: "Added to cart",
                 schema.PURCHASE: "Purchased"}
_LABEL_WIDTH = 34


def funnel_figure(frame: pd.DataFrame, height: int = 320) -> go.Figure:
    """The view → click → cart → purchase funnel from ``shop_overview.funnel``.

    Each bar shows its events and the share of the step before, the rate an analyst reads first.
    """
    if frame.empty or int(frame["events"].sum()) == 0:
        return empty_figure("No funnel events in this selection", height)
    labels = [_STAGE_LABELS.get(stage, str(stage).title()) for stage in frame["stage"]]
    fig = go.Figure(go.Funnel(
        y=labels,
        x=frame["events"],
        customdata=frame["users"],
        texttemplate=["%{value:,}"] + ["%{value:,} · %{percentPrevious:.1%}"] * (len(frame) - 1),
        textposition="auto",
        insidetextfont=dict(color="white", size=12),
        outsidetextfont=dict(color=INK, size=12),
        marker=dict(color=list(_FUNNEL_SHADES[: len(frame)])),
        connector=dict(line=dict(color=GRID, width=1), fillcolor="#eef2f6"),
        hovertemplate="%{y}<br>%{x:,} events · %{customdata:,} customers<br>"
                      "%{percentPrevious:.1%} of previous step<extra></extra>",
    ))
    style(fig, height)
    fig.update_yaxes(tickfont=dict(color=INK, size=12), gridcolor="rgba(0,0,0,0)", showline=False)
    return fig


def activity_figure(frame: pd.DataFrame, freq: str = "day", height: int = 320) -> go.Figure:
    """Events (top) and revenue (bottom) per period from ``shop_overview.activity_over_time``."""
    if frame.empty:
        return empty_figure("No events in this selection", height)
    unit = "Daily" if freq == "day" else "Weekly"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.58, 0.42],
                        subplot_titles=(f"{unit} events", f"{unit} revenue"))
    fig.add_trace(go.Scatter(
        x=frame["period"], y=frame["events"], mode="lines", line=dict(color=PRIMARY, width=2),
        fill="tozeroy", fillcolor="rgba(61,106,142,0.12)", customdata=frame["users"],
        hovertemplate="%{x|%d %b %Y}<br>%{y:,} events · %{customdata:,} customers<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Bar(
        x=frame["period"], y=frame["revenue"], marker=dict(color=ACCENT), customdata=frame["purchases"],
        hovertemplate="%{x|%d %b %Y}<br>revenue %{y:,.2f} · %{customdata:,} purchases<extra></extra>",
    ), row=2, col=1)
    style(fig, height)
    fig.update_layout(margin=dict(l=8, r=16, t=28, b=8), bargap=0.15)
    fig.update_annotations(font=dict(size=12, color=MUTED), x=0, xanchor="left")
    fig.update_yaxes(rangemode="tozero", tickformat="~s")
    return fig


def ranking_figure(
    frame: pd.DataFrame,
    label: str,
    value: str = "events",
    height: int | None = None,
    empty_message: str = "Nothing to rank in this selection",
) -> go.Figure:
    """A horizontal bar chart of a ``top_categories`` / ``top_brands`` frame, largest on top.

    Long category paths are shortened on the axis; the hover shows the full name and every
    measure.
    """
    if frame.empty:
        return empty_figure(empty_message, height or 320)
    names = frame[label].astype(str)
    fig = go.Figure(go.Bar(
        x=frame[value],
        y=[_shorten(name) for name in names],
        orientation="h",
        marker=dict(color=PRIMARY if value == "events" else ACCENT),
        text=[_compact(v) for v in frame[value]],
        textposition="outside",
        cliponaxis=False,
        customdata=list(zip(names, frame["events"], frame["purchases"], frame["revenue"], frame["users"])),
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]:,} events · %{customdata[2]:,} purchases"
                      "<br>revenue %{customdata[3]:,.2f} · %{customdata[4]:,} customers<extra></extra>",
    ))
    style(fig, height or max(220, 34 * len(frame) + 40))
    fig.update_yaxes(autorange="reversed", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)", showline=False)
    fig.update_xaxes(visible=False, range=[0, float(frame[value].max()) * 1.18 or 1])
    return fig


def segments_figure(frame: pd.DataFrame, selected: str | None = None, height: int | None = None) -> go.Figure:
    """Customers per RFM segment (``segment_breakdown``), with the selected one highlighted."""
    if frame.empty:
        return empty_figure("No segment is large enough to show", height or 300)
    colors = [PRIMARY if selected in (None, name) else DIMMED for name in frame["segment"]]
    text = [f"{int(c):,} · {s:.0%}" for c, s in zip(frame["customers"], frame["share"])]
    active = ["fewer than k active" if pd.isna(a) else f"{int(a):,} active in range" for a in frame["active"]]
    fig = go.Figure(go.Bar(
        x=frame["customers"],
        y=[_segment_label(name) for name in frame["segment"]],
        orientation="h",
        marker=dict(color=colors),
        text=text,
        textposition="outside",
        cliponaxis=False,
        customdata=active,
        hovertemplate="<b>%{y}</b><br>%{x:,} customers<br>%{customdata}<extra></extra>",
    ))
    style(fig, height or max(220, 36 * len(frame) + 40))
    fig.update_yaxes(autorange="reversed", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)", showline=False)
    fig.update_xaxes(visible=False, range=[0, float(frame["customers"].max()) * 1.25 or 1])
    return fig


def _segment_label(name: str) -> str:
    return str(name)[:1].upper() + str(name)[1:]


def _shorten(text: str, width: int = _LABEL_WIDTH) -> str:
    """Keep the end of a long category path (the specific part) and mark the cut."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _compact(value: float) -> str:
    """1234 -> 1.2k, 1234567 -> 1.2M: bar labels stay short."""
    number = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.1f}{suffix}"
    return f"{number:,.0f}"

