"""Plotly figures for the shop overview, built from the frames of :mod:`dashboard.shop_overview`.

Pure functions: a frame in, a ``go.Figure`` out, no database and no Dash, so they are tested
directly and reused by reports. The look (fonts, palette, grid) is the one theme of
:mod:`dashboard.theme`, shared with the explanation figures; an empty frame gives a figure with a
short message instead of blank axes.

Values hidden for k-anonymity (:mod:`dashboard.k_anonymity`) arrive as NaN: a funnel stage says
"fewer than k customers" instead of its numbers, a hidden day is a gap in the line and a missing
bar, a hidden revenue or purchase count reads "hidden" in the hover. Data carried into the
figures (``customdata``) holds None for them, never the number.

Revenue is money in the shop's currency (``settings.currency``): its axis is titled with the code
and every amount in a hover or bar label is written by :func:`dashboard.money.format_money`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics import schema
from dashboard.money import format_money, money_axis, with_currency
from dashboard.theme import ACCENT, DIMMED, GRID, INK, MUTED, PRIMARY, empty_figure, style

__all__ = ["funnel_figure", "activity_figure", "ranking_figure", "segments_figure", "STAGE_LABELS", "segment_label"]

_FUNNEL_SHADES = ("#2f5573", "#4a7294", "#7398b5", "#a3bfd4")
STAGE_LABELS = {schema.VIEW: "Viewed", schema.CLICK: "Clicked", schema.CART: "Added to cart",
                 schema.PURCHASE: "Purchased"}
_LABEL_WIDTH = 34


def funnel_figure(frame: pd.DataFrame, height: int = 320, *, k: int | None = None) -> go.Figure:
    """The view → click → cart → purchase funnel from ``shop_overview.funnel``.

    Each bar shows its events and the share of the step before, the rate an analyst reads first.
    A stage hidden for privacy (NaN) says "fewer than k customers", and the stage after it shows
    no share (it would give the hidden count away).
    """
    if frame.empty or float(frame["events"].fillna(0).sum()) == 0:
        hidden_all = not frame.empty and frame["events"].isna().any()
        return empty_figure(f"Every funnel stage has fewer than {k} customers: hidden for privacy" if hidden_all
                            else "No funnel events in this selection", height)
    labels = [STAGE_LABELS.get(stage, str(stage).title()) for stage in frame["stage"]]
    events, users = _or_none(frame["events"]), _or_none(frame["users"])
    hidden = f"fewer than {k} customers" if k else "hidden"
    text, hover = [], []
    for i, (count, people) in enumerate(zip(events, users)):
        if count is None:
            text.append(hidden)
            hover.append(f"{labels[i]}<br>{hidden}: hidden for privacy")
            continue
        before = events[i - 1] if i else None
        share = f"{count / before:.1%}" if before else None
        text.append(f"{count:,}" + (f" · {share}" if share else ""))
        hover.append(f"{labels[i]}<br>{count:,} events · {people:,} customers"
                     + (f"<br>{share} of previous step" if share else ""))
    fig = go.Figure(go.Funnel(
        y=labels,
        x=events,
        customdata=users,
        text=text,
        textinfo="text",
        hovertext=hover,
        textposition="auto",
        insidetextfont=dict(color="white", size=12),
        outsidetextfont=dict(color=INK, size=12),
        marker=dict(color=list(_FUNNEL_SHADES[: len(frame)])),
        connector=dict(line=dict(color=GRID, width=1), fillcolor="#eef2f6"),
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    style(fig, height)
    fig.update_yaxes(tickfont=dict(color=INK, size=12), gridcolor="rgba(0,0,0,0)", showline=False)
    return fig


def activity_figure(frame: pd.DataFrame, freq: str = "day", height: int = 320, *, k: int | None = None,
                    currency: str) -> go.Figure:
    """Events (top) and revenue in ``currency`` (bottom) per period from ``shop_overview.activity_over_time``.

    Periods hidden for privacy are gaps; the subplot titles say so when there are any.
    """
    if frame.empty:
        return empty_figure("No events in this selection", height)
    unit = "Daily" if freq == "day" else "Weekly"
    few = f"fewer than {k}" if k else "too few"
    gaps = f" · blank: {few} customers" if frame["events"].isna().any() else ""
    blank = f" · blank: {few} buyers" if frame["revenue"].isna().any() else ""
    purchases = _or_none(frame["purchases"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.58, 0.42],
                        subplot_titles=(f"{unit} events{gaps}", f"{unit} revenue{blank}"))
    fig.add_trace(go.Scatter(
        x=frame["period"], y=_or_none(frame["events"]), mode="lines", line=dict(color=PRIMARY, width=2),
        fill="tozeroy", fillcolor="rgba(61,106,142,0.12)", customdata=_or_none(frame["users"]),
        hovertemplate="%{x|%d %b %Y}<br>%{y:,} events · %{customdata:,} customers<extra></extra>",
    ), row=1, col=1)
    revenue = _or_none(frame["revenue"], whole=False)
    fig.add_trace(go.Bar(
        x=frame["period"], y=revenue, marker=dict(color=ACCENT), customdata=purchases,
        hovertext=[("revenue hidden" if money is None else f"revenue {format_money(money, currency)}") + " · "
                   + ("purchases hidden" if p is None else f"{p:,} purchases") for money, p in zip(revenue, purchases)],
        hovertemplate="%{x|%d %b %Y}<br>%{hovertext}<extra></extra>",
    ), row=2, col=1)
    style(fig, height)
    fig.update_layout(margin=dict(l=8, r=16, t=28, b=8), bargap=0.15)
    fig.update_annotations(font=dict(size=12, color=MUTED), x=0, xanchor="left")
    fig.update_yaxes(rangemode="tozero", tickformat="~s")
    fig.update_yaxes(title_text="events", row=1, col=1)
    fig.update_yaxes(**money_axis("revenue", currency), row=2, col=1)
    for row, column in ((1, "events"), (2, "revenue")):  # counts and money never read "500m"
        top = frame[column].max(skipna=True)
        if pd.isna(top) or top < 5:
            fig.update_yaxes(range=[0, 5], dtick=1, tickformat=",d", row=row, col=1)
    return fig


def ranking_figure(
    frame: pd.DataFrame,
    label: str,
    value: str = "events",
    height: int | None = None,
    empty_message: str = "Nothing to rank in this selection",
    *,
    k: int | None = None,
    currency: str,
) -> go.Figure:
    """A horizontal bar chart of a ``top_categories`` / ``top_brands`` frame, largest on top.

    Long category paths are shortened on the axis; the hover shows the full name and every
    measure (revenue in ``currency``), with "hidden" for purchases or revenue of fewer than k buyers.
    """
    if frame.empty:
        return empty_figure(empty_message, height or 320)
    names = frame[label].astype(str)
    events, users = _or_none(frame["events"]), _or_none(frame["users"])
    purchases, revenue = _or_none(frame["purchases"]), _or_none(frame["revenue"], whole=False)
    values = _or_none(frame[value], whole=value != "revenue")
    few = f"hidden (fewer than {k} buyers)" if k else "hidden"
    hover = [f"<b>{name}</b><br>{count:,} events · " + (few if bought is None else f"{bought:,} purchases")
             + "<br>revenue " + (few if money is None else format_money(money, currency)) + f" · {people:,} customers"
             for name, count, bought, money, people in zip(names, events, purchases, revenue, users)]
    fig = go.Figure(go.Bar(
        x=values,
        y=[_shorten(name) for name in names],
        orientation="h",
        marker=dict(color=PRIMARY if value == "events" else ACCENT),
        text=["" if v is None else _compact(v) if value != "revenue" else _compact_money(v, currency) for v in values],
        textposition="outside",
        cliponaxis=False,
        customdata=[list(row) for row in zip(names, events, purchases, revenue, users)],
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    style(fig, height or max(220, 34 * len(frame) + 40))
    fig.update_yaxes(autorange="reversed", tickfont=dict(color=INK), gridcolor="rgba(0,0,0,0)", showline=False)
    fig.update_xaxes(visible=False, range=[0, float(frame[value].max(skipna=True)) * 1.18 or 1])
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
        y=[segment_label(name) for name in frame["segment"]],
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


def _or_none(values: Any, whole: bool = True) -> list[Any]:
    """Plain Python numbers (whole ones for counts), None for the missing (hidden) ones: what a
    figure may carry, so a hidden value is never in the page, not even as NaN."""
    return [None if value is None or pd.isna(value) else int(value) if whole else float(value) for value in values]


def segment_label(name: str) -> str:
    """A segment as the figures and their CSV tables name it: "at risk" -> "At risk"."""
    return str(name)[:1].upper() + str(name)[1:]


def _shorten(text: str, width: int = _LABEL_WIDTH) -> str:
    """Keep the end of a long category path (the specific part) and mark the cut."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _compact_money(value: float, currency: str) -> str:
    """A revenue bar's label: :func:`_compact` with the currency (``€1.2k``, ``-€40``, ``1.2k SEK``)."""
    return ("-" if value < 0 else "") + with_currency(_compact(abs(value)), currency)


def _compact(value: float) -> str:
    """1234 -> 1.2k, 1234567 -> 1.2M: bar labels stay short."""
    number = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.1f}{suffix}"
    return f"{number:,.0f}"

