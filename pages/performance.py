"""Performance (analysts): how the lists customers were shown do, live, per model version and
experiment variant and per position: click-through, conversion and revenue per thousand item
impressions, over time.

The shop's backend posts what each customer was shown (``POST /api/v1/impressions``); clicks,
carts and purchases of a shown item by that customer within 24 hours are attributed to the
latest impression of it (last touch, :mod:`analytics.attribution`). Until the first impression
arrives the page says what to send.

Thin like every page: the layout, and a callback whose body is :func:`update_performance` (tests
call it directly). The sums come from :mod:`workflows.performance`, the rates, the k-anonymity
rule, the chart and the tables from :mod:`dashboard.performance_view`. Aggregates only: no
customer id appears here, and a number about fewer than ``settings.k_anonymity`` customers is
hidden. Every table and the chart have a "Download CSV" (:mod:`pages._downloads`) holding
exactly what is shown.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
import flask
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html

from analytics.attribution import DEFAULT_WINDOW
from dashboard import performance_view as pv
from dashboard.csv_tables import ShownTable
from dashboard.theme import PRIMARY, empty_figure
from errors import RecsightError
from pages import _downloads as dl
from pages._downloads import csv_control, store_data, store_output
from pages._parts import card, current_settings, graph, guarded, page, refused_page, sentence
from settings import Settings
from workflows import performance
from workflows.insight import current_version

__all__ = ["layout", "build_layout", "update_performance", "performance_view", "empty_state", "PerformanceView",
           "PerformanceTables", "CSV"]

dash.register_page(__name__, path="/performance", name="Performance", title="Performance · Recsight", order=30)

CSV = dl.DownloadPage(__name__, "performance", "pf", frozenset({"over-time", "positions", "versions"}))
_WINDOW_HOURS = int(DEFAULT_WINDOW.total_seconds() // 3600)


class PerformanceView(NamedTuple):
    """What :func:`update_performance` puts on the page."""

    kpis: Any
    figure: go.Figure
    positions: Any
    versions: Any
    notice: Any


class PerformanceTables(NamedTuple):
    """The tables behind :class:`PerformanceView` (their CSVs); None where nothing is shown."""

    over_time: ShownTable | None
    positions: ShownTable | None
    versions: ShownTable | None


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit; the page checks the role itself too."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """The filters and the page body, or what to send when no impression arrived yet."""
    try:
        choices = performance.performance_choices(settings.db_path)
    except RecsightError as exc:
        return _performance_page(_problem(str(exc)))
    if choices is None:
        return _performance_page(empty_state(settings))
    first, last = (day.isoformat() for day in choices.bounds)
    return _performance_page(
        html.Div(className="rs-filters", children=[
            html.Div(className="rs-field rs-field-grow", children=[
                html.Label("List", className="rs-field-label", htmlFor="pf-list"),
                dcc.Dropdown(id="pf-list", options=pv.list_options(choices.lists), value=pv.ALL, clearable=False,
                             searchable=False),
            ]),
            html.Div(className="rs-field rs-field-grow", children=[
                html.Label("Model version", className="rs-field-label", htmlFor="pf-version"),
                dcc.Dropdown(id="pf-version", options=pv.version_options(choices.versions), value=pv.ALL,
                             clearable=False, searchable=False),
            ]),
            html.Div(className="rs-field", children=[
                html.Label("Dates", className="rs-field-label", htmlFor="pf-dates"),
                dcc.DatePickerRange(id="pf-dates", start_date=first, end_date=last, min_date_allowed=first,
                                    max_date_allowed=last, initial_visible_month=last, display_format="D MMM YYYY",
                                    first_day_of_week=1, updatemode="bothdates", minimum_nights=0),
            ]),
        ]),
        html.Div(id="pf-notice"),
        dcc.Loading(html.Div(id="pf-kpis", className="rs-kpis rs-kpis-4"), type="dot", color=PRIMARY,
                    delay_show=150),
        card("Click-through over time", "Attributed clicks per item impression, per model version and variant",
             graph("pf-ctr", 340), tools=csv_control(CSV, "over-time")),
        html.Div(className="mt-3", children=card(
            "By model version and variant", "Each row over the impressions its lists made",
            _loading("pf-versions"), tools=csv_control(CSV, "versions"))),
        html.Div(className="mt-3", children=card(
            "By position", "The first places are clicked more whatever sits there (position bias): compare "
                           "variants over the same positions", _loading("pf-positions"),
            tools=csv_control(CSV, "positions"))),
        html.Div(f"Clicks, carts and purchases of a shown item by the customer it was shown to, within "
                 f"{_WINDOW_HOURS} hours, count for the latest impression of it (last touch), once per impression "
                 f"and kind; revenue is price × quantity of those purchases. Numbers about fewer than "
                 f"{settings.k_anonymity} customers are hidden (–).", className="rs-table-note mt-2"),
    )


def empty_state(settings: Settings) -> html.Div:
    """No impression yet: what the shop's backend should send, as a command to copy."""
    return html.Div(className="rs-empty-state", id="pf-empty", children=[
        html.Div("No impressions yet", className="rs-empty-title"),
        html.P("This page compares what customers were shown with what they then clicked and bought. Have the "
               "shop's backend post each list it shows, with the account of the intake role "
               "(python cli.py users add backend --role intake), for example:"),
        html.Pre(_curl_example(settings), id="pf-curl", className="rs-mono mt-3",
                 style={"textAlign": "left", "whiteSpace": "pre-wrap", "overflowWrap": "anywhere"}),
        html.P("Items are in the order shown (position = index + 1, at most 100); experiment and variant are "
               "both null or both set. The figures appear here with the first accepted batch."),
    ])


