"""Shop overview (analysts): KPIs, funnel, activity over time, top categories and brands, RFM
segments, all under one date range and segment filter.

The page is thin: the layout, and callbacks whose bodies are the module-level ``update_*``
functions below, which take the filter values and the settings and return what the outputs
show. Tests call them directly. Queries live in :mod:`dashboard.shop_overview`, figures in
:mod:`dashboard.overview_figures`. Every callback opens its own short-lived read-only connection.
Aggregates only: no customer id appears on this page; selections or segments of fewer than
``settings.k_anonymity`` customers are refused, and within a selection every number about fewer
than k customers (a KPI, a funnel stage, a day, a row) is hidden and says so
(:mod:`dashboard.k_anonymity`).

Every chart and the segment table has a "Download CSV" (:mod:`pages._downloads`): the callback
that draws it also stores the table it drew from (:mod:`dashboard.figure_tables`), hidden values
missing, and the download hands out that table, to the page's roles only.

Money is in the shop's currency (``settings.currency``), written by :mod:`dashboard.money`: the
revenue card, the segment table, the revenue axis and hovers, and the CSV headers all say it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeVar

import dash
import dash_bootstrap_components as dbc
import duckdb
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import figure_tables as tables
from dashboard import overview_figures as figs
from dashboard import shop_overview as so
from dashboard.csv_tables import ShownTable
from dashboard.money import format_money, money_label
from dashboard.theme import PRIMARY, empty_figure
from errors import RecsightError
from pages import _downloads as dl
from pages._downloads import Shown, csv_control, store_data, store_output
from pages._parts import capitalised, card, current_settings, graph, page, refused_page, sentence, toggle
from settings import Settings
from workflows.overview import run_overview_query, shop_choices

__all__ = [
    "layout", "build_layout", "preset_dates", "update_overview", "update_activity", "update_rankings",
    "update_segments", "activity_view", "rankings_view", "segments_view", "OverviewView", "SegmentsView", "KPI_IDS",
    "ALL_CUSTOMERS", "CSV",
]

dash.register_page(__name__, path="/", name="Shop overview", title="Shop overview · Recsight", order=0)

log = logging.getLogger(__name__)
T = TypeVar("T")

ALL_CUSTOMERS = "all"
PRESETS: dict[str, int | None] = {"7": 7, "30": 30, "90": 90, "all": None}
KPI_IDS: dict[str, str] = {name: f"ov-kpi-{name}" for name in ("users", "items", "events", "revenue", "conversion")}
CSV = dl.DownloadPage(__name__, "overview", "ov", frozenset(
    {"funnel", "activity", "categories", "brands", "segment-sizes", "segment-activity"}))


class OverviewView(NamedTuple):
    """What :func:`update_overview` puts on the page."""

    kpis: list[Any]
    funnel: go.Figure
    notice: Any
    funnel_table: ShownTable | None = None  # what the funnel's CSV holds


class SegmentsView(NamedTuple):
    """What :func:`segments_view` puts on the page: the sizes figure and the activity table, and
    the tables their CSVs hold."""

    figure: go.Figure
    table: Any
    sizes: ShownTable | None
    activity: ShownTable | None


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit (query-string values arrive as keyword arguments, unused); the
    page checks the role itself too."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """The page for ``settings``' shop, or a clear message when there is nothing to show yet."""
    try:
        choices = shop_choices(settings)
    except RecsightError as exc:
        return _overview_page(_problem(str(exc)))
    bounds, segments, has_profiles = choices.bounds, choices.segments, choices.has_profiles
    if bounds is None:
        return _overview_page(_problem("the shop has no events yet: run `python cli.py ingest` to load some"))
    first, last = (day.isoformat() for day in bounds)
    return _overview_page(
        _filters(first, last, segments, has_profiles, settings.k_anonymity),
        html.Div(id="ov-notice"),
        dcc.Loading(html.Div(id="ov-kpis", className="rs-kpis"), type="dot", color=PRIMARY, delay_show=150),
        dbc.Row(className="g-3", children=[
            dbc.Col(card("Conversion funnel", "Events at each step and the share of the step before",
                         graph("ov-funnel"), tools=csv_control(CSV, "funnel")), lg=5),
            dbc.Col(card("Activity over time", None, graph("ov-activity", 340),
                         tools=[toggle("ov-freq", {"day": "Daily", "week": "Weekly"}, "day"),
                                csv_control(CSV, "activity")]), lg=7),
        ]),
        html.Div(className="rs-section-head", children=[
            html.H2("What sells", className="rs-section-title"),
            html.Div(className="rs-inline-field", children=[
                html.Span("Rank by", className="rs-field-label"),
                toggle("ov-rank-by", {"events": "Events", "revenue": "Revenue"}, "events"),
            ]),
        ]),
        dbc.Row(className="g-3", children=[
            dbc.Col(card("Top categories", None, graph("ov-categories", 380),
                         tools=[toggle("ov-cat-level", {"top": "Top level", "full": "Full path"}, "top"),
                                csv_control(CSV, "categories")]), lg=6),
            dbc.Col(card("Top brands", None, graph("ov-brands", 380), tools=csv_control(CSV, "brands")), lg=6),
        ]),
        html.Div(className="rs-section-head", children=[html.H2("Customer segments", className="rs-section-title")]),
        dbc.Row(className="g-3", children=[
            dbc.Col(card("Customers per RFM segment",
                         "Recency and frequency of purchases, as of the last profile build",
                         graph("ov-segments", 300), tools=csv_control(CSV, "segment-sizes")), lg=7),
            dbc.Col(card("Segment activity in the selected dates", None,
                         dcc.Loading(html.Div(id="ov-segment-table"), type="dot", color=PRIMARY,
                                     delay_show=150), tools=csv_control(CSV, "segment-activity")), lg=5),
        ]),
        dcc.Store(id="ov-bounds", data={"first": first, "last": last}),
    )


