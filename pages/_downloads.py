""""Download CSV" for the tables and figures of a page: the control, the role check, the payload.

How a download works, on every page alike:

* the callback that draws a figure or table also writes the :class:`~dashboard.csv_tables.ShownTable`
  it drew from into the control's ``dcc.Store`` (:func:`store_output`, :func:`store_data`), so the
  CSV is the data the page shows, from the same frame, never a second query that could disagree;
* the button's click runs the page's own download callback (defined in the page module, so the
  guard gives it exactly the page's roles: :mod:`service.access`), whose body is :func:`download`:
  it checks the role again, reads the table back, writes the CSV and records the export in the
  audit log (``report_export``), and refuses the download when that row cannot be written.

The ids are pattern-matching (``{"type": "<prefix>-csv", "table": name}``), so one callback per
page serves all of its tables. The leading underscore keeps Dash's page scanner from
registering this module as a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
from dash import MATCH, Input, Output, State, clientside_callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.csv_tables import ShownTable, csv_filename, csv_text, table_from_store
from errors import RecsightError
from pages._parts import guarded
from service import access, audit

__all__ = ["DownloadPage", "Shown", "csv_control", "store_output", "store_data", "download_callback_args",
           "enable_buttons", "triggered_table", "require_page", "payload", "download", "Recorder"]

log = logging.getLogger(__name__)

Recorder = Callable[..., Any]  # service.access.record_action(action, customer=..., detail=...)
_BUTTON, _STORE, _FILE, _STATUS = "csv", "csv-data", "csv-file", "csv-status"
# The button is usable once its store holds a table (a refused selection leaves it empty).
_ENABLE = "function (table) { return !table; }"


@dataclass(frozen=True)
class DownloadPage:
    """A page that offers downloads: its module (whose roles the downloads get), the name its
    files carry (``recsight-<slug>-<table>-<day>.csv``), its id prefix, and its tables."""

    module: str
    slug: str
    prefix: str
    tables: frozenset[str]

    def component(self, kind: str, table: Any) -> dict[str, Any]:
        """The pattern-matching id of one part (button, store, file, status) of ``table``'s control."""
        return {"type": f"{self.prefix}-{kind}", "table": table}


class Shown(NamedTuple):
    """A figure (or table component) and the table behind it, built from the same frame."""

    figure: Any
    table: ShownTable | None


# --------------------------------------------------------------------------- components and wiring


def csv_control(page: DownloadPage, name: str, table: ShownTable | None = None) -> html.Div:
    """The "Download CSV" button of one table, its store (filled now with ``table``, or later by
    the callback that draws it), the download and a status line for a refusal. The wrapper's id
    is ``<prefix>-csv-<name>``, for tests and styles."""
    if name not in page.tables:
        raise ValueError(f"{page.slug} has no table {name!r}")
    return html.Div(className="rs-csv", id=f"{page.prefix}-csv-{name}", children=[
        dbc.Button("Download CSV", id=page.component(_BUTTON, name), color="light", size="sm",
                   className="rs-csv-button", n_clicks=0, disabled=table is None,
                   title="Download the data shown here as a CSV file"),
        dcc.Store(id=page.component(_STORE, name), data=store_data(table)),
        dcc.Download(id=page.component(_FILE, name)),
        html.Span(id=page.component(_STATUS, name), className="rs-csv-status"),
    ])


def store_output(page: DownloadPage, name: str) -> Output:
    """The Output that fills ``name``'s store: add it to the callback drawing that table."""
    if name not in page.tables:
        raise ValueError(f"{page.slug} has no table {name!r}")
    return Output(page.component(_STORE, name), "data")


def store_data(table: ShownTable | None) -> dict[str, Any] | None:
    """What a store holds: the table, or None (nothing shown, the button stays disabled)."""
    return None if table is None else table.to_store()


def download_callback_args(page: DownloadPage) -> list[Any]:
    """The outputs, inputs and state of the page's download callback, one for all its tables:
    ``(file, status) <- (button clicks, store)``."""
    return [Output(page.component(_FILE, MATCH), "data"), Output(page.component(_STATUS, MATCH), "children"),
            Input(page.component(_BUTTON, MATCH), "n_clicks"), State(page.component(_STORE, MATCH), "data")]


def enable_buttons(page: DownloadPage) -> None:
    """Register (for the app being built) the browser-side switch that enables a table's button
    once its store holds a table. The page module calls this where it defines its callbacks."""
    clientside_callback(_ENABLE, Output(page.component(_BUTTON, MATCH), "disabled"),
                        Input(page.component(_STORE, MATCH), "data"))


def triggered_table() -> str | None:
    """The table name of the control whose button ran the current download callback."""
    try:
        component = dash.ctx.inputs_list[0]["id"]
    except (IndexError, KeyError, TypeError):
        return None
    name = component.get("table") if isinstance(component, dict) else None
    return name if isinstance(name, str) else None


# --------------------------------------------------------------------------- the download itself


def require_page(module: str) -> None:
    """Refuse (RecsightError) unless the signed-in user may open the page ``module`` registers.

    The guard already refuses the page's callbacks to other roles; this is the second line, so
    a download is never handed to a role that may not see the page, however the request came.
    Outside a request nobody is signed in, and nothing is handed out.
    """
    registered = dash.page_registry.get(module)
    user = access.current_user()
    if registered is not None and user is not None and user.role in access.page_roles(registered["path"]):
        return
    log.warning("download from %s refused to %s", module, user.role if user else "nobody")
    raise RecsightError("this page's downloads are not open to your role")


def payload(slug: str, name: str, table: ShownTable, *, record: Recorder = access.record_action,
            today: date | None = None, detail: str | None = None) -> dict[str, Any]:
    """The ``dcc.Download`` data for ``table`` as CSV, named for the page, the table and the day
    (UTC). Records the export first (``detail``, else what was exported); a RecsightError from
    the audit log means no file."""
    content = csv_text(table)
    filename = csv_filename(slug, name, today or datetime.now(UTC).date())
    record(audit.REPORT_EXPORT, detail=detail or f"CSV {slug} {name}: {len(table.rows)} rows")
    return dcc.send_string(content, filename, type="text/csv")


def download(page: DownloadPage, name: str | None, clicks: int | None, store: Any, *,
             record: Recorder = access.record_action, today: date | None = None) -> tuple[Any, str]:
    """The download callback's body: (the file, or no update; a status line, empty on success).

    Checks the role (:func:`require_page`), that ``name`` is one of the page's tables, and the
    store (:func:`~dashboard.csv_tables.table_from_store`), then :func:`payload`. A problem is a
    sentence for the status line, never a traceback.
    """
    if not clicks:
        raise PreventUpdate  # drawn, not clicked

    def run() -> tuple[Any, str]:
        require_page(page.module)
        if name not in page.tables:
            raise RecsightError("this page has no such table")
        if store is None:
            raise RecsightError("nothing to download yet: the table is still empty")
        return payload(page.slug, name, table_from_store(store), record=record, today=today), ""

    return guarded(f"{page.slug} download", run, lambda message: (dash.no_update, message))
