"""What the customer lookup draws about one customer: their behaviour timeline, as a query and
a figure. Pure functions of a connection or a frame; the page (``pages/user.py``) lays them out,
:mod:`workflows.lookup` supplies the connection (one read-only cursor per unchanged shop file).

The timeline reads the customer's latest events only (the card counts all of them): the lookup
has a 300 ms budget, and a customer with years of browsing must not blow it.
"""

from __future__ import annotations

import copy
import functools
import html
import logging
from typing import Any

import duckdb
import pandas as pd
import plotly.graph_objects as go

from analytics import schema as s
from dashboard.money import DEFAULT_CURRENCY, format_money
from dashboard.theme import GRID, INK, MUTED, PALETTE, empty_figure, style

__all__ = ["TIMELINE_LIMIT", "EVENT_LABELS", "timeline", "timeline_figure"]

log = logging.getLogger(__name__)

TIMELINE_LIMIT = 300  # events drawn on the timeline (the latest); the card counts all of them

# Lanes of the timeline, bottom to top: the funnel reads upwards.
EVENT_LABELS: dict[str, str] = {
    s.VIEW: "Viewed", s.CLICK: "Clicked", s.FAVORITE: "Favourited", s.RATING_EVENT: "Rated",
    s.CART: "Added to cart", s.PURCHASE: "Bought", s.RETURN: "Returned",
}
_EVENT_STYLE: dict[str, tuple[str, str, int]] = {  # colour, marker symbol, size
    s.VIEW: (PALETTE[5], "circle", 7), s.CLICK: (PALETTE[0], "circle", 8),
    s.FAVORITE: (PALETTE[4], "star", 10), s.RATING_EVENT: (PALETTE[4], "diamond", 9),
    s.CART: (PALETTE[1], "square", 9), s.PURCHASE: (PALETTE[2], "diamond", 12),
    s.RETURN: (PALETTE[3], "x", 10),
}


# --------------------------------------------------------------------------- timeline


def timeline(con: duckdb.DuckDBPyConnection, user_id: str, limit: int = TIMELINE_LIMIT) -> tuple[pd.DataFrame, int]:
    """The customer's latest ``limit`` events (at least one), oldest first, with item titles; and
    how many events they have in all. One scan of the events (the window count is taken before
    the limit): the lookup has a 300 ms budget and the events table has no index."""
    frame = con.execute(
        f"""SELECT * FROM (
                SELECT e.{s.TS}, e.{s.EVENT_TYPE}, e.{s.ITEM_ID}, coalesce(i.{s.TITLE}, e.{s.ITEM_ID}) AS {s.TITLE},
                       i.{s.CATEGORY}, i.{s.BRAND}, coalesce(e.{s.PRICE}, i.{s.PRICE}) AS {s.PRICE},
                       e.{s.QUANTITY}, e.{s.SESSION_ID}, count(*) OVER () AS _total
                FROM {s.EVENTS} AS e LEFT JOIN {s.ITEMS} AS i ON i.{s.ITEM_ID} = e.{s.ITEM_ID}
                WHERE e.{s.USER_ID} = ?
                ORDER BY e.{s.TS} DESC, e.{s.EVENT_TYPE}, e.{s.ITEM_ID}
                LIMIT ?)
            ORDER BY {s.TS}, {s.EVENT_TYPE}, {s.ITEM_ID}""",
        [user_id, max(1, int(limit))]).df()
    total = int(frame["_total"].iloc[0]) if len(frame) else 0
    return frame.drop(columns="_total"), total


def timeline_figure(frame: pd.DataFrame, total: int | None = None, height: int = 300, *,
                    currency: str = DEFAULT_CURRENCY) -> go.Figure:
    """Each event as a mark in its event type's lane over time: browsing at the bottom, buying
    on top, so a customer's path through the funnel reads at a glance.

    Built in one go from plain dicts on the dashboard's cached base layout: the lookup has a
    300 ms budget, and Plotly's incremental ``add_trace``/``update_layout`` calls cost twice as much.
    """
    if frame.empty:
        return empty_figure("No behaviour recorded for this customer yet", height)
    present = [event for event in EVENT_LABELS if event in set(frame[s.EVENT_TYPE])]
    present += sorted(set(frame[s.EVENT_TYPE]) - set(present))
    columns = {name: frame[name].tolist() for name in (s.TS, s.EVENT_TYPE, s.TITLE, s.CATEGORY, s.PRICE)}
    lanes: dict[str, list[int]] = {event: [] for event in present}
    for row, event in enumerate(columns[s.EVENT_TYPE]):
        lanes[event].append(row)
    data = []
    for event in present:
        rows = lanes[event]
        colour, symbol, size = _EVENT_STYLE.get(event, (MUTED, "circle", 7))
        label = EVENT_LABELS.get(event, event.title())
        prices = [columns[s.PRICE][r] for r in rows]
        data.append(dict(
            type="scatter", x=[columns[s.TS][r] for r in rows], y=[label] * len(rows), mode="markers", name=label,
            marker=dict(color=colour, symbol=symbol, size=size, opacity=0.85, line=dict(width=0)),
            customdata=[(_text(columns[s.TITLE][r]), _text(columns[s.CATEGORY][r]),
                         "" if p is None or p != p else f" · {format_money(p, currency)}")
                        for r, p in zip(rows, prices)],
            hovertemplate="%{x|%d %b %Y %H:%M}<br><b>%{customdata[0]}</b>%{customdata[2]}"
                          "<br>%{customdata[1]}<extra>" + label + "</extra>",
        ))
    layout = _base_layout(height)
    layout["xaxis"] = dict(layout.get("xaxis", {}), automargin=True)
    layout["yaxis"] = dict(layout.get("yaxis", {}), categoryorder="array", tickfont=dict(color=INK), gridcolor=GRID,
                           automargin=True, categoryarray=[EVENT_LABELS.get(e, e.title()) for e in present])
    if total is not None and total > len(frame):
        layout["annotations"] = [dict(text=f"latest {len(frame):,} of {total:,} events", x=1, y=1.0, xref="paper",
                                      yref="paper", xanchor="right", yanchor="bottom", showarrow=False,
                                      font=dict(size=11, color=MUTED))]
    return go.Figure(data=data, layout=layout)


@functools.lru_cache(maxsize=8)
def _styled_layout(height: int) -> dict[str, Any]:
    """The dashboard's look (``theme.style``) as a plain dict, computed once per height."""
    fig = style(go.Figure(), height)
    fig.update_layout(margin=dict(l=8, r=16, t=8, b=8))
    return fig.layout.to_plotly_json()


def _base_layout(height: int) -> dict[str, Any]:
    """A copy of the styled layout, without Plotly's default template: ``style`` already sets
    every property the template would, and validating the template is most of a figure's cost."""
    layout = copy.deepcopy(_styled_layout(height))
    layout["template"] = {}
    return layout


def _text(value: Any) -> str:
    """Shop text as Plotly shows it literally: it reads tags like ``<a href>`` in hover text."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return html.escape(str(value), quote=False)