def _problem(message: str) -> dbc.Alert:
    return dbc.Alert([html.Strong("Nothing to show yet. "), sentence(message)],
                     color="warning", className="rs-alert", id="ov-problem")


def _filters(first: str, last: str, segments: list[str], has_profiles: bool, k: int) -> html.Div:
    options = [{"label": "All customers", "value": ALL_CUSTOMERS}]
    options += [{"label": capitalised(name), "value": name} for name in segments]
    hint = (f"Segments with fewer than {k} customers are not listed." if has_profiles
            else "Segments appear once profiles are built (python cli.py ingest).")
    return html.Div(className="rs-filters", children=[
        html.Div(className="rs-field", children=[
            html.Label("Dates", className="rs-field-label", htmlFor="ov-dates"),
            dcc.DatePickerRange(
                id="ov-dates", start_date=first, end_date=last, min_date_allowed=first, max_date_allowed=last,
                initial_visible_month=last, display_format="D MMM YYYY", first_day_of_week=1,
                updatemode="bothdates", minimum_nights=0,
            ),
        ]),
        html.Div(className="rs-field", children=[
            html.Span("Quick range", className="rs-field-label"),
            dbc.ButtonGroup([
                dbc.Button(label, id=f"ov-preset-{key}", color="light", size="sm", className="rs-preset",
                           n_clicks=0)
                for key, label in (("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("all", "All"))
            ]),
        ]),
        html.Div(className="rs-field rs-field-grow", children=[
            html.Label("Customer segment", className="rs-field-label", htmlFor="ov-segment"),
            dcc.Dropdown(id="ov-segment", options=options, value=ALL_CUSTOMERS, clearable=False,
                         searchable=False, disabled=not segments),
            html.Div(hint, className="rs-field-hint"),
        ]),
    ])


def _kpi_card(name: str, label: str, value: str, caption: str) -> html.Div:
    return html.Div(className="rs-kpi", children=[
        html.Div(label, className="rs-kpi-label"),
        html.Div(value, className="rs-kpi-value", id=KPI_IDS[name]),
        html.Div(caption, className="rs-kpi-caption", id=f"{KPI_IDS[name]}-caption"),
    ])


# --------------------------------------------------------------------------- callback bodies


def preset_dates(preset: str, bounds: dict[str, str] | None) -> tuple[str, str]:
    """The (start, end) ISO dates of a quick-range button: the last N days up to the shop's
    last event day, never before its first; "all" is the whole span."""
    if not bounds:
        raise RecsightError("the shop has no date range yet")
    try:  # the browser sends the bounds back: a forged or damaged store is a refusal, not a crash
        first, last = date.fromisoformat(bounds["first"]), date.fromisoformat(bounds["last"])
    except (KeyError, TypeError, ValueError):
        raise RecsightError("the shop's date range on the page is not readable: reload the page") from None
    if preset not in PRESETS:
        raise RecsightError(f"unknown quick range {preset!r}")
    days = PRESETS[preset]
    start = first if days is None else max(first, last - timedelta(days=days - 1))
    return start.isoformat(), last.isoformat()


def update_overview(start_date: str | None, end_date: str | None, segment: str | None,
                    settings: Settings) -> OverviewView:
    """KPI cards, the funnel, and a notice (an error or a privacy note) for the filter."""
    k = settings.k_anonymity
    result, problem = _run(settings, start_date, end_date, segment,
                           lambda con, flt: (so.kpis(con, flt, k=k), so.funnel(con, flt, k=k)))
    if result is None:
        return OverviewView(_kpi_cards(None, k, settings.currency), empty_figure(problem), _notice(problem))
    numbers, funnel = result
    notice = _notice("there are no events in this selection", color="info") if numbers["events"] == 0 else None
    return OverviewView(_kpi_cards(numbers, k, settings.currency), figs.funnel_figure(funnel, k=k), notice,
                        tables.funnel_table(funnel))


def update_activity(start_date: str | None, end_date: str | None, segment: str | None, freq: str,
                    settings: Settings) -> go.Figure:
    """Events and revenue per day or week; periods of fewer than k customers (or buyers) blank."""
    return activity_view(start_date, end_date, segment, freq, settings).figure


def activity_view(start_date: str | None, end_date: str | None, segment: str | None, freq: str,
                  settings: Settings) -> Shown:
    """:func:`update_activity`'s figure and the table it is drawn from (its CSV)."""
    k = settings.k_anonymity
    frame, problem = _run(settings, start_date, end_date, segment,
                          lambda con, flt: so.activity_over_time(con, flt, freq=freq, k=k))
    if frame is None:
        return Shown(empty_figure(problem, 340), None)
    return Shown(figs.activity_figure(frame, freq, 340, k=k, currency=settings.currency),
                 tables.activity_table(frame, freq, settings.currency))


def update_rankings(start_date: str | None, end_date: str | None, segment: str | None, level: str, by: str,
                    settings: Settings) -> tuple[go.Figure, go.Figure]:
    """Top categories (top level or full path) and top brands, ranked by events or revenue.

    Categories and brands bought or viewed by fewer than k customers are left out; purchases
    and revenue of fewer than k buyers are hidden in the rows shown.
    """
    categories, brands = rankings_view(start_date, end_date, segment, level, by, settings)
    return categories.figure, brands.figure


def rankings_view(start_date: str | None, end_date: str | None, segment: str | None, level: str, by: str,
                  settings: Settings) -> tuple[Shown, Shown]:
    """:func:`update_rankings`' two figures, each with the table it is drawn from (its CSV)."""
    k, currency = settings.k_anonymity, settings.currency

    def query(con: duckdb.DuckDBPyConnection, flt: so.OverviewFilter) -> tuple[Any, Any]:
        return (so.top_categories(con, flt, level=level, by=by, k=k),
                so.top_brands(con, flt, by=by, k=k))

    result, problem = _run(settings, start_date, end_date, segment, query)
    if result is None:
        return Shown(empty_figure(problem, 380), None), Shown(empty_figure(problem, 380), None)
    categories, brands = result
    return (Shown(figs.ranking_figure(categories, "category", by, 380, "No category has enough customers to show",
                                      k=k, currency=currency), tables.ranking_table(categories, "category", currency)),
            Shown(figs.ranking_figure(brands, "brand", by, 380, "No brand has enough customers to show", k=k,
                                      currency=currency), tables.ranking_table(brands, "brand", currency)))


def update_segments(start_date: str | None, end_date: str | None, segment: str | None,
                    settings: Settings) -> tuple[go.Figure, Any]:
    """Segment sizes (the selected segment highlighted) and their activity in the date range."""
    view = segments_view(start_date, end_date, segment, settings)
    return view.figure, view.table


def segments_view(start_date: str | None, end_date: str | None, segment: str | None,
                  settings: Settings) -> SegmentsView:
    """:func:`update_segments`' figure and table, and the tables their CSVs hold."""
    k = settings.k_anonymity
    result, problem = _run(settings, start_date, end_date, segment,
                           lambda con, flt: (flt, so.segment_breakdown(con, flt, k=k)))
    if result is None:
        return SegmentsView(empty_figure(problem, 300), html.Div(sentence(problem), className="rs-empty"), None, None)
    flt, breakdown = result
    frame = breakdown.table
    return SegmentsView(figs.segments_figure(frame, flt.segment, 300),
                        _segment_table(breakdown, k, settings.currency, flt.segment),
                        tables.segment_sizes_table(frame), tables.segment_activity_table(frame, settings.currency))


# --------------------------------------------------------------------------- helpers


def _run(settings: Settings, start: str | None, end: str | None, segment: str | None,
         query: Callable[[duckdb.DuckDBPyConnection, so.OverviewFilter], T]) -> tuple[T | None, str]:
    """Run one query under the page's filter; return (result, "") or (None, a one-line reason)."""
    try:
        chosen = None if segment in (None, "", ALL_CUSTOMERS) else segment
        return run_overview_query(settings, start, end, chosen, query), ""
    except RecsightError as exc:
        return None, sentence(str(exc))


def _kpi_cards(numbers: dict[str, Any] | None, k: int, currency: str) -> list[html.Div]:
    """The five cards (revenue in ``currency``); a number about fewer than k customers is "—" or
    says so in words."""
    if numbers is None:
        dash_ = "—"
        return [_kpi_card(name, label, dash_, "") for name, label in _KPI_LABELS.items()]
    hidden = set(numbers.get("hidden", ()))
    few = f"fewer than {k}"
    conversion = numbers["conversion"]
    buyer_share = numbers["buyer_share"]
    views = f"views hidden ({few} viewers)" if "views" in hidden else f"{_count(numbers['views'])} views"
    purchases = (f"purchases hidden ({few} buyers)" if "purchases" in hidden
                 else f"{_count(numbers['purchases'])} purchases")
    if "conversion" in hidden:
        conversion_card = ("—", f"hidden: {few} customers {'bought' if 'purchases' in hidden else 'viewed'}")
    else:
        conversion_card = ("—" if conversion is None else f"{conversion:.2%}", "purchases per view" + (
            "" if buyer_share is None else f" · {buyer_share:.0%} of customers bought"))
    return [
        _kpi_card("users", "Customers", _count(numbers["users"]),
                  f"{few if 'buyers' in hidden else _count(numbers['buyers'])} bought something"),
        _kpi_card("items", "Items", _count(numbers["items"]),
                  f"of {_count(numbers['catalogue_items'])} in the catalogue"),
        _kpi_card("events", "Events", _count(numbers["events"]), f"{views} · {purchases}"),
        _kpi_card("revenue", "Revenue", *(("—", f"hidden: {few} customers bought or returned") if "revenue" in hidden
                                          else (format_money(numbers["revenue"], currency),
                                                "purchases net of returns"))),
        _kpi_card("conversion", "Conversion", *conversion_card),
    ]


_KPI_LABELS = {"users": "Customers", "items": "Items", "events": "Events", "revenue": "Revenue",
               "conversion": "Conversion"}


def _segment_table(breakdown: so.SegmentBreakdown, k: int, currency: str, selected: str | None = None) -> Any:
    """Customers and active customers as whole numbers, revenue as money in ``currency`` (a
    segment without purchases reads "€0.00", like the others, not a bare "0.00")."""
    table = breakdown.table
    if table.empty:
        return html.Div(f"No segment has {k} or more customers yet.", className="rs-empty")
    head = html.Thead(html.Tr([html.Th("Segment"), html.Th("Customers", className="text-end"),
                               html.Th("Active", className="text-end"),
                               html.Th(money_label("Revenue", currency), className="text-end")]))
    rows = [
        html.Tr([
            html.Td(capitalised(row.segment)),
            html.Td(_count(row.customers), className="text-end"),
            html.Td(_maybe(row.active, _count), className="text-end"),
            html.Td(_maybe(row.revenue, lambda money: format_money(money, currency)), className="text-end"),
        ], className="rs-row-selected" if row.segment == selected else None)
        for row in table.itertuples(index=False)
    ]
    note = [f"Active: customers with an event in the selected dates. Groups under {k} customers are hidden"]
    if breakdown.suppressed:
        note.append(f" ({breakdown.suppressed} segment{'s' if breakdown.suppressed != 1 else ''} hidden)")
    note.append(f"; “–” marks figures about fewer than {k} customers (active, or for revenue: buying or returning).")
    return html.Div([
        dbc.Table([head, html.Tbody(rows)], className="rs-table", size="sm", borderless=True, hover=True),
        html.Div(note, className="rs-table-note"),
    ])


def _notice(message: str, color: str = "warning") -> dbc.Alert:
    return dbc.Alert(sentence(message), color=color, className="rs-alert", id="ov-notice-text")


def _count(value: Any) -> str:
    return f"{int(value):,}"


def _maybe(value: Any, fmt: Callable[[Any], str]) -> str:
    return "–" if value is None or value != value else fmt(value)


# --------------------------------------------------------------------------- wiring

_FILTER_INPUTS = [Input("ov-dates", "start_date"), Input("ov-dates", "end_date"), Input("ov-segment", "value")]


@callback(
    Output("ov-dates", "start_date"), Output("ov-dates", "end_date"),
    *(Input(f"ov-preset-{key}", "n_clicks") for key in PRESETS),
    State("ov-bounds", "data"),
    prevent_initial_call=True,
)
def _on_preset(*args: Any) -> tuple[str, str]:
    preset = str(dash.ctx.triggered_id).removeprefix("ov-preset-")
    try:
        return preset_dates(preset, args[-1])
    except RecsightError:
        raise PreventUpdate from None


@callback(Output("ov-kpis", "children"), Output("ov-funnel", "figure"), Output("ov-notice", "children"),
          store_output(CSV, "funnel"), *_FILTER_INPUTS)
def _on_overview(start_date: str | None, end_date: str | None, segment: str | None) -> tuple[Any, ...]:
    view = update_overview(start_date, end_date, segment, current_settings())
    return view.kpis, view.funnel, view.notice, store_data(view.funnel_table)


@callback(Output("ov-activity", "figure"), store_output(CSV, "activity"), *_FILTER_INPUTS, Input("ov-freq", "value"))
def _on_activity(start_date: str | None, end_date: str | None, segment: str | None, freq: str) -> tuple[Any, ...]:
    view = activity_view(start_date, end_date, segment, freq, current_settings())
    return view.figure, store_data(view.table)


@callback(Output("ov-categories", "figure"), Output("ov-brands", "figure"), store_output(CSV, "categories"),
          store_output(CSV, "brands"), *_FILTER_INPUTS, Input("ov-cat-level", "value"), Input("ov-rank-by", "value"))
def _on_rankings(start_date: str | None, end_date: str | None, segment: str | None, level: str,
                 by: str) -> tuple[Any, ...]:
    categories, brands = rankings_view(start_date, end_date, segment, level, by, current_settings())
    return categories.figure, brands.figure, store_data(categories.table), store_data(brands.table)


@callback(Output("ov-segments", "figure"), Output("ov-segment-table", "children"), store_output(CSV, "segment-sizes"),
          store_output(CSV, "segment-activity"), *_FILTER_INPUTS)
def _on_segments(start_date: str | None, end_date: str | None, segment: str | None) -> tuple[Any, ...]:
    view = segments_view(start_date, end_date, segment, current_settings())
    return view.figure, view.table, store_data(view.sizes), store_data(view.activity)


@callback(*dl.download_callback_args(CSV), prevent_initial_call=True)
def _on_download(clicks: int | None, store: Any) -> tuple[Any, str]:
    return dl.download(CSV, dl.triggered_table(), clicks, store)


dl.enable_buttons(CSV)


def _overview_page(*children: Any) -> html.Div:
    return page("Shop overview", "How the shop is doing: traffic, conversion, what sells and who buys. "
                "Aggregates only.", *children)
