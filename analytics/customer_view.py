"""What the customer lookup shows about one customer: finding them, their profile card, their
behaviour timeline. Pure data and figure functions; the page (``pages/user.py``) only lays them out.

Finding a customer is server-side and exact: the agent types a shop customer id (hashed with the
shop's secret, so the raw id is never stored or searched for) or a pseudonym (``c_`` + 20 hex).
Nothing ever lists every customer; an unknown pseudonym-like prefix gets at most a handful of
suggestions, so a typo costs one click, not a dropdown of the whole customer base.

Reads go through :func:`shop_cursor`: a cursor on one read-only connection per shop file, kept
while the file is unchanged. Opening the file costs tens of milliseconds, a cursor about one;
the lookup has a 300 ms budget. A replaced file (a new ingest) gets a new connection on the next
request, while requests running on the old one finish on the old, complete file.
"""

from __future__ import annotations

import copy
import functools
import html
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd
import plotly.graph_objects as go

from analytics import profiles as p
from analytics import schema as s
from analytics.db import connect_read_only
from analytics.overview_figures import GRID, INK, MUTED, PALETTE, empty_figure, style
from analytics.privacy import PSEUDONYM_LENGTH
from errors import RecsightError

__all__ = [
    "MAX_TYPED_LENGTH", "TIMELINE_LIMIT", "ProfileCard", "clean_typed_id", "find_customer", "suggest_customers",
    "profile_card", "timeline", "timeline_figure", "shop_cursor", "EVENT_LABELS",
]

log = logging.getLogger(__name__)

MAX_TYPED_LENGTH = 128  # longer than any shop id we ingest; anything longer is not an id
TIMELINE_LIMIT = 300  # events drawn on the timeline (the latest); the card counts all of them
MAX_SUGGESTIONS = 5
_MIN_PREFIX = 6  # "c_" + 4 hex digits before suggesting pseudonyms
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PSEUDONYM_PREFIX = re.compile(rf"c_[0-9a-f]{{{_MIN_PREFIX - 2},{PSEUDONYM_LENGTH}}}")

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


# --------------------------------------------------------------------------- finding a customer


def clean_typed_id(typed: Any) -> str:
    """What the agent typed, trimmed and checked: one clear error for empty, huge or odd input."""
    text = "" if typed is None else str(typed).strip()
    if not text:
        raise RecsightError("type a customer id to look a customer up")
    if len(text) > MAX_TYPED_LENGTH:
        raise RecsightError(f"a customer id has at most {MAX_TYPED_LENGTH} characters")
    if _CONTROL.search(text):
        raise RecsightError("a customer id cannot contain control characters")
    return text


def find_customer(recommender: Any, typed: Any, secret: str) -> str:
    """The pseudonym of the customer the agent typed (shop id or pseudonym), or a RecsightError.

    ``recommender`` is a :class:`models.hybrid.Recommender`; its ``resolve_user`` hashes a shop
    id with ``secret`` and checks the result against the shop's events and users.
    """
    return recommender.resolve_user(clean_typed_id(typed), secret)


