"""Audit log (admins): every sign-in, customer lookup, explanation view and report export, with
who, role, when (UTC) and which pseudonymous customer; filtered by user, action and dates.

Thin like every page: the layout, and one callback whose body is :func:`update_audit` (tests
call it directly). The layout opens with a notice when something was throttled in the last
:data:`ALERT_HOURS` hours (a sign-in lock, a login over its lookup limit, a flood of failed
sign-ins: :mod:`service.throttle` writes one ``throttled`` row per burst), so an admin sees an
attack without filtering for it. Reading is all it does; the log is appended to by :mod:`service.audit` only.
Only admins reach this page and its callback (``service.access.PAGE_RULES``).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from errors import RecsightError
from pages._parts import current_settings, field, page, refused_page
from service import audit
from settings import Settings

__all__ = ["layout", "build_layout", "update_audit", "AuditView", "ACTION_LABELS", "ALL", "COLUMNS", "ALERT_HOURS"]

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
    audit.ACCESS_DENIED: "Page refused",
    audit.THROTTLED: "Throttled (burst)",
    audit.SEARCH: "Search (anonymous)",
}
ALERT_HOURS = 24  # how long a throttled burst stays on the page's notice
_ALERTS_LISTED = 5
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
    """Dash calls this per visit (query-string values arrive as keyword arguments, unused); the
    page checks the role itself too (the user filter lists every name in the log)."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """Filters (users and actions as they occur in the log), the summary and the table."""
    try:
        users, actions = audit.filter_choices(settings.audit_db)
        problem = None
    except RecsightError as exc:
        users, actions, problem = [], [], str(exc)
    actions = list(audit.ACTIONS) + sorted(set(actions) - set(audit.ACTIONS))
    return page(
        "Audit log",
        "Who signed in, looked up a customer, viewed an explanation or exported a report. "
        "Customers appear as pseudonyms; entries can be added, never changed.",
        dbc.Alert(problem, color="warning", className="rs-alert", id="au-problem") if problem else None,
        _alerts(settings),
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


def _alerts(settings: Settings) -> Any:
    """The notice of recent throttled bursts (newest first), or None when there were none."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=ALERT_HOURS)
    try:
        entries = [entry for entry in audit.read_entries(settings.audit_db, action=audit.THROTTLED,
                                                          start=since.date(), limit=1000)
                   if entry.at_utc >= since]
    except RecsightError:
        return None  # the filters' problem line already says the log cannot be read
    if not entries:
        return None
    count = f"{len(entries)}{'+' if len(entries) == 1000 else ''}"
    return dbc.Alert(color="danger", className="rs-alert", id="au-alerts", children=[
        html.Strong(f"{count} throttled burst{'s' if len(entries) != 1 else ''} in the last {ALERT_HOURS} hours: "
                    "repeated failed sign-ins or lookups over the limit. "),
        f"Choose the action “{ACTION_LABELS[audit.THROTTLED]}” to see them all. Newest:",
        html.Ul([html.Li(f"{entry.at_utc:%Y-%m-%d %H:%M} UTC · {entry.who}: {entry.detail}")
                 for entry in entries[:_ALERTS_LISTED]], className="mb-0"),
    ])


# --------------------------------------------------------------------------- callback body


def update_audit(who: str | None, action: str | None, start_date: str | None, end_date: str | None,
                 settings: Settings) -> AuditView:
    """The entries matching the filters, newest first, and a summary (or why there are none)."""
    try:
        if not all(isinstance(value, (str, type(None))) for value in (who, action)):
            raise RecsightError("pick the user and the action from their lists")  # a forged request: text only
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