def _curl_example(settings: Settings) -> str:
    base = flask.request.host_url if flask.has_request_context() else f"http://{settings.host}:{settings.port}/"
    example = [{"event_id": "shown-0001", "user_id": "CUSTOMER-ID", "ts": "2024-05-01T10:00:00Z", "list": "home",
                "items": ["ITEM-1", "ITEM-2", "ITEM-3"], "model_version": current_version(settings) or "VERSION",
                "experiment": None, "variant": None}]
    return (f"curl -u backend:PASSWORD -H 'Content-Type: application/json' \\\n"
            f"  -X POST {base}api/v1/impressions \\\n  -d '{json.dumps(example)}'")


# --------------------------------------------------------------------------- callback body


def update_performance(list_value: Any, version_value: Any, start: Any, end: Any, settings: Settings
                       ) -> PerformanceView:
    """The KPIs, the chart over time and the two tables for the filter."""
    return performance_view(list_value, version_value, start, end, settings)[0]


def performance_view(list_value: Any, version_value: Any, start: Any, end: Any,
                     settings: Settings) -> tuple[PerformanceView, PerformanceTables]:
    """:func:`update_performance`'s view and the tables its CSVs hold."""
    k, currency = settings.k_anonymity, settings.currency
    flt = pv.chosen_filter(list_value, version_value, start, end)
    sums = performance.performance_figures(settings.db_path, flt)
    positions = pv.position_table(sums.by_position, currency, k)
    versions = pv.variant_table(sums.by_variant, currency, k)
    notice = None
    if not int(sums.total["impressions"].iloc[0]):
        notice = dbc.Alert("No impressions in this selection.", color="info", className="rs-alert",
                           id="pf-notice-text")
    view = PerformanceView(_kpi_cards(pv.kpis(sums.total, currency, k)),
                           pv.ctr_over_time_figure(sums.over_time, sums.bucket, k, 340),
                           _table(positions, "pf-positions-table"), _table(versions, "pf-versions-table"), notice)
    return view, PerformanceTables(pv.over_time_table(sums.over_time, sums.bucket, currency, k), positions.csv,
                                   versions.csv)


# --------------------------------------------------------------------------- pieces


def _kpi_cards(cards: list[tuple[str, str, str]]) -> list[html.Div]:
    return [html.Div(className="rs-kpi", children=[
        html.Div(label, className="rs-kpi-label"),
        html.Div(value, className="rs-kpi-value", id=f"pf-kpi-{n}"),
        html.Div(caption, className="rs-kpi-caption"),
    ]) for n, (label, value, caption) in enumerate(cards)]


def _table(table: pv.Table, table_id: str) -> Any:
    if not table.rows:
        return html.Div("No impressions in this selection.", className="rs-empty")
    head = html.Thead(html.Tr([html.Th(h, className="text-end" if n in table.numeric else None)
                               for n, h in enumerate(table.headers)]))
    body = html.Tbody([html.Tr([html.Td(cell, className="text-end text-nowrap" if n in table.numeric else None)
                                for n, cell in enumerate(row)]) for row in table.rows])
    return html.Div(dbc.Table([head, body], className="rs-table", size="sm", borderless=True, hover=True,
                              id=table_id), style={"overflowX": "auto"})


def _loading(target: str) -> dcc.Loading:
    return dcc.Loading(html.Div(id=target), type="dot", color=PRIMARY, delay_show=150)


def _problem(message: str) -> dbc.Alert:
    return dbc.Alert(sentence(message), color="warning", className="rs-alert", id="pf-problem")


def _performance_page(*children: Any) -> html.Div:
    return page("Performance", "How the lists customers are shown do: click-through, conversion and revenue per "
                "model version, experiment variant and position. Aggregates only.", *children)


# --------------------------------------------------------------------------- wiring


@callback(Output("pf-kpis", "children"), Output("pf-ctr", "figure"), Output("pf-positions", "children"),
          Output("pf-versions", "children"), Output("pf-notice", "children"), store_output(CSV, "over-time"),
          store_output(CSV, "positions"), store_output(CSV, "versions"),
          Input("pf-list", "value"), Input("pf-version", "value"), Input("pf-dates", "start_date"),
          Input("pf-dates", "end_date"))
def _on_filter(list_value: Any, version_value: Any, start: Any, end: Any) -> tuple[Any, ...]:
    settings = current_settings()

    def run() -> tuple[Any, ...]:
        view, tables = performance_view(list_value, version_value, start, end, settings)
        return (*view, *(store_data(table) for table in tables))

    def problem(message: str) -> tuple[Any, ...]:
        return ([], empty_figure(message, 340), None, None, _problem(message), None, None, None)

    return guarded("performance page", run, problem)


@callback(*dl.download_callback_args(CSV), prevent_initial_call=True)
def _on_download(clicks: int | None, store: Any) -> tuple[Any, str]:
    return dl.download(CSV, dl.triggered_table(), clicks, store)


dl.enable_buttons(CSV)
