"""Audit log (admins): every sign-in, customer lookup, explanation view and report export, with
who, role, when (UTC) and which pseudonymous customer; filtered by user, action and dates.

Thin like every page: the layout, and one callback whose body is :func:`update_audit` (tests
call it directly). The layout opens with a notice when something was throttled in the last
:data:`ALERT_HOURS` hours (a sign-in lock, a login over its lookup limit, a flood of failed
sign-ins: :mod:`service.throttle` writes one ``throttled`` row per burst), so an admin sees an
attack without filtering for it. Reading is all it does; the log is appended to by :mod:`service.audit` only.
Only admins reach this page and its callbacks (``service.access.PAGE_RULES``).

"Download CSV" hands out the entries the grid shows (:func:`export_log`). Up to 5,000 rows are
too many to send back through the browser, so the page keeps what identifies its listing (the
filters, the newest entry's sequence number, how many it showed) and the download reads the
log again up to that entry: the log is append-only, so those are the very entries shown, never
newer ones. The grid's own column filters and sorting apply too (the browser sends the order of
the rows it shows, by sequence number). The export is recorded in the audit log.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.csv_tables import table_from_rows
from errors import RecsightError
from pages import _downloads as dl
from pages._parts import current_settings, field, guarded, page, refused_page
from service import access, audit
from settings import Settings

__all__ = ["layout", "build_layout", "update_audit", "export_log", "AuditView", "ACTION_LABELS", "ALL", "COLUMNS",
           "ALERT_HOURS"]

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
    audit.EXPERIMENT_CHANGE: "Experiment changed",
    audit.RULES_CHANGE: "Rules changed",
}
ALERT_HOURS = 24  # how long a throttled burst stays on the page's notice
_ALERTS_LISTED = 5
# field, header, least width: together they fit an 800 px window, and long cells wrap.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("when", "When (UTC)", 140), ("who", "User", 80), ("role", "Role", 70), ("action", "Action", 120),
    ("customer", "Customer (pseudonym)", 140), ("detail", "Detail", 180),
)


_REREADS = 4  # tries to read the shown entries past the ones added meanwhile
_MAX_NEWER = 200_000  # entries added since the listing that a download reads past; more: refresh first
# The browser's part: the sequence numbers of the rows the grid shows (after its own filters and
# sorting), and the download button usable once there is a listing.
_SHOWN_SEQS = "function (rows) { return Array.isArray(rows) ? rows.map(function (row) { return row.seq; }) : null; }"
_ENABLE = "function (listing) { return !listing; }"


class AuditView(NamedTuple):
    """What :func:`update_audit` puts on the page: grid rows and a one-line summary; for the
    download, each row's sequence number and the ``listing`` that reads the same rows again."""

    rows: list[dict[str, Any]]
    summary: str
    seqs: tuple[int, ...] = ()
    listing: dict[str, Any] | None = None


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
        html.Div(className="rs-audit-head", children=[
            html.Div(id="au-summary", className="rs-table-note"),
            html.Div(className="rs-csv", id="au-csv-control", children=[
                dbc.Button("Download CSV", id="au-csv", color="light", size="sm", className="rs-csv-button",
                           n_clicks=0, disabled=True, title="Download the entries shown as a CSV file"),
                dcc.Store(id="au-listing"), dcc.Store(id="au-shown"), dcc.Download(id="au-download"),
                html.Span(id="au-csv-status", className="rs-csv-status"),
            ]),
        ]),
        dag.AgGrid(
            id="au-grid",
            columnDefs=[{"field": field, "headerName": header, "minWidth": width, "flex": 2 if field == "detail" else 1}
                        for field, header, width in COLUMNS],
            rowData=[],
            defaultColDef={"sortable": True, "resizable": True, "filter": True, "wrapText": True, "autoHeight": True,
                           "wrapHeaderText": True, "autoHeaderHeight": True, "cellClass": "rs-grid-wrap"},
            className="rs-grid",
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
    rows = [_row(entry) for entry in shown]
    listing = None if not shown else {
        "who": who, "action": action, "start": start and start.isoformat(), "end": end and end.isoformat(),
        "upto": shown[0].seq, "count": len(shown)}
    if not rows:
        summary = "No entries for this selection."
    elif len(entries) > audit.MAX_ENTRIES:
        summary = f"The newest {audit.MAX_ENTRIES:,} entries; narrow the filters to see older ones."
    else:
        summary = f"{len(rows):,} {'entry' if len(rows) == 1 else 'entries'}, newest first."
    return AuditView(rows, summary, tuple(entry.seq for entry in shown), listing)


def _row(entry: audit.AuditEntry) -> dict[str, Any]:
    """One grid row (and CSV row) of an entry, as the page words it."""
    return {
        "when": entry.at_utc.strftime("%Y-%m-%d %H:%M:%S"),
        "who": entry.who,
        "role": entry.role or "",
        "action": ACTION_LABELS.get(entry.action, entry.action),
        "customer": entry.customer or "",
        "detail": entry.detail or "",
    }


# --------------------------------------------------------------------------- the download


def export_log(listing: Any, shown: Any, settings: Settings, *, record: dl.Recorder = access.record_action,
               today: date | None = None) -> dict[str, Any]:
    """The entries the grid shows as a CSV download, recorded in the log (``report_export``).

    ``listing`` is :class:`AuditView`'s (the filters, the newest entry shown and how many):
    the entries are read again up to that one, so entries added since are not in the file.
    ``shown`` is the grid's rows after its own column filters and sorting, as sequence numbers
    (None: all of them, newest first); a number that is not in the listing is refused.
    """
    who, action, start, end, upto, count = _listing(listing)
    entries = _entries_upto(settings, who, action, start, end, upto, count)
    rows = {entry.seq: _row(entry) for entry in entries}
    if shown is None:
        order = list(rows)
    elif isinstance(shown, list) and all(isinstance(seq, int) and not isinstance(seq, bool) and seq in rows
                                         for seq in shown) and len(set(shown)) == len(shown):
        order = shown
    else:
        raise RecsightError("the table on the page changed: download again")
    table = table_from_rows([header for _, header, _ in COLUMNS],
                            ([rows[seq][name] for name, _, _ in COLUMNS] for seq in order))
    filters = ", ".join(f"{name} {value}" for name, value in (("user", who), ("action", action), ("from", start),
                                                             ("to", end)) if value) or "no filters"
    return dl.payload("audit", "log", table, record=record, today=today,
                      detail=f"audit log CSV: {len(order)} entries ({filters})")


def _listing(listing: Any) -> tuple[str | None, str | None, date | None, date | None, int, int]:
    """The listing the page kept, checked (it came back through the browser)."""
    if not isinstance(listing, dict):
        raise RecsightError("nothing to download yet: no entries are listed")
    who, action, upto, count = (listing.get(key) for key in ("who", "action", "upto", "count"))
    texts_ok = all(value is None or (isinstance(value, str) and len(value) <= 200) for value in (who, action))
    numbers_ok = all(isinstance(value, int) and not isinstance(value, bool) for value in (upto, count))
    if not texts_ok or not numbers_ok or not 0 < count <= audit.MAX_ENTRIES:
        raise RecsightError("the listing on the page is not readable: refresh and download again")
    return (None if who in (None, ALL) else who, None if action in (None, ALL) else action,
            _day(listing.get("start"), "start"), _day(listing.get("end"), "end"), upto, count)


def _entries_upto(settings: Settings, who: str | None, action: str | None, start: date | None, end: date | None,
                  upto: int, count: int) -> list[audit.AuditEntry]:
    """The newest ``count`` entries matching the filters with sequence numbers up to ``upto``:
    exactly the listing shown, read past any entries added since (the log only grows)."""
    limit = count
    for _ in range(_REREADS):
        entries = audit.read_entries(settings.audit_db, who=who, action=action, start=start, end=end, limit=limit)
        kept = [entry for entry in entries if entry.seq <= upto]
        if len(kept) >= count or len(entries) < limit:
            break
        # Sequence numbers only grow, so at most (newest - upto) entries were added since: read past them.
        limit = count + max(entries[0].seq - upto, len(entries) - len(kept))
        if limit > count + _MAX_NEWER:
            break
    kept = kept[:count]
    if len(kept) != count or kept[0].seq != upto:
        raise RecsightError("the audit log no longer holds the entries shown: refresh and download again")
    return kept


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
    Output("au-listing", "data"),
    Input("au-user", "value"),
    Input("au-action", "value"),
    Input("au-dates", "start_date"),
    Input("au-dates", "end_date"),
    Input("au-refresh", "n_clicks"),
)
def _on_filters(who: str | None, action: str | None, start_date: str | None, end_date: str | None,
                _refresh: int | None) -> tuple[list[dict[str, Any]], str, Any]:
    view = update_audit(who, action, start_date, end_date, current_settings())
    return [dict(row, seq=seq) for row, seq in zip(view.rows, view.seqs)], view.summary, view.listing


@callback(Output("au-download", "data"), Output("au-csv-status", "children"), Input("au-csv", "n_clicks"),
          State("au-listing", "data"), State("au-shown", "data"), prevent_initial_call=True)
def _on_download(clicks: int | None, listing: Any, shown: Any) -> tuple[Any, str]:
    if not clicks:
        raise PreventUpdate
    settings = current_settings()

    def run() -> tuple[Any, str]:
        dl.require_page(__name__)
        return export_log(listing, shown, settings), ""

    return guarded("audit log: download", run, lambda message: (dash.no_update, message))


clientside_callback(_SHOWN_SEQS, Output("au-shown", "data"), Input("au-grid", "virtualRowData"))
clientside_callback(_ENABLE, Output("au-csv", "disabled"), Input("au-listing", "data"))