def suggest_customers(con: duckdb.DuckDBPyConnection, typed: str, limit: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to ``limit`` known pseudonyms starting with ``typed``, if it looks like the start of one.

    Shop ids are hashed, so only pseudonyms (from a report or the audit log) can be completed;
    a prefix of fewer than four hex digits suggests nothing rather than a slice of the customers.
    """
    prefix = typed.strip().lower()
    if not _PSEUDONYM_PREFIX.fullmatch(prefix):
        return []
    rows = con.execute(
        f"SELECT DISTINCT {s.USER_ID} FROM {s.EVENTS} WHERE starts_with({s.USER_ID}, ?) "
        f"ORDER BY {s.USER_ID} LIMIT ?", [prefix, max(0, int(limit))]).fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- profile card


@dataclass(frozen=True)
class ProfileCard:
    """The profile card: who the customer is to the shop, as of the last profile build.

    ``has_profile`` is False for a customer without a row in ``user_profiles`` (a cold start,
    or a shop whose profiles were never built); the counts are then zero and the rest empty.
    """

    user_id: str
    has_profile: bool
    segment: str | None = None
    events: int = 0
    sessions: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # event type -> events, non-zero only
    first_active: datetime | None = None
    last_active: datetime | None = None
    recency_days: float | None = None  # days since the last purchase
    frequency: int = 0  # days with a purchase
    monetary: float | None = None  # net spend; None when prices are unknown
    conversion_rate: float | None = None
    rfm: tuple[int | None, int | None, int | None] = (None, None, None)
    top_categories: list[tuple[str, float]] = field(default_factory=list)  # (name, share), largest first
    top_brands: list[tuple[str, float]] = field(default_factory=list)
    view_prices: tuple[float, float, float] | None = None  # 25th percentile, median, 75th
    buy_prices: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (datetimes as ISO text) for reports and the API."""
        data = asdict(self)
        for key in ("first_active", "last_active"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        data["rfm"] = list(self.rfm)
        data["top_categories"] = [{"category": n, "share": v} for n, v in self.top_categories]
        data["top_brands"] = [{"brand": n, "share": v} for n, v in self.top_brands]
        for key in ("view_prices", "buy_prices"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data


_CARD_COLUMNS = (
    p.RFM_SEGMENT, p.N_EVENTS, p.N_SESSIONS, p.FIRST_ACTIVE, p.LAST_ACTIVE, p.RECENCY_DAYS, p.FREQUENCY,
    p.MONETARY, p.CONVERSION_RATE, p.R_SCORE, p.F_SCORE, p.M_SCORE, p.TOP_CATEGORIES, p.TOP_BRANDS,
    p.VIEW_PRICE_P25, p.VIEW_PRICE_MEDIAN, p.VIEW_PRICE_P75, p.BUY_PRICE_P25, p.BUY_PRICE_MEDIAN, p.BUY_PRICE_P75,
    *p.COUNT_COLUMNS.values(),
)


def profile_card(con: duckdb.DuckDBPyConnection, user_id: str) -> ProfileCard:
    """The card of ``user_id`` (a pseudonym) from ``user_profiles``; an empty card without one."""
    try:
        row = con.execute(f"SELECT {', '.join(_CARD_COLUMNS)} FROM {p.USER_PROFILES} WHERE {s.USER_ID} = ?",
                          [user_id]).fetchone()
    except duckdb.CatalogException:
        log.info("no %s table: the profile card of %s is empty", p.USER_PROFILES, user_id)
        row = None
    if row is None:
        return ProfileCard(user_id, has_profile=False)
    v = dict(zip(_CARD_COLUMNS, row))
    counts = {event: int(v[column]) for event, column in p.COUNT_COLUMNS.items() if v[column]}
    return ProfileCard(
        user_id=user_id,
        has_profile=True,
        segment=v[p.RFM_SEGMENT],
        events=int(v[p.N_EVENTS] or 0),
        sessions=int(v[p.N_SESSIONS] or 0),
        counts=counts,
        first_active=v[p.FIRST_ACTIVE],
        last_active=v[p.LAST_ACTIVE],
        recency_days=_float(v[p.RECENCY_DAYS]),
        frequency=int(v[p.FREQUENCY] or 0),
        monetary=_float(v[p.MONETARY]),
        conversion_rate=_float(v[p.CONVERSION_RATE]),
        rfm=(v[p.R_SCORE], v[p.F_SCORE], v[p.M_SCORE]),
        top_categories=_shares(v[p.TOP_CATEGORIES], s.CATEGORY),
        top_brands=_shares(v[p.TOP_BRANDS], s.BRAND),
        view_prices=_band(v[p.VIEW_PRICE_P25], v[p.VIEW_PRICE_MEDIAN], v[p.VIEW_PRICE_P75]),
        buy_prices=_band(v[p.BUY_PRICE_P25], v[p.BUY_PRICE_MEDIAN], v[p.BUY_PRICE_P75]),
    )


def _float(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _shares(entries: Any, key: str) -> list[tuple[str, float]]:
    return [(str(entry[key]), float(entry[p.SHARE])) for entry in entries or [] if entry and entry.get(key)]


def _band(low: Any, mid: Any, high: Any) -> tuple[float, float, float] | None:
    values = (_float(low), _float(mid), _float(high))
    return None if any(x is None for x in values) else values  # type: ignore[return-value]


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


def timeline_figure(frame: pd.DataFrame, total: int | None = None, height: int = 300) -> go.Figure:
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
                         "" if p is None or p != p else f" · {p:,.2f}") for r, p in zip(rows, prices)],
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
    """The dashboard's look (``overview_figures.style``) as a plain dict, computed once per height."""
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


# --------------------------------------------------------------------------- reading the shop


_roots: dict[Path, tuple[tuple[int, int, int], duckdb.DuckDBPyConnection, str]] = {}
_roots_lock = threading.Lock()


@contextmanager
def shop_cursor(db_path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only cursor on the shop, from one connection kept per unchanged shop file."""
    path = Path(db_path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first") from None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = path.resolve()
    with _roots_lock:
        cached = _roots.get(key)
        if cached is None or cached[0] != stamp:
            root = connect_read_only(path)
            database = root.execute("SELECT current_database()").fetchone()[0]
            # The replaced connection is left to the garbage collector: a request may still read it.
            cached = _roots[key] = (stamp, root, database)
        cursor = cached[1].cursor()
    try:
        cursor.execute(f'USE "{cached[2]}"')
        yield cursor
    except duckdb.Error as exc:
        log.warning("reading customer data from %s failed: %s", path, exc)
        raise RecsightError(f"the shop database {path} could not be read") from None
    finally:
        cursor.close()
