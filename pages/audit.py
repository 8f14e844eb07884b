"""Audit log (admins): every sign-in, customer lookup, explanation view and report export, with
who, role, when (UTC) and which pseudonymous customer; filtered by user, action and dates.

Thin like every page: the layout, and one callback whose body is :func:`update_audit` (tests
call it directly). Reading is all it does; the log is appended to by :mod:`service.audit` only.
Only admins reach this page and its callback (``service.access.PAGE_RULES``).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any, NamedTuple

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from errors import RecsightError
from pages._parts import current_settings, field, page
from service import audit
from settings import Settings

__all__ = ["layout", "build_layout", "update_audit", "AuditView", "ACTION_LABELS", "ALL", "COLUMNS"]

dash.register_page(__name__, path="/audit", name="Audit log", title="Audit log · Recsight", order=90)

log = logging.getLogger(__name__)

ALL = "all"
ACTION_LABELS: dict[str, str] = {
    audit.SIGN_IN: "Signed in",
    audit.SIGN_IN_FAILED: "Sign-in failed",
    audit.SIGN_OUT: "Signed out",
    audit.CUSTOMER_LOOKUP: "Customer lookup",
    audit.EXPLANATION_VIEW: "Explanation viewed",
    audit.REPORT_EXPORT: "Report exported",
}
COLUMNS: tuple[tuple[str, str, int], ...] = (  # field, header, width
    ("when", "When (UTC)", 170), ("who", "User", 130), ("role", "Role", 100), ("action", "Action", 160),
    ("customer", "Customer (pseudonym)", 200), ("detail", "Detail", 320),
)


class AuditView(NamedTuple):
    """What :func:`update_audit` puts on the page: grid rows and a one-line summary."""

    rows: list[dict[str, Any]]
    summary: str


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit (query-string values arrive as keyword arguments, unused)."""
    return build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """Filters (users and actions as they occur in the log), the summary and the table."""
    try:
        users, actions = audit.filter_choices(settings.audit_db)
        problem = None
    except RecsightError as exc:
        users, actions, problem = [], [], str(exc)
    actions = list(ACTION_LABELS) + sorted(set(actions) - set(ACTION_LABELS))
    return page(
        "Audit log",
        "Who signed in, looked up a customer, viewed an explanation or exported a report. "
        "Customers appear as pseudonyms; entries can be added, never changed.",
        dbc.Alert(problem, color="warning", className="rs-alert", id="au-problem") if problem else None,
        html.Div(className="rs-filters", children=[
            field("User", "au-user", dcc.Dropdown(
                id="au-user", value=ALL, clearable=False,
                options=[{"label": "All users", "value": ALL}] + [{"label": u, "value": u} for u in users])),
            field("Action", "au-action", dcc.Dropdown(
                id="au-action", value=ALL, clearable=False,
                options=[{"label": "All actions", "value": ALL}]
                + [{"label": ACTION_LABELS.get(a, a), "value": a} for a in actions])),
            html.Div(className="rs-field", children=[
                html.Label("Dates (UTC)", className="rs-field-label", htmlFor="au-dates"),
                dcc.DatePickerRange(id="au-dates", display_format="D MMM YYYY", first_day_of_week=1,
                                    clearable=True, updatemode="bothdates", minimum_nights=0),
            ]),
            html.Div(className="rs-field", children=[
                html.Span("Newest entries", className="rs-field-label"),
                dbc.Button("Refresh", id="au-refresh", color="light", size="sm", className="rs-preset", n_clicks=0),
            ]),
        ]),
        html.Div(id="au-summary", className="rs-table-note mb-2"),
        dag.AgGrid(
            id="au-grid",
            columnDefs=[{"field": field, "headerName": header, "minWidth": width, "flex": 2 if field == "detail" else 1}
                        for field, header, width in COLUMNS],
            rowData=[],
            defaultColDef={"sortable": True, "resizable": True, "filter": True},
            dashGridOptions={"pagination": True, "paginationPageSize": 50, "animateRows": False,
                             "localeText": {"noRowsToShow": "No entries for this selection"}},
            style={"height": "620px"},
        ),
    )


# --------------------------------------------------------------------------- callback body


def update_audit(who: str | None, action: str | None, start_date: str | None, end_date: str | None,
                 settings: Settings) -> AuditView:
    """The entries matching the filters, newest first, and a summary (or why there are none)."""
    try:
        start, end = _day(start_date, "start"), _day(end_date, "end")
        if start and end and start > end:
            raise RecsightError("the start date is after the end date")
        entries = audit.read_entries(settings.audit_db, who=None if who in (None, ALL) else who,
                                     action=None if action in (None, ALL) else action,
                                     start=start, end=end, limit=audit.MAX_ENTRIES + 1)
    except RecsightError as exc:
        return AuditView([], f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    shown = entries[:audit.MAX_ENTRIES]
    rows = [{
        "when": entry.at_utc.strftime("%Y-%m-%d %H:%M:%S"),
        "who": entry.who,
        "role": entry.role or "",
        "action": ACTION_LABELS.get(entry.action, entry.action),
        "customer": entry.customer or "",
        "detail": entry.detail or "",
    } for entry in shown]
    if not rows:
        summary = "No entries for this selection."
    elif len(entries) > audit.MAX_ENTRIES:
        summary = f"The newest {audit.MAX_ENTRIES:,} entries; narrow the filters to see older ones."
    else:
        summary = f"{len(rows):,} {'entry' if len(rows) == 1 else 'entries'}, newest first."
    return AuditView(rows, summary)


def _day(value: str | None, which: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RecsightError(f"the {which} date {str(value)[:20]!r} is not a date") from None


@callback(
    Output("au-grid", "rowData"),
    Output("au-summary", "children"),
    Input("au-user", "value"),
    Input("au-action", "value"),
    Input("au-dates", "start_date"),
    Input("au-dates", "end_date"),
    Input("au-refresh", "n_clicks"),
)
def _on_filters(who: str | None, action: str | None, start_date: str | None, end_date: str | None,
                _refresh: int | None) -> tuple[list[dict[str, Any]], str]:
    view = update_audit(who, action, start_date, end_date, current_settings())
    return view.rows, view.summary
