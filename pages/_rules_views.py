"""The Rules page's views: pure builders of components from rule sets, their history and a preview.

No callbacks and no data access here (:mod:`pages.rules` calls these with what the use cases
returned), so tests build each view without a browser. Ids are what the browser test looks for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics.profiles import SEGMENTS
from analytics.rule_set import BOOST, BRAND, BURY, CATEGORY, EXCLUDE, ITEM, PIN, RuleSet
from analytics.rules_store import VersionInfo
from pages._parts import capitalised, card, field
from workflows.rules_preview import Preview, Sample

__all__ = ["KIND_LABELS", "TARGET_LABELS", "FORM_FIELDS", "COLUMNS", "form", "rule_rows", "grid", "history_view",
           "preview_view", "remove_options", "restore_options"]

KIND_LABELS = {PIN: "Pin to a position", BOOST: "Boost (move up)", BURY: "Bury (move down)",
               EXCLUDE: "Exclude (out of stock, recalled)"}
TARGET_LABELS = {ITEM: "Item", CATEGORY: "Category (and below)", BRAND: "Brand"}
# the form's fields: component id -> the key rule_from_form reads
FORM_FIELDS: dict[str, str] = {
    "rl-kind": "kind", "rl-target-type": "target_type", "rl-target": "target", "rl-amount": "amount",
    "rl-countries": "countries", "rl-segments": "segments", "rl-start": "start", "rl-end": "end",
    "rl-name": "name", "rl-note": "note",
}
# field, header, least width
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Rule", 120), ("what", "What it does", 180), ("scope", "For", 120), ("window", "When (UTC)", 150),
    ("state", "Now", 70), ("author", "By", 70), ("changed", "Changed (UTC)", 110), ("note", "Note", 120),
)
_TIME_HINT = "YYYY-MM-DD HH:MM, UTC; empty: no limit"


def form(countries: list[str]) -> Any:
    """The "add a rule" form: kind, target (with the catalogue's suggestions), position or shift,
    scope, window, name and note; Preview and Save."""
    return html.Div(id="rl-form", children=[
        html.Div(className="rs-filters", children=[
            field("Kind", "rl-kind", dcc.Dropdown(id="rl-kind", value=PIN, clearable=False, searchable=False,
                                                  options=[{"label": v, "value": k} for k, v in KIND_LABELS.items()])),
            field("Target", "rl-target-type", dcc.Dropdown(
                id="rl-target-type", value=ITEM, clearable=False, searchable=False,
                options=[{"label": v, "value": k} for k, v in TARGET_LABELS.items()])),
            field("Item, category or brand", "rl-target", html.Div([
                dcc.Input(id="rl-target", type="text", list="rl-target-list", debounce=0.3, value="",
                          placeholder="Type to search the catalogue", className="form-control", autoComplete="off"),
                html.Datalist(id="rl-target-list"),
            ])),
            field("Position / places", "rl-amount", dbc.Input(id="rl-amount", type="number", min=1, step=1, value=1)),
        ]),
        html.Div(className="rs-filters", children=[
            field("Countries (empty: all)", "rl-countries", dcc.Dropdown(
                id="rl-countries", multi=True, value=[], options=[{"label": c, "value": c} for c in countries])),
            field("Segments (empty: all)", "rl-segments", dcc.Dropdown(
                id="rl-segments", multi=True, value=[],
                options=[{"label": capitalised(seg), "value": seg} for seg in SEGMENTS])),
            field("Starts", "rl-start", dbc.Input(id="rl-start", type="text", placeholder=_TIME_HINT, value="")),
            field("Ends", "rl-end", dbc.Input(id="rl-end", type="text", placeholder=_TIME_HINT, value="")),
        ]),
        html.Div(className="rs-filters", children=[
            field("Name (explanations quote it)", "rl-name", dbc.Input(id="rl-name", type="text", value="",
                                                                      maxLength=80)),
            field("Note (why)", "rl-note", dbc.Input(id="rl-note", type="text", value="", maxLength=300)),
            html.Div(className="rs-field", children=[
                html.Span("Before saving", className="rs-field-label"),
                dbc.ButtonGroup([
                    dbc.Button("Preview", id="rl-preview", color="light", size="sm", className="rs-preset",
                               n_clicks=0),
                    dbc.Button("Save", id="rl-save", color="primary", size="sm", n_clicks=0),
                ]),
            ]),
        ]),
        html.Div("Pin: the position (1 = first). Boost and bury: how many places. Exclude: nothing. "
                 "A rule holds from its start (inclusive) to its end (exclusive).", className="rs-field-hint"),
    ])


def rule_rows(rules: RuleSet, now: datetime) -> list[dict[str, Any]]:
    """The grid's rows: one per rule, in set order (the first of two pins on a position wins)."""
    return [{"rule_id": r.rule_id, "name": r.name, "what": r.what(), "scope": r.scope.describe(),
             "window": r.window(), "state": r.state(now), "author": r.author,
             "changed": f"{r.changed:%Y-%m-%d %H:%M}", "note": r.note} for r in rules.rules]


def grid(rows: list[dict[str, Any]]) -> dag.AgGrid:
    """The current rules."""
    return dag.AgGrid(
        id="rl-grid",
        columnDefs=[{"field": name, "headerName": header, "minWidth": width, "flex": 2 if name == "what" else 1}
                    for name, header, width in COLUMNS],
        rowData=rows,
        defaultColDef={"sortable": True, "resizable": True, "filter": True, "wrapText": True, "autoHeight": True,
                       "wrapHeaderText": True, "autoHeaderHeight": True, "cellClass": "rs-grid-wrap"},
        className="rs-grid",
        dashGridOptions={"animateRows": False, "domLayout": "autoHeight",
                         "localeText": {"noRowsToShow": "No rules: the model's lists are served as they are"}},
    )


def remove_options(rules: RuleSet) -> list[dict[str, str]]:
    return [{"label": f"{r.name} ({r.what()})", "value": r.rule_id} for r in rules.rules]


def restore_options(versions: list[VersionInfo]) -> list[dict[str, Any]]:
    return [{"label": f"v{v.version} ({v.n_rules} rules, {v.author})", "value": v.version}
            for v in versions if not v.current]


def history_view(versions: list[VersionInfo]) -> Any:
    """Every saved version, newest first: who saved it, when, and what changed."""
    if not versions:
        return html.Div("No rules saved yet.", className="rs-empty", id="rl-history")
    head = html.Thead(html.Tr([html.Th(h) for h in ("Version", "Saved (UTC)", "By", "Rules", "Change")]))
    body = html.Tbody([html.Tr([
        html.Td(f"v{v.version}" + (" (current)" if v.current else "")),
        html.Td("" if v.saved_at is None else f"{v.saved_at:%Y-%m-%d %H:%M}"),
        html.Td(v.author or ""), html.Td(str(v.n_rules)), html.Td(v.comment),
    ]) for v in versions])
    return html.Div(dbc.Table([head, body], className="rs-table", size="sm", borderless=True, hover=True),
                    id="rl-history", style={"overflowX": "auto"})


def preview_view(result: Preview, starts_later: datetime | None = None) -> Any:
    """The preview: the counts, the customers per rule, the conflicts, and sample lists before and after."""
    notes = []
    if starts_later is not None:
        notes.append(html.P(f"Previewed at the rule's start, {starts_later:%d %b %Y %H:%M} UTC: before it, "
                            "nothing changes.", className="rs-table-note"))
    per_rule = [html.Li(f"'{name}' touches {count:,} lists") for name, count in result.by_rule.items()]
    clashes = [html.Li(f"{line} (in {count:,} lists)") for line, count in result.conflicts.items()]
    return html.Div(id="rl-preview-result", children=[
        dbc.Alert(result.summary(), color="info" if result.changed else "secondary", className="rs-alert",
                  id="rl-preview-summary"),
        *notes,
        html.Ul(per_rule, id="rl-preview-rules", className="rs-notes") if per_rule else None,
        dbc.Alert([html.Strong("Conflicts: "), html.Ul(clashes, className="mb-0")], color="warning",
                  className="rs-alert", id="rl-preview-conflicts") if clashes else None,
        dbc.Row(className="g-3", children=[dbc.Col(_sample(sample), lg=12 // max(1, len(result.samples)))
                                           for sample in result.samples]),
        html.Div(f"Previewed {result.customers:,} customers' precomputed lists in {result.seconds:.2f} s.",
                 className="rs-table-note"),
    ])


def _sample(sample: Sample) -> Any:
    def rows(lines: list[Any]) -> Any:
        return html.Ol([html.Li([row.title, html.Span(f" · {row.note}", className="rs-reason-note")
                                 if row.note else None], title=row.item_id) for row in lines],
                       className="rs-reasons")

    return card(f"Customer {sample.user_id}", "Now → with the draft", dbc.Row([
        dbc.Col([html.Div("Now", className="rs-field-label"), rows(sample.before)], md=6),
        dbc.Col([html.Div("With the draft", className="rs-field-label"), rows(sample.after)], md=6),
    ]))

